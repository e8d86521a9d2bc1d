//! The scheduler end to end: pods without a node are bound to one through
//! `pods/binding` by the scheduler `tug server` runs, on its own node or on
//! simulated ones (`--disable-agent` and `common::nodes`), and a pod that
//! fits nowhere stays Pending, saying why as Kubernetes says it.

mod common;

use common::nodes::{NodeSpec, SimulatedNode};
use common::pods::BUSYBOX;
use common::{Server, eventually, node_name, temp_manifest};
use serde_json::{Value, json};

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

/// Waits for an event with `reason` about the pod and returns its message.
fn event_message(server: &Server, namespace: &str, pod: &str, reason: &str) -> String {
    eventually(&format!("a {reason} event for {pod}"), || {
        server
            .event_messages(namespace, pod, reason)
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
    assert!(
        server
            .event_messages(&ns, "elsewhere", "FailedScheduling")
            .is_empty()
    );
    assert_eq!(
        server.get_json(&ns, "pod", "pinned")["spec"]["nodeName"],
        "cordoned"
    );
    assert!(server.event_messages(&ns, "pinned", "Scheduled").is_empty());
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

/// Waits until the pod is marked unschedulable with exactly `expected`.
fn assert_unschedulable(server: &Server, namespace: &str, name: &str, expected: &str) {
    eventually(
        &format!("pod {name} unschedulable with {expected:?}"),
        || {
            let condition = scheduled_condition(server, namespace, name);
            (condition["status"] == "False" && condition["message"] == expected)
                .then_some(())
                .ok_or_else(|| condition.to_string())
        },
    );
    assert_eq!(
        server.get_json(namespace, "pod", name)["spec"]["nodeName"],
        Value::Null
    );
}

/// `0/N nodes are available: REASONS. preemption: 0/N nodes are available: N Preemption is not helpful for scheduling.`
fn hopeless(nodes: usize, reasons: &str) -> String {
    format!(
        "0/{nodes} nodes are available: {reasons}. preemption: 0/{nodes} nodes are available: \
         {nodes} Preemption is not helpful for scheduling."
    )
}

/// A node affinity requirement list as one required term.
fn required_affinity(terms: Value) -> Value {
    json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": terms,
    }}}})
}

#[test]
fn required_node_affinity_operators() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(
            &server,
            NodeSpec::new("n1").label("zone", "a").label("cores", "8"),
        ),
        SimulatedNode::start(
            &server,
            NodeSpec::new("n2").label("zone", "b").label("cores", "4"),
        ),
        SimulatedNode::start(&server, NodeSpec::new("n3").label("zone", "c")),
    ];
    let ns = server.namespace("affinity");
    let expression = |key: &str, operator: &str, values: &[&str]| {
        let mut e = json!({"key": key, "operator": operator});
        if !values.is_empty() {
            e["values"] = json!(values);
        }
        e
    };
    let cases = [
        (
            "in",
            json!([{"matchExpressions": [expression("zone", "In", &["b", "x"])]}]),
            "n2",
        ),
        (
            "not-in",
            json!([{"matchExpressions": [expression("zone", "NotIn", &["a", "b"])]}]),
            "n3",
        ),
        (
            "gt",
            json!([{"matchExpressions": [expression("cores", "Gt", &["6"])]}]),
            "n1",
        ),
        (
            "lt",
            json!([{"matchExpressions": [expression("cores", "Lt", &["6"])]}]),
            "n2",
        ),
        (
            "absent",
            json!([{"matchExpressions": [expression("cores", "DoesNotExist", &[])]}]),
            "n3",
        ),
        (
            "either",
            json!([
                {"matchExpressions": [expression("zone", "In", &["x"])]},
                {"matchExpressions": [expression("zone", "In", &["a"])]},
            ]),
            "n1",
        ),
        (
            "by-name",
            json!([{"matchFields": [expression("metadata.name", "In", &["n2"])]}]),
            "n2",
        ),
    ];
    for (name, terms, _) in &cases {
        create(&server, &ns, &pod(name, required_affinity(terms.clone())));
    }
    // Expressions of one term must all hold.
    let both = json!([{"matchExpressions": [
        expression("cores", "Exists", &[]),
        expression("zone", "In", &["c"]),
    ]}]);
    create(&server, &ns, &pod("both", required_affinity(both)));
    create(
        &server,
        &ns,
        &pod(
            "selector",
            json!({"nodeSelector": {"zone": "b", "cores": "8"}}),
        ),
    );
    for (name, _, node) in &cases {
        assert_eq!(bound_node(&server, &ns, name), *node, "pod {name}");
    }
    let mismatch = hopeless(3, "3 node(s) didn't match Pod's node affinity/selector");
    assert_unschedulable(&server, &ns, "both", &mismatch);
    assert_unschedulable(&server, &ns, "selector", &mismatch);
}

