//! DaemonSets driven with the real kubectl: one pod per eligible node
//! (selectors, taints and tolerations, cordoned nodes) placed through the
//! scheduler on simulated nodes, and on the server's own node: node
//! selectors followed as node labels change, rolling updates that `kubectl
//! rollout status` follows, history and undo from ControllerRevisions,
//! surging updates that start the new pod before the old one goes.

mod common;

use common::nodes::{NodeSpec, SimulatedNode, start_nodes};
use common::pods::BUSYBOX;
use common::{Server, eventually, node_name, node_server};
use serde_json::{Value, json};

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

/// A surging DaemonSet of busybox whose pods turn ready unless
/// `VERSION=broken`: the readiness probe finds the file the container
/// writes at start.
fn surging_daemon_set(name: &str, max_surge: Value) -> Value {
    let script = r#"[ "$VERSION" = broken ] || touch /tmp/ready; exec sleep 3600"#;
    let mut ds = daemon_set(
        name,
        "1",
        json!({"containers": [{
            "name": "agent",
            "image": BUSYBOX,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script],
            "env": [{"name": "VERSION", "value": "1"}],
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
        }]}),
    );
    ds["spec"]["updateStrategy"] = json!({
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": 0},
    });
    ds
}

#[test]
fn a_surge_starts_the_new_pod_beside_the_old_one_and_deletes_the_old_once_ready() {
    let server = node_server();
    let ns = server.namespace("ds-surge");
    server.apply_json(&ns, &surging_daemon_set("surge", json!(1)));
    let first = wait_one_ready(server, &ns, "surge", "1");

    // A new template that never turns ready: the old pod keeps serving
    // beside the new one instead of making way for it.
    server
        .kubectl(&["set", "env", "ds/surge", "-n", &ns, "VERSION=broken"])
        .ok();
    let waiting = eventually("a broken pod running beside the old one", || {
        let pods = live_pods(server, &ns, "surge");
        let new = pods.iter().find(|p| env_version(p) == "broken");
        match new {
            Some(new)
                if pods.len() == 2
                    && new["status"]["containerStatuses"][0]["state"]["running"].is_object() =>
            {
                Ok(new.clone())
            }
            _ => Err(format!("{pods:#?}")),
        }
    });
    assert_eq!(waiting["spec"]["nodeName"], node_name());
    let old = live_pods(server, &ns, "surge")
        .into_iter()
        .find(|p| p["metadata"]["uid"] == first["metadata"]["uid"])
        .expect("the old pod is still there while the new one is not ready");
    assert!(is_ready(&old), "{old:#?}");
    assert!(!is_ready(&waiting), "{waiting:#?}");

    // A template that works replaces both: the old pod goes only once the
    // new one is available, and the rollout completes.
    server
        .kubectl(&["set", "env", "ds/surge", "-n", &ns, "VERSION=3"])
        .ok();
    let out = server
        .kubectl(&["rollout", "status", "ds/surge", "-n", &ns, "--timeout=90s"])
        .ok();
    assert!(out.contains("successfully rolled out"), "{out}");
    let last = wait_one_ready(server, &ns, "surge", "3");
    assert_ne!(last["metadata"]["uid"], first["metadata"]["uid"]);
}

/// Marks a pod on a simulated node Ready, as its kubelet would.
fn make_ready(server: &Server, namespace: &str, pod: &str) {
    let status = json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
    });
    server
        .patch_status(Some(namespace), "pod", pod, &status)
        .ok();
}

/// The live pods of `app`: how many are not at `VERSION=2`, and the names
/// of those that are.
fn by_version(server: &Server, namespace: &str, app: &str) -> (usize, Vec<String>) {
    let pods = live_pods(server, namespace, app);
    let new: Vec<String> = pods
        .iter()
        .filter(|p| env_version(p) == "2")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    (pods.len() - new.len(), new)
}

#[test]
fn a_percentage_surge_is_of_the_desired_nodes_rounded_up() {
    let server = Server::start_with(&["--disable-agent"]);
    let ns = server.namespace("ds-surge-percent");
    let _nodes = start_nodes(&server, "surge", 4, NodeSpec::new);
    server.apply_json(&ns, &surging_daemon_set("fleet", json!("30%")));
    // Listed after the binding check, so that every pod it saw bound is in
    // the list made ready: an unready old pod would be replaced at once.
    let pods = eventually("a pod bound on each of the 4 nodes", || {
        let bound = bound_nodes(&server, &ns, "fleet");
        let pods = live_pods(&server, &ns, "fleet");
        if bound.is_some_and(|b| b.len() == 4) && pods.len() == 4 {
            Ok(pods)
        } else {
            Err(format!("{pods:#?}"))
        }
    });
    for pod in &pods {
        make_ready(&server, &ns, pod["metadata"]["name"].as_str().unwrap());
    }
    // The controller must have seen them ready, or it replaces them at once.
    eventually("the DaemonSet counting four ready pods", || {
        let status = server.get_json(&ns, "ds", "fleet")["status"].clone();
        (status["numberReady"] == 4)
            .then_some(())
            .ok_or(status.to_string())
    });
    server
        .kubectl(&["set", "env", "ds/fleet", "-n", &ns, "VERSION=2"])
        .ok();

    // 30% of 4 nodes is 1.2: two nodes at a time get a new pod beside the old.
    let new = eventually(
        "new pods on two nodes beside the four old ones",
        || match by_version(&server, &ns, "fleet") {
            (4, new) if new.len() == 2 => Ok(new),
            seen => Err(format!("{seen:?}")),
        },
    );
    // One new pod available: its old pod goes, and the next node surges.
    make_ready(&server, &ns, &new[0]);
    eventually("three old pods and three new", || {
        match by_version(&server, &ns, "fleet") {
            (3, new) if new.len() == 3 => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    });
    let status = server.get_json(&ns, "ds", "fleet")["status"].clone();
    assert_eq!(status["desiredNumberScheduled"], 4, "{status}");
    assert_eq!(status["updatedNumberScheduled"], 1, "{status}");
}

#[test]
fn a_rolling_update_with_neither_surge_nor_unavailability_is_refused() {
    let server = node_server();
    let ns = server.namespace("ds-surge-invalid");
    let mut ds = daemon_set("stuck", "1", json!({}));
    ds["spec"]["updateStrategy"] = json!({
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0},
    });
    let err = server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &ds.to_string())
        .fails();
    assert!(
        err.contains(r#"The DaemonSet "stuck" is invalid: spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"#),
        "{err}"
    );
    // maxUnavailable defaults to 1, and a DaemonSet may not do both.
    ds["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxSurge": "10%"});
    let err = server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &ds.to_string())
        .fails();
    assert!(
        err.contains(r#"spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"10%"}: may not be set when maxUnavailable is non-zero"#),
        "{err}"
    );
}
