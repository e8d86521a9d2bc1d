//! Services carried by the service proxy's nftables rules, with real pods
//! on `tug server`'s own node: what a user reaches from the host and from
//! pods through a cluster IP, and what the proxy leaves behind.
//!
//! Each web pod runs busybox httpd on port 8080 (named `web`) and serves
//! its own name, so the answers tell which endpoint took a request.

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::pods::BUSYBOX;
use common::{Server, eventually, node_server};
use serde_json::{Value, json};

/// A Deployment of `replicas` httpd pods labelled `app: <name>`, each
/// serving its name on port 8080 and ready while `/tmp/ready` exists.
fn web(name: &str, replicas: i32) -> Value {
    let file_there = json!({"exec": {"command": ["test", "-f", "/tmp/ready"]}});
    common::httpd_deployment(name, replicas, file_there)
}

/// A busybox pod that sleeps, to run clients in.
fn client_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "client", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}],
        },
    })
}

/// The pods of `app` that are Ready, by name and IP.
fn ready_pods(server: &Server, namespace: &str, app: &str) -> Vec<(String, String)> {
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
    let list: Value = serde_json::from_str(&out).expect("a pod list");
    let mut pods: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pod| {
            pod["metadata"].get("deletionTimestamp").is_none()
                && pod["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .map(|pod| {
            (
                pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                pod["status"]["podIP"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    pods.sort();
    pods
}

/// Waits for `count` ready pods of `app`.
fn wait_ready(server: &Server, namespace: &str, app: &str, count: usize) -> Vec<(String, String)> {
    eventually(&format!("{count} ready pods of {app}"), || {
        let pods = ready_pods(server, namespace, app);
        if pods.len() == count {
            Ok(pods)
        } else {
            Err(format!("{pods:?}"))
        }
    })
}

fn wait_running(server: &Server, namespace: &str, pod: &str) {
    server
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "-n",
            namespace,
            "--timeout=60s",
        ])
        .ok();
}

/// `GET /` over plain HTTP from the host: the body, or why it failed.
fn get(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(std::io::Error::other(format!("answered {head:?}")));
    }
    Ok(body.trim().to_owned())
}

/// The names that answer `requests` GETs of `address`, failing on any error.
fn answers(address: SocketAddr, requests: usize) -> BTreeSet<String> {
    (0..requests)
        .map(|_| get(address).unwrap_or_else(|e| panic!("GET {address}: {e}")))
        .collect()
}

/// Waits until `address` answers at all (the proxy has programmed it).
fn wait_answering(address: SocketAddr) -> String {
    eventually(&format!("{address} answering"), || {
        get(address).map_err(|e| e.to_string())
    })
}

/// `wget -qO- url` in `pod`: its output.
fn wget_in(server: &Server, namespace: &str, pod: &str, url: &str) -> String {
    // busybox wget's -T crashes this build: timeout bounds it instead.
    server
        .kubectl(&[
            "exec", "-n", namespace, pod, "--", "timeout", "10", "wget", "-qO-", url,
        ])
        .ok()
        .trim()
        .to_owned()
}

/// An address for an explicit cluster IP, from the last two bytes given.
fn cluster_ip(third: u8, fourth: u8) -> String {
    format!("10.43.{third}.{fourth}")
}

/// A Service without a selector and the EndpointSlice a user writes for it.
fn manual_service(
    name: &str,
    ip: &str,
    port: Value,
    endpoints: &[&str],
    target: Value,
) -> [Value; 2] {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"clusterIP": ip, "ports": [port]},
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-manual"), "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [target],
        "endpoints": endpoints.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
    });
    [service, slice]
}

/// The name of the table the proxy of `server` programs, from its log.
fn proxy_table(server: &Server) -> String {
    let log = server.log();
    let (_, rest) = log
        .split_once("service proxy: table ip ")
        .expect("the proxy logged its table");
    rest.split_whitespace().next().unwrap().to_owned()
}

/// Runs an nft batch.
fn nft(batch: &str) {
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft -f of {batch}");
}

