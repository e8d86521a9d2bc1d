//! The pod garbage collector, with simulated nodes: the pods of a deleted
//! node go once it has been missing for PodGC's quarantine (40 s), so their
//! ReplicaSet replaces them on the nodes left; past
//! `--terminated-pod-gc-threshold`, the oldest finished pods go.

mod common;

use std::time::Duration;

use common::nodes::{NodeSpec, SimulatedNode, node_without_kubelet};
use common::{Server, eventually, eventually_within};
use serde_json::{Value, json};

/// PodGC looks every 20 s and waits out a 40 s quarantine.
const POD_GC_PATIENCE: Duration = Duration::from_secs(150);

fn start() -> Server {
    Server::start_with(&["--disable-agent", "--terminated-pod-gc-threshold=2"])
}

fn pods(server: &Server, namespace: &str) -> Vec<Value> {
    server.list_json(namespace, "pods")
}

fn count_on(pods: &[Value], node: &str) -> usize {
    pods.iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .count()
}

#[test]
fn the_pods_of_a_deleted_node_are_replaced_on_the_nodes_left() {
    let server = start();
    let mut doomed = SimulatedNode::start(&server, NodeSpec::new("doomed"));
    let ns = server.namespace("pod-gc-node");
    let pod = json!({"containers": [{"name": "web", "image": "tugboat.test/busybox:latest"}]});
    server.apply_json(&ns, &common::deployment("web", 2, pod));
    eventually("two pods on the only node", || {
        let pods = pods(&server, &ns);
        (count_on(&pods, "doomed") == 2)
            .then_some(())
            .ok_or(format!("{} pods, not both bound yet", pods.len()))
    });
    let _left = SimulatedNode::start(&server, NodeSpec::new("left"));
    doomed.stop_lease();
    server.kubectl(&["delete", "node", "doomed"]).ok();

    eventually_within(
        POD_GC_PATIENCE,
        "the pods replaced on the node left",
        || {
            let pods = pods(&server, &ns);
            let (left, doomed) = (count_on(&pods, "left"), count_on(&pods, "doomed"));
            (left == 2 && doomed == 0).then_some(()).ok_or(format!(
                "{left} on the node left, {doomed} on the deleted one"
            ))
        },
    );
}

#[test]
fn the_oldest_finished_pods_past_the_threshold_are_deleted() {
    let server = start();
    node_without_kubelet(&server, "worker");
    let ns = server.namespace("pod-gc-finished");
    let names = ["first", "second", "third", "running"];
    for name in names {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "nodeName": "worker",
                "containers": [{"name": "main", "image": "tugboat.test/busybox:latest"}],
            },
        });
        server.apply_json(&ns, &pod);
        // Creation timestamps have whole seconds: keep the order plain.
        std::thread::sleep(Duration::from_millis(1100));
    }
    for (name, phase) in names
        .iter()
        .zip(["Succeeded", "Failed", "Succeeded", "Running"])
    {
        server
            .patch_status(Some(&ns), "pod", name, &json!({"phase": phase}))
            .ok();
    }

    let left = eventually_within(POD_GC_PATIENCE, "one finished pod past two deleted", || {
        let mut left: Vec<String> = pods(&server, &ns)
            .iter()
            .map(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        left.sort();
        (left.len() == 3)
            .then_some(left.clone())
            .ok_or(format!("{left:?}"))
    });
    assert_eq!(
        left,
        ["running", "second", "third"],
        "the oldest finished pod goes"
    );
}
