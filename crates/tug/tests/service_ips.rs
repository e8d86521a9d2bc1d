//! Service cluster IPs and node ports, through the real kubectl: allocated
//! from `--service-cidr` and `--service-node-port-range`, values asked for
//! honoured or refused in Kubernetes' words, released on delete and on a
//! type change, never handed out twice (also by racing creates and across a
//! restart), and the `kubernetes` Service pointing at the API server.
//!
//! Cluster IPs and node ports are cluster-wide, so the tests that ask for
//! particular values each use values of their own.

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use common::{Server, nodeless_server, row, table};
use serde_json::{Value, json};

fn cluster_ip(server: &Server, namespace: &str, name: &str) -> String {
    let svc = server.get_json(namespace, "service", name);
    let ip = svc["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(svc["spec"]["clusterIPs"], json!([ip]), "{svc}");
    ip
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect()
}

fn in_service_cidr(ip: &str) -> bool {
    let ip: Ipv4Addr = ip
        .parse()
        .unwrap_or_else(|_| panic!("{ip:?} is no IPv4 address"));
    let [a, b, ..] = ip.octets();
    (a, b) == (10, 43) && ip != Ipv4Addr::new(10, 43, 0, 0) && ip != Ipv4Addr::new(10, 43, 255, 255)
}

#[test]
fn a_service_gets_a_free_address_and_kubectl_shows_it() {
    let server = nodeless_server();
    let ns = server.namespace("svc-alloc");
    server
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            &ns,
            "--tcp=80:8080",
        ])
        .ok();
    server
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "api",
            "-n",
            &ns,
            "--tcp=443",
        ])
        .ok();
    let web = cluster_ip(server, &ns, "web");
    let api = cluster_ip(server, &ns, "api");
    assert!(
        in_service_cidr(&web) && in_service_cidr(&api),
        "{web} {api}"
    );
    assert_ne!(web, api);
    let svc = server.get_json(&ns, "service", "web");
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(svc["spec"]["ipFamilyPolicy"], "SingleStack");

    let out = server.kubectl(&["get", "services", "-n", &ns]).ok();
    let rows = table(&out);
    assert_eq!(
        rows[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert_eq!(
        row(&rows, "web")[1..5],
        ["ClusterIP", &web, "<none>", "80/TCP"]
    );
}

#[test]
fn an_address_asked_for_is_honoured_once_and_free_again_after_delete() {
    let server = nodeless_server();
    let ns = server.namespace("svc-explicit-ip");
    let create = |name: &str, ip: &str| {
        server.kubectl(&[
            "create",
            "service",
            "clusterip",
            name,
            "-n",
            &ns,
            "--tcp=80",
            &format!("--clusterip={ip}"),
        ])
    };
    create("first", "10.43.0.50").ok();
    assert_eq!(cluster_ip(server, &ns, "first"), "10.43.0.50");

    let err = create("second", "10.43.0.50").fails();
    assert!(
        err.contains(r#"Service "second" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.0.50"}: failed to allocate IP 10.43.0.50: provided IP is already allocated"#),
        "{err}"
    );
    let err = create("outside", "10.44.0.50").fails();
    assert!(
        err.contains(r#"spec.clusterIPs: Invalid value: []string{"10.44.0.50"}: failed to allocate IP 10.44.0.50: the provided IP (10.44.0.50) is not in the valid range. The range of valid IPs is 10.43.0.0/16"#),
        "{err}"
    );
    let err = create("network", "10.43.0.0").fails();
    assert!(err.contains("is not in the valid range"), "{err}");

    server
        .kubectl(&["delete", "service", "first", "-n", &ns])
        .ok();
    create("second", "10.43.0.50").ok();
    assert_eq!(cluster_ip(server, &ns, "second"), "10.43.0.50");
}

#[test]
fn a_dry_run_shows_the_address_and_takes_nothing() {
    let server = nodeless_server();
    let ns = server.namespace("svc-dry-run");
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "create",
            "service",
            "clusterip",
            name,
            "-n",
            &ns,
            "--tcp=80",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ];
        args.extend(extra);
        server.kubectl(&args)
    };
    let shown = create("web", &["--dry-run=server"]).ok();
    assert!(in_service_cidr(&shown), "{shown:?}");
    assert_eq!(
        create("web", &["--dry-run=server", "--clusterip=10.43.0.52"]).ok(),
        "10.43.0.52"
    );
    server.assert_absent(&ns, "service", "web");
    assert_eq!(
        create("web", &["--clusterip=10.43.0.52"]).ok(),
        "10.43.0.52"
    );
    let err = create("other", &["--dry-run=server", "--clusterip=10.43.0.52"]).fails();
    assert!(err.contains("provided IP is already allocated"), "{err}");
}

#[test]
fn the_cluster_ip_stays_through_updates_and_cannot_change() {
    let server = nodeless_server();
    let ns = server.namespace("svc-immutable");
    server
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "web",
            "-n",
            &ns,
            "--tcp=80",
        ])
        .ok();
    let ip = cluster_ip(server, &ns, "web");
    // A replace from a manifest that leaves the address out keeps it.
    let manifest = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 8080\n"
    );
    server
        .kubectl_stdin(&["replace", "-f", "-"], &manifest)
        .ok();
    assert_eq!(cluster_ip(server, &ns, "web"), ip);
    let err = server
        .kubectl(&[
            "patch",
            "service",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"clusterIP":"10.43.0.51","clusterIPs":["10.43.0.51"]}}"#,
        ])
        .fails();
    assert!(
        err.contains(
            r#"spec.clusterIPs[0]: Invalid value: []string{"10.43.0.51"}: may not change once set"#
        ),
        "{err}"
    );
}

