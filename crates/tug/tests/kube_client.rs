//! The `kube` crate, as Tugboat's own controllers will use it, against the
//! real server: CRUD, selectors, watches, patches and API errors.

mod common;

use std::time::Duration;

use common::shared_server;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

/// A watch event should come long before this; a hung server fails the test.
const PATIENCE: Duration = Duration::from_secs(60);

fn pod(name: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }))
    .expect("pod")
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
        },
    }))
    .expect("deployment")
}

/// The API status of a failed call.
fn api_status<T: std::fmt::Debug>(result: kube::Result<T>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a watch event in time")
        .expect("the watch stream is open")
}

fn sorted_names<K: ResourceExt>(items: impl IntoIterator<Item = K>) -> Vec<String> {
    let mut names: Vec<String> = items.into_iter().map(|item| item.name_any()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn pods_create_get_list_with_selectors_and_delete() {
    let server = shared_server();
    let ns = server.namespace("kube-pods");
    let pods: Api<Pod> = Api::namespaced(server.client().await, &ns);

    let created = pods
        .create(
            &PostParams::default(),
            &pod("a", json!({"env": "prod", "tier": "web"})),
        )
        .await
        .expect("create a");
    assert!(created.uid().is_some_and(|uid| !uid.is_empty()));
    assert!(created.resource_version().is_some());
    assert_eq!(created.namespace().as_deref(), Some(ns.as_str()));
    for (name, labels) in [("b", json!({"env": "dev"})), ("c", json!({"env": "test"}))] {
        pods.create(&PostParams::default(), &pod(name, labels))
            .await
            .expect("create");
    }

    let fetched = pods.get("a").await.expect("get a");
    assert_eq!(fetched.uid(), created.uid());
    assert_eq!(
        fetched.spec.expect("spec").containers[0].image.as_deref(),
        Some("nginx:1.25")
    );

    let all = pods.list(&ListParams::default()).await.expect("list");
    assert_eq!(sorted_names(all), ["a", "b", "c"]);
    let selected = pods
        .list(&ListParams::default().labels("env in (prod,dev)"))
        .await
        .expect("list by set selector");
    assert_eq!(sorted_names(selected), ["a", "b"]);
    let without_tier = pods
        .list(&ListParams::default().labels("!tier"))
        .await
        .expect("list by absence");
    assert_eq!(sorted_names(without_tier), ["b", "c"]);
    let by_field = pods
        .list(&ListParams::default().fields("metadata.name=c"))
        .await
        .expect("list by field");
    assert_eq!(sorted_names(by_field), ["c"]);

    pods.delete("a", &DeleteParams::default())
        .await
        .expect("delete a");
    assert_eq!(api_status(pods.get("a").await).code, 404);
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("env=dev"),
    )
    .await
    .expect("delete collection");
    let left = pods.list(&ListParams::default()).await.expect("list");
    assert_eq!(sorted_names(left), ["c"]);
}

#[tokio::test]
async fn api_errors_carry_kubernetes_status() {
    let server = shared_server();
    let ns = server.namespace("kube-errors");
    let pods: Api<Pod> = Api::namespaced(server.client().await, &ns);

    let missing = api_status(pods.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));

    pods.create(&PostParams::default(), &pod("twice", json!({})))
        .await
        .expect("create");
    let duplicate = api_status(
        pods.create(&PostParams::default(), &pod("twice", json!({})))
            .await,
    );
    assert_eq!(
        (duplicate.code, duplicate.reason.as_str()),
        (409, "AlreadyExists")
    );

    let invalid = api_status(
        pods.create(&PostParams::default(), &pod("Bad_Name", json!({})))
            .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    let causes = invalid.details.expect("details").causes;
    assert!(
        causes.iter().any(|cause| cause.field == "metadata.name"),
        "{causes:?}"
    );

    let mut stale = pods.get("twice").await.expect("get");
    pods.patch(
        "twice",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"moved": "on"}}})),
    )
    .await
    .expect("patch");
    stale.labels_mut().insert("stale".into(), "yes".into());
    let conflict = api_status(pods.replace("twice", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));

    let elsewhere: Api<Pod> = Api::namespaced(server.client().await, "no-such-namespace");
    let no_namespace = api_status(
        elsewhere
            .create(&PostParams::default(), &pod("x", json!({})))
            .await,
    );
    assert_eq!(
        (no_namespace.code, no_namespace.reason.as_str()),
        (404, "NotFound")
    );
}

