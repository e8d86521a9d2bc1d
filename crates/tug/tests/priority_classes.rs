//! PriorityClasses and the Priority admission step: pods take their
//! priority from the class they name (or the global default), refusals
//! read as kube-apiserver words them, and the system's classes are there
//! from the start and stay.

mod common;

use common::{Server, shared_server};
use serde_json::{Value, json};

fn class(name: &str, value: i64, extra: Value) -> String {
    let mut class = json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
    });
    class
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    class.to_string()
}

fn pod(name: &str, spec: Value) -> String {
    let mut pod_spec =
        json!({"containers": [{"name": "main", "image": "tugboat.test/busybox:latest"}]});
    pod_spec
        .as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec})
        .to_string()
}

fn create(server: &Server, namespace: &str, manifest: &str) {
    server
        .kubectl_stdin(&["create", "-n", namespace, "-f", "-"], manifest)
        .ok();
}

fn create_class(server: &Server, manifest: &str) {
    server.kubectl_stdin(&["create", "-f", "-"], manifest).ok();
}

fn refused(server: &Server, namespace: &str, manifest: &str) -> String {
    server
        .kubectl_stdin(&["create", "-n", namespace, "-f", "-"], manifest)
        .fails()
}

#[test]
fn the_system_classes_are_listed_and_cannot_be_deleted() {
    let server = shared_server();
    let out = server
        .kubectl(&["get", "priorityclasses", "--sort-by=.value"])
        .ok();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    );
    let system: Vec<(&str, &str, &str, &str)> = lines[1..]
        .iter()
        .filter(|l| l[0].starts_with("system-"))
        .map(|l| (l[0], l[1], l[2], l[4]))
        .collect();
    assert_eq!(
        system,
        [
            (
                "system-cluster-critical",
                "2000000000",
                "false",
                "PreemptLowerPriority"
            ),
            (
                "system-node-critical",
                "2000001000",
                "false",
                "PreemptLowerPriority"
            ),
        ]
    );
    let err = server
        .kubectl(&["delete", "priorityclass", "system-node-critical"])
        .fails();
    assert!(
        err.contains(
            "priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a system priority class and cannot be deleted"
        ),
        "{err}"
    );
}

#[test]
fn a_pod_takes_the_priority_of_its_class() {
    let server = shared_server();
    let ns = server.namespace("pc-named");
    create_class(
        server,
        &class(
            "pc-named-batch",
            1000,
            json!({"preemptionPolicy": "Never", "description": "batch work"}),
        ),
    );
    create(
        server,
        &ns,
        &pod("job", json!({"priorityClassName": "pc-named-batch"})),
    );
    let spec = &server.get_json(&ns, "pod", "job")["spec"];
    assert_eq!(spec["priority"], 1000);
    assert_eq!(spec["preemptionPolicy"], "Never");

    create(server, &ns, &pod("plain", json!({})));
    let spec = &server.get_json(&ns, "pod", "plain")["spec"];
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    assert!(spec.get("priorityClassName").is_none(), "{spec}");

    create(
        server,
        &ns,
        &pod(
            "critical",
            json!({"priorityClassName": "system-cluster-critical"}),
        ),
    );
    assert_eq!(
        server.get_json(&ns, "pod", "critical")["spec"]["priority"],
        2_000_000_000
    );
}

#[test]
fn pods_naming_a_missing_class_or_their_own_priority_are_refused() {
    let server = shared_server();
    let ns = server.namespace("pc-refused");
    let err = refused(
        server,
        &ns,
        &pod("lost", json!({"priorityClassName": "pc-no-such-class"})),
    );
    assert!(
        err.contains(
            "pods \"lost\" is forbidden: no PriorityClass with name pc-no-such-class was found"
        ),
        "{err}"
    );
    let err = refused(server, &ns, &pod("greedy", json!({"priority": 5000})));
    assert!(
        err.contains(
            "pods \"greedy\" is forbidden: the integer value of priority (5000) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"
        ),
        "{err}"
    );
    server.assert_absent(&ns, "pod", "lost");
    server.assert_absent(&ns, "pod", "greedy");
}

#[test]
fn classes_out_of_bounds_are_invalid() {
    let server = shared_server();
    let err = server
        .kubectl_stdin(
            &["create", "-f", "-"],
            &class("pc-too-high", 2_000_000_000, json!({})),
        )
        .fails();
    assert!(
        err.contains(
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
        ),
        "{err}"
    );
    let err = server
        .kubectl_stdin(&["create", "-f", "-"], &class("system-mine", 10, json!({})))
        .fails();
    assert!(
        err.contains(
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
        ),
        "{err}"
    );
    create_class(server, &class("pc-fixed", 7, json!({})));
    let err = server
        .kubectl(&[
            "patch",
            "priorityclass",
            "pc-fixed",
            "--type=merge",
            "-p",
            r#"{"value": 8}"#,
        ])
        .fails();
    assert!(
        err.contains("value: Forbidden: may not be changed in an update."),
        "{err}"
    );
}

/// On a server of its own: a global default class changes every new pod.
#[test]
fn the_global_default_class_applies_to_pods_naming_none_and_is_unique() {
    let server = Server::start_with(&["--disable-agent", "--disable-scheduler"]);
    create_class(
        &server,
        &class("everyday", 100, json!({"globalDefault": true})),
    );
    let err = server
        .kubectl_stdin(
            &["create", "-f", "-"],
            &class("another", 200, json!({"globalDefault": true})),
        )
        .fails();
    assert!(
        err.contains(
            "priorityclasses.scheduling.k8s.io \"another\" is forbidden: PriorityClass everyday is already marked as default. Only one default can exist"
        ),
        "{err}"
    );
    // Nor may an existing class become a second default.
    create_class(&server, &class("another", 200, json!({})));
    let err = server
        .kubectl(&[
            "patch",
            "priorityclass",
            "another",
            "--type=merge",
            "-p",
            r#"{"globalDefault":true}"#,
        ])
        .fails();
    assert!(
        err.contains(
            "priorityclasses.scheduling.k8s.io \"another\" is forbidden: PriorityClass everyday is already marked as default. Only one default can exist"
        ),
        "{err}"
    );
    assert_eq!(
        server.get_json("", "priorityclass", "another")["globalDefault"],
        Value::Null
    );
    // The default itself may still change its description.
    server
        .kubectl(&[
            "patch",
            "priorityclass",
            "everyday",
            "--type=merge",
            "-p",
            r#"{"description":"most pods"}"#,
        ])
        .ok();
    create(&server, "default", &pod("plain", json!({})));
    let spec = &server.get_json("default", "pod", "plain")["spec"];
    assert_eq!(spec["priorityClassName"], "everyday");
    assert_eq!(spec["priority"], 100);
}
