use std::fs;
use std::sync::Mutex;

use tugboat_images::{Error, Progress, ProgressPhase, PullOptions, Reference, RegistryAuth};

use crate::common::{
    Entry, TokenService, layer_tar, new_store, oci_index_archive, test_image, this_architecture,
};
use crate::registry_server::{Access, Registry};

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

fn pull_error(result: tugboat_images::Result<tugboat_images::Image>) -> String {
    match result {
        Err(error @ Error::Pull { .. }) => error.to_string(),
        other => panic!("expected a pull error, got {other:?}"),
    }
}

#[tokio::test]
async fn pulls_an_oci_image_pushed_to_a_local_registry() {
    let registry = Registry::start(Access::Open);
    registry.push(
        &test_image("httpd.oci.tar"),
        "tugboat/httpd:v1",
        "oci",
        None,
    );
    let (_dir, store) = new_store();

    let events = Mutex::new(Vec::<Progress>::new());
    let record = |progress: &Progress| events.lock().unwrap().push(progress.clone());
    let options = PullOptions {
        progress: Some(&record),
        ..PullOptions::default()
    };
    let name = format!("{}/tugboat/httpd:v1", registry.address);
    let image = store.pull(&reference(&name), &options).await.unwrap();

    assert_eq!(image.repo_tags, [name.as_str()]);
    assert_eq!(image.repo_digests.len(), 1);
    assert!(
        image.repo_digests[0].starts_with(&format!("{}/tugboat/httpd@sha256:", registry.address))
    );
    assert_eq!(image.config.exposed_ports, ["8080/tcp"]);
    let layers = store.layer_dirs(&image);
    assert!(layers[0].join("bin/busybox").is_file());
    assert!(layers[1].join("www/index.html").is_file());

    let first_pull = std::mem::take(&mut *events.lock().unwrap());
    for layer in &image.layers {
        let of_layer: Vec<_> = first_pull
            .iter()
            .filter(|e| e.layer == layer.digest)
            .collect();
        let downloaded = of_layer
            .iter()
            .filter(|e| e.phase == ProgressPhase::Downloading)
            .map(|e| e.downloaded)
            .max();
        assert_eq!(downloaded, Some(layer.size), "{of_layer:?}");
        assert_eq!(of_layer.last().unwrap().phase, ProgressPhase::Done);
    }

    // A second pull finds every layer in place, and the digest names the same image.
    let again = store.pull(&reference(&name), &options).await.unwrap();
    assert_eq!(again.id, image.id);
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.phase == ProgressPhase::Cached)
    );
    let by_digest = store.resolve(&image.repo_digests[0]).unwrap().unwrap();
    assert_eq!(by_digest.id, image.id);
    let pinned = store
        .pull(&reference(&image.repo_digests[0]), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(pinned.id, image.id);
    assert_eq!(pinned.image_ref(), image.repo_digests[0]);

    // The same image imported under its own name has both names; removing
    // one leaves the other.
    let imported = store
        .import(&test_image("httpd.oci.tar"))
        .unwrap()
        .remove(0);
    assert_eq!(imported.id, image.id);
    assert_eq!(
        imported.repo_tags,
        ["tugboat.test/httpd:latest", name.as_str()]
    );
    assert_eq!(
        store.remove(&name).unwrap(),
        [tugboat_images::Removed::Untagged(name.clone())]
    );
    let left = store.resolve("tugboat.test/httpd").unwrap().unwrap();
    assert_eq!(left.repo_tags, ["tugboat.test/httpd:latest"]);
    assert!(store.layer_dirs(&left)[1].join("www/index.html").is_file());
}