#[tokio::test]
async fn deployments_merge_patch_and_server_side_apply() {
    let server = shared_server();
    let ns = server.namespace("kube-deployments");
    let deployments: Api<Deployment> = Api::namespaced(server.client().await, &ns);

    deployments
        .create(&PostParams::default(), &deployment("merged", 1))
        .await
        .expect("create");
    let patched = deployments
        .patch(
            "merged",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"replicas": 3}, "metadata": {"labels": {"patched": "yes"}}}),
            ),
        )
        .await
        .expect("merge patch");
    assert_eq!(patched.spec.expect("spec").replicas, Some(3));
    assert_eq!(patched.metadata.labels.expect("labels")["patched"], "yes");
    assert_eq!(
        deployments
            .get_scale("merged")
            .await
            .expect("scale")
            .spec
            .expect("spec")
            .replicas,
        Some(3)
    );
    let listed = deployments
        .list(&ListParams::default().labels("patched=yes"))
        .await
        .expect("list");
    assert_eq!(sorted_names(listed), ["merged"]);

    let owner = PatchParams::apply("tugboat-e2e");
    let applied = deployments
        .patch("applied", &owner, &Patch::Apply(deployment("applied", 2)))
        .await
        .expect("server-side apply creates");
    assert_eq!(applied.spec.expect("spec").replicas, Some(2));
    let managers: Vec<String> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| entry.manager)
        .collect();
    assert_eq!(managers, ["tugboat-e2e"]);

    let rival = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "applied"}, "spec": {"replicas": 6}});
    let conflict = api_status(
        deployments
            .patch(
                "applied",
                &PatchParams::apply("rival"),
                &Patch::Apply(rival.clone()),
            )
            .await,
    );
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));

    let forced = deployments
        .patch(
            "applied",
            &PatchParams::apply("rival").force(),
            &Patch::Apply(rival),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.spec.expect("spec").replicas, Some(6));

    deployments
        .delete("applied", &DeleteParams::background())
        .await
        .expect("delete");
    assert_eq!(api_status(deployments.get("applied").await).code, 404);
}

#[tokio::test]
async fn api_watch_from_a_list_resource_version_sees_changes_in_order() {
    let server = shared_server();
    let ns = server.namespace("kube-watch");
    let pods: Api<Pod> = Api::namespaced(server.client().await, &ns);
    pods.create(&PostParams::default(), &pod("before", json!({})))
        .await
        .expect("create");

    let listed = pods.list(&ListParams::default()).await.expect("list");
    let version = listed
        .metadata
        .resource_version
        .expect("list resourceVersion");
    let mut events = pods
        .watch(&WatchParams::default(), &version)
        .await
        .expect("watch")
        .boxed();

    pods.create(&PostParams::default(), &pod("w", json!({})))
        .await
        .expect("create");
    pods.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"step": "two"}}})),
    )
    .await
    .expect("patch");
    pods.delete("w", &DeleteParams::default())
        .await
        .expect("delete");

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match next(&mut events).await.expect("watch event") {
            WatchEvent::Added(p) => seen.push(format!("ADDED {}", p.name_any())),
            WatchEvent::Modified(p) => seen.push(format!(
                "MODIFIED {} step={}",
                p.name_any(),
                p.labels().get("step").map(String::as_str).unwrap_or("")
            )),
            WatchEvent::Deleted(p) => seen.push(format!("DELETED {}", p.name_any())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(status) => panic!("watch error {status:?}"),
        }
    }
    assert_eq!(seen, ["ADDED w", "MODIFIED w step=two", "DELETED w"]);
}

