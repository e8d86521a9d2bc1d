//! Events recorded again are counted, not repeated, as client-go's event
//! correlator counts them: a pod the scheduler retries without room makes
//! one FailedScheduling Event whose count rises (`kubectl describe` shows
//! `(x3 over ...)`), a ReplicaSet creating more than ten pods writes
//! nine SuccessfulCreate Events and one combined from the rest, and no
//! more than 25 events about one object are written at once.

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

/// A ReplicaSet `wide` of `replicas` pods, which run nowhere.
fn wide(replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "wide"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "wide"}},
            "template": {
                "metadata": {"labels": {"app": "wide"}},
                "spec": {"containers": [{"name": "main", "image": "tugboat.test/busybox:latest"}]},
            },
        },
    })
}

/// The SuccessfulCreate Events about `wide` once their counts add up to
/// `total`.
fn creations(server: &Server, namespace: &str, total: i64) -> Vec<Value> {
    eventually(&format!("{total} creations recorded"), || {
        let events = server.events_about(namespace, "wide", "SuccessfulCreate");
        let recorded: i64 = events.iter().filter_map(|e| e["count"].as_i64()).sum();
        if recorded == total {
            Ok(events)
        } else {
            Err(Value::from(events).to_string())
        }
    })
}

#[test]
fn more_than_ten_similar_events_are_combined_into_one() {
    let server = server();
    let ns = server.namespace("combined");
    server.apply_json(&ns, &wide(12));
    let events = creations(&server, &ns, 12);
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

#[test]
fn a_component_writes_25_events_about_one_object_and_holds_back_the_rest() {
    let server = server();
    let ns = server.namespace("spam");
    server.apply_json(&ns, &wide(30));
    eventually("thirty pods", || {
        let pods = server.names(&["get", "pods", "-n", &ns]);
        (pods.len() == 30).then_some(()).ok_or(format!("{pods:?}"))
    });
    creations(&server, &ns, 25);
    // Time for the last five to be written, were they to be: they are past
    // the controller's budget for the ReplicaSet, 25 at once.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let events = server.events_about(&ns, "wide", "SuccessfulCreate");
    let recorded: i64 = events.iter().filter_map(|e| e["count"].as_i64()).sum();
    assert_eq!(recorded, 25, "{events:?}");
}