#[test]
fn taints_keep_out_pods_that_do_not_tolerate_them() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(
            &server,
            NodeSpec::new("evicting").taint("k", "v", "NoExecute"),
        ),
        SimulatedNode::start(
            &server,
            NodeSpec::new("closed").taint("k", "v", "NoSchedule"),
        ),
    ];
    let ns = server.namespace("taints");
    let tolerating = |toleration: Value| json!({"tolerations": [toleration]});
    create(
        &server,
        &ns,
        &pod(
            "no-schedule",
            tolerating(json!({"key": "k", "value": "v", "effect": "NoSchedule"})),
        ),
    );
    create(
        &server,
        &ns,
        &pod(
            "no-execute",
            tolerating(
                json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute"}),
            ),
        ),
    );
    create(
        &server,
        &ns,
        &pod(
            "any-effect",
            tolerating(json!({"key": "k", "operator": "Exists"})),
        ),
    );
    create(
        &server,
        &ns,
        &pod("other-value", tolerating(json!({"key": "k", "value": "w"}))),
    );
    assert_eq!(bound_node(&server, &ns, "no-schedule"), "closed");
    assert_eq!(bound_node(&server, &ns, "no-execute"), "evicting");
    assert!(["closed", "evicting"].contains(&bound_node(&server, &ns, "any-effect").as_str()));
    assert_unschedulable(
        &server,
        &ns,
        "other-value",
        &hopeless(2, "2 node(s) had untolerated taint {k: v}"),
    );
}

#[test]
fn requests_must_fit_what_is_left_including_pod_count_and_extended_resources() {
    let server = simulated_cluster();
    let _node = SimulatedNode::start(
        &server,
        NodeSpec::new("r1")
            .resource("cpu", "2")
            .resource("memory", "1Gi")
            .resource("pods", "3")
            .resource("example.com/gpu", "1"),
    );
    let ns = server.namespace("fit");
    let no_victims = |reasons: &str| {
        format!(
            "0/1 nodes are available: {reasons}. preemption: 0/1 nodes are available: \
             1 No preemption victims found for incoming pod."
        )
    };
    create(
        &server,
        &ns,
        &pod_requesting("gpu-1", json!({"example.com/gpu": "1", "cpu": "500m"})),
    );
    assert_eq!(bound_node(&server, &ns, "gpu-1"), "r1");
    create(
        &server,
        &ns,
        &pod_requesting("gpu-2", json!({"example.com/gpu": "1"})),
    );
    assert_unschedulable(
        &server,
        &ns,
        "gpu-2",
        &no_victims("1 Insufficient example.com/gpu"),
    );
    // 500m of 2 cpus is taken: 1600m is too much, and so is 2Gi of memory.
    create(
        &server,
        &ns,
        &pod_requesting("huge", json!({"cpu": "1600m", "memory": "2Gi"})),
    );
    assert_unschedulable(
        &server,
        &ns,
        "huge",
        &no_victims("1 Insufficient cpu, 1 Insufficient memory"),
    );
    create(
        &server,
        &ns,
        &pod_requesting("fits", json!({"cpu": "1500m", "memory": "1Gi"})),
    );
    assert_eq!(bound_node(&server, &ns, "fits"), "r1");
    create(&server, &ns, &pod("small-1", json!({})));
    assert_eq!(bound_node(&server, &ns, "small-1"), "r1");
    create(&server, &ns, &pod("small-2", json!({})));
    assert_unschedulable(&server, &ns, "small-2", &no_victims("1 Too many pods"));

    // A pod gone frees its room: the waiting pod is tried again and fits.
    server
        .kubectl(&[
            "delete",
            "pod",
            "small-1",
            "-n",
            &ns,
            "--grace-period=0",
            "--force",
        ])
        .ok();
    assert_eq!(bound_node(&server, &ns, "small-2"), "r1");
}

