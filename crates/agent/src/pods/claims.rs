//! A pod's PersistentVolumeClaims on this node: each claim's bound volume
//! found and linked into the pod's directory before its containers start.
//!
//! Until every claim is bound the pod waits in ContainerCreating, with a
//! FailedMount event saying which claim it waits for, as the kubelet's
//! volume manager holds a pod whose volumes cannot be mounted yet.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;
use tugboat_events::Type;

use super::Node;
use super::volumes::PodDir;

/// Where a pod's claims stand.
#[derive(Default)]
pub enum Claims {
    #[default]
    Unresolved,
    /// Not all bound yet, and why (reported once per reason).
    Waiting(String),
    Linked,
}

impl Claims {
    /// Links every claim of `pod` to its volume's directory; true once all
    /// are. A bound claim's volume never changes, so this is done once.
    pub async fn mount(&mut self, node: &Node, pod: &Pod, pod_dir: &PodDir) -> bool {
        if matches!(self, Claims::Linked) {
            return true;
        }
        let outcome = match resolve(node, pod).await {
            Ok(paths) => paths.iter().try_for_each(|(volume, path)| {
                pod_dir
                    .link_claim(volume, path)
                    .map_err(|e| format!("linking volume {volume:?} to {}: {e}", path.display()))
            }),
            Err(why) => Err(why),
        };
        match outcome {
            Ok(()) => {
                *self = Claims::Linked;
                true
            }
            Err(why) => {
                if !matches!(self, Claims::Waiting(before) if *before == why) {
                    let volumes = claim_volumes(pod).map(|(v, _)| v).collect::<Vec<_>>();
                    node.events
                        .record(
                            pod,
                            Type::Warning,
                            "FailedMount",
                            format!(
                                "Unable to attach or mount volumes: unmounted volumes=[{}]: {why}",
                                volumes.join(" ")
                            ),
                        )
                        .await;
                    *self = Claims::Waiting(why);
                }
                false
            }
        }
    }
}

/// The pod's claim volumes: (volume name, claim name).
fn claim_volumes(pod: &Pod) -> impl Iterator<Item = (&str, &str)> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            let claim = v.persistent_volume_claim.as_ref()?;
            Some((v.name.as_str(), claim.claim_name.as_str()))
        })
}

/// Each claim volume's directory on this node, or why one is not there yet.
async fn resolve(node: &Node, pod: &Pod) -> Result<Vec<(String, PathBuf)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(node.client.clone(), namespace);
    let volumes: Api<PersistentVolume> = Api::all(node.client.clone());
    let mut paths = Vec::new();
    for (volume, claim_name) in claim_volumes(pod) {
        let claim = claims
            .get_opt(claim_name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("persistentvolumeclaim {claim_name:?} not found"))?;
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let volume_name = claim
            .spec
            .and_then(|s| s.volume_name)
            .filter(|n| bound && !n.is_empty())
            .ok_or_else(|| {
                format!("error processing PVC {namespace}/{claim_name}: PVC is not bound")
            })?;
        let pv = volumes.get(&volume_name).await.map_err(|e| e.to_string())?;
        let spec = pv.spec.unwrap_or_default();
        let path = if let Some(host) = spec.host_path {
            let path = PathBuf::from(host.path);
            // A provisioned volume's directory is made on first use, open
            // to every user as local-path makes it.
            if host.type_.as_deref() == Some("DirectoryOrCreate") && !path.exists() {
                use std::os::unix::fs::PermissionsExt;
                std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                    .map_err(|e| e.to_string())?;
            }
            path
        } else if let Some(local) = spec.local {
            PathBuf::from(local.path)
        } else {
            return Err(format!(
                "volume {volume_name:?}: only hostPath and local PersistentVolumes are supported by this node"
            ));
        };
        if !path.is_dir() {
            return Err(format!(
                "volume {volume_name:?}: {} is not a directory",
                path.display()
            ));
        }
        paths.push((volume.to_owned(), path));
    }
    Ok(paths)
}
