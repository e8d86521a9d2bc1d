//! Local-path volumes on this node: the directory they live under, which
//! the Node publishes for the provisioner, and their removal when a volume
//! reclaimed with `Delete` goes (a `Retain` volume deleted by hand leaves
//! its data).
//!
//! The provisioner (in the controllers) makes each volume a `hostPath`
//! directory under [`dir`] with a finalizer; deleting the volume leaves it
//! until this node has removed the directory and lifted the finalizer, so
//! the data goes with the object and never before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// The Node annotation naming [`dir`], read by the provisioner.
pub const DIR_ANNOTATION: &str = "tugboat.io/local-path-dir";
/// Held by a provisioned volume until its directory is removed.
const FINALIZER: &str = "tugboat.io/local-path";

/// Where this node keeps local-path volumes.
pub fn dir(agent_dir: &Path) -> PathBuf {
    agent_dir.join("storage")
}

/// Removes the directories of deleted local-path volumes under `dir` and
/// lets the volumes go, until the agent stops.
pub async fn reclaim(client: Client, dir: PathBuf) {
    let volumes: Api<PersistentVolume> = Api::all(client);
    let mut events = watcher(volumes.clone(), watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let volume = match event {
            Ok(watcher::Event::Apply(v) | watcher::Event::InitApply(v)) => v,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("watching volumes: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if volume.metadata.deletion_timestamp.is_none()
            || !volume.finalizers().iter().any(|f| f == FINALIZER)
        {
            continue;
        }
        let Some(path) = volume
            .spec
            .as_ref()
            .and_then(|s| s.host_path.as_ref())
            .map(|h| PathBuf::from(&h.path))
            .filter(|p| p.parent() == Some(dir.as_path()))
        else {
            continue;
        };
        if let Err(e) = remove(&volumes, &volume, &path).await {
            tracing::warn!(
                volume = volume.name_any(),
                "removing a deleted volume's data: {e:#}"
            );
        }
    }
}

async fn remove(
    volumes: &Api<PersistentVolume>,
    volume: &PersistentVolume,
    path: &Path,
) -> anyhow::Result<()> {
    // A volume deleted by hand under Retain keeps its data, as local-path's
    // does: only the Delete reclaim policy removes it.
    let reclaim = volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref());
    if reclaim == Some("Delete") {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    let rest: Vec<&String> = volume
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    // The resourceVersion makes this a compare-and-swap: other finalizers
    // changed meanwhile are not lost.
    let patch = json!({"metadata": {
        "finalizers": rest,
        "resourceVersion": volume.metadata.resource_version,
    }});
    volumes
        .patch(
            &volume.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}
