//! EndpointSlices and Endpoints kept from Services' selectors and their
//! pods' readiness, and LoadBalancer Services given the nodes' addresses,
//! checked with the real kubectl. The pods are API objects bound to a node
//! no agent runs (`nodeless_server`): each test writes their status
//! (address, readiness) as a kubelet would.

mod common;

use std::collections::BTreeMap;

use common::nodes::node_without_kubelet;
use common::nodes::{NodeSpec, SimulatedNode};
use common::{Server, arg, eventually, nodeless_server, temp_manifest};
use serde_json::{Value, json};

/// A pod bound to a node that is not there, with `labels` and container
/// `ports` (name, number).
fn pod(name: &str, labels: &[(&str, &str)], ports: &[(&str, i32)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let ports: Vec<Value> = ports
        .iter()
        .map(|(name, port)| json!({"name": name, "containerPort": port}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": "node-a", "containers": [
            {"name": "app", "image": "tugboat.test/httpd:latest", "ports": ports},
        ]},
    })
}

/// Writes the pod's status as its kubelet would: running at `ip`, Ready or not.
fn set_status(server: &Server, namespace: &str, name: &str, ip: &str, ready: bool) {
    let ready = if ready { "True" } else { "False" };
    let status = json!({
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": ready}],
    });
    server
        .patch_status(Some(namespace), "pod", name, &status)
        .ok();
}

/// Creates a pod and gives it an address and readiness.
fn running_pod(server: &Server, namespace: &str, pod: Value, ip: &str, ready: bool) {
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    node_without_kubelet(server, pod["spec"]["nodeName"].as_str().unwrap());
    server.apply_json(namespace, &pod);
    set_status(server, namespace, &name, ip, ready);
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

/// The EndpointSlices of a Service.
fn slices_of(server: &Server, namespace: &str, service: &str) -> Vec<Value> {
    let selector = format!("kubernetes.io/service-name={service}");
    let out = server
        .kubectl(&[
            "get",
            "endpointslices",
            "-n",
            namespace,
            "-l",
            &selector,
            "-o",
            "json",
        ])
        .ok();
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

/// One endpoint as a test compares it: address, then
/// `ready/serving/terminating`, then the slice's ports as `name:port`.
type Seen = BTreeMap<String, (String, Vec<String>)>;

fn seen(slices: &[Value]) -> Seen {
    let flag = |v: &Value| if v.as_bool() == Some(true) { "T" } else { "F" };
    let mut seen = BTreeMap::new();
    for slice in slices {
        let ports: Vec<String> = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{}:{}", p["name"].as_str().unwrap_or(""), p["port"]))
            .collect();
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            let c = &endpoint["conditions"];
            let conditions = format!(
                "{}/{}/{}",
                flag(&c["ready"]),
                flag(&c["serving"]),
                flag(&c["terminating"])
            );
            let address = endpoint["addresses"][0].as_str().unwrap().to_owned();
            seen.insert(address, (conditions, ports.clone()));
        }
    }
    seen
}

fn expect(entries: &[(&str, &str, &[&str])]) -> Seen {
    entries
        .iter()
        .map(|(address, conditions, ports)| {
            let ports = ports.iter().map(|p| (*p).to_owned()).collect();
            ((*address).to_owned(), ((*conditions).to_owned(), ports))
        })
        .collect()
}

/// Waits until the Service's slices list exactly `wanted`.
fn wait_for_endpoints(
    server: &Server,
    namespace: &str,
    service: &str,
    wanted: &Seen,
) -> Vec<Value> {
    eventually(&format!("the endpoints of {service}"), || {
        let slices = slices_of(server, namespace, service);
        let now = seen(&slices);
        if now == *wanted {
            Ok(slices)
        } else {
            Err(format!("{now:?}"))
        }
    })
}

/// The addresses of the Endpoints object: (ready, not ready) per subset,
/// with the subset's ports.
fn endpoints_subsets(
    server: &Server,
    namespace: &str,
    name: &str,
) -> Vec<(Vec<String>, Vec<String>, Vec<i64>)> {
    let endpoints = server.get_json(namespace, "endpoints", name);
    let ips = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|a| a["ip"].as_str().unwrap().to_owned())
            .collect()
    };
    endpoints["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let ports = s["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["port"].as_i64().unwrap())
                .collect();
            (ips(&s["addresses"]), ips(&s["notReadyAddresses"]), ports)
        })
        .collect()
}