#[test]
fn host_ports_are_taken_once_per_node() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("h1")),
        SimulatedNode::start(&server, NodeSpec::new("h2")),
    ];
    let ns = server.namespace("ports");
    let with_port = |name: &str, protocol: &str| {
        let mut pod = pod(name, json!({}));
        pod["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80, "hostPort": 8080, "protocol": protocol}]);
        pod
    };
    create(&server, &ns, &with_port("first", "TCP"));
    let first = bound_node(&server, &ns, "first");
    create(&server, &ns, &with_port("second", "TCP"));
    let second = bound_node(&server, &ns, "second");
    assert_ne!(first, second);
    create(&server, &ns, &with_port("third", "TCP"));
    assert_unschedulable(
        &server,
        &ns,
        "third",
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.",
    );
    create(&server, &ns, &with_port("udp", "UDP"));
    bound_node(&server, &ns, "udp");
}

#[test]
fn required_pod_affinity_and_anti_affinity() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("a1").label("zone", "a")),
        SimulatedNode::start(&server, NodeSpec::new("a2").label("zone", "a")),
        SimulatedNode::start(&server, NodeSpec::new("b1").label("zone", "b")),
    ];
    let ns = server.namespace("pod-affinity");
    let labelled = |name: &str, app: &str, spec: Value| {
        let mut pod = pod(name, spec);
        pod["metadata"]["labels"] = json!({"app": app});
        pod
    };
    let term = |app: &str, key: &str| json!([{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]);
    let affinity = |kind: &str, terms: Value| json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": terms}}});

    create(
        &server,
        &ns,
        &labelled(
            "db",
            "db",
            json!({"nodeSelector": {"kubernetes.io/hostname": "b1"}}),
        ),
    );
    assert_eq!(bound_node(&server, &ns, "db"), "b1");
    create(
        &server,
        &ns,
        &labelled("web", "web", affinity("podAffinity", term("db", "zone"))),
    );
    assert_eq!(bound_node(&server, &ns, "web"), "b1");
    create(
        &server,
        &ns,
        &labelled(
            "cache",
            "cache",
            affinity("podAntiAffinity", term("db", "zone")),
        ),
    );
    assert!(bound_node(&server, &ns, "cache").starts_with('a'));
    create(
        &server,
        &ns,
        &labelled(
            "lonely",
            "lonely",
            affinity("podAffinity", term("nobody", "zone")),
        ),
    );
    assert_unschedulable(
        &server,
        &ns,
        "lonely",
        &hopeless(3, "3 node(s) didn't match pod affinity rules"),
    );

    // The first pod of a group that wants its own company goes anywhere; the next joins it.
    let group = affinity("podAffinity", term("group", "kubernetes.io/hostname"));
    create(&server, &ns, &labelled("g1", "group", group.clone()));
    let home = bound_node(&server, &ns, "g1");
    create(&server, &ns, &labelled("g2", "group", group));
    assert_eq!(bound_node(&server, &ns, "g2"), home);

    // A placed pod's anti-affinity keeps matching newcomers out of its domain.
    let mut solo = labelled(
        "solo",
        "solo",
        affinity(
            "podAntiAffinity",
            term("intruder", "kubernetes.io/hostname"),
        ),
    );
    solo["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "a2"});
    create(&server, &ns, &solo);
    assert_eq!(bound_node(&server, &ns, "solo"), "a2");
    create(
        &server,
        &ns,
        &labelled(
            "intruder",
            "intruder",
            json!({"nodeSelector": {"kubernetes.io/hostname": "a2"}}),
        ),
    );
    assert_unschedulable(
        &server,
        &ns,
        "intruder",
        "0/3 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules, \
         2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: \
         1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.",
    );
}

#[test]
fn topology_spread_constraints_bound_the_skew() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("s1").label("zone", "a")),
        SimulatedNode::start(&server, NodeSpec::new("s2").label("zone", "a")),
        SimulatedNode::start(
            &server,
            NodeSpec::new("s3").label("zone", "b").unschedulable(),
        ),
        SimulatedNode::start(&server, NodeSpec::new("s4")),
    ];
    let ns = server.namespace("spread");
    let spread = |name: &str| {
        let mut pod = pod(
            name,
            json!({"topologySpreadConstraints": [{
                "maxSkew": 1,
                "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "spread"}},
            }]}),
        );
        pod["metadata"]["labels"] = json!({"app": "spread"});
        pod
    };
    create(&server, &ns, &spread("p1"));
    assert!(["s1", "s2"].contains(&bound_node(&server, &ns, "p1").as_str()));
    // Zone b is empty (its node cordoned, still a domain): a second pod in a is a skew of 2.
    create(&server, &ns, &spread("p2"));
    assert_unschedulable(
        &server,
        &ns,
        "p2",
        "0/4 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label), \
         1 node(s) were unschedulable, 2 node(s) didn't match pod topology spread constraints. \
         preemption: 0/4 nodes are available: 2 No preemption victims found for incoming pod, \
         2 Preemption is not helpful for scheduling.",
    );
    server.kubectl(&["uncordon", "s3"]).ok();
    assert_eq!(bound_node(&server, &ns, "p2"), "s3");
    for name in ["p3", "p4", "p5"] {
        create(&server, &ns, &spread(name));
        assert_ne!(bound_node(&server, &ns, name), "s4");
    }
    let zones: Vec<bool> = ["p1", "p2", "p3", "p4", "p5"]
        .iter()
        .map(|p| bound_node(&server, &ns, p) == "s3")
        .collect();
    let in_b = zones.iter().filter(|b| **b).count();
    assert!(
        in_b == 2 || in_b == 3,
        "zone b holds {in_b} of 5: {zones:?}"
    );
}