/// The host's nftables ruleset.
fn ruleset() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("run nft");
    assert!(out.status.success(), "nft list ruleset: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_cluster_ip_balances_over_its_endpoints_from_the_host_from_pods_and_back_to_a_pod_itself() {
    let server = node_server();
    let ns = server.namespace("svc-manual");
    server.apply_json(&ns, &web("web", 3));
    server.apply_json(&ns, &client_pod("client"));
    let pods = wait_ready(server, &ns, "web", 3);
    let ips: Vec<&str> = pods.iter().map(|(_, ip)| ip.as_str()).collect();
    let ip = cluster_ip(201, 7);
    for object in manual_service(
        "web",
        &ip,
        json!({"name": "http", "port": 80}),
        &ips,
        json!({"name": "http", "port": 8080}),
    ) {
        server.apply_json(&ns, &object);
    }
    let address: SocketAddr = format!("{ip}:80").parse().unwrap();
    wait_answering(address);
    let names: BTreeSet<String> = pods.iter().map(|(name, _)| name.clone()).collect();
    eventually("every endpoint answering the host", || {
        let seen = answers(address, 30);
        if seen == names {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    wait_running(server, &ns, "client");
    let url = format!("http://{ip}/");
    assert!(names.contains(&wget_in(server, &ns, "client", &url)));
    // A pod reaching its own Service may land on itself (hairpin): every
    // answer, its own included, comes back.
    let own = &pods[0].0;
    eventually("a pod reaching itself through its Service", || {
        let answer = wget_in(server, &ns, own, &url);
        if &answer == own { Ok(()) } else { Err(answer) }
    });
}

#[test]
fn a_udp_service_reaches_its_endpoint_and_deleted_services_leave_no_rules() {
    let server = node_server();
    let ns = server.namespace("svc-udp");
    // The endpoint is this test, on the node's own address, as kube-dns
    // is for the cluster DNS.
    let node = node_address(server);
    let echo = UdpSocket::bind((node.as_str(), 0)).expect("bind a UDP port");
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        while let Ok((n, from)) = echo.recv_from(&mut buffer) {
            let mut reply = b"echo: ".to_vec();
            reply.extend_from_slice(&buffer[..n]);
            let _ = echo.send_to(&reply, from);
        }
    });
    let ip = cluster_ip(201, 8);
    for object in manual_service(
        "echo",
        &ip,
        json!({"name": "echo", "port": 7, "protocol": "UDP"}),
        &[&node],
        json!({"name": "echo", "port": echo_port, "protocol": "UDP"}),
    ) {
        server.apply_json(&ns, &object);
    }
    let client = UdpSocket::bind("0.0.0.0:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let service: SocketAddr = format!("{ip}:7").parse().unwrap();
    eventually("an answer through the UDP Service", || {
        client
            .send_to(b"hello", service)
            .map_err(|e| e.to_string())?;
        let mut buffer = [0u8; 512];
        let (n, from) = client.recv_from(&mut buffer).map_err(|e| e.to_string())?;
        let answer = String::from_utf8_lossy(&buffer[..n]).into_owned();
        // The answer seems to come from the Service's address, as it must
        // for the client to take it.
        if answer == "echo: hello" && from == service {
            Ok(())
        } else {
            Err(format!("{answer:?} from {from}"))
        }
    });
    assert!(ruleset().contains(&format!("{ns}/echo/udp/echo")));

    server
        .kubectl(&["delete", "service", "echo", "-n", &ns])
        .ok();
    eventually("the Service's rules gone", || {
        let rules = ruleset();
        if rules.contains(&format!("{ns}/")) || rules.contains(&ip) {
            Err(rules)
        } else {
            Ok(())
        }
    });
}

/// The node's InternalIP, which NodePorts and LoadBalancer ingress use.
fn node_address(server: &Server) -> String {
    server
        .kubectl(&[
            "get",
            "node",
            &common::node_name(),
            "-o",
            "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
        ])
        .ok()
        .trim()
        .to_owned()
}

#[test]
fn a_service_without_endpoints_refuses_connections() {
    let server = node_server();
    let ns = server.namespace("svc-empty");
    let ip = cluster_ip(201, 9);
    for object in manual_service(
        "nobody",
        &ip,
        json!({"name": "http", "port": 80}),
        &[],
        json!({"name": "http", "port": 8080}),
    ) {
        server.apply_json(&ns, &object);
    }
    let address: SocketAddr = format!("{ip}:80").parse().unwrap();
    // Refused at once (REJECT), not left to time out.
    eventually("connection refused", || match get(address) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
        other => Err(format!("{other:?}")),
    });
    assert!(ruleset().contains(&format!("{ip} . tcp . 80 : goto reject-chain")));
}

/// The chains of the proxy's `table` whose names hold `part`, listed with
/// their handles: nft gives a chain or rule a new handle whenever it is
/// written anew.
fn chains_with_handles(table: &str, part: &str) -> String {
    let out = std::process::Command::new("nft")
        .args(["-a", "list", "table", "ip", table])
        .output()
        .expect("run nft");
    assert!(out.status.success(), "nft -a list table: {out:?}");
    let mut chains = String::new();
    let mut inside = false;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        if line.starts_with("chain ") {
            inside = line.contains(part);
        }
        if inside {
            chains.push_str(line);
            chains.push('\n');
            inside = line != "}";
        }
    }
    chains
}

