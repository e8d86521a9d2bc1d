//! Watch semantics a client library relies on: streaming lists that end in a
//! bookmark, and 410 Expired once history has been compacted away.

mod common;

use std::time::Duration;

use common::Server;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(60);

async fn configmaps(server: &Server, namespace: &str) -> Api<ConfigMap> {
    Api::namespaced(server.client().await, namespace)
}

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"value": value},
    }))
    .expect("configmap")
}

/// The ConfigMap the cluster puts in every namespace.
const ROOT_CA: &str = "kube-root-ca.crt";

async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a watch event in time")
        .expect("the watch stream is open")
}

#[tokio::test]
async fn streaming_list_sends_every_object_then_the_initial_events_bookmark() {
    let server = Server::start();
    let ns = server.namespace("streaming");
    let api = configmaps(&server, &ns).await;
    // Every namespace gets the cluster's CA as a ConfigMap; waiting for it
    // keeps it from arriving in the middle of what this test watches.
    while api.get_opt(ROOT_CA).await.expect("get").is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &configmap(name, "1"))
            .await
            .expect("create");
    }
    let mut events = api
        .watch(&WatchParams::streaming_lists(), "0")
        .await
        .expect("watch")
        .boxed();
    let mut added = Vec::new();
    let bookmark = loop {
        match next(&mut events).await.expect("event") {
            WatchEvent::Added(cm) => added.push(cm.name_any()),
            WatchEvent::Bookmark(mark) => break mark,
            other => panic!("unexpected event before the bookmark: {other:?}"),
        }
    };
    added.sort();
    assert_eq!(added, ["a", "b", ROOT_CA]);
    assert_eq!(
        bookmark
            .metadata
            .annotations
            .get("k8s.io/initial-events-end")
            .map(String::as_str),
        Some("true")
    );
    let listed = api.list(&ListParams::default()).await.expect("list");
    let list_rv: i64 = listed.metadata.resource_version.unwrap().parse().unwrap();
    let bookmark_rv: i64 = bookmark.metadata.resource_version.parse().unwrap();
    assert!(bookmark_rv <= list_rv && bookmark_rv > 0);

    api.create(&PostParams::default(), &configmap("c", "1"))
        .await
        .expect("create");
    match next(&mut events).await.expect("event") {
        WatchEvent::Added(cm) => assert_eq!(cm.name_any(), "c"),
        other => panic!("expected ADDED c, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_a_compacted_revision_gets_410_expired() {
    let server = Server::start_with(&["--compaction-interval", "1"]);
    let ns = server.namespace("compacted");
    let api = configmaps(&server, &ns).await;
    let created = api
        .create(&PostParams::default(), &configmap("x", "0"))
        .await
        .expect("create");
    let old = created.resource_version().expect("resourceVersion");
    for i in 1..=3 {
        api.patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"value": i.to_string()}})),
        )
        .await
        .expect("patch");
    }
    // Two compaction periods: the first notes the revision, the second
    // compacts up to it.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut events = api
        .watch(&WatchParams::default(), &old)
        .await
        .expect("watch")
        .boxed();
    match next(&mut events).await {
        Ok(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 Expired watch error, got {other:?}"),
    }

    let listed = api.list(&ListParams::default()).await.expect("list");
    let current = listed.metadata.resource_version.expect("resourceVersion");
    let mut fresh = api
        .watch(&WatchParams::default(), &current)
        .await
        .expect("watch")
        .boxed();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"value": "latest"}})),
    )
    .await
    .expect("patch");
    match next(&mut fresh).await.expect("event") {
        WatchEvent::Modified(cm) => {
            assert_eq!(cm.data.unwrap()["value"], "latest");
        }
        other => panic!("expected MODIFIED after re-watching, got {other:?}"),
    }
}
