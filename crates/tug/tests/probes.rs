//! HTTPS and grpc probes against real servers: `openssl s_server` with a
//! self-signed certificate, and the gRPC project's own health server
//! (Python's grpcio-health-checking, in the `.venv` scripts/test makes).
//! The pods use the host's network, so their probes reach the servers this
//! test runs on the host's loopback.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use common::{Server, eventually, free_port, node_name, node_server};
use serde_json::{Value, json};

/// A host-network busybox pod whose one container has `probe` as its
/// readiness probe.
fn probed_pod(name: &str, probe: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node_name(),
            "hostNetwork": true,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": "tugboat.test/busybox:latest",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
                "readinessProbe": probe,
            }],
        },
    })
}

/// Waits until the pod's Ready condition has `status` ("True", "False").
fn wait_ready_is(server: &Server, namespace: &str, name: &str, status: &str) {
    eventually(&format!("pod {namespace}/{name} Ready={status}"), || {
        let pod = server.get_json(namespace, "pod", name);
        let ready = pod["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone());
        if ready == Some(json!(status)) {
            Ok(())
        } else {
            Err(pod["status"].to_string())
        }
    });
}

/// Waits for an Unhealthy event about the pod whose message has `part`.
fn wait_unhealthy(server: &Server, namespace: &str, name: &str, part: &str) -> String {
    eventually(
        &format!("an Unhealthy event of {name} with {part:?}"),
        || {
            let messages = server.event_messages(namespace, name, "Unhealthy");
            messages
                .iter()
                .find(|m| m.contains(part))
                .cloned()
                .ok_or_else(|| format!("{messages:?}"))
        },
    )
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -www` on `port` of the loopback with a fresh
/// self-signed certificate (kept in `dir`).
fn tls_server(dir: &Path, port: u16) -> Process {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=probe.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl req");
    assert!(made.status.success(), "{made:?}");
    let server = Command::new("openssl")
        .args(["s_server", "-www", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let server = Process(server);
    eventually("openssl s_server listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    server
}

#[test]
fn an_https_probe_passes_against_a_tls_server_with_any_certificate() {
    let server = node_server();
    let ns = server.namespace("https-probes");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let _tls = tls_server(dir.path(), port);
    let closed = free_port();
    let https_get = |port: u16| {
        json!({
            "httpGet": {
                "scheme": "HTTPS",
                "port": port,
                "path": "/healthz",
                "httpHeaders": [{"name": "X-Probe", "value": "tugboat"}],
            },
            "periodSeconds": 1,
            "failureThreshold": 1,
        })
    };
    server.apply_json(&ns, &probed_pod("tls", https_get(port)));
    server.apply_json(&ns, &probed_pod("closed", https_get(closed)));

    wait_ready_is(server, &ns, "tls", "True");
    let failed = wait_unhealthy(
        server,
        &ns,
        "closed",
        &format!("Get \"https://127.0.0.1:{closed}/healthz\""),
    );
    assert!(failed.contains("refused"), "{failed}");
    wait_ready_is(server, &ns, "closed", "False");
    assert!(
        server.event_messages(&ns, "tls", "Unhealthy").is_empty(),
        "the probe of a server with a self-signed certificate must pass"
    );
}

/// The gRPC health server: serves `grpc.health.v1.Health` on the port in
/// argv[1] with argv[2]'s status SERVING, and sets it to each status name
/// read from stdin, echoing it once set.
const HEALTH_SERVER: &str = r#"
import sys
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
servicer = health.HealthServicer()
health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
servicer.set(sys.argv[2], health_pb2.HealthCheckResponse.SERVING)
print("SERVING", flush=True)
for line in sys.stdin:
    servicer.set(sys.argv[2], health_pb2.HealthCheckResponse.ServingStatus.Value(line.strip()))
    print(line.strip(), flush=True)
"#;

/// The Python of the venv scripts/test makes, with grpcio in it.
fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, which makes the venv with grpcio",
        python.display()
    );
    python
}

/// The health server on `port` for `service`, and its stdin.
fn health_server(port: u16, service: &str) -> (Process, ChildStdin) {
    let mut child = Command::new(venv_python())
        .args(["-c", HEALTH_SERVER, &port.to_string(), service])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the gRPC health server");
    let stdin = child.stdin.take().expect("piped stdin");
    let server = Process(child);
    eventually("the gRPC health server listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    (server, stdin)
}

#[test]
fn a_grpc_probe_follows_the_servers_health() {
    let server = node_server();
    let ns = server.namespace("grpc-probes");
    let port = free_port();
    let (_health, mut set_status) = health_server(port, "tugboat.Echo");
    let probe = json!({
        "grpc": {"port": port, "service": "tugboat.Echo"},
        "periodSeconds": 1,
        "failureThreshold": 1,
    });
    server.apply_json(&ns, &probed_pod("grpc", probe));
    wait_ready_is(server, &ns, "grpc", "True");

    writeln!(set_status, "NOT_SERVING").expect("tell the health server");
    wait_ready_is(server, &ns, "grpc", "False");
    wait_unhealthy(
        server,
        &ns,
        "grpc",
        "service unhealthy (responded with \"NOT_SERVING\")",
    );

    writeln!(set_status, "SERVING").expect("tell the health server");
    wait_ready_is(server, &ns, "grpc", "True");

    // A service the server does not know is not serving either.
    let unknown = json!({
        "grpc": {"port": port, "service": "tugboat.Unknown"},
        "periodSeconds": 1,
        "failureThreshold": 1,
    });
    server.apply_json(&ns, &probed_pod("unknown-service", unknown));
    let failed = wait_unhealthy(server, &ns, "unknown-service", "NotFound");
    assert!(failed.contains("health rpc probe failed"), "{failed}");
    wait_ready_is(server, &ns, "unknown-service", "False");
}
