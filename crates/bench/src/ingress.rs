//! The ingress part: requests/s and latency through the Service's cluster
//! IP (the service proxy's DNAT) and through the built-in ingress (an
//! Ingress host in front of the Service), both to one busybox httpd pod,
//! beside the same load sent straight to the pod's address; measured by
//! `wrk` (Debian's wrk package) from the host with keep-alive connections,
//! so the differences are what each hop costs.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, PostParams};
use serde_json::{from_value, json};

use crate::node::{Node, create_namespace, httpd_pod, wait, which};
use crate::report::Table;

const NAMESPACE: &str = "bench-ingress";
const HOST: &str = "bench.ingress.test";
/// How long each wrk run lasts.
const DURATION: Duration = Duration::from_secs(10);
/// The concurrent connections of each run: one (latency alone), then a load.
const CONNECTIONS: [u32; 2] = [1, 16];

/// Runs a node server with the httpd test image from `images` (made by
/// `scripts/build-test-images`), measures, and prints the table.
pub async fn run(tug: &Path, run: &Path, images: &Path) -> anyhow::Result<()> {
    which("wrk", "apt-get install wrk")?;
    let node = Node::start(tug, &run.join("ingress"), images).await?;
    let (pod_ip, cluster_ip) = deploy(&node.client).await?;
    let table = measure(node.http_port, &pod_ip, &cluster_ip).await?;
    drop(node);
    table.print();
    Ok(())
}

/// Makes the pod, its Service (without a selector, with an EndpointSlice
/// of the pod's address, so no other controller is needed) and the Ingress;
/// returns the pod's address and the Service's cluster IP.
async fn deploy(client: &kube::Client) -> anyhow::Result<(String, String)> {
    let create = PostParams::default();
    create_namespace(client, NAMESPACE).await?;
    let pod_ip = httpd_pod(client, NAMESPACE, "web", json!({})).await?;
    let service = Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .create(
            &create,
            &from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            }))?,
        )
        .await?;
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("the Service got no cluster IP")?;
    Api::<EndpointSlice>::namespaced(client.clone(), NAMESPACE)
        .create(
            &create,
            &from_value(json!({
                "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [pod_ip], "conditions": {"ready": true}}],
            }))?,
        )
        .await?;
    Api::<Ingress>::namespaced(client.clone(), NAMESPACE)
        .create(
            &create,
            &from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"rules": [{"host": HOST, "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}},
                }]}}]},
            }))?,
        )
        .await?;
    Ok((pod_ip, cluster_ip))
}

/// Waits until `url` answers 200 through curl (with `host` as the Host).
async fn wait_answered(what: &str, url: &str, host: Option<&str>) -> anyhow::Result<()> {
    wait(what, || async {
        let mut curl = tokio::process::Command::new("curl");
        curl.args(["-sf", "--max-time", "1"]);
        if let Some(host) = host {
            curl.args(["-H", &format!("Host: {host}")]);
        }
        let out = curl.arg(url).output().await.ok()?;
        out.status.success().then_some(())
    })
    .await
}

async fn measure(http_port: u16, pod_ip: &str, cluster_ip: &str) -> anyhow::Result<Table> {
    let direct = format!("http://{pod_ip}:8080/");
    let service = format!("http://{cluster_ip}/");
    let through = format!("http://127.0.0.1:{http_port}/");
    wait_answered("the proxy to program the ClusterIP", &service, None).await?;
    wait_answered("the ingress to route to the pod", &through, Some(HOST)).await?;
    let mut table = Table::new(
        &format!(
            "ClusterIP and Ingress: wrk from the host, {} s per run, keep-alive, one busybox httpd pod",
            DURATION.as_secs()
        ),
        &["path", "connections", "requests/s", "p50", "p99", "errors"],
    );
    for connections in CONNECTIONS {
        let pod = wrk(&direct, None, connections).await?;
        table.row(pod.cells("pod IP directly", connections));
        for (path, url, host) in [
            ("through the ClusterIP", &service, None),
            ("through the Ingress", &through, Some(HOST)),
        ] {
            let run = wrk(url, host, connections).await?;
            table.row(run.cells(
                &format!(
                    "{path} ({:+.0}% requests/s)",
                    (run.per_second / pod.per_second - 1.0) * 100.0
                ),
                connections,
            ));
        }
    }
    Ok(table)
}

/// What one wrk run printed.
struct Wrk {
    per_second: f64,
    p50: String,
    p99: String,
    /// Answers other than 2xx/3xx, and connect, read, write and timeout
    /// errors: shown, not fatal, so a loaded machine's rare timeout does
    /// not hide the rest of the table.
    errors: u64,
}

impl Wrk {
    fn cells(&self, path: &str, connections: u32) -> Vec<String> {
        vec![
            path.to_owned(),
            connections.to_string(),
            crate::report::count(self.per_second),
            self.p50.clone(),
            self.p99.clone(),
            crate::report::count(self.errors as f64),
        ]
    }
}

async fn wrk(url: &str, host: Option<&str>, connections: u32) -> anyhow::Result<Wrk> {
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg("--latency")
        .args(["-d", &format!("{}s", DURATION.as_secs())])
        .args(["-c", &connections.to_string()])
        .args(["-t", &connections.min(2).to_string()]);
    if let Some(host) = host {
        command.args(["-H", &format!("Host: {host}")]);
    }
    let out = command.arg(url).output().await.context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk {url}: {text}");
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .with_context(|| format!("no {label:?} in wrk's output:\n{text}"))
    };
    Ok(Wrk {
        per_second: field("Requests/sec:")?.parse()?,
        p50: field("50%")?,
        p99: field("99%")?,
        errors: errors(&text),
    })
}

/// The error answers and socket errors wrk counted (its "Non-2xx or 3xx
/// responses: N" and "Socket errors: connect A, read B, write C, timeout
/// D" lines, printed only when not zero).
fn errors(text: &str) -> u64 {
    let numbers = |line: &str| -> u64 {
        line.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    };
    text.lines()
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("Non-2xx or 3xx responses:")
                .or_else(|| l.strip_prefix("Socket errors:"))
        })
        .map(numbers)
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_add_up_wrk_s_error_lines() {
        let text = "  9536 requests in 10.04s, 1.76MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:    949.58\n";
        assert_eq!(super::errors(text), 7);
        assert_eq!(super::errors("Requests/sec:    949.58\n"), 0);
    }
}