#[test]
fn a_change_to_one_service_leaves_the_rules_of_another_untouched() {
    let server = node_server();
    let ns = server.namespace("svc-apart");
    let port = json!({"name": "http", "port": 80});
    let target = json!({"name": "http", "port": 8080});
    // No packet is sent to these endpoints: only the rules are looked at.
    let steady = manual_service(
        "steady",
        &cluster_ip(201, 11),
        port.clone(),
        &["192.0.2.11"],
        target.clone(),
    );
    let [moving, mut moving_slice] = manual_service(
        "moving",
        &cluster_ip(201, 12),
        port,
        &["192.0.2.11", "192.0.2.12"],
        target,
    );
    for object in steady.iter().chain([&moving, &moving_slice]) {
        server.apply_json(&ns, object);
    }
    let table = proxy_table(server);
    let steady_part = format!("{ns}/steady/");
    let before = eventually("both Services programmed", || {
        let steady = chains_with_handles(&table, &steady_part);
        let moving = chains_with_handles(&table, &format!("{ns}/moving/"));
        if steady.contains("dnat to 192.0.2.11:8080") && moving.contains("dnat to 192.0.2.12:8080")
        {
            Ok(steady)
        } else {
            Err(format!("{steady}{moving}"))
        }
    });

    moving_slice["endpoints"] = json!([
        {"addresses": ["192.0.2.11"], "conditions": {"ready": true}},
        {"addresses": ["192.0.2.13"], "conditions": {"ready": true}},
    ]);
    server.apply_json(&ns, &moving_slice);
    eventually("the moved endpoint programmed", || {
        let moving = chains_with_handles(&table, &format!("{ns}/moving/"));
        if moving.contains("dnat to 192.0.2.13:8080") && !moving.contains("dnat to 192.0.2.12:8080")
        {
            Ok(())
        } else {
            Err(moving)
        }
    });
    assert_eq!(chains_with_handles(&table, &steady_part), before);
}

