//! The ingress part: requests/s and latency through the built-in ingress
//! (an Ingress host in front of one busybox httpd pod) beside the same load
//! sent straight to the pod's address, measured by `wrk` (Debian's wrk
//! package) with keep-alive connections, so the difference is what the
//! ingress's hop costs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{from_value, json};

use crate::api::{TugServer, free_port};
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
    let archive = images.join("httpd.oci.tar");
    anyhow::ensure!(
        archive.exists(),
        "{} not found: run scripts/build-test-images first, or pass --test-images",
        archive.display()
    );
    which("wrk", "apt-get install wrk")?;
    let data = run.join("ingress");
    let http_port = free_port()?;
    let http = http_port.to_string();
    let https = free_port()?.to_string();
    let flags = ["--ingress-http-port", &http, "--ingress-https-port", &https];
    let (server, _) = TugServer::start(tug, &data, free_port()?, &flags).await?;
    let measured = async {
        import(tug, &data, &archive)?;
        let pod_ip = deploy(&data).await?;
        measure(http_port, &pod_ip).await
    }
    .await;
    drop(server);
    // The pod's container outlives the server process; remove it as
    // `tug killall` does on a node.
    let _ = Command::new(tug)
        .args(["killall", "--agent-dir"])
        .arg(data.join("agent"))
        .output();
    measured?.print();
    Ok(())
}

fn which(program: &str, install: &str) -> anyhow::Result<()> {
    match Command::new(program).arg("--version").output() {
        Ok(_) => Ok(()),
        Err(_) => bail!("{program} not found: {install}"),
    }
}

fn import(tug: &Path, data: &Path, archive: &Path) -> anyhow::Result<()> {
    let out = Command::new(tug)
        .args(["images", "import", "--root"])
        .arg(data.join("agent/images"))
        .arg(archive)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "tug images import: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Makes the pod, its Service (without a selector, with an EndpointSlice
/// of the pod's address, so no other controller is needed) and the Ingress;
/// returns the pod's address once the ingress answers for it.
async fn deploy(data: &Path) -> anyhow::Result<String> {
    let kubeconfig = Kubeconfig::read_from(data.join("admin.kubeconfig"))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    let create = PostParams::default();
    Api::<Namespace>::all(client.clone())
        .create(
            &create,
            &from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    pods.create(
        &create,
        &from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{
                "name": "httpd",
                "image": "tugboat.test/httpd:latest",
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", "mkdir -p /www; echo hello > /www/index.html; exec httpd -f -p 8080 -h /www"],
            }]},
        }))?,
    )
    .await?;
    let pod_ip = wait("the pod to run", || async {
        let pod = pods.get("web").await.ok()?;
        let status = pod.status?;
        (status.phase.as_deref() == Some("Running")).then_some(status.pod_ip?)
    })
    .await?;
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .create(
            &create,
            &from_value(json!({
                "metadata": {"name": "web"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            }))?,
        )
        .await?;
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
    Api::<Ingress>::namespaced(client, NAMESPACE)
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
    Ok(pod_ip)
}

/// Polls `check` until it gives a value, for at most a minute.
async fn wait<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("gave up waiting for {what} after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn measure(http_port: u16, pod_ip: &str) -> anyhow::Result<Table> {
    let direct = format!("http://{pod_ip}:8080/");
    let through = format!("http://127.0.0.1:{http_port}/");
    wait("the ingress to route to the pod", || async {
        let out = tokio::process::Command::new("curl")
            .args(["-sf", "-H", &format!("Host: {HOST}"), &through])
            .output()
            .await
            .ok()?;
        out.status.success().then_some(())
    })
    .await?;
    let mut table = Table::new(
        &format!(
            "Ingress: wrk, {} s per run, keep-alive, one busybox httpd pod",
            DURATION.as_secs()
        ),
        &["path", "connections", "requests/s", "p50", "p99"],
    );
    for connections in CONNECTIONS {
        let pod = wrk(&direct, None, connections).await?;
        let ingress = wrk(&through, Some(HOST), connections).await?;
        table.row(pod.cells("pod IP directly", connections));
        table.row(ingress.cells(
            &format!(
                "through the Ingress ({:+.0}% requests/s)",
                (ingress.per_second / pod.per_second - 1.0) * 100.0
            ),
            connections,
        ));
    }
    Ok(table)
}

/// What one wrk run printed.
struct Wrk {
    per_second: f64,
    p50: String,
    p99: String,
}

impl Wrk {
    fn cells(&self, path: &str, connections: u32) -> Vec<String> {
        vec![
            path.to_owned(),
            connections.to_string(),
            crate::report::count(self.per_second),
            self.p50.clone(),
            self.p99.clone(),
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
    anyhow::ensure!(
        !text.contains("Non-2xx or 3xx responses"),
        "wrk {url} got error answers:\n{text}"
    );
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .with_context(|| format!("no {label:?} in wrk's output:\n{text}"))
    };
    Ok(Wrk {
        per_second: field("Requests/sec:")?.parse()?,
        p50: field("50%")?,
        p99: field("99%")?,
    })
}
