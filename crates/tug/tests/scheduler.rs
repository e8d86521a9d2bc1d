//! The scheduler end to end: pods without a node are bound to one through
//! `pods/binding` by the scheduler `tug server` runs, on its own node or on
//! simulated ones (`--disable-agent` and `common::nodes`), and a pod that
//! fits nowhere stays Pending, saying why as Kubernetes says it.

mod common;

use common::nodes::{NodeSpec, SimulatedNode};
use common::{Server, eventually, node_name, temp_manifest};
use serde_json::{Value, json};

const BUSYBOX: &str = "tugboat.test/busybox:latest";

/// A server whose nodes are the test's simulated ones.
fn simulated_cluster() -> Server {
    Server::start_with(&["--disable-agent"])
}

/// A busybox pod; `spec` is merged into its spec.
fn pod(name: &str, spec: Value) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": BUSYBOX,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
            }],
        },
    });
    for (key, value) in spec.as_object().into_iter().flatten() {
        pod["spec"][key] = value.clone();
    }
    pod
}

/// A pod whose one container requests `requests` (`{"cpu": "1"}`).
fn pod_requesting(name: &str, requests: Value) -> Value {
    let mut pod = pod(name, json!({}));
    pod["spec"]["containers"][0]["resources"] = json!({"requests": requests});
    pod
}

fn create(server: &Server, namespace: &str, pod: &Value) {
    server
        .kubectl_stdin(&["create", "-n", namespace, "-f", "-"], &pod.to_string())
        .ok();
}

/// Waits for the pod to be bound and returns its node.
fn bound_node(server: &Server, namespace: &str, name: &str) -> String {
    eventually(&format!("pod {name} bound to a node"), || {
        let pod = server.get_json(namespace, "pod", name);
        match pod["spec"]["nodeName"].as_str() {
            Some(node) if !node.is_empty() => Ok(node.to_owned()),
            _ => Err(pod["status"].to_string()),
        }
    })
}