/// A Service `name` selecting `app: name` pods, port 80 to the named
/// container port `web`, with `extra` merged into its spec.
fn selecting_service(name: &str, extra: Value) -> Value {
    let mut spec = json!({
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "targetPort": "web"}],
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

/// The cluster IP the API server gave Service `name`.
fn allocated_ip(server: &Server, namespace: &str, name: &str) -> String {
    let service = server.get_json(namespace, "service", name);
    service["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .to_owned()
}

#[test]
fn requests_spread_over_ready_replicas_and_skip_a_pod_failing_readiness() {
    let server = node_server();
    let ns = server.namespace("svc-spread");
    server.apply_json(&ns, &web("web", 3));
    server.apply_json(&ns, &selecting_service("web", json!({})));
    let pods = wait_ready(server, &ns, "web", 3);
    let ip = allocated_ip(server, &ns, "web");
    let address: SocketAddr = format!("{ip}:80").parse().unwrap();
    wait_answering(address);
    let names: BTreeSet<String> = pods.iter().map(|(name, _)| name.clone()).collect();
    eventually("every ready replica answering", || {
        let seen = answers(address, 30);
        if seen == names {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });

    // One pod fails its readiness probe: it still runs, but gets nothing.
    let (unready, _) = &pods[1];
    server
        .kubectl(&["exec", "-n", &ns, unready, "--", "rm", "/tmp/ready"])
        .ok();
    wait_ready(server, &ns, "web", 2);
    let rest: BTreeSet<String> = names.iter().filter(|n| *n != unready).cloned().collect();
    eventually("the unready pod left out", || {
        let seen = answers(address, 30);
        if seen == rest {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    for _ in 0..3 {
        assert_eq!(answers(address, 20), rest);
    }

    // Scaled to zero, the Service refuses connections.
    server
        .kubectl(&["scale", "deployment/web", "-n", &ns, "--replicas=0"])
        .ok();
    eventually("connection refused with no replica", || {
        match get(address) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
}

#[test]
fn node_ports_and_load_balancer_addresses_reach_the_service_from_the_host() {
    let server = node_server();
    let ns = server.namespace("svc-external");
    server.apply_json(&ns, &web("front", 2));
    server.apply_json(&ns,
        &selecting_service(
            "front",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": "web", "nodePort": 30001}]}),
        ),
    );
    let pods = wait_ready(server, &ns, "front", 2);
    let names: BTreeSet<String> = pods.into_iter().map(|(name, _)| name).collect();
    let node = node_address(server);
    let node_port: SocketAddr = format!("{node}:30001").parse().unwrap();
    wait_answering(node_port);
    eventually("every replica behind the NodePort", || {
        let seen = answers(node_port, 30);
        if seen == names {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    // As in kube-proxy's nftables mode, NodePorts do not answer on
    // localhost.
    let localhost: SocketAddr = "127.0.0.1:30001".parse().unwrap();
    assert!(get(localhost).is_err());

    // A LoadBalancer Service is reached at its ingress address on its own
    // port (the servicelb gives the node's address).
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "front"},
                     "ports": [{"name": "http", "port": 8090, "targetPort": "web"}]},
        }),
    );
    let ingress = eventually("a load-balancer ingress address", || {
        let service = server.get_json(&ns, "service", "lb");
        service["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| service["status"].to_string())
    });
    let balanced: SocketAddr = format!("{ingress}:8090").parse().unwrap();
    assert!(names.contains(&wait_answering(balanced)));
}

#[test]
fn client_ip_affinity_keeps_a_client_on_one_replica() {
    let server = node_server();
    let ns = server.namespace("svc-affinity");
    server.apply_json(&ns, &web("sticky", 3));
    server.apply_json(
        &ns,
        &selecting_service("sticky", json!({"sessionAffinity": "ClientIP"})),
    );
    wait_ready(server, &ns, "sticky", 3);
    let ip = allocated_ip(server, &ns, "sticky");
    let address: SocketAddr = format!("{ip}:80").parse().unwrap();
    wait_answering(address);
    // Three replicas at random would give one name 40 times in a row
    // once in 10^18 tries.
    let seen = answers(address, 40);
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[test]
fn deleting_every_service_leaves_none_of_their_rules() {
    let server = node_server();
    let ns = server.namespace("svc-cleanup");
    server.apply_json(&ns, &web("gone", 2));
    server.apply_json(&ns,
        &selecting_service(
            "gone",
            json!({"type": "NodePort", "sessionAffinity": "ClientIP",
                   "ports": [{"name": "http", "port": 80, "targetPort": "web", "nodePort": 30002}]}),
        ),
    );
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "gone-lb"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "gone"},
                     "ports": [{"name": "dns", "port": 8053, "targetPort": 8080, "protocol": "UDP"},
                               {"name": "http", "port": 8091, "targetPort": "web"}]},
        }),
    );
    wait_ready(server, &ns, "gone", 2);
    let ips = [
        allocated_ip(server, &ns, "gone"),
        allocated_ip(server, &ns, "gone-lb"),
    ];
    eventually("rules for every Service port", || {
        let rules = ruleset();
        let wanted = [
            format!("{ns}/gone/tcp/http__"),
            format!("{ns}/gone-lb/udp/dns__"),
            format!("{ns}/gone-lb/tcp/http__"),
            "affinity-".to_owned(),
            "tcp . 30002 : goto".to_owned(),
        ];
        match wanted.iter().find(|w| !rules.contains(w.as_str())) {
            Some(missing) => Err(format!("no {missing} in {rules}")),
            None => Ok(()),
        }
    });

    server
        .kubectl(&["delete", "services", "--all", "-n", &ns])
        .ok();
    eventually("none of the Services' rules left", || {
        let rules = ruleset();
        let left = rules.lines().find(|line| {
            line.contains(&format!("{ns}/"))
                || ips.iter().any(|ip| line.contains(ip.as_str()))
                || line.contains(". 30002 ")
        });
        match left {
            Some(line) => Err(format!("still there: {line}")),
            None => Ok(()),
        }
    });
}

#[test]
fn a_rolling_update_behind_a_service_fails_no_request() {
    let server = node_server();
    let ns = server.namespace("svc-rollout");
    let mut deployment = web("roll", 3);
    deployment["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
    // As Kubernetes advises: a pod on its way out keeps serving a moment,
    // while the proxies stop sending it new connections.
    let pod = &mut deployment["spec"]["template"]["spec"];
    pod["terminationGracePeriodSeconds"] = json!(10);
    pod["containers"][0]["lifecycle"] = json!({"preStop": {"exec": {"command": ["sleep", "3"]}}});
    server.apply_json(&ns, &deployment);
    server.apply_json(&ns, &selecting_service("roll", json!({})));
    let before: BTreeSet<String> = wait_ready(server, &ns, "roll", 3)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let ip = allocated_ip(server, &ns, "roll");
    let address: SocketAddr = format!("{ip}:80").parse().unwrap();
    wait_answering(address);

    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut answered, mut failed) = (BTreeSet::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match get(address) {
                    Ok(name) => {
                        answered.insert(name);
                    }
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (answered, failed)
        })
    };
    server
        .kubectl(&["set", "env", "deployment/roll", "-n", &ns, "VERSION=2"])
        .ok();
    let out = server
        .kubectl(&[
            "rollout",
            "status",
            "deployment/roll",
            "-n",
            &ns,
            "--timeout=180s",
        ])
        .ok();
    assert!(out.contains("successfully rolled out"), "{out}");
    let after: BTreeSet<String> = wait_ready(server, &ns, "roll", 3)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    // Once the old pods are gone, every answer comes from a new one.
    eventually("only new pods answering", || {
        let seen = answers(address, 20);
        if seen.is_subset(&after) {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    stop.store(true, Ordering::Relaxed);
    let (answered, failed) = poller.join().unwrap();
    assert!(
        failed.is_empty(),
        "failed requests during the rollout: {failed:?}"
    );
    assert!(before.is_disjoint(&after), "{before:?} {after:?}");
    assert!(answered.iter().any(|n| before.contains(n)), "{answered:?}");
    assert!(answered.iter().any(|n| after.contains(n)), "{answered:?}");
}

#[test]
fn restarting_the_server_keeps_an_established_connection_through_a_service() {
    let mut server = Server::start();
    server.import_image("busybox.oci.tar");
    let ns = server.namespace("svc-restart");
    // An echo server: each connection gets a `cat` of its own.
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "echo", "labels": {"app": "echo"}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "echo", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["nc", "-ll", "-p", "9000", "-e", "cat"],
                "ports": [{"name": "echo", "containerPort": 9000}],
                "readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 1},
            }]},
        }),
    );
    server.apply_json(
        &ns,
        &json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
            "spec": {"selector": {"app": "echo"}, "ports": [{"port": 9000, "targetPort": "echo"}]},
        }),
    );
    wait_running(&server, &ns, "echo");
    let ip = allocated_ip(&server, &ns, "echo");
    let address: SocketAddr = format!("{ip}:9000").parse().unwrap();
    let echo = |stream: &mut TcpStream, line: &str| -> std::io::Result<String> {
        stream.write_all(line.as_bytes())?;
        let mut buffer = vec![0u8; line.len()];
        stream.read_exact(&mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    };
    let mut connection = eventually("a connection through the Service", || {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        match echo(&mut stream, "before\n") {
            Ok(answer) if answer == "before\n" => Ok(stream),
            other => Err(format!("{other:?}")),
        }
    });

    // What a crashed proxy might leave: a chain and an element for a
    // Service that is no more.
    server.kill();
    let table = proxy_table(&server);
    nft(&format!(
        "add chain ip {table} leftover\nadd element ip {table} service-ips {{ 10.43.255.254 . tcp . 1 : goto leftover }}\n"
    ));
    assert!(ruleset().contains("leftover"));
    server.restart();
    // The restarted proxy has rewritten its whole table.
    eventually("the restarted proxy programming its table", || {
        let log = server.log();
        let count = log
            .matches(&format!("service proxy: table ip {table} holds"))
            .count();
        if count >= 2 {
            Ok(())
        } else {
            Err(format!("{count} in {log}"))
        }
    });
    assert!(!ruleset().contains("leftover"));
    assert_eq!(echo(&mut connection, "after\n").unwrap(), "after\n");
    let mut fresh = TcpStream::connect_timeout(&address, Duration::from_secs(3)).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(echo(&mut fresh, "fresh\n").unwrap(), "fresh\n");
}