#[test]
fn slices_follow_readiness_and_deletion() {
    let server = nodeless_server();
    let ns = server.namespace("slices-readiness");
    server.apply_json(
        &ns,
        &service(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}),
        ),
    );
    running_pod(
        server,
        &ns,
        pod("a", &[("app", "web")], &[]),
        "10.42.0.11",
        true,
    );
    running_pod(
        server,
        &ns,
        pod("b", &[("app", "web")], &[]),
        "10.42.0.12",
        false,
    );
    running_pod(
        server,
        &ns,
        pod("other", &[("app", "db")], &[]),
        "10.42.0.13",
        true,
    );
    let port: &[&str] = &[":8080"];
    let slices = wait_for_endpoints(
        server,
        &ns,
        "web",
        &expect(&[("10.42.0.11", "T/T/F", port), ("10.42.0.12", "F/F/F", port)]),
    );
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    assert_eq!(slice["addressType"], "IPv4");
    assert!(
        slice["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("web-")
    );
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("Service"), Some("web"))
    );
    assert_eq!(owner["controller"], true);
    assert_eq!(
        slice["ports"],
        json!([{"name": "", "port": 8080, "protocol": "TCP"}])
    );
    let a = slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["addresses"][0] == "10.42.0.11")
        .unwrap();
    assert_eq!(a["nodeName"], "node-a");
    assert_eq!(
        (
            a["targetRef"]["kind"].as_str(),
            a["targetRef"]["name"].as_str()
        ),
        (Some("Pod"), Some("a"))
    );

    // A change no endpoint shows (an annotation) rewrites nothing: after
    // the state the watch lists first, the next write it sees is the next
    // real change. (kubectl watches from the resourceVersion it listed.)
    let mut watch = server.kubectl_background(&[
        "get",
        "endpointslices",
        "-n",
        &ns,
        "-l",
        "kubernetes.io/service-name=web",
        "-w",
        "-o",
        "jsonpath={.endpoints[*].conditions.ready}{\"\\n\"}",
    ]);
    watch.expect_line(|_| true);
    server
        .kubectl(&["annotate", "pod", "a", "-n", &ns, "touched=yes"])
        .ok();
    set_status(server, &ns, "b", "10.42.0.12", true);
    let next = watch.expect_line(|_| true);
    assert_eq!(
        next.trim(),
        "true true",
        "the slice was rewritten before b turned Ready"
    );

    // A pod being deleted stays listed as terminating (still serving)
    // until it is gone; its kubelet never ends it here, a forced delete does.
    server
        .kubectl(&["delete", "pod", "a", "-n", &ns, "--wait=false"])
        .ok();
    wait_for_endpoints(
        server,
        &ns,
        "web",
        &expect(&[("10.42.0.11", "F/T/T", port), ("10.42.0.12", "T/T/F", port)]),
    );
    server
        .kubectl(&[
            "delete",
            "pod",
            "a",
            "-n",
            &ns,
            "--force",
            "--grace-period=0",
        ])
        .ok();
    wait_for_endpoints(
        server,
        &ns,
        "web",
        &expect(&[("10.42.0.12", "T/T/F", port)]),
    );
    // The terminating pod was never in the legacy Endpoints' addresses.
    assert_eq!(
        endpoints_subsets(server, &ns, "web"),
        [(vec!["10.42.0.12".to_owned()], vec![], vec![8080])]
    );

    // The slices go with their Service, through the garbage collector.
    server
        .kubectl(&["delete", "service", "web", "-n", &ns])
        .ok();
    eventually(
        "the slices and Endpoints of a deleted Service to go",
        || {
            let left = slices_of(server, &ns, "web").len();
            let endpoints = server.names(&["get", "endpoints", "-n", &ns]);
            if left == 0 && endpoints.is_empty() {
                Ok(())
            } else {
                Err(format!("{left} slices, Endpoints {endpoints:?}"))
            }
        },
    );
}

