//! The pods bound to this node: one worker each, fed by a watch.
//!
//! - `worker`: one pod's loop from sandbox to deletion.
//! - `spec`: a container's runtime spec from the pod and the image.
//! - `volumes`: the pod's directory, volumes and mounts.
//! - `status`: the pod's status as the kubelet reports it.
//!
//! The watch lists pods with `spec.nodeName` = this node. Every version of a
//! pod goes to its worker (started on first sight); a deleted pod's worker is
//! told it is gone. Once the first list is in, whatever the runtime has for
//! pods that no longer exist is removed: what a crashed agent left behind.
//! Workers of pods that still exist adopt their running containers.

mod spec;
mod status;
mod volumes;
mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tugboat_images::ImageStore;
use tugboat_runtime::Runtime;

use crate::events::Recorder;

/// What every pod worker of this node shares.
pub struct Node {
    pub client: Client,
    pub name: String,
    pub host_ip: String,
    pub runtime: Runtime,
    pub images: ImageStore,
    /// `<agent>/pods/<uid>/`: each pod's volumes and generated files.
    pub pods_dir: PathBuf,
    /// `<agent>/logs/<namespace>_<name>_<uid>/<container>/<attempt>.log`.
    pub logs_dir: PathBuf,
    pub events: Recorder,
    pub insecure_registries: Vec<String>,
}

impl Node {
    /// Removes everything the node has of a pod: containers, sandbox,
    /// volumes and logs. Doing it twice does nothing.
    async fn forget_pod(self: &Arc<Self>, uid: &str) {
        let node = self.clone();
        let uid = uid.to_owned();
        let result = tokio::task::spawn_blocking(move || {
            node.runtime
                .remove_sandbox(&uid)
                .map_err(|e| e.to_string())?;
            volumes::PodDir::new(&node.pods_dir, &uid)
                .remove()
                .map_err(|e| e.to_string())?;
            remove_logs(&node.logs_dir, &uid).map_err(|e| e.to_string())
        })
        .await
        .expect("the cleanup task does not panic");
        if let Err(e) = result {
            tracing::warn!("removing a pod from the node: {e}");
        }
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

fn remove_logs(logs_dir: &std::path::Path, uid: &str) -> std::io::Result<()> {
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
