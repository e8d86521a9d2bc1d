//! The pods bound to this node: one worker each, fed by a watch.
//!
//! - `worker`: one pod's loop from sandbox to deletion.
//! - `spec`: a container's runtime spec from the pod and the image.
//! - `volumes`: the pod's directory, volumes and mounts.
//! - `dns`: the pod's resolv.conf (by `dnsPolicy`) and its `/etc/hosts` line.
//! - `claims`: the PersistentVolumeClaims a pod mounts, once bound.
//! - `eviction`: evicting a pod whose disk emptyDir outgrew its sizeLimit.
//! - `tokens`: the service account tokens projected volumes carry.
//! - `status`: the pod's status as the kubelet reports it.
//!
//! The watch lists pods with `spec.nodeName` = this node. Every version of a
//! pod goes to its worker (started on first sight); a deleted pod's worker is
//! told it is gone. Once the first list is in, whatever the runtime has for
//! pods that no longer exist is removed: what a crashed agent left behind.
//! Workers of pods that still exist adopt their running containers.

mod claims;
mod dns;
mod eviction;
mod probes;
mod spec;
mod status;
mod tokens;
mod volumes;
mod worker;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tugboat_images::ImageStore;
use tugboat_net::{Cni, CniConfig, IpNet, PodNetwork};
use tugboat_runtime::Runtime;

use tugboat_events::Recorder;

pub use dns::ClusterDns;

/// What every pod worker of this node shares.
pub struct Node {
    pub client: Client,
    pub name: String,
    pub host_ip: String,
    pub runtime: Runtime,
    pub images: ImageStore,
    /// Attaches pod sandboxes to the pod network.
    pub cni: Cni,
    /// `<agent>/pods/<uid>/`: each pod's volumes and generated files.
    pub pods_dir: PathBuf,
    /// `<agent>/logs/<namespace>_<name>_<uid>/<container>/<attempt>.log`.
    pub logs_dir: PathBuf,
    pub events: Recorder,
    pub insecure_registries: Vec<String>,
    /// The cluster DNS `ClusterFirst` pods resolve names with.
    pub dns: ClusterDns,
}

impl Node {
    /// Removes everything the node has of a pod: containers, sandbox,
    /// volumes and logs. Doing it twice does nothing.
    async fn forget_pod(self: &Arc<Self>, uid: &str) {
        let node = self.clone();
        let uid = uid.to_owned();
        let result = tokio::task::spawn_blocking(move || {
            forget_pod(
                &node.runtime,
                &node.cni,
                &node.pods_dir,
                &node.logs_dir,
                &uid,
            )
        })
        .await
        .expect("the cleanup task does not panic");
        if let Err(e) = result {
            tracing::warn!("removing a pod from the node: {e}");
        }
    }
}

/// Kills every container of the agent whose state is in `agent_dir` and
/// removes every pod's sandbox, volumes and logs: what `k3s-killall.sh` does,
/// for resetting a node. Returns how many pods were removed.
pub fn remove_all_pods(agent_dir: &Path) -> anyhow::Result<usize> {
    let agent_dir = &std::path::absolute(agent_dir)?;
    let runtime = Runtime::open(agent_dir.join("runtime"))?;
    let cni = Cni::new(cni_config(agent_dir, CniConfig::default().pod_cidr))?;
    let pods_dir = agent_dir.join("pods");
    let mut uids: HashSet<String> = runtime
        .list_containers()?
        .into_iter()
        .map(|c| c.pod_uid)
        .collect();
    for dir in [agent_dir.join("runtime/sandboxes"), pods_dir.clone()] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            uids.extend(
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok()),
            );
        }
    }
    // One pod that cannot be removed must not keep the others on the node.
    let mut failed = Vec::new();
    for uid in &uids {
        if let Err(e) = forget_pod(&runtime, &cni, &pods_dir, &agent_dir.join("logs"), uid) {
            failed.push(format!("pod {uid}: {e:#}"));
        }
    }
    if failed.is_empty() {
        Ok(uids.len())
    } else {
        anyhow::bail!("could not remove every pod:\n{}", failed.join("\n"))
    }
}