#[test]
fn named_ports_resolve_per_pod() {
    let server = nodeless_server();
    let ns = server.namespace("slices-named-ports");
    server.apply_json(
        &ns,
        &service(
            "web",
            json!({"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
            ]}),
        ),
    );
    running_pod(
        server,
        &ns,
        pod("x", &[("app", "web")], &[("http", 8080)]),
        "10.42.1.1",
        true,
    );
    running_pod(
        server,
        &ns,
        pod("y", &[("app", "web")], &[("http", 9090)]),
        "10.42.1.2",
        true,
    );
    running_pod(
        server,
        &ns,
        pod("x2", &[("app", "web")], &[("http", 8080)]),
        "10.42.1.3",
        true,
    );
    // A pod without the named port is listed on no ports, as Kubernetes does.
    running_pod(
        server,
        &ns,
        pod("z", &[("app", "web")], &[("web", 7070)]),
        "10.42.1.4",
        true,
    );
    let slices = wait_for_endpoints(
        server,
        &ns,
        "web",
        &expect(&[
            ("10.42.1.1", "T/T/F", &["http:8080"]),
            ("10.42.1.2", "T/T/F", &["http:9090"]),
            ("10.42.1.3", "T/T/F", &["http:8080"]),
            ("10.42.1.4", "T/T/F", &[]),
        ]),
    );
    assert_eq!(slices.len(), 3, "one slice per port set");
    let mut subsets = endpoints_subsets(server, &ns, "web");
    subsets.sort();
    assert_eq!(
        subsets,
        [
            (
                vec!["10.42.1.1".to_owned(), "10.42.1.3".to_owned()],
                vec![],
                vec![8080]
            ),
            (vec!["10.42.1.2".to_owned()], vec![], vec![9090]),
        ]
    );
    let table = server.kubectl(&["get", "endpoints", "web", "-n", &ns]).ok();
    assert!(table.contains("10.42.1.1:8080"), "{table}");
}

#[test]
fn headless_service_publishes_not_ready_pods_with_hostnames() {
    let server = nodeless_server();
    let ns = server.namespace("slices-headless");
    server.apply_json(
        &ns,
        &service(
            "db",
            json!({
                "clusterIP": "None", "publishNotReadyAddresses": true,
                "selector": {"app": "db"}, "ports": [{"port": 5432}],
            }),
        ),
    );
    let mut db0 = pod("db-0", &[("app", "db")], &[]);
    db0["spec"]["hostname"] = json!("db-0");
    db0["spec"]["subdomain"] = json!("db");
    running_pod(server, &ns, db0, "10.42.2.1", false);
    let mut elsewhere = pod("db-x", &[("app", "db")], &[]);
    elsewhere["spec"]["hostname"] = json!("db-x");
    elsewhere["spec"]["subdomain"] = json!("other");
    running_pod(server, &ns, elsewhere, "10.42.2.2", false);
    let slices = wait_for_endpoints(
        server,
        &ns,
        "db",
        &expect(&[
            ("10.42.2.1", "T/F/F", &[":5432"]),
            ("10.42.2.2", "T/F/F", &[":5432"]),
        ]),
    );
    assert_eq!(
        slices[0]["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
    let hostnames: BTreeMap<String, Value> = slices[0]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap().to_owned(),
                e["hostname"].clone(),
            )
        })
        .collect();
    assert_eq!(hostnames["10.42.2.1"], "db-0");
    assert_eq!(
        hostnames["10.42.2.2"],
        Value::Null,
        "only pods under the Service's subdomain"
    );
    let endpoints = server.get_json(&ns, "endpoints", "db");
    let addresses = &endpoints["subsets"][0]["addresses"];
    assert_eq!(addresses.as_array().map(Vec::len), Some(2), "{endpoints}");
}