#[tokio::test]
async fn runtime_watcher_lists_then_follows() {
    let server = shared_server();
    let ns = server.namespace("kube-watcher");
    let pods: Api<Pod> = Api::namespaced(server.client().await, &ns);
    pods.create(
        &PostParams::default(),
        &pod("existing", json!({"app": "w"})),
    )
    .await
    .expect("create");

    let mut events = watcher(pods.clone(), watcher::Config::default().labels("app=w")).boxed();
    let mut initial = Vec::new();
    loop {
        match next(&mut events).await.expect("watcher event") {
            watcher::Event::Init => {}
            watcher::Event::InitApply(p) => initial.push(p.name_any()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected before InitDone: {other:?}"),
        }
    }
    assert_eq!(initial, ["existing"]);

    pods.create(
        &PostParams::default(),
        &pod("unrelated", json!({"app": "other"})),
    )
    .await
    .expect("create");
    pods.create(&PostParams::default(), &pod("new", json!({"app": "w"})))
        .await
        .expect("create");
    match next(&mut events).await.expect("watcher event") {
        watcher::Event::Apply(p) => assert_eq!(p.name_any(), "new"),
        other => panic!("expected Apply(new), got {other:?}"),
    }

    pods.delete("existing", &DeleteParams::default())
        .await
        .expect("delete");
    let deleted = loop {
        match next(&mut events).await.expect("watcher event") {
            watcher::Event::Delete(p) => break p.name_any(),
            watcher::Event::Apply(p) if p.name_any() == "existing" => {}
            other => panic!("expected Delete(existing), got {other:?}"),
        }
    };
    assert_eq!(deleted, "existing");

    let left: Vec<Pod> = pods
        .list(&ListParams::default().labels("app=w"))
        .await
        .expect("list")
        .items;
    assert_eq!(sorted_names(left), ["new"]);
}

#[tokio::test]
async fn status_subresource_and_generation_keep_spec_and_status_apart() {
    let server = shared_server();
    let ns = server.namespace("kube-status");
    let deployments: Api<Deployment> = Api::namespaced(server.client().await, &ns);
    let created = deployments
        .create(&PostParams::default(), &deployment("split", 1))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));

    // The status subresource takes status and nothing else.
    let status = deployments
        .patch_status(
            "split",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"replicas": 9}, "status": {"replicas": 1, "readyReplicas": 1}}),
            ),
        )
        .await
        .expect("patch status");
    assert_eq!(
        status.status.as_ref().and_then(|s| s.ready_replicas),
        Some(1)
    );
    assert_eq!(status.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(
        status.metadata.generation,
        Some(1),
        "a status write is not a spec change"
    );

    // The main resource ignores status and bumps the generation on spec changes only.
    let labelled = deployments
        .patch(
            "split",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"extra": "yes"}}, "status": {"replicas": 7}}),
            ),
        )
        .await
        .expect("patch labels");
    assert_eq!(labelled.metadata.generation, Some(1));
    assert_eq!(labelled.status.as_ref().and_then(|s| s.replicas), Some(1));
    let scaled = deployments
        .patch(
            "split",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("patch spec");
    assert_eq!(scaled.metadata.generation, Some(2));

    // The scale subresource reads and writes spec.replicas.
    let scale = deployments.get_scale("split").await.expect("get scale");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(
        scale.status.map(|s| s.selector),
        Some(Some("app=split".to_owned()))
    );
    deployments
        .patch_scale(
            "split",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("patch scale");
    let after = deployments.get("split").await.expect("get");
    assert_eq!(after.spec.and_then(|s| s.replicas), Some(5));
    assert_eq!(after.metadata.generation, Some(3));
}