#[test]
fn headless_and_external_name_services_get_no_address() {
    let server = nodeless_server();
    let ns = server.namespace("svc-no-ip");
    server
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "headless",
            "-n",
            &ns,
            "--clusterip=None",
            "--tcp=80",
        ])
        .ok();
    server
        .kubectl(&[
            "create",
            "service",
            "externalname",
            "alias",
            "-n",
            &ns,
            "--external-name=example.com",
        ])
        .ok();
    assert_eq!(cluster_ip(server, &ns, "headless"), "None");
    let alias = server.get_json(&ns, "service", "alias");
    assert!(alias["spec"].get("clusterIP").is_none(), "{alias}");
    let rows = table(&server.kubectl(&["get", "services", "-n", &ns]).ok());
    assert_eq!(
        row(&rows, "headless")[1..5],
        ["ClusterIP", "None", "<none>", "80/TCP"]
    );
    assert_eq!(
        row(&rows, "alias")[1..5],
        ["ExternalName", "<none>", "example.com", "<none>"]
    );

    // A Service that becomes an ExternalName gives its address back.
    server
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "was-ip",
            "-n",
            &ns,
            "--tcp=80",
            "--clusterip=10.43.0.53",
        ])
        .ok();
    server
        .kubectl(&[
            "patch",
            "service",
            "was-ip",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"type":"ExternalName","externalName":"example.org"}}"#,
        ])
        .ok();
    let was_ip = server.get_json(&ns, "service", "was-ip");
    assert!(was_ip["spec"].get("clusterIPs").is_none(), "{was_ip}");
    server
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "now-ip",
            "-n",
            &ns,
            "--tcp=80",
            "--clusterip=10.43.0.53",
        ])
        .ok();
}