/// A UDP server on `address` (any port) that answers every datagram with
/// `name`; its port.
fn udp_answering(address: &str, name: &'static str) -> u16 {
    let socket = UdpSocket::bind((address, 0)).expect("bind a UDP port");
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        while let Ok((_, from)) = socket.recv_from(&mut buffer) {
            let _ = socket.send_to(name.as_bytes(), from);
        }
    });
    port
}

#[test]
fn a_udp_client_that_keeps_sending_follows_its_service_to_a_new_endpoint() {
    let server = node_server();
    let ns = server.namespace("svc-udp-move");
    let node = node_address(server);
    let first = udp_answering(&node, "first");
    let second = udp_answering(&node, "second");
    let ip = cluster_ip(201, 10);
    let [service, mut slice] = manual_service(
        "moving",
        &ip,
        json!({"name": "q", "port": 5353, "protocol": "UDP"}),
        &[&node],
        json!({"name": "q", "port": first, "protocol": "UDP"}),
    );
    server.apply_json(&ns, &service);
    server.apply_json(&ns, &slice);
    // One client socket, so every datagram belongs to one conntrack flow,
    // which its traffic keeps alive.
    let client = UdpSocket::bind("0.0.0.0:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let target: SocketAddr = format!("{ip}:5353").parse().unwrap();
    let ask = || -> Result<String, String> {
        client.send_to(b"?", target).map_err(|e| e.to_string())?;
        let mut buffer = [0u8; 64];
        let (n, _) = client.recv_from(&mut buffer).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buffer[..n]).into_owned())
    };
    eventually("the first endpoint answering", || match ask()? {
        answer if answer == "first" => Ok(()),
        other => Err(other),
    });
    // The endpoint moves while the client keeps talking: its flow must be
    // forgotten, or it would stay with the first endpoint.
    slice["ports"][0]["port"] = json!(second);
    server.apply_json(&ns, &slice);
    eventually(
        "the second endpoint answering the same client",
        || match ask()? {
            answer if answer == "second" => Ok(()),
            other => Err(other),
        },
    );
}