/// The pod's PodScheduled condition, once it has one.
fn scheduled_condition(server: &Server, namespace: &str, name: &str) -> Value {
    eventually(&format!("pod {name} has a PodScheduled condition"), || {
        let pod = server.get_json(namespace, "pod", name);
        pod["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
            .cloned()
            .ok_or_else(|| pod["status"].to_string())
    })
}

/// The messages of the pod's events with `reason`.
fn event_messages(server: &Server, namespace: &str, pod: &str, reason: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={pod},reason={reason}");
    let out = server
        .kubectl(&[
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            &selector,
            "-o",
            "json",
        ])
        .ok();
    let events: Value = serde_json::from_str(&out).expect("events as JSON");
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits for an event with `reason` about the pod and returns its message.
fn event_message(server: &Server, namespace: &str, pod: &str, reason: &str) -> String {
    eventually(&format!("a {reason} event for {pod}"), || {
        event_messages(server, namespace, pod, reason)
            .pop()
            .ok_or_else(|| "no such event".to_owned())
    })
}

#[test]
fn a_pod_without_a_node_runs_on_the_servers_own_node() {
    let server = Server::start();
    server.import_image("busybox.oci.tar");
    let ns = server.namespace("sched-real");
    create(&server, &ns, &pod("web", json!({})));
    assert_eq!(bound_node(&server, &ns, "web"), node_name());
    eventually("the pod runs", || {
        let pod = server.get_json(&ns, "pod", "web");
        (pod["status"]["phase"] == "Running")
            .then_some(())
            .ok_or_else(|| pod["status"].to_string())
    });
    let condition = scheduled_condition(&server, &ns, "web");
    assert_eq!(condition["status"], "True");
    assert_eq!(
        event_message(&server, &ns, "web", "Scheduled"),
        format!("Successfully assigned {ns}/web to {}", node_name())
    );
    let describe = server.kubectl(&["describe", "pod", "web", "-n", &ns]).ok();
    assert!(
        describe.contains("default-scheduler") && describe.contains("Successfully assigned"),
        "{describe}"
    );
}

#[test]
fn pods_binding_assigns_a_pod_once() {
    let server = Server::start_with(&["--disable-agent", "--disable-scheduler"]);
    let ns = server.namespace("binding");
    create(&server, &ns, &pod("web", json!({})));
    let uid = server.get_json(&ns, "pod", "web")["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_owned();
    let path = format!("/api/v1/namespaces/{ns}/pods/web/binding");
    let binding = |name: &str, node: &str| {
        json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "uid": uid},
            "target": {"kind": "Node", "name": node},
        })
        .to_string()
    };
    let post = |body: String| {
        let (_dir, file) = temp_manifest("binding.json", &body);
        server.kubectl(&["create", "--raw", &path, "-f", common::arg(&file)])
    };

    let err = post(binding("other", "n1")).fails();
    assert!(
        err.contains("name in URL does not match name in Binding object"),
        "{err}"
    );
    let status: Value = serde_json::from_str(&post(binding("web", "n1")).ok()).expect("a Status");
    assert_eq!(status["status"], "Success");

    let bound = server.get_json(&ns, "pod", "web");
    assert_eq!(bound["spec"]["nodeName"], "n1");
    let condition = scheduled_condition(&server, &ns, "web");
    assert_eq!(condition["status"], "True");
    assert!(condition["lastTransitionTime"].is_string(), "{condition}");

    let err = post(binding("web", "n2")).fails();
    assert!(
        err.contains(r#"Operation cannot be fulfilled on pods/binding "web": pod web is already assigned to node "n1""#),
        "{err}"
    );
    assert_eq!(server.get_json(&ns, "pod", "web")["spec"]["nodeName"], "n1");

    // Only POST: the subresource cannot be read.
    let err = server.kubectl(&["get", "--raw", &path]).fails();
    assert!(
        err.contains("MethodNotAllowed") || err.contains("405"),
        "{err}"
    );
}

#[test]
fn pods_go_to_ready_uncordoned_untainted_nodes_that_match_their_selector() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("cordoned").unschedulable()),
        SimulatedNode::start(
            &server,
            NodeSpec::new("gpu")
                .taint("dedicated", "gpu", "NoSchedule")
                .label("accel", "gpu"),
        ),
        SimulatedNode::start(&server, NodeSpec::new("down").ready("False")),
        SimulatedNode::start(&server, NodeSpec::new("lost").ready("Unknown")),
        SimulatedNode::start(&server, NodeSpec::new("plain")),
    ];
    let ns = server.namespace("placement");
    for i in 0..4 {
        create(&server, &ns, &pod(&format!("any-{i}"), json!({})));
    }
    for i in 0..4 {
        assert_eq!(bound_node(&server, &ns, &format!("any-{i}")), "plain");
    }

    // Tolerating the taint and selecting the label: only the gpu node.
    let tolerant = json!({
        "nodeSelector": {"accel": "gpu"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
    });
    create(&server, &ns, &pod("trainer", tolerant));
    assert_eq!(bound_node(&server, &ns, "trainer"), "gpu");

    // Tolerating not-ready (as DaemonSet pods do) opens the node that is down.
    let everywhere = json!({
        "nodeSelector": {"kubernetes.io/hostname": "down"},
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}],
    });
    create(&server, &ns, &pod("agent", everywhere));
    assert_eq!(bound_node(&server, &ns, "agent"), "down");

    // Another scheduler's pod is left alone, and so is a pod naming its node.
    create(
        &server,
        &ns,
        &pod("elsewhere", json!({"schedulerName": "other-scheduler"})),
    );
    create(
        &server,
        &ns,
        &pod("pinned", json!({"nodeName": "cordoned"})),
    );
    // Pods are tried in the order they come: once a later one is bound,
    // the scheduler has seen these two.
    create(&server, &ns, &pod("marker", json!({})));
    bound_node(&server, &ns, "marker");
    let elsewhere = server.get_json(&ns, "pod", "elsewhere");
    assert_eq!(elsewhere["spec"]["nodeName"], Value::Null);
    assert_eq!(elsewhere["status"]["conditions"], Value::Null);
    assert!(event_messages(&server, &ns, "elsewhere", "FailedScheduling").is_empty());
    assert_eq!(
        server.get_json(&ns, "pod", "pinned")["spec"]["nodeName"],
        "cordoned"
    );
    assert!(event_messages(&server, &ns, "pinned", "Scheduled").is_empty());
}

#[test]
fn a_pod_that_fits_nowhere_says_why_and_goes_where_room_appears() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("small").resource("cpu", "1")),
        SimulatedNode::start(
            &server,
            NodeSpec::new("gpu-1").taint("dedicated", "gpu", "NoSchedule"),
        ),
        SimulatedNode::start(
            &server,
            NodeSpec::new("gpu-2").taint("dedicated", "gpu", "NoExecute"),
        ),
    ];
    let ns = server.namespace("unfit");
    create(&server, &ns, &pod_requesting("big", json!({"cpu": "2"})));
    let expected = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}. \
                    preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
                    2 Preemption is not helpful for scheduling.";
    assert_eq!(
        event_message(&server, &ns, "big", "FailedScheduling"),
        expected
    );
    let condition = scheduled_condition(&server, &ns, "big");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Unschedulable");
    assert_eq!(condition["message"], expected);
    let get = server.kubectl(&["get", "pod", "big", "-n", &ns]).ok();
    assert!(get.contains("Pending"), "{get}");

    let _roomy = SimulatedNode::start(&server, NodeSpec::new("roomy").resource("cpu", "8"));
    assert_eq!(bound_node(&server, &ns, "big"), "roomy");
    assert_eq!(scheduled_condition(&server, &ns, "big")["status"], "True");
}