#[test]
fn node_ports_are_allocated_honoured_and_refused_as_kubernetes_does() {
    let server = nodeless_server();
    let ns = server.namespace("svc-node-ports");
    let create = |name: &str, node_port: &str| {
        server.kubectl(&[
            "create",
            "service",
            "nodeport",
            name,
            "-n",
            &ns,
            "--tcp=80:8080",
            &format!("--node-port={node_port}"),
        ])
    };
    create("fixed", "30060").ok();
    let rows = table(&server.kubectl(&["get", "services", "-n", &ns]).ok());
    assert_eq!(row(&rows, "fixed")[1], "NodePort");
    assert_eq!(row(&rows, "fixed")[4], "80:30060/TCP");

    let err = create("clash", "30060").fails();
    assert!(
        err.contains(r#"Service "clash" is invalid: spec.ports[0].nodePort: Invalid value: 30060: provided port is already allocated"#),
        "{err}"
    );
    let err = create("outside", "8080").fails();
    assert!(
        err.contains("spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{err}"
    );

    // Ports asked for nothing get distinct ones from the range; two
    // protocols of one port share one.
    let manifest = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: dns\n  namespace: {ns}\nspec:\n  type: NodePort\n  ports:\n  - {{name: dns, port: 53, protocol: UDP}}\n  - {{name: dns-tcp, port: 53, protocol: TCP}}\n  - {{name: metrics, port: 9153, protocol: TCP}}\n"
    );
    server.kubectl_stdin(&["create", "-f", "-"], &manifest).ok();
    let ports = node_ports(&server.get_json(&ns, "service", "dns"));
    assert_eq!(ports.len(), 3);
    assert_eq!(ports[0], ports[1]);
    assert_ne!(ports[0], ports[2]);
    assert!(
        ports.iter().all(|p| (30000..=32767).contains(p)),
        "{ports:?}"
    );
}

#[test]
fn a_type_change_allocates_or_releases_node_ports() {
    let server = nodeless_server();
    let ns = server.namespace("svc-type-change");
    server
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "web",
            "-n",
            &ns,
            "--tcp=80",
            "--node-port=30061",
        ])
        .ok();
    // Back to ClusterIP: the node port goes (kube-apiserver drops it when
    // the client left it as it was) and another Service may take it.
    server
        .kubectl(&[
            "patch",
            "service",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"type":"ClusterIP"}}"#,
        ])
        .ok();
    let web = server.get_json(&ns, "service", "web");
    assert!(node_ports(&web).is_empty(), "{web}");
    server
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "other",
            "-n",
            &ns,
            "--tcp=80",
            "--node-port=30061",
        ])
        .ok();
    // Asking for a node port on a ClusterIP Service is refused.
    let err = server
        .kubectl(&[
            "patch",
            "service",
            "web",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/spec/ports/0/nodePort","value":30062}]"#,
        ])
        .fails();
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        ),
        "{err}"
    );
    // To NodePort: a port is allocated, never the one `other` holds.
    server
        .kubectl(&[
            "patch",
            "service",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"type":"NodePort"}}"#,
        ])
        .ok();
    let ports = node_ports(&server.get_json(&ns, "service", "web"));
    assert_eq!(ports.len(), 1);
    assert!(
        (30000..=32767).contains(&ports[0]) && ports[0] != 30061,
        "{ports:?}"
    );
}

#[test]
fn a_local_load_balancer_gets_a_health_check_node_port() {
    let server = nodeless_server();
    let ns = server.namespace("svc-lb");
    let manifest = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\n  namespace: {ns}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector:\n    app: lb\n  ports:\n  - port: 80\n"
    );
    server.kubectl_stdin(&["create", "-f", "-"], &manifest).ok();
    let svc = server.get_json(&ns, "service", "lb");
    let health = svc["spec"]["healthCheckNodePort"].as_i64().unwrap_or(0);
    let ports = node_ports(&svc);
    assert!((30000..=32767).contains(&health), "{svc}");
    assert_eq!(ports.len(), 1);
    assert_ne!(ports[0], health);
    // Cluster policy needs no health check port: it goes.
    server
        .kubectl(&[
            "patch",
            "service",
            "lb",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"externalTrafficPolicy":"Cluster"}}"#,
        ])
        .ok();
    let svc = server.get_json(&ns, "service", "lb");
    assert!(svc["spec"].get("healthCheckNodePort").is_none(), "{svc}");
}

#[test]
fn racing_creates_get_distinct_addresses_and_ports() {
    let server = nodeless_server();
    let ns = server.namespace("svc-race");
    std::thread::scope(|scope| {
        for i in 0..20 {
            let ns = &ns;
            scope.spawn(move || {
                let name = format!("svc-{i}");
                server
                    .kubectl(&["create", "service", "nodeport", &name, "-n", ns, "--tcp=80"])
                    .ok();
            });
        }
    });
    let list: Value = serde_json::from_str(
        &server
            .kubectl(&["get", "services", "-n", &ns, "-o", "json"])
            .ok(),
    )
    .expect("JSON");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 20);
    let ips: HashSet<&str> = items
        .iter()
        .map(|s| s["spec"]["clusterIP"].as_str().unwrap_or_default())
        .collect();
    let ports: HashSet<i64> = items.iter().flat_map(node_ports).collect();
    assert_eq!(ips.len(), 20, "{ips:?}");
    assert_eq!(ports.len(), 20, "{ports:?}");
}