#[test]
fn claims_must_exist_and_bound_local_volumes_choose_the_node() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("v1")),
        SimulatedNode::start(&server, NodeSpec::new("v2")),
        SimulatedNode::start(&server, NodeSpec::new("v3")),
    ];
    let ns = server.namespace("volumes");
    // Local volumes on v2 and v3, each reserved for one claim.
    let local_volume = |node: &str, claim: &str| {
        let volume = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": format!("local-{node}")},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual",
                "hostPath": {"path": format!("/tmp/local-{node}")},
                "claimRef": {"namespace": ns, "name": claim},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]},
                ]}]}},
            },
        });
        server
            .kubectl_stdin(&["create", "-f", "-"], &volume.to_string())
            .ok();
    };
    local_volume("v2", "data");
    local_volume("v3", "late");
    let claim = |name: &str, spec: Value| {
        let mut claim = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        });
        for (k, v) in spec.as_object().into_iter().flatten() {
            claim["spec"][k] = v.clone();
        }
        server
            .kubectl_stdin(&["create", "-n", &ns, "-f", "-"], &claim.to_string())
            .ok();
    };
    claim(
        "data",
        json!({"storageClassName": "manual", "volumeName": "local-v2"}),
    );
    claim("unbound", json!({"storageClassName": ""}));
    let using = |name: &str, claim: &str| {
        pod(
            name,
            json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}),
        )
    };
    for i in 1..=3 {
        let name = format!("user-{i}");
        create(&server, &ns, &using(&name, "data"));
        assert_eq!(bound_node(&server, &ns, &name), "v2");
    }
    create(&server, &ns, &using("missing", "late"));
    assert_unschedulable(
        &server,
        &ns,
        "missing",
        &hopeless(3, r#"persistentvolumeclaim "late" not found"#),
    );
    create(&server, &ns, &using("waiting", "unbound"));
    assert_unschedulable(
        &server,
        &ns,
        "waiting",
        &hopeless(3, "pod has unbound immediate PersistentVolumeClaims"),
    );

    // The claim made later lets the pod go.
    claim(
        "late",
        json!({"storageClassName": "manual", "volumeName": "local-v3"}),
    );
    assert_eq!(bound_node(&server, &ns, "missing"), "v3");
}

