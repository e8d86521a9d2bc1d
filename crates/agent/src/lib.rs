//! The node agent: Tugboat's kubelet.
//!
//! A map of this crate:
//! - [`machine`]: what the machine has (CPUs, memory, disk, addresses, kernel),
//!   read from `/proc` and the kernel.
//! - `node`: the Node object built from those facts, registered at start and
//!   its status (capacity, conditions, node info) kept current.
//! - `lease`: the node's Lease in `kube-node-lease`, renewed every 10 s; the
//!   control plane judges the node alive by it.
//! - `pods`: one worker per pod bound to this node, running it with the
//!   container runtime (`tugboat-runtime`) from images in the node's image
//!   store (`tugboat-images`).
//! - `kubelet`: the kubelet API the API server reaches the node through
//!   (logs, exec, attach, stats), over HTTPS for cluster clients only.
//! - `storage`: the node's local-path volumes, removed when reclaimed.
//! - `image_gc`: removes unused images when the image disk fills up.
//! - [`thresholds`]: the hard eviction thresholds (`--eviction-hard`) the
//!   node's pressure conditions and allocatable amounts follow.
//!
//! The agent meets the rest of the cluster only through the Kubernetes API,
//! with the `kube` client, as a kubelet does.

mod image_gc;
mod kubelet;
mod lease;
pub mod machine;
mod node;
mod pods;
mod storage;
pub mod thresholds;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kube::Client;

pub use pods::remove_all_pods;

/// How often the lease is renewed and the node's health looked at; as the
/// kubelet's `nodeLeaseRenewInterval` (a quarter of the 40 s lease).
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Everything the agent needs to know about the node it runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Node's name (usually the host name).
    pub node_name: String,
    /// Where the agent keeps its state; its file system is the node's
    /// ephemeral storage.
    pub data_dir: PathBuf,
    /// Labels set on the Node besides the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// The most pods this node runs (the kubelet's `--max-pods`).
    pub max_pods: u32,
    /// Registries pulled from over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// The addresses this node gives its pods (the Node's `spec.podCIDR`).
    pub pod_cidr: tugboat_net::IpNet,
    /// The kubelet API's port (the kubelet's 10250); 0, or a port already
    /// taken, picks a free one, which the Node publishes.
    pub kubelet_port: u16,
    /// The cluster CA's certificates (DER), as the kubeconfig holds them:
    /// the kubelet API serves only clients whose certificate they signed.
    pub cluster_ca: Vec<Vec<u8>>,
    /// The cluster DNS server(s) `ClusterFirst` pods get in their
    /// resolv.conf (the kubelet's `--cluster-dns`); none: the host's.
    pub cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster domain pods search under (`--cluster-domain`).
    pub cluster_domain: String,
    /// When unused images are removed (the kubelet's
    /// `imageGCHighThresholdPercent` and `imageGCLowThresholdPercent`).
    pub image_gc: tugboat_images::GcThresholds,
    /// Below these the node reports pressure (the kubelet's `--eviction-hard`).
    pub eviction_hard: thresholds::EvictionThresholds,
}

/// Registers the node and keeps it and its lease current until the future is
/// dropped. API errors are logged and retried at the next beat: the agent
/// outlives an API server restart.
pub async fn run(client: Client, mut config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "creating the agent's data dir {}",
            config.data_dir.display()
        )
    })?;
    let gc = config.image_gc;
    anyhow::ensure!(
        gc.low_percent < gc.high_percent && gc.high_percent <= 100,
        "the image GC low threshold ({}%) must be less than the high threshold ({}%), which is at most 100%",
        gc.low_percent,
        gc.high_percent
    );
    // Container roots, mounts and CNI paths must not depend on where the
    // shims and plugins happen to run: `--data-dir .tugboat` works too.
    config.data_dir = std::path::absolute(&config.data_dir)?;
    let pods = pods::Node {
        client: client.clone(),
        name: config.node_name.clone(),
        host_ip: machine::internal_ip().to_string(),
        runtime: tugboat_runtime::Runtime::open(config.data_dir.join("runtime"))?,
        images: tugboat_images::ImageStore::open(config.data_dir.join("images"))?,
        cni: tugboat_net::Cni::new(pods::cni_config(&config.data_dir, config.pod_cidr))?,
        pods_dir: config.data_dir.join("pods"),
        logs_dir: config.data_dir.join("logs"),
        events: tugboat_events::Recorder::new(client.clone(), "kubelet", Some(&config.node_name)),
        insecure_registries: config.insecure_registries.clone(),
        dns: pods::ClusterDns {
            servers: config.cluster_dns.clone(),
            domain: config.cluster_domain.clone(),
        },
    };
    let kubelet_api = kubelet::listen(
        kubelet::Kubelet {
            client: client.clone(),
            node_name: config.node_name.clone(),
            runtime: tugboat_runtime::Runtime::open(config.data_dir.join("runtime"))?,
        },
        config.kubelet_port,
        std::slice::from_ref(&pods.host_ip),
        &config.cluster_ca,
    )
    .await?;
    // The Node tells the API server where to reach the kubelet API.
    config.kubelet_port = kubelet_api.local_addr()?.port();
    tracing::info!(port = config.kubelet_port, "serving the kubelet API");
    let _kubelet_api = AbortOnDrop(tokio::spawn(kubelet_api.serve()));
    let mut node = node::NodeReporter::new(client.clone(), config.clone(), pods.images.clone());
    let uid = loop {
        match node.register().await {
            Ok(uid) => break uid,
            Err(e) => {
                tracing::warn!("registering the node: {e:#}; trying again in {HEARTBEAT:?}");
                tokio::time::sleep(HEARTBEAT).await;
            }
        }
    };
    tracing::info!(node = %config.node_name, "node registered");
    let _reclaimer = AbortOnDrop(tokio::spawn(storage::reclaim(
        client.clone(),
        storage::dir(&config.data_dir),
    )));
    let image_gc = image_gc::ImageGc {
        client: client.clone(),
        node_name: config.node_name.clone(),
        images: pods.images.clone(),
        thresholds: config.image_gc,
        events: tugboat_events::Recorder::new(client.clone(), "kubelet", Some(&config.node_name)),
    };
    let _image_gc = AbortOnDrop(tokio::spawn(image_gc.run()));
    let lease = lease::LeaseRenewer::new(client, &config.node_name, &uid);
    let mut pods = tokio::spawn(pods::run(Arc::new(pods)));
    let mut beat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = beat.tick() => {}
            ended = &mut pods => {
                return match ended {
                    Ok(result) => result,
                    Err(e) => Err(anyhow::anyhow!("the pod workers failed: {e}")),
                };
            }
        }
        if let Err(e) = lease.renew().await {
            tracing::warn!("renewing the node lease: {e}");
        }
        if let Err(e) = node.report_status().await {
            tracing::warn!("reporting node status: {e}");
        }
    }
}

/// Ends a background task when the agent's future is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Kubernetes' `metav1.Time`: RFC 3339 in UTC to the second.
fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