#[test]
fn the_kubernetes_service_points_at_the_api_server() {
    let server = nodeless_server();
    let svc = server.get_json("default", "service", "kubernetes");
    assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
    assert_eq!(svc["metadata"]["labels"]["component"], "apiserver");
    assert!(svc["spec"].get("selector").is_none(), "{svc}");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(
        port,
        &json!({"name": "https", "port": 443, "protocol": "TCP", "targetPort": server.port()})
    );

    let slice = server.get_json("default", "endpointslice", "kubernetes");
    let labels = &slice["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/service-name"], "kubernetes");
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "apiserver.tugboat.io"
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["ports"][0]["port"], server.port());
    assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
    let address = slice["endpoints"][0]["addresses"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(address.parse::<std::net::IpAddr>().is_ok(), "{slice}");

    let endpoints = server.get_json("default", "endpoints", "kubernetes");
    assert_eq!(
        endpoints["subsets"][0]["addresses"][0]["ip"],
        address.as_str()
    );
    assert_eq!(endpoints["subsets"][0]["ports"][0]["port"], server.port());
}

/// Every cluster IP of every Service, in all namespaces.
fn all_cluster_ips(server: &Server) -> Vec<String> {
    let out = server
        .kubectl(&["get", "services", "-A", "-o", "json"])
        .ok();
    let list: Value = serde_json::from_str(&out).expect("JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| {
            s["spec"]["clusterIP"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn no_address_is_handed_out_twice_across_a_restart() {
    // 30 usable addresses (10.43.0.1 to .30), the first the kubernetes Service's.
    let mut server = Server::start_with(&[
        "--disable-agent",
        "--disable-scheduler",
        "--service-cidr=10.43.0.0/27",
        "--service-node-port-range=31000-31004",
        "--advertise-address=127.0.0.2",
    ]);
    let create = |server: &Server, name: &str| {
        server.kubectl(&["create", "service", "clusterip", name, "--tcp=80"])
    };
    for i in 0..10 {
        create(&server, &format!("before-{i}")).ok();
    }
    server
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=80",
            "--node-port=31002",
        ])
        .ok();
    // A user who deletes the kubernetes Service gets it back at the next
    // start; while another Service holds its address the server says so
    // and serves all the same.
    server.kubectl(&["delete", "service", "kubernetes"]).ok();
    server
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "squatter",
            "--tcp=80",
            "--clusterip=10.43.0.1",
        ])
        .ok();
    server.restart();
    assert!(
        server.log().contains("keeping the kubernetes Service: Service \"kubernetes\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.1\"}: failed to allocate IP 10.43.0.1: provided IP is already allocated; if another Service holds 10.43.0.1, delete it and restart"),
        "{}",
        server.log()
    );
    server.assert_absent("default", "service", "kubernetes");
    server.kubectl(&["delete", "service", "squatter"]).ok();
    server.restart();
    assert_eq!(cluster_ip(&server, "default", "kubernetes"), "10.43.0.1");
    let slice = server.get_json("default", "endpointslice", "kubernetes");
    assert_eq!(slice["endpoints"][0]["addresses"][0], "127.0.0.2");

    // Fill the range: every address is handed out exactly once.
    let mut i = 0;
    let err = loop {
        let run = create(&server, &format!("after-{i}"));
        if !run.status.success() {
            break run.stderr;
        }
        i += 1;
        assert!(i <= 30, "more Services than addresses");
    };
    assert!(
        err.contains("failed to allocate a serviceIP: range is full"),
        "{err}"
    );
    let ips = all_cluster_ips(&server);
    assert_eq!(ips.len(), 30, "{ips:?}");
    assert_eq!(ips.iter().collect::<HashSet<_>>().len(), 30, "{ips:?}");
    assert!(ips.iter().all(|ip| in_service_cidr(ip)), "{ips:?}");

    // Deleting a Service frees its address (and only that one); the node
    // port is still held.
    let freed = cluster_ip(&server, "default", "before-0");
    server.kubectl(&["delete", "service", "before-0"]).ok();
    let err = server
        .kubectl(&[
            "create",
            "service",
            "nodeport",
            "np2",
            "--tcp=80",
            "--node-port=31002",
        ])
        .fails();
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Invalid value: 31002: provided port is already allocated"
        ),
        "{err}"
    );
    create(&server, "again").ok();
    assert_eq!(cluster_ip(&server, "default", "again"), freed);
}