#[test]
fn selector_and_label_changes_move_endpoints() {
    let server = nodeless_server();
    let ns = server.namespace("slices-selector");
    server.apply_json(
        &ns,
        &service(
            "web",
            json!({"selector": {"app": "blue"}, "ports": [{"port": 80}]}),
        ),
    );
    running_pod(
        server,
        &ns,
        pod("blue", &[("app", "blue")], &[]),
        "10.42.3.1",
        true,
    );
    running_pod(
        server,
        &ns,
        pod("green", &[("app", "green")], &[]),
        "10.42.3.2",
        true,
    );
    wait_for_endpoints(
        server,
        &ns,
        "web",
        &expect(&[("10.42.3.1", "T/T/F", &[":80"])]),
    );
    server
        .kubectl(&[
            "patch",
            "service",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"selector":{"app":"green"}}}"#,
        ])
        .ok();
    wait_for_endpoints(
        server,
        &ns,
        "web",
        &expect(&[("10.42.3.2", "T/T/F", &[":80"])]),
    );
    server
        .kubectl(&[
            "label",
            "pod",
            "green",
            "-n",
            &ns,
            "app=gone",
            "--overwrite",
        ])
        .ok();
    let slices = wait_for_endpoints(server, &ns, "web", &expect(&[]));
    assert_eq!(
        slices.len(),
        1,
        "a Service with no endpoints keeps one empty slice"
    );
    assert_eq!(endpoints_subsets(server, &ns, "web"), []);

    // Without a selector the Service's endpoints are no longer ours.
    server
        .kubectl(&[
            "patch",
            "service",
            "web",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/selector"}]"#,
        ])
        .ok();
    eventually(
        "the managed slice of a Service that lost its selector to go",
        || match slices_of(server, &ns, "web").len() {
            0 => Ok(()),
            n => Err(format!("{n} slices")),
        },
    );
}