/// Creates pods `{prefix}-1`... one at a time (each bound before the next)
/// and returns their nodes.
fn place_one_by_one(
    server: &Server,
    namespace: &str,
    prefix: &str,
    count: usize,
    make: impl Fn(&str) -> Value,
) -> Vec<String> {
    (1..=count)
        .map(|i| {
            let name = format!("{prefix}-{i}");
            create(server, namespace, &make(&name));
            bound_node(server, namespace, &name)
        })
        .collect()
}

/// A pod pinned to `node` requesting `requests`.
fn pinned(name: &str, node: &str, requests: Value) -> Value {
    let mut pod = pod_requesting(name, requests);
    pod["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": node});
    pod
}

#[test]
fn scores_prefer_the_least_allocated_and_then_the_balanced_node() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("busy")),
        SimulatedNode::start(&server, NodeSpec::new("idle")),
        SimulatedNode::start(&server, NodeSpec::new("lopsided")),
        SimulatedNode::start(&server, NodeSpec::new("even")),
    ];
    let ns = server.namespace("resources");
    // busy: 3 of 4 cpus and 6 of 8 GiB. lopsided: half its cpu, no memory;
    // even: a quarter of both: as much left free on average, better balanced.
    create(
        &server,
        &ns,
        &pinned("load", "busy", json!({"cpu": "3", "memory": "6Gi"})),
    );
    create(
        &server,
        &ns,
        &pinned(
            "cpu-heavy",
            "lopsided",
            json!({"cpu": "2", "memory": "1Mi"}),
        ),
    );
    create(
        &server,
        &ns,
        &pinned("balanced", "even", json!({"cpu": "1", "memory": "2Gi"})),
    );
    for name in ["load", "cpu-heavy", "balanced"] {
        bound_node(&server, &ns, name);
    }
    // Not the busy node: the idle one, as long as it stays the emptiest.
    let nodes = place_one_by_one(&server, &ns, "light", 3, |name| {
        pod_requesting(name, json!({"cpu": "100m", "memory": "100Mi"}))
    });
    assert_eq!(nodes, ["idle", "idle", "idle"]);
    // With idle full, the choice is between lopsided and even.
    create(
        &server,
        &ns,
        &pinned("fill", "idle", json!({"cpu": "3500m", "memory": "7Gi"})),
    );
    bound_node(&server, &ns, "fill");
    let nodes = place_one_by_one(&server, &ns, "next", 2, |name| {
        pod_requesting(name, json!({"cpu": "100m", "memory": "200Mi"}))
    });
    assert_eq!(nodes, ["even", "even"]);
}

