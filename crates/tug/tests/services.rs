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
use std::time::Duration;

use common::{Server, eventually, node_server};
use serde_json::{Value, json};

const HTTPD: &str = "tugboat.test/httpd:latest";
const BUSYBOX: &str = "tugboat.test/busybox:latest";

fn apply(server: &Server, namespace: &str, object: &Value) {
    server
        .kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], &object.to_string())
        .ok();
}

/// A Deployment of `replicas` httpd pods labelled `app: <name>`, each
/// serving its name on port 8080 and ready while `/tmp/ready` exists.
fn web(name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "app",
                        "image": HTTPD,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; touch /tmp/ready; exec httpd -f -p 8080 -h /www"],
                        "ports": [{"name": "web", "containerPort": 8080}],
                        "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1},
                    }],
                },
            },
        },
    })
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
    apply(server, &ns, &web("web", 3));
    apply(server, &ns, &client_pod("client"));
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
        apply(server, &ns, &object);
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
        apply(server, &ns, &object);
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
        apply(server, &ns, &object);
    }
    let address: SocketAddr = format!("{ip}:80").parse().unwrap();
    // Refused at once (REJECT), not left to time out.
    eventually("connection refused", || match get(address) {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
        other => Err(format!("{other:?}")),
    });
    assert!(ruleset().contains(&format!("{ip} . tcp . 80 : goto reject-chain")));
}
