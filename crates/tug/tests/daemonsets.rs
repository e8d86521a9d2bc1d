//! DaemonSets driven with the real kubectl: one pod per eligible node
//! (selectors, taints and tolerations, cordoned nodes) placed through the
//! scheduler on simulated nodes, and on the server's own node: node
//! selectors followed as node labels change, rolling updates that `kubectl
//! rollout status` follows, history and undo from ControllerRevisions.

mod common;

use common::nodes::{NodeSpec, SimulatedNode};
use common::{Server, eventually, node_name, node_server};
use serde_json::{Value, json};

const BUSYBOX: &str = "tugboat.test/busybox:latest";

/// A DaemonSet of busybox sleeping, with `VERSION` in its environment and
/// `extra` merged into the pod spec.
fn daemon_set(name: &str, version: &str, extra: Value) -> Value {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "agent",
            "image": BUSYBOX,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", "3600"],
            "env": [{"name": "VERSION", "value": version}],
        }],
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    })
}

/// The DaemonSet's pods that are not being deleted.
fn live_pods(server: &Server, namespace: &str, app: &str) -> Vec<Value> {
    let out = server
        .kubectl(&[
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            &format!("app={app}"),
            "-o",
            "json",
        ])
        .ok();
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn env_version(pod: &Value) -> String {
    pod["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits for exactly one live pod of `app`, ready, with `VERSION=version`.
fn wait_one_ready(server: &Server, namespace: &str, app: &str, version: &str) -> Value {
    eventually(&format!("one ready {app} pod at version {version}"), || {
        let pods = live_pods(server, namespace, app);
        match pods.as_slice() {
            [pod] if is_ready(pod) && env_version(pod) == version => Ok(pod.clone()),
            _ => Err(format!("{pods:#?}")),
        }
    })
}

#[test]
fn a_daemon_set_runs_one_pod_on_the_node_and_rolls_to_a_new_template() {
    let server = node_server();
    let ns = server.namespace("ds-roll");
    server.apply_json(&ns, &daemon_set("agent", "1", json!({})));

    let first = wait_one_ready(server, &ns, "agent", "1");
    // Placed by the scheduler through the node affinity the controller set.
    assert_eq!(first["spec"]["nodeName"], node_name());
    assert_eq!(
        first["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchFields"][0],
        json!({"key": "metadata.name", "operator": "In", "values": [node_name()]})
    );
    let tolerations = first["spec"]["tolerations"].as_array().unwrap();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(
            tolerations.iter().any(|t| t["key"] == key),
            "{tolerations:?}"
        );
    }
    let out = server
        .kubectl(&["rollout", "status", "ds/agent", "-n", &ns, "--timeout=60s"])
        .ok();
    assert!(out.contains("successfully rolled out"), "{out}");
    let ds = server.get_json(&ns, "ds", "agent");
    for field in [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    ] {
        assert_eq!(ds["status"][field], 1, "{field} in {}", ds["status"]);
    }
    assert_eq!(ds["status"]["numberMisscheduled"], 0);

    server
        .kubectl(&["set", "env", "ds/agent", "-n", &ns, "VERSION=2"])
        .ok();
    let out = server
        .kubectl(&["rollout", "status", "ds/agent", "-n", &ns, "--timeout=60s"])
        .ok();
    assert!(out.contains("successfully rolled out"), "{out}");
    let second = wait_one_ready(server, &ns, "agent", "2");
    assert_ne!(first["metadata"]["name"], second["metadata"]["name"]);
    assert_ne!(
        first["metadata"]["labels"]["controller-revision-hash"],
        second["metadata"]["labels"]["controller-revision-hash"]
    );

    let history = server
        .kubectl(&["rollout", "history", "ds/agent", "-n", &ns])
        .ok();
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    server
        .kubectl(&["rollout", "undo", "ds/agent", "-n", &ns])
        .ok();
    wait_one_ready(server, &ns, "agent", "1");
}

#[test]
fn a_node_selector_is_followed_as_the_node_is_labelled() {
    let server = node_server();
    let ns = server.namespace("ds-selector");
    let label = "ds-test.tugboat.io/logging";
    server.apply_json(
        &ns,
        &daemon_set("logger", "1", json!({"nodeSelector": {label: "yes"}})),
    );
    eventually("the DaemonSet wants no pod on an unlabelled node", || {
        let ds = server.get_json(&ns, "ds", "logger");
        if ds["status"]["observedGeneration"] == 1 && ds["status"]["desiredNumberScheduled"] == 0 {
            Ok(())
        } else {
            Err(ds["status"].to_string())
        }
    });
    assert!(live_pods(server, &ns, "logger").is_empty());

    let node = format!("node/{}", node_name());
    server
        .kubectl(&["label", &node, &format!("{label}=yes")])
        .ok();
    wait_one_ready(server, &ns, "logger", "1");

    server.kubectl(&["label", &node, &format!("{label}-")]).ok();
    eventually("the pod leaves the node that no longer matches", || {
        let pods = live_pods(server, &ns, "logger");
        let ds = server.get_json(&ns, "ds", "logger");
        if pods.is_empty() && ds["status"]["desiredNumberScheduled"] == 0 {
            Ok(())
        } else {
            Err(format!("{pods:?} {}", ds["status"]))
        }
    });
}

#[test]
fn a_deleted_daemon_pod_is_replaced_and_on_delete_waits_for_the_user() {
    let server = node_server();
    let ns = server.namespace("ds-ondelete");
    let mut ds = daemon_set("manual", "1", json!({}));
    ds["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    server.apply_json(&ns, &ds);
    let first = wait_one_ready(server, &ns, "manual", "1");

    server
        .kubectl(&["set", "env", "ds/manual", "-n", &ns, "VERSION=2"])
        .ok();
    eventually("the DaemonSet sees its new template", || {
        let ds = server.get_json(&ns, "ds", "manual");
        if ds["status"]["observedGeneration"] == 2 {
            Ok(())
        } else {
            Err(ds["status"].to_string())
        }
    });
    // OnDelete: the old pod stays until deleted, and counts as not updated.
    let pods = live_pods(server, &ns, "manual");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["metadata"]["uid"], first["metadata"]["uid"]);
    assert_eq!(
        server.get_json(&ns, "ds", "manual")["status"]["updatedNumberScheduled"],
        0
    );

    let name = first["metadata"]["name"].as_str().unwrap();
    server.kubectl(&["delete", "pod", name, "-n", &ns]).ok();
    wait_one_ready(server, &ns, "manual", "2");
}

/// The node each live pod of `app` is bound to, sorted; `None` while one
/// is unbound.
fn bound_nodes(server: &Server, namespace: &str, app: &str) -> Option<Vec<String>> {
    let mut nodes: Vec<String> = live_pods(server, namespace, app)
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    nodes.sort();
    Some(nodes)
}

#[test]
fn one_pod_goes_to_each_node_its_selector_and_tolerations_admit() {
    let server = Server::start_with(&["--disable-agent"]);
    let ns = server.namespace("ds-nodes");
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("plain")),
        SimulatedNode::start(&server, NodeSpec::new("fast").label("disk", "ssd")),
        SimulatedNode::start(
            &server,
            NodeSpec::new("reserved").taint("dedicated", "db", "NoSchedule"),
        ),
        SimulatedNode::start(&server, NodeSpec::new("cordoned").unschedulable()),
    ];
    server.apply_json(&ns, &daemon_set("everywhere", "1", json!({})));
    server.apply_json(
        &ns,
        &daemon_set("ssd", "1", json!({"nodeSelector": {"disk": "ssd"}})),
    );
    server.apply_json(
        &ns,
        &daemon_set(
            "tolerant",
            "1",
            json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        ),
    );
    // A cordoned node still gets daemon pods (they tolerate it); a taint
    // keeps them off unless tolerated.
    for (app, nodes) in [
        ("everywhere", vec!["cordoned", "fast", "plain"]),
        ("ssd", vec!["fast"]),
        ("tolerant", vec!["cordoned", "fast", "plain", "reserved"]),
    ] {
        eventually(&format!("{app} pods bound to {nodes:?}"), || {
            let bound = bound_nodes(&server, &ns, app);
            let ds = server.get_json(&ns, "ds", app);
            if bound.as_ref().is_some_and(|b| *b == nodes)
                && ds["status"]["desiredNumberScheduled"] == nodes.len()
                && ds["status"]["currentNumberScheduled"] == nodes.len()
            {
                Ok(())
            } else {
                Err(format!("{bound:?} {}", ds["status"]))
            }
        });
    }
}
