//! Pods pulling a private image from a real registry (Debian's
//! docker-registry on loopback, behind htpasswd basic authentication) with
//! credentials from `kubectl create secret docker-registry`: named by the
//! pod's `imagePullSecrets`, or by its ServiceAccount's.
//!
//! Loopback registries are reached over plain HTTP, as Docker and the
//! `--insecure-registry` flag treat them, so the registry needs no TLS.

mod common;
// The image store's test registry; this suite uses only its htpasswd access.
#[allow(dead_code)]
#[path = "../../images/tests/images/registry_server.rs"]
mod registry_server;

use common::pods::{container, create, pod, wait_pod, wait_ready};
use common::{Server, node_server, test_images};
use registry_server::{Access, Registry};
use serde_json::{Value, json};

const USER: &str = "tug";
const PASSWORD: &str = "s3cret";
/// A pull the registry refused (HTTP 401) without credentials, and with wrong ones.
const UNAUTHORIZED: &str = "unauthorized: authentication required";
const REFUSED: &str = "unauthorized: the registry refused the credentials given";

/// A registry that wants `tug:s3cret`, holding busybox as `private/busybox:v1`.
fn private_registry() -> Registry {
    let registry = Registry::start(Access::Htpasswd(USER, PASSWORD));
    registry.push(
        &test_images().join("busybox.oci.tar"),
        "private/busybox:v1",
        "oci",
        Some(&format!("{USER}:{PASSWORD}")),
    );
    registry
}

/// A pod running the private image, pulled every time (`Always`) so that
/// no test passes on an image another one pulled.
fn private_pod(registry: &Registry, name: &str, pull_secrets: &[&str]) -> Value {
    let mut manifest = pod(name, "Always", &[("main", "exec sleep 3600")], json!({}));
    let c = &mut manifest["spec"]["containers"][0];
    c["image"] = format!("{}/private/busybox:v1", registry.address).into();
    c["imagePullPolicy"] = "Always".into();
    if !pull_secrets.is_empty() {
        let names: Vec<Value> = pull_secrets.iter().map(|n| json!({"name": n})).collect();
        manifest["spec"]["imagePullSecrets"] = names.into();
    }
    manifest
}

/// `kubectl create secret docker-registry NAME` for the registry.
fn docker_registry_secret(
    server: &Server,
    namespace: &str,
    registry: &Registry,
    name: &str,
    password: &str,
) {
    server
        .kubectl(&[
            "create",
            "secret",
            "docker-registry",
            name,
            "-n",
            namespace,
            &format!("--docker-server={}", registry.address),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={password}"),
        ])
        .ok();
}

/// Waits for the pod's pull to fail and returns the waiting message.
fn pull_failure(server: &Server, namespace: &str, name: &str) -> String {
    let pod = wait_pod(server, namespace, name, "ErrImagePull", |p| {
        container(p, "main")["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    container(&pod, "main")["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_private_image_is_pulled_only_with_the_pods_image_pull_secret() {
    let server = node_server();
    let registry = private_registry();
    let ns = server.namespace("pull-secrets");
    let image = format!("{}/private/busybox:v1", registry.address);

    create(server, &ns, &private_pod(&registry, "anonymous", &[]));
    let refused = pull_failure(server, &ns, "anonymous");
    assert!(
        refused.starts_with(&format!("Failed to pull image {image:?}")),
        "{refused}"
    );
    assert!(refused.contains(UNAUTHORIZED), "{refused}");
    wait_pod(server, &ns, "anonymous", "ImagePullBackOff", |p| {
        container(p, "main")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });

    docker_registry_secret(server, &ns, &registry, "wrong", "not-the-password");
    create(
        server,
        &ns,
        &private_pod(&registry, "wrong-password", &["wrong"]),
    );
    let refused = pull_failure(server, &ns, "wrong-password");
    assert!(refused.contains(REFUSED), "{refused}");

    docker_registry_secret(server, &ns, &registry, "regcred", PASSWORD);
    // The first secret that has the registry's credentials is used.
    create(
        server,
        &ns,
        &private_pod(&registry, "authorized", &["missing", "regcred"]),
    );
    let running = wait_ready(server, &ns, "authorized");
    let main = container(&running, "main");
    assert_eq!(main["image"], image.as_str());
    let image_id = main["imageID"].as_str().unwrap_or_default();
    assert!(
        image_id.starts_with(&format!("{}/private/busybox@sha256:", registry.address)),
        "{main}"
    );
    let pulled = server.event_messages(&ns, "authorized", "Pulled");
    assert!(
        pulled
            .iter()
            .any(|m| m.starts_with(&format!("Successfully pulled image {image:?}"))),
        "{pulled:?}"
    );
}

#[test]
fn a_service_accounts_image_pull_secrets_are_given_to_its_pods() {
    let server = node_server();
    let registry = private_registry();
    let ns = server.namespace("account-pull-secrets");
    docker_registry_secret(server, &ns, &registry, "regcred", PASSWORD);
    server
        .kubectl(&["create", "serviceaccount", "puller", "-n", &ns])
        .ok();
    server
        .kubectl(&[
            "patch",
            "serviceaccount",
            "puller",
            "-n",
            &ns,
            "-p",
            r#"{"imagePullSecrets":[{"name":"regcred"}]}"#,
        ])
        .ok();

    let mut manifest = private_pod(&registry, "from-account", &[]);
    manifest["spec"]["serviceAccountName"] = "puller".into();
    create(server, &ns, &manifest);
    let pod = server.get_json(&ns, "pod", "from-account");
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "regcred"}]),
        "admission copies the account's secrets into the pod"
    );
    wait_ready(server, &ns, "from-account");

    // A pod naming secrets of its own keeps only those, as in Kubernetes.
    docker_registry_secret(server, &ns, &registry, "wrong", "not-the-password");
    let mut manifest = private_pod(&registry, "own-secrets", &["wrong"]);
    manifest["spec"]["serviceAccountName"] = "puller".into();
    create(server, &ns, &manifest);
    let pod = server.get_json(&ns, "pod", "own-secrets");
    assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "wrong"}]));
    let refused = pull_failure(server, &ns, "own-secrets");
    assert!(refused.contains(REFUSED), "{refused}");
}