#[test]
fn scores_prefer_a_node_holding_the_image() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("cold")),
        SimulatedNode::start(
            &server,
            NodeSpec::new("warm").image(&[BUSYBOX], 500 * 1024 * 1024),
        ),
        SimulatedNode::start(
            &server,
            NodeSpec::new("other").image(&["docker.io/library/nginx:1.25"], 500 * 1024 * 1024),
        ),
    ];
    let ns = server.namespace("images");
    let nodes = place_one_by_one(&server, &ns, "app", 3, |name| pod(name, json!({})));
    assert_eq!(nodes, ["warm", "warm", "warm"]);
    // A short name is found under its full one.
    let mut nginx = pod("nginx", json!({}));
    nginx["spec"]["containers"][0]["image"] = "nginx:1.25".into();
    create(&server, &ns, &nginx);
    assert_eq!(bound_node(&server, &ns, "nginx"), "other");
}

#[test]
fn scores_follow_preferred_node_affinity() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("ssd").label("disk", "ssd")),
        SimulatedNode::start(
            &server,
            NodeSpec::new("hdd").label("disk", "hdd").label("zone", "x"),
        ),
        SimulatedNode::start(&server, NodeSpec::new("plain")),
    ];
    let ns = server.namespace("preferred");
    let prefer = |terms: Value| json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": terms}}});
    let term = |weight: i32, key: &str, value: &str| json!({"weight": weight, "preference": {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}});
    let nodes = place_one_by_one(&server, &ns, "fast", 3, |name| {
        pod(name, prefer(json!([term(50, "disk", "ssd")])))
    });
    assert_eq!(nodes, ["ssd", "ssd", "ssd"]);
    // The heavier preference wins.
    let nodes = place_one_by_one(&server, &ns, "zoned", 2, |name| {
        pod(
            name,
            prefer(json!([term(10, "disk", "ssd"), term(90, "zone", "x")])),
        )
    });
    assert_eq!(nodes, ["hdd", "hdd"]);
}

#[test]
fn scores_follow_preferred_pod_affinity_and_anti_affinity() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(&server, NodeSpec::new("p1")),
        SimulatedNode::start(&server, NodeSpec::new("p2")),
        SimulatedNode::start(&server, NodeSpec::new("p3")),
    ];
    let ns = server.namespace("company");
    let mut db = pinned("db", "p2", json!({"cpu": "2"}));
    db["metadata"]["labels"] = json!({"app": "db"});
    create(&server, &ns, &db);
    bound_node(&server, &ns, "db");
    let preferring = |kind: &'static str| {
        move |name: &str| {
            pod(
                name,
                json!({"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": "db"}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }]}}}),
            )
        }
    };
    // Near the db, though its node is the fullest.
    let nodes = place_one_by_one(&server, &ns, "near", 3, preferring("podAffinity"));
    assert_eq!(nodes, ["p2", "p2", "p2"]);
    let nodes = place_one_by_one(&server, &ns, "far", 4, preferring("podAntiAffinity"));
    assert!(!nodes.contains(&"p2".to_owned()), "{nodes:?}");
}

#[test]
fn scores_avoid_untolerated_prefer_no_schedule_taints() {
    let server = simulated_cluster();
    let _nodes = [
        SimulatedNode::start(
            &server,
            NodeSpec::new("soft").taint("spot", "true", "PreferNoSchedule"),
        ),
        SimulatedNode::start(&server, NodeSpec::new("firm")),
    ];
    let ns = server.namespace("soft-taints");
    // Even as firm fills up and soft stays empty.
    let nodes = place_one_by_one(&server, &ns, "app", 4, |name| {
        pod_requesting(name, json!({"cpu": "500m", "memory": "1Gi"}))
    });
    assert_eq!(nodes, ["firm", "firm", "firm", "firm"]);
}

