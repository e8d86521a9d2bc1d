//! A whole node for the parts that send real traffic: the release `tug
//! server` with its agent, service proxy and ingress, the httpd test image
//! imported, and busybox httpd pods to answer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use serde_json::{from_value, json};

use crate::api::{TugServer, free_port};

/// A running node server; on drop it is stopped and what its pods left on
/// the host (containers, the service proxy's nftables table) is removed, as
/// `tug killall` does on a node: the containers outlive the server process.
pub struct Node {
    server: Option<TugServer>,
    tug: PathBuf,
    data: PathBuf,
    /// The built-in ingress's HTTP port.
    pub http_port: u16,
    pub client: kube::Client,
}

impl Node {
    /// Starts a node server in `data` with the httpd test image from
    /// `images` (made by `scripts/build-test-images`). The ingress and the
    /// cluster DNS take free ports, so nothing else on the host is in the
    /// way.
    pub async fn start(tug: &Path, data: &Path, images: &Path) -> anyhow::Result<Node> {
        let archive = images.join("httpd.oci.tar");
        anyhow::ensure!(
            archive.exists(),
            "{} not found: run scripts/build-test-images first, or pass --test-images",
            archive.display()
        );
        let http_port = free_port()?;
        let http = http_port.to_string();
        let https = free_port()?.to_string();
        let flags = [
            "--ingress-http-port",
            &http,
            "--ingress-https-port",
            &https,
            "--cluster-dns-port",
            "0",
        ];
        let (server, _) = TugServer::start(tug, data, free_port()?, &flags).await?;
        let client = crate::dns::client(data).await?;
        let node = Node {
            server: Some(server),
            tug: tug.to_owned(),
            data: data.to_owned(),
            http_port,
            client,
        };
        node.import(&archive)?;
        Ok(node)
    }

    fn import(&self, archive: &Path) -> anyhow::Result<()> {
        let out = Command::new(&self.tug)
            .args(["images", "import", "--root"])
            .arg(self.data.join("agent/images"))
            .arg(archive)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "tug images import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = Command::new(&self.tug)
            .args(["killall", "--agent-dir"])
            .arg(self.data.join("agent"))
            .output();
    }
}

pub async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
    Ok(())
}

/// Runs a busybox httpd pod named `name` with `labels`, answering "hello"
/// on port 8080, and returns its address once it runs.
pub async fn httpd_pod(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    labels: serde_json::Value,
) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.create(
        &PostParams::default(),
        &from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{
                "name": "httpd",
                "image": "tugboat.test/httpd:latest",
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", "mkdir -p /www; echo hello > /www/index.html; exec httpd -f -p 8080 -h /www"],
            }]},
        }))?,
    )
    .await?;
    wait(&format!("pod {name} to run"), || async {
        let status = pods.get(name).await.ok()?.status?;
        (status.phase.as_deref() == Some("Running")).then_some(status.pod_ip?)
    })
    .await
}

/// Polls `check` until it gives a value, for at most a minute.
pub async fn wait<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
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

pub fn which(program: &str, install: &str) -> anyhow::Result<()> {
    Command::new(program)
        .arg("--version")
        .output()
        .map(drop)
        .with_context(|| format!("{program} not found: {install}"))
}
