//! Events recorded again are counted, not repeated, as client-go's event
//! correlator counts them: a pod the scheduler retries without room makes
//! one FailedScheduling Event whose count rises (`kubectl describe` shows
//! `(x3 over ...)`), and a ReplicaSet creating more than ten pods writes
//! nine SuccessfulCreate Events and one combined from the rest.

mod common;

use common::{Server, eventually};
use serde_json::{Value, json};

/// A server with a scheduler and controllers and no node: pods are placed
/// nowhere, and the scheduler says so.
fn server() -> Server {
    Server::start_with(&["--disable-agent"])
}

/// The one event about `object` with `reason`, once its count is at least
/// `count`.
fn counted(server: &Server, namespace: &str, object: &str, reason: &str, count: i64) -> Value {
    eventually(
        &format!("a {reason} event of {object} counted {count} times"),
        || {
            let events = server.events_about(namespace, object, reason);
            match events.as_slice() {
                [event] if event["count"].as_i64().unwrap_or(0) >= count => Ok(event.clone()),
                _ => Err(Value::from(events).to_string()),
            }
        },
    )
}

#[test]
fn a_pod_retried_without_room_has_one_failed_scheduling_event_counted_up() {
    let server = server();
    let ns = server.namespace("counted");
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stuck"},
        "spec": {
            "nodeSelector": {"tugboat.test/nowhere": "true"},
            "containers": [{"name": "main", "image": "tugboat.test/busybox:latest"}],
        },
    });
    server
        .kubectl_stdin(&["create", "-n", &ns, "-f", "-"], &pod.to_string())
        .ok();
    let first = counted(&server, &ns, "stuck", "FailedScheduling", 1);
    // A changed annotation is a reason for the scheduler to try again, and
    // the pod fits no better.
    for attempt in 2..=3 {
        server
            .kubectl(&[
                "annotate",
                "pod",
                "stuck",
                "-n",
                &ns,
                "--overwrite",
                &format!("attempt={attempt}"),
            ])
            .ok();
        counted(&server, &ns, "stuck", "FailedScheduling", attempt);
    }
    let last = counted(&server, &ns, "stuck", "FailedScheduling", 3);
    assert_eq!(last["metadata"]["name"], first["metadata"]["name"]);
    assert_eq!(last["message"], first["message"]);
    assert_eq!(last["firstTimestamp"], first["firstTimestamp"]);
    let count = last["count"].as_i64().unwrap_or(0);
    let described = server
        .kubectl(&["describe", "pod", "stuck", "-n", &ns])
        .ok();
    assert!(
        described.contains(&format!("(x{count} over")),
        "{described}"
    );
}

#[test]
fn more_than_ten_similar_events_are_combined_into_one() {
    let server = server();
    let ns = server.namespace("combined");
    let replicaset = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "wide"},
        "spec": {
            "replicas": 12,
            "selector": {"matchLabels": {"app": "wide"}},
            "template": {
                "metadata": {"labels": {"app": "wide"}},
                "spec": {"containers": [{"name": "main", "image": "tugboat.test/busybox:latest"}]},
            },
        },
    });
    server.apply_json(&ns, &replicaset);
    let events = eventually("the twelve creations recorded", || {
        let events = server.events_about(&ns, "wide", "SuccessfulCreate");
        let recorded: i64 = events.iter().filter_map(|e| e["count"].as_i64()).sum();
        if recorded == 12 {
            Ok(events)
        } else {
            Err(Value::from(events).to_string())
        }
    });
    // The first nine messages are written as they are; the tenth different
    // one starts the combined Event, which counts the rest.
    let (combined, apart): (Vec<&Value>, Vec<&Value>) = events.iter().partition(|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("(combined from similar events): Created pod: wide-"))
    });
    assert_eq!(apart.len(), 9, "{events:?}");
    assert!(apart.iter().all(|e| e["count"] == 1), "{apart:?}");
    assert_eq!(combined.len(), 1, "{events:?}");
    assert_eq!(combined[0]["count"], 3, "{combined:?}");
}