#[test]
fn a_controllers_pods_spread_across_nodes() {
    let server = simulated_cluster();
    // One node far bigger: least allocated alone would put every replica there.
    let _nodes = [
        SimulatedNode::start(
            &server,
            NodeSpec::new("large")
                .resource("cpu", "64")
                .resource("memory", "256Gi"),
        ),
        SimulatedNode::start(&server, NodeSpec::new("small")),
    ];
    let ns = server.namespace("spread-rs");
    let replica_set = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": BUSYBOX, "command": ["sleep", "3600"]}]},
            },
        },
    });
    server
        .kubectl_stdin(&["create", "-n", &ns, "-f", "-"], &replica_set.to_string())
        .ok();
    let nodes = eventually("4 replicas bound", || {
        let pods: Value = serde_json::from_str(
            &server
                .kubectl(&["get", "pods", "-n", &ns, "-o", "json"])
                .ok(),
        )
        .expect("JSON");
        let nodes: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_owned))
            .collect();
        if nodes.len() == 4 {
            Ok(nodes)
        } else {
            Err(format!("{nodes:?}"))
        }
    });
    let on_small = nodes.iter().filter(|n| *n == "small").count();
    assert_eq!(on_small, 2, "{nodes:?}");
}

/// A pod of PriorityClass `class` requesting `cpu`, gone at once when
/// deleted (no agent runs simulated nodes' pods to end them gracefully).
fn prioritized(name: &str, class: &str, cpu: &str) -> Value {
    let mut pod = pod_requesting(name, json!({"cpu": cpu}));
    pod["spec"]["priorityClassName"] = class.into();
    pod["spec"]["terminationGracePeriodSeconds"] = 0.into();
    pod
}

/// Makes the PriorityClass `name` (cluster-wide, so tests name theirs apart).
fn priority_class(server: &Server, name: &str, value: i32, preemption_policy: &str) {
    let class = json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        "preemptionPolicy": preemption_policy,
    });
    server
        .kubectl_stdin(&["create", "-f", "-"], &class.to_string())
        .ok();
}

#[test]
fn a_higher_priority_pod_preempts_the_fewest_lowest_priority_pods() {
    let server = simulated_cluster();
    let _node = SimulatedNode::start(&server, NodeSpec::new("only").resource("cpu", "2"));
    let ns = server.namespace("preemption");
    for (class, value, policy) in [
        ("preemption-low", 10, "PreemptLowerPriority"),
        ("preemption-medium", 20, "PreemptLowerPriority"),
        ("preemption-high", 100, "PreemptLowerPriority"),
        ("preemption-polite", 1000, "Never"),
    ] {
        priority_class(&server, class, value, policy);
    }
    create(&server, &ns, &prioritized("low", "preemption-low", "1"));
    assert_eq!(bound_node(&server, &ns, "low"), "only");
    create(
        &server,
        &ns,
        &prioritized("medium", "preemption-medium", "1"),
    );
    assert_eq!(bound_node(&server, &ns, "medium"), "only");

    // A peer of the lowest finds nobody it may evict.
    create(&server, &ns, &prioritized("peer", "preemption-low", "1"));
    assert_unschedulable(
        &server,
        &ns,
        "peer",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
         1 No preemption victims found for incoming pod.",
    );

    // The high one needs one cpu: only the lowest-priority pod goes.
    create(&server, &ns, &prioritized("high", "preemption-high", "1"));
    let uid = server.get_json(&ns, "pod", "high")["metadata"]["uid"]
        .as_str()
        .expect("a uid")
        .to_owned();
    assert_eq!(bound_node(&server, &ns, "high"), "only");
    server.assert_absent(&ns, "pod", "low");
    assert_eq!(
        event_message(&server, &ns, "low", "Preempted"),
        format!("Preempted by pod {uid} on node only")
    );
    assert_eq!(bound_node(&server, &ns, "medium"), "only");
    assert_eq!(
        server.get_json(&ns, "pod", "high")["status"]["nominatedNodeName"],
        "only"
    );

    // A pod that may not preempt says so.
    create(
        &server,
        &ns,
        &prioritized("polite", "preemption-polite", "1"),
    );
    assert_unschedulable(
        &server,
        &ns,
        "polite",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
    );
    assert_eq!(bound_node(&server, &ns, "medium"), "only");
}
