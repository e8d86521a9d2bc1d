//! The API server part: the release `tug server` on a temporary data dir and a
//! free loopback port, driven over HTTPS with the admin client certificate.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use tokio::sync::Barrier;

use crate::client::Endpoint;
use crate::report::{Creates, Samples, rss_kib};

/// The namespace the benchmark writes into.
const NAMESPACE: &str = "bench";

/// A running `tug server`; killed when dropped.
pub struct TugServer {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl TugServer {
    /// Starts `tug server` with `flags` and returns it with the time it
    /// took from the spawn to the first `/readyz` answered 200 over TLS.
    pub async fn start(
        tug: &Path,
        data_dir: &Path,
        port: u16,
        flags: &[&str],
    ) -> anyhow::Result<(Self, Duration)> {
        let log = data_dir.with_extension("log");
        let out = File::options().create(true).append(true).open(&log)?;
        let started = Instant::now();
        let child = Command::new(tug)
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind-address")
            .arg("127.0.0.1")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", tug.display()))?;
        let mut server = TugServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            data_dir: data_dir.to_owned(),
            log,
        };
        let ready = server.wait_ready(started).await?;
        Ok((server, ready))
    }

    async fn wait_ready(&mut self, started: Instant) -> anyhow::Result<Duration> {
        let probe = Endpoint::unverified(self.addr)?;
        loop {
            if let Ok(mut conn) = probe.connect().await
                && let Ok((StatusCode::OK, _)) = conn.call(Method::GET, "/readyz", None).await
            {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("tug server exited ({status}); log:\n{}", self.log());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("tug server not ready after 60 s; log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        Endpoint::from_kubeconfig(&self.data_dir.join("admin.kubeconfig"))
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.pid())
    }
}

impl Drop for TugServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small pod, as `kubectl run` would send it.
fn pod(name: &str) -> Bytes {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench", "run": name}},
        "spec": {"containers": [{
            "name": "app",
            "image": "registry.example/bench/app:1.0",
            "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }]},
    })
    .to_string()
    .into()
}

fn config_map(name: &str) -> Bytes {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"key": "value"},
    })
    .to_string()
    .into()
}

pub async fn create_namespace(ep: &Endpoint) -> anyhow::Result<()> {
    let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    ep.connect()
        .await?
        .expect(
            Method::POST,
            "/api/v1/namespaces",
            Some(body.to_string().into()),
            StatusCode::CREATED,
        )
        .await?;
    Ok(())
}

/// `count` pod creates spread over `clients` connections, each client
/// sending its next create as soon as the last one is answered.
pub async fn creates(ep: &Endpoint, clients: usize, count: usize) -> anyhow::Result<Creates> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let mine = count / clients + usize::from(client < count % clients);
        let ep = ep.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let conn = ep.connect().await;
            barrier.wait().await;
            let mut conn = conn?;
            let mut latencies = Samples::default();
            let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
            for i in 0..mine {
                let body = pod(&format!("c{clients}-{client}-{i}"));
                let sent = Instant::now();
                conn.expect(Method::POST, &path, Some(body), StatusCode::CREATED)
                    .await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut latencies = Samples::default();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Creates {
        count,
        elapsed: start.elapsed(),
        latencies,
    })
}

/// Times `runs` full LISTs of the benchmark namespace's pods, to the
/// response head and to the body's end; checks the first holds `expected`
/// items.
pub async fn list_pods(
    ep: &Endpoint,
    expected: usize,
    runs: usize,
) -> anyhow::Result<(Samples, Samples)> {
    let mut conn = ep.connect().await?;
    let path = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let (mut heads, mut samples) = (Samples::default(), Samples::default());
    for run in 0..runs {
        let start = Instant::now();
        let response = conn.send(Method::GET, &path, None).await?;
        heads.push(start.elapsed());
        if response.status() != StatusCode::OK {
            bail!("LIST: {}", response.status());
        }
        let body = response.into_body().collect().await?.to_bytes();
        samples.push(start.elapsed());
        if run == 0 {
            let list: serde_json::Value = serde_json::from_slice(&body)?;
            let items = list["items"].as_array().map_or(0, Vec::len);
            if items != expected {
                bail!("the LIST held {items} pods, not {expected}");
            }
        }
    }
    Ok((heads, samples))
}

/// Watch delivery: `watchers` watches of the namespace's ConfigMaps, then
/// `events` ConfigMap creates one after another, `gap` apart. Each sample is
/// the time from sending a create to one watcher reading its ADDED event.
pub async fn watch_latency(
    ep: &Endpoint,
    watchers: usize,
    events: usize,
    gap: Duration,
) -> anyhow::Result<Samples> {
    let sent: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..events).map(|_| OnceLock::new()).collect());
    let (warm_tx, mut warm_rx) = tokio::sync::mpsc::channel::<()>(watchers);
    let path =
        format!("/api/v1/namespaces/{NAMESPACE}/configmaps?watch=true&allowWatchBookmarks=false");
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let ep = ep.clone();
        let sent = sent.clone();
        let warm_tx = warm_tx.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = ep.connect().await?;
            let response = conn.send(Method::GET, &path, None).await?;
            if response.status() != StatusCode::OK {
                bail!("watch: {}", response.status());
            }
            let mut body = response.into_body();
            let mut buf = Vec::new();
            let mut samples = Samples::default();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while samples.len() < events {
                let frame = tokio::time::timeout_at(deadline, body.frame())
                    .await
                    .context("the watch delivered too little in time")?;
                let Some(frame) = frame else {
                    bail!("the watch ended early");
                };
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                let now = Instant::now();
                buf.extend_from_slice(&data);
                while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    let event: serde_json::Value = serde_json::from_slice(&line)?;
                    if event["type"] != "ADDED" {
                        continue;
                    }
                    let name = event["object"]["metadata"]["name"].as_str().unwrap_or("");
                    if name == "warm-up" {
                        let _ = warm_tx.send(()).await;
                    } else if let Some(i) = name.strip_prefix("w-") {
                        let i: usize = i.parse()?;
                        let at = sent[i].get().context("an event before its create")?;
                        samples.push(now.duration_since(*at));
                    }
                }
            }
            anyhow::Ok(samples)
        }));
    }
    drop(warm_tx);

    // Every watcher has seen the warm-up object: all are established.
    let mut conn = ep.connect().await?;
    let cm_path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    conn.expect(
        Method::POST,
        &cm_path,
        Some(config_map("warm-up")),
        StatusCode::CREATED,
    )
    .await?;
    for _ in 0..watchers {
        tokio::time::timeout(Duration::from_secs(60), warm_rx.recv())
            .await
            .context("watchers did not start")?
            .context("a watcher failed before the warm-up")?;
    }

    for (i, at) in sent.iter().enumerate() {
        let body = config_map(&format!("w-{i}"));
        at.set(Instant::now()).unwrap();
        conn.expect(Method::POST, &cm_path, Some(body), StatusCode::CREATED)
            .await?;
        tokio::time::sleep(gap).await;
    }
    let mut samples = Samples::default();
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok(samples)
}