#[tokio::test]
async fn pulls_a_docker_schema_2_image() {
    let registry = Registry::start(Access::Open);
    registry.push(
        &test_image("busybox.oci.tar"),
        "tugboat/busybox:v2s2",
        "v2s2",
        None,
    );
    let (_dir, store) = new_store();
    let name = format!("{}/tugboat/busybox:v2s2", registry.address);
    let image = store
        .pull(&reference(&name), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(
        image.layers[0].media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(image.config.cmd, ["sh"]);
    assert!(store.layer_dirs(&image)[0].join("bin/busybox").is_file());
}

#[tokio::test]
async fn basic_auth_is_required_and_accepted() {
    let registry = Registry::start(Access::Htpasswd("tug", "s3cret"));
    registry.push(
        &test_image("busybox.oci.tar"),
        "private/busybox:latest",
        "oci",
        Some("tug:s3cret"),
    );
    let (_dir, store) = new_store();
    let name = reference(&format!("{}/private/busybox", registry.address));

    let anonymous = pull_error(store.pull(&name, &PullOptions::default()).await);
    assert!(anonymous.contains("unauthorized"), "{anonymous}");

    let wrong = PullOptions {
        auth: RegistryAuth::Basic {
            username: "tug".into(),
            password: "wrong".into(),
        },
        ..PullOptions::default()
    };
    let refused = pull_error(store.pull(&name, &wrong).await);
    assert!(
        refused.contains("the registry refused the credentials given"),
        "{refused}"
    );

    // The credentials as an imagePullSecret carries them.
    let secret = format!(
        r#"{{"auths":{{"http://{}":{{"auth":"dHVnOnMzY3JldA=="}}}}}}"#,
        registry.address
    );
    let auth = RegistryAuth::from_docker_config(secret.as_bytes(), name.registry())
        .unwrap()
        .unwrap();
    let options = PullOptions {
        auth,
        ..PullOptions::default()
    };
    let image = store.pull(&name, &options).await.unwrap();
    assert_eq!(image.repo_tags, [name.to_string()]);
}

#[tokio::test]
async fn bearer_tokens_come_from_the_registrys_token_service() {
    let tokens = TokenService::start("tug", "s3cret");
    let registry = Registry::start(tokens.access());
    registry.push(
        &test_image("busybox.oci.tar"),
        "private/busybox:latest",
        "oci",
        Some("tug:s3cret"),
    );
    let (_dir, store) = new_store();
    let name = reference(&format!("{}/private/busybox", registry.address));

    let anonymous = pull_error(store.pull(&name, &PullOptions::default()).await);
    assert!(anonymous.contains("unauthorized"), "{anonymous}");

    let login = |password: &str| PullOptions {
        auth: RegistryAuth::Basic {
            username: "tug".into(),
            password: password.into(),
        },
        ..PullOptions::default()
    };
    let refused = pull_error(store.pull(&name, &login("wrong")).await);
    assert!(refused.contains("bad credentials"), "{refused}");

    let image = store.pull(&name, &login("s3cret")).await.unwrap();
    assert!(store.layer_dirs(&image)[0].join("bin/busybox").is_file());
}

#[tokio::test]
async fn a_missing_image_gives_the_registrys_message() {
    let registry = Registry::start(Access::Open);
    registry.push(
        &test_image("busybox.oci.tar"),
        "tugboat/busybox:latest",
        "oci",
        None,
    );
    let (_dir, store) = new_store();

    let missing_tag = reference(&format!("{}/tugboat/busybox:nope", registry.address));
    // From a spawned task, as the agent pulls: the pull future must be Send.
    let pulling = {
        let (store, missing_tag) = (store.clone(), missing_tag.clone());
        tokio::spawn(async move { store.pull(&missing_tag, &PullOptions::default()).await })
    };
    let message = pull_error(pulling.await.unwrap());
    assert!(message.contains(&missing_tag.to_string()), "{message}");
    assert!(message.contains("manifest unknown"), "{message}");

    let missing_repository = reference(&format!("{}/tugboat/nothing", registry.address));
    let message = pull_error(
        store
            .pull(&missing_repository, &PullOptions::default())
            .await,
    );
    assert!(message.contains("manifest unknown"), "{message}");

    let address = registry.address.clone();
    drop(registry);
    let nobody = reference(&format!("{address}/tugboat/busybox"));
    let message = pull_error(store.pull(&nobody, &PullOptions::default()).await);
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    assert!(store.list().unwrap().is_empty());
}

#[tokio::test]
async fn pulls_this_platforms_image_from_an_index() {
    let (dir, store) = new_store();
    let layers =
        |architecture: &str| vec![layer_tar(&[Entry::File("arch", architecture.as_bytes())])];
    let here = this_architecture();
    let both = dir.path().join("both.tar");
    oci_index_archive(
        &both,
        "tugboat.test/multi:v1",
        &[("s390x", layers("s390x")), (here, layers(here))],
    );
    let foreign = dir.path().join("foreign.tar");
    oci_index_archive(
        &foreign,
        "tugboat.test/foreign:v1",
        &[("s390x", layers("s390x"))],
    );
    let registry = Registry::start(Access::Open);
    registry.push(&both, "tugboat/multi:v1", "oci", None);
    registry.push(&foreign, "tugboat/foreign:v1", "oci", None);

    let name = reference(&format!("{}/tugboat/multi:v1", registry.address));
    let image = store.pull(&name, &PullOptions::default()).await.unwrap();
    assert_eq!(image.config.architecture, here);
    let layer = store.layer_dirs(&image)[0].join("arch");
    assert_eq!(fs::read_to_string(layer).unwrap(), here);
    // The tag names the index, so the repo digest is the index's; the
    // manifest kept is this platform's.
    let (_, index_digest) = image.repo_digests[0].split_once('@').unwrap();
    assert_ne!(
        Some(index_digest),
        image.manifest.as_ref().map(|d| d.as_str())
    );

    let foreign = reference(&format!("{}/tugboat/foreign:v1", registry.address));
    let message = pull_error(store.pull(&foreign, &PullOptions::default()).await);
    assert!(
        message.contains(&format!("no manifest for linux/{here}")),
        "{message}"
    );
    assert!(message.contains("linux/s390x"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_pulls_of_one_image_both_succeed() {
    let registry = Registry::start(Access::Open);
    registry.push(
        &test_image("httpd.oci.tar"),
        "tugboat/httpd:v1",
        "oci",
        None,
    );
    let (_dir, store) = new_store();
    let name = reference(&format!("{}/tugboat/httpd:v1", registry.address));
    let pull = || {
        let (store, name) = (store.clone(), name.clone());
        tokio::spawn(async move { store.pull(&name, &PullOptions::default()).await })
    };
    let (first, second) = tokio::join!(pull(), pull());
    let (first, second) = (first.unwrap().unwrap(), second.unwrap().unwrap());
    assert_eq!(first.id, second.id);
    assert_eq!(store.list().unwrap().len(), 1);
    assert!(store.layer_dirs(&first)[1].join("www/index.html").is_file());
    let leftovers = fs::read_dir(store.root().join("layers"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0, "no half-unpacked layer is left behind");
}
