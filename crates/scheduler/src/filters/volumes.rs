//! Volumes (VolumeBinding): a pod's claims must exist and not be going
//! away; a claim bound to a PersistentVolume with node affinity (a local
//! volume) takes the pod to the nodes that volume is on. An unbound claim
//! of a WaitForFirstConsumer class waits for the pod's node (its volume is
//! made there); an unbound claim of an Immediate class is waited for.

use std::sync::Arc;

use k8s_openapi::api::core::v1::PersistentVolume;

use super::Unfit;
use crate::cache::NodeInfo;
use crate::labels::node_selector_matches;
use crate::pod::PodInfo;
use crate::volumes::Volumes;

/// The volumes the pod's bound claims hold.
pub struct BoundVolumes(Vec<Arc<PersistentVolume>>);

impl BoundVolumes {
    /// The pod's bound volumes, or why no node can take the pod.
    pub fn find(pod: &PodInfo, volumes: &Volumes) -> Result<BoundVolumes, String> {
        let mut bound = Vec::new();
        let claims = pod
            .spec()
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref());
        for source in claims {
            let name = &source.claim_name;
            let claim = volumes
                .claim(pod.namespace(), name)
                .ok_or_else(|| format!("persistentvolumeclaim {name:?} not found"))?;
            if claim.metadata.deletion_timestamp.is_some() {
                return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
            }
            let spec = claim.spec.clone().unwrap_or_default();
            match spec.volume_name.as_deref().filter(|v| !v.is_empty()) {
                Some(volume) => bound.push(
                    volumes
                        .volume(volume)
                        .ok_or_else(|| format!("persistentvolume {volume:?} not found"))?,
                ),
                None => {
                    let waits = spec
                        .storage_class_name
                        .as_deref()
                        .and_then(|c| volumes.class(c))
                        .and_then(|c| c.volume_binding_mode.clone())
                        .is_some_and(|mode| mode == "WaitForFirstConsumer");
                    if !waits {
                        return Err("pod has unbound immediate PersistentVolumeClaims".to_owned());
                    }
                }
            }
        }
        Ok(BoundVolumes(bound))
    }

    pub fn check(&self, node: &NodeInfo) -> Result<(), Unfit> {
        let conflict = self.0.iter().any(|volume| {
            volume
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.as_ref())
                .is_some_and(|required| !node_selector_matches(required, node.object()))
        });
        if conflict {
            Err(Unfit::unresolvable(
                "node(s) had volume node affinity conflict",
            ))
        } else {
            Ok(())
        }
    }
}
