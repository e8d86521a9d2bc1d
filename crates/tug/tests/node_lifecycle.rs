//! Node lifecycle with simulated nodes: a node whose Lease stops being
//! renewed goes NotReady (Ready=Unknown) after the grace period, gets the
//! unreachable taints, and its pods are evicted once their tolerations run
//! out, so that their ReplicaSet replaces them on a live node; pods that
//! tolerate longer stay, marked not Ready. A node reporting Ready=False gets the not-ready
//! taints, and loses them when it is Ready again; pressure and cordoning give
//! NoSchedule taints as long as they last.
//!
//! The grace period is shortened with kube-controller-manager's own flag,
//! `--node-monitor-grace-period`; the toleration seconds are the pods' own.

mod common;

use common::nodes::{NodeSpec, SimulatedNode};
use common::{Server, eventually};
use serde_json::{Value, json};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY: &str = "node.kubernetes.io/not-ready";

fn start() -> Server {
    Server::start_with(&["--disable-agent", "--node-monitor-grace-period=5s"])
}

fn node(server: &Server, name: &str) -> Value {
    server.get_json("", "node", name)
}

fn condition(node: &Value, type_: &str) -> Value {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The node's taints as `key:effect`, sorted.
fn taints(node: &Value) -> Vec<String> {
    let mut taints: Vec<String> = node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap(),
                t["effect"].as_str().unwrap()
            )
        })
        .collect();
    taints.sort();
    taints
}

fn pods(server: &Server, namespace: &str) -> Vec<Value> {
    let out = server
        .kubectl(&["get", "pods", "-n", namespace, "-o", "json"])
        .ok();
    let list: Value = serde_json::from_str(&out).expect("JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn on_node<'a>(pods: &'a [Value], node: &str) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .collect()
}

fn is_deleting(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_string()
}

#[test]
fn a_lost_node_goes_not_ready_and_its_pods_move_once_their_tolerations_run_out() {
    let server = start();
    let mut lost = SimulatedNode::start(&server, NodeSpec::new("lost"));
    let ns = server.namespace("lifecycle");
    let pod = json!({
        "containers": [{"name": "web", "image": "tugboat.test/busybox:latest"}],
        "tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3},
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3},
        ],
    });
    server.apply_json(&ns, &common::deployment("web", 2, pod));
    // A pod with the default tolerations (300 s) outlasts this test.
    let patient = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "patient", "namespace": ns},
        "spec": {"containers": [{"name": "main", "image": "tugboat.test/busybox:latest"}]},
    });
    server
        .kubectl_stdin(&["apply", "-f", "-"], &patient.to_string())
        .ok();
    eventually("three pods on the only node", || {
        let pods = pods(&server, &ns);
        (on_node(&pods, "lost").len() == 3)
            .then_some(())
            .ok_or(format!("{} pods, none bound yet?", pods.len()))
    });
    let _spare = SimulatedNode::start(&server, NodeSpec::new("spare"));
    // As a kubelet would report it, the patient pod is Ready.
    let ready = json!({"conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]});
    server
        .patch_status(Some(&ns), "pod", "patient", &ready)
        .ok();

    lost.stop_lease();
    let ready = eventually("the silent node NotReady", || {
        let ready = condition(&node(&server, "lost"), "Ready");
        (ready["status"] == "Unknown")
            .then_some(ready.clone())
            .ok_or(ready.to_string())
    });
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    let printed = server.kubectl(&["get", "node", "lost"]).ok();
    assert!(printed.contains("NotReady"), "{printed}");
    eventually("the silent node tainted unreachable", || {
        let taints = taints(&node(&server, "lost"));
        let wanted = [
            format!("{UNREACHABLE}:NoExecute"),
            format!("{UNREACHABLE}:NoSchedule"),
        ];
        (taints == wanted)
            .then_some(())
            .ok_or(format!("{taints:?}"))
    });

    eventually("the web pods replaced on the live node", || {
        let pods = pods(&server, &ns);
        let moved = on_node(&pods, "spare").len();
        let evicted = on_node(&pods, "lost")
            .iter()
            .filter(|p| p["metadata"]["name"] != "patient" && is_deleting(p))
            .count();
        (moved == 2 && evicted == 2)
            .then_some(())
            .ok_or(format!("{moved} on spare, {evicted} evicted"))
    });
    let patient = server.get_json(&ns, "pod", "patient");
    assert!(!is_deleting(&patient), "{patient}");
    let conditions = patient["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = conditions
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("Ready");
    assert_eq!(ready["status"], "False", "{patient}");
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"),
        "the other conditions are kept: {patient}"
    );
    assert!(taints(&node(&server, "spare")).is_empty());
    assert_eq!(
        condition(&node(&server, "spare"), "Ready")["status"],
        "True"
    );

    let events = server
        .kubectl(&["get", "events", "-n", &ns, "-o", "json"])
        .ok();
    let events: Value = serde_json::from_str(&events).expect("JSON");
    let evictions = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["reason"] == "TaintManagerEviction")
        .count();
    assert_eq!(evictions, 2, "{events}");
}

#[test]
fn a_node_not_ready_is_tainted_until_it_is_ready_again() {
    let server = start();
    let _down = SimulatedNode::start(&server, NodeSpec::new("down").ready("False"));
    eventually("the not-ready taints", || {
        let taints = taints(&node(&server, "down"));
        let wanted = [
            format!("{NOT_READY}:NoExecute"),
            format!("{NOT_READY}:NoSchedule"),
        ];
        (taints == wanted)
            .then_some(())
            .ok_or(format!("{taints:?}"))
    });
    let taint = node(&server, "down")["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["effect"] == "NoExecute")
        .cloned()
        .unwrap();
    assert!(taint["timeAdded"].is_string(), "{taint}");

    let ready = json!({"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "back"},
    ]});
    server.patch_status(None, "node", "down", &ready).ok();
    eventually("the taints gone", || {
        let taints = taints(&node(&server, "down"));
        taints.is_empty().then_some(()).ok_or(format!("{taints:?}"))
    });
}

#[test]
fn pressure_and_cordoning_become_no_schedule_taints_while_they_last() {
    let server = start();
    let _node = SimulatedNode::start(&server, NodeSpec::new("pressed"));
    let pressure = |status: &str| {
        json!({"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"},
            {"type": "DiskPressure", "status": status, "reason": "KubeletHasDiskPressure",
             "message": "kubelet has disk pressure"},
        ]})
    };
    server
        .patch_status(None, "node", "pressed", &pressure("True"))
        .ok();
    server.kubectl(&["cordon", "pressed"]).ok();
    eventually("the pressure and cordon taints", || {
        let taints = taints(&node(&server, "pressed"));
        let wanted = [
            "node.kubernetes.io/disk-pressure:NoSchedule",
            "node.kubernetes.io/unschedulable:NoSchedule",
        ];
        (taints == wanted)
            .then_some(())
            .ok_or(format!("{taints:?}"))
    });

    server
        .patch_status(None, "node", "pressed", &pressure("False"))
        .ok();
    server.kubectl(&["uncordon", "pressed"]).ok();
    eventually("the taints gone", || {
        let taints = taints(&node(&server, "pressed"));
        taints.is_empty().then_some(()).ok_or(format!("{taints:?}"))
    });
}