fn forget_pod(
    runtime: &Runtime,
    cni: &Cni,
    pods_dir: &Path,
    logs_dir: &Path,
    uid: &str,
) -> anyhow::Result<()> {
    // Detached before the namespace goes: the bridge plugin needs it to
    // find the pod's masquerade rule.
    let netns = runtime
        .sandbox(uid)
        .ok()
        .and_then(|s| s.netns_path)
        .unwrap_or_default();
    cni.del(&PodNetwork {
        netns,
        container_id: uid.to_owned(),
        namespace: String::new(),
        name: String::new(),
        uid: uid.to_owned(),
        port_mappings: Vec::new(),
    })?;
    runtime.remove_sandbox(uid)?;
    volumes::PodDir::new(pods_dir, uid).remove()?;
    remove_logs(logs_dir, uid)?;
    Ok(())
}

/// The node's CNI setup: its own config dir under the agent's (where the
/// default network is written), the plugins Debian and the CNI project
/// install, and the machine-wide lease store, shared by every agent on it.
pub fn cni_config(agent_dir: &Path, pod_cidr: IpNet) -> CniConfig {
    CniConfig {
        conf_dir: agent_dir.join("cni/net.d"),
        pod_cidr,
        ..CniConfig::default()
    }
}

struct WorkerHandle {
    updates: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

/// Runs the workers of this node's pods until the watch ends.
pub async fn run(node: Arc<Node>) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::all(node.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", node.name));
    let mut events = watcher::watcher(pods, config).default_backoff().boxed();
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    while let Some(event) = events.try_next().await? {
        workers.retain(|_, w| !w.task.is_finished());
        match event {
            Event::Init => listed = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let (Some(seen), Some(uid)) = (&mut listed, &pod.metadata.uid) {
                    seen.insert(uid.clone());
                }
                dispatch(&node, &mut workers, pod);
            }
            Event::InitDone => {
                let seen = listed.take().unwrap_or_default();
                for (uid, worker) in &workers {
                    if !seen.contains(uid) {
                        worker.updates.send_replace(None);
                    }
                }
                remove_orphans(&node, &seen).await;
            }
            Event::Apply(pod) => dispatch(&node, &mut workers, pod),
            Event::Delete(pod) => {
                if let Some(worker) = pod.metadata.uid.as_ref().and_then(|u| workers.get(u)) {
                    worker.updates.send_replace(None);
                }
            }
        }
    }
    Ok(())
}

fn dispatch(node: &Arc<Node>, workers: &mut HashMap<String, WorkerHandle>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    match workers.get(&uid) {
        Some(worker) => {
            worker.updates.send_replace(Some(pod));
        }
        None => {
            let (updates, receiver) = watch::channel(Some(pod));
            let task = tokio::spawn(worker::run(node.clone(), uid.clone(), receiver));
            workers.insert(uid, WorkerHandle { updates, task });
        }
    }
}

/// Removes what the runtime and the pods directory hold for pods the API no
/// longer has.
async fn remove_orphans(node: &Arc<Node>, live: &HashSet<String>) {
    let listing = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || node.runtime.list_containers())
            .await
            .expect("the runtime task does not panic")
    };
    let mut orphans: HashSet<String> = match listing {
        Ok(containers) => containers.into_iter().map(|c| c.pod_uid).collect(),
        Err(e) => {
            tracing::warn!("listing containers: {e}");
            HashSet::new()
        }
    };
    if let Ok(entries) = std::fs::read_dir(&node.pods_dir) {
        orphans.extend(
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok()),
        );
    }
    for uid in orphans.difference(live) {
        tracing::info!(pod_uid = %uid, "removing what is left of a deleted pod");
        node.forget_pod(uid).await;
    }
}

fn remove_logs(logs_dir: &Path, uid: &str) -> std::io::Result<()> {
    let suffix = format!("_{uid}");
    let Ok(entries) = std::fs::read_dir(logs_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(&suffix) {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}