#[test]
fn selectorless_services_keep_their_own_endpoints() {
    let server = nodeless_server();
    let ns = server.namespace("slices-selectorless");
    let manual = r#"
apiVersion: v1
kind: Service
metadata: {name: external}
spec:
  ports: [{port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: external-1
  labels: {kubernetes.io/service-name: external}
addressType: IPv4
endpoints: [{addresses: [192.0.2.10]}]
ports: [{port: 80, name: "", protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: external}
subsets: [{addresses: [{ip: 192.0.2.10}], ports: [{port: 80}]}]
"#;
    let (_dir, path) = temp_manifest("external.yaml", manual);
    server.kubectl(&["apply", "-n", &ns, "-f", arg(&path)]).ok();
    let before = server.get_json(&ns, "endpoints", "external");
    // A Service with a selector in the same namespace gets its slice: the
    // controller has looked at this namespace by then.
    server.apply_json(
        &ns,
        &service(
            "web",
            json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
        ),
    );
    running_pod(
        server,
        &ns,
        pod("p", &[("app", "web")], &[]),
        "10.42.4.1",
        true,
    );
    wait_for_endpoints(
        server,
        &ns,
        "web",
        &expect(&[("10.42.4.1", "T/T/F", &[":80"])]),
    );
    let slices = slices_of(server, &ns, "external");
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0]["metadata"]["name"], "external-1");
    assert_eq!(seen(&slices), expect(&[("192.0.2.10", "F/F/F", &[":80"])]));
    let after = server.get_json(&ns, "endpoints", "external");
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
}

#[test]
fn large_services_are_split_into_slices_of_100() {
    let server = nodeless_server();
    let ns = server.namespace("slices-large");
    server.apply_json(
        &ns,
        &service(
            "big",
            json!({"selector": {"app": "big"}, "ports": [{"port": 80}]}),
        ),
    );
    let count = 150;
    let pods: Vec<Value> = (0..count)
        .map(|i| pod(&format!("p{i}"), &[("app", "big")], &[]))
        .collect();
    server.apply_json(
        &ns,
        &json!({"apiVersion": "v1", "kind": "List", "items": pods}),
    );
    let statuses: Vec<Value> = (0..count)
        .map(|i| {
            let mut p = pod(&format!("p{i}"), &[("app", "big")], &[]);
            p["metadata"]["namespace"] = json!(ns);
            p["status"] = json!({
                "phase": "Running", "podIP": format!("10.42.5.{i}"),
                "conditions": [{"type": "Ready", "status": "True"}],
            });
            p
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": statuses});
    server
        .kubectl_stdin(
            &["replace", "--subresource=status", "-f", "-"],
            &list.to_string(),
        )
        .ok();
    let sizes = eventually("150 endpoints in slices of at most 100", || {
        let slices = slices_of(server, &ns, "big");
        let mut sizes: Vec<usize> = slices
            .iter()
            .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
            .collect();
        sizes.sort();
        let total: usize = sizes.iter().sum();
        if total == count && seen(&slices).len() == count {
            Ok(sizes)
        } else {
            Err(format!("{sizes:?}"))
        }
    });
    assert_eq!(sizes, [50, 100]);
}

/// A simulated node with an InternalIP.
fn node_at(server: &Server, name: &str, ip: &str, ready: &str) -> SimulatedNode {
    let node = SimulatedNode::start(server, NodeSpec::new(name).ready(ready));
    let status = json!({"addresses": [
        {"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name},
    ]});
    server.patch_status(None, "node", name, &status).ok();
    node
}

#[test]
fn load_balancers_get_the_ready_nodes_addresses() {
    let server = nodeless_server();
    let ns = server.namespace("servicelb");
    let _one = node_at(server, "lb-node-1", "192.0.2.1", "True");
    let _down = node_at(server, "lb-node-down", "192.0.2.9", "False");
    server.apply_json(
        &ns,
        &service(
            "lb",
            json!({"type": "LoadBalancer", "selector": {"app": "lb"}, "ports": [{"port": 80}]}),
        ),
    );
    let ingress = |server: &Server| {
        server.get_json(&ns, "service", "lb")["status"]["loadBalancer"]["ingress"].clone()
    };
    let wait_ingress = |wanted: Value| {
        eventually("the load balancer's ingress", || {
            let now = ingress(server);
            if now == wanted {
                Ok(())
            } else {
                Err(now.to_string())
            }
        })
    };
    wait_ingress(json!([{"ip": "192.0.2.1", "ipMode": "VIP"}]));
    let events = server.event_messages(&ns, "lb", "EnsuredLoadBalancer");
    assert_eq!(events, ["Ensured load balancer"]);

    let two = node_at(server, "lb-node-2", "192.0.2.2", "True");
    wait_ingress(
        json!([{"ip": "192.0.2.1", "ipMode": "VIP"}, {"ip": "192.0.2.2", "ipMode": "VIP"}]),
    );
    let table = server.kubectl(&["get", "service", "lb", "-n", &ns]).ok();
    assert!(table.contains("192.0.2.1,192.0.2.2"), "{table}");
    drop(two);
    server.kubectl(&["delete", "node", "lb-node-2"]).ok();
    wait_ingress(json!([{"ip": "192.0.2.1", "ipMode": "VIP"}]));

    // Another class is someone else's; a Service that is no longer a
    // LoadBalancer loses its addresses.
    server.apply_json(&ns,
        &service(
            "theirs",
            json!({
                "type": "LoadBalancer", "loadBalancerClass": "example.com/lb", "ports": [{"port": 80}],
            }),
        ),
    );
    server
        .kubectl(&[
            "patch",
            "service",
            "lb",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"type":"ClusterIP"}}"#,
        ])
        .ok();
    wait_ingress(Value::Null);
    let theirs = server.get_json(&ns, "service", "theirs");
    assert_eq!(theirs["status"]["loadBalancer"]["ingress"], Value::Null);
    server
        .kubectl(&["delete", "node", "lb-node-1", "lb-node-down"])
        .ok();
}
