//! Evicting a pod whose disk emptyDir outgrew its `sizeLimit`: the local
//! storage check of the kubelet's eviction manager, made by each pod's
//! worker for its own pod.
//!
//! Usage is what `du` counts (allocated blocks), measured by walking the
//! volume; the walk stops as soon as the limit is passed, and a pod whose
//! walk takes long is measured less often, so a big tree costs its own pod
//! time and never delays another pod's check.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tugboat_api::quantity;

use super::volumes::PodDir;
use crate::rfc3339;

/// The pod status reason and event reason of an eviction.
pub const REASON: &str = "Evicted";
/// How often a pod's emptyDirs are measured at most.
const EVERY: Duration = Duration::from_secs(3);
/// A walk may take at most this share of the time between two walks.
const WALK_SHARE: u32 = 20;

/// When a pod's emptyDirs are measured next.
pub struct Schedule {
    next: Instant,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            next: Instant::now(),
        }
    }
}

impl Schedule {
    pub fn due(&self) -> bool {
        Instant::now() >= self.next
    }

    /// Sets the next measure after one that took `took`.
    pub fn measured(&mut self, took: Duration) {
        self.next = Instant::now() + EVERY.max(took * WALK_SHARE);
    }
}

/// Why the pod must be evicted: its first disk emptyDir using more than its
/// `sizeLimit`, in the kubelet's words. Blocking: walks the volumes.
pub fn over_limit(pod: &Pod, dir: &PodDir) -> Option<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find_map(|volume| {
            let empty = volume.empty_dir.as_ref()?;
            if empty.medium.as_deref() == Some("Memory") {
                // A tmpfs of that size: it cannot grow past its limit.
                return None;
            }
            let limit = empty.size_limit.as_ref()?;
            let bytes = u64::try_from(quantity::value(&limit.0)?).ok()?;
            uses_more_than(&dir.empty_dir(&volume.name), bytes).then(|| {
                format!(
                    "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                    volume.name, limit.0
                )
            })
        })
}

/// Whether the files under `root` (on its file system) take more than
/// `limit` bytes of disk, hard links counted once; stops once they do.
fn uses_more_than(root: &Path, limit: u64) -> bool {
    let Ok(top) = root.symlink_metadata() else {
        return false;
    };
    let mut used = 0u64;
    let mut linked = HashSet::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.dev() != top.dev() || meta.nlink() > 1 && !linked.insert(meta.ino()) {
                continue;
            }
            used += meta.blocks() * 512;
            if used > limit {
                return true;
            }
            if meta.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    false
}

/// The message of an eviction the pod's status already shows (made before
/// the agent restarted).
pub fn earlier(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    (status.phase.as_deref() == Some("Failed") && status.reason.as_deref() == Some(REASON))
        .then(|| status.message.clone().unwrap_or_default())
}

/// Makes `status` that of an evicted pod: Failed, with the reason and
/// message, and the DisruptionTarget condition the kubelet adds.
pub fn mark(status: &mut Value, message: &str, now: Timestamp) {
    status["phase"] = "Failed".into();
    status["reason"] = REASON.into();
    status["message"] = message.into();
    if let Some(conditions) = status["conditions"].as_array_mut() {
        conditions.push(json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "TerminationByKubelet",
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": rfc3339(now),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_with_limit(limit: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u"},
            "spec": {
                "containers": [],
                "volumes": [{"name": "data", "emptyDir": {"sizeLimit": limit}}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn an_empty_dir_over_its_limit_is_reported_in_the_kubelets_words() {
        let root = tempfile::tempdir().unwrap();
        let dir = PodDir::new(root.path(), "u");
        let data = dir.empty_dir("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/big"), vec![1u8; 3 << 20]).unwrap();
        assert_eq!(
            over_limit(&pod_with_limit("1Mi"), &dir).as_deref(),
            Some("Usage of EmptyDir volume \"data\" exceeds the limit \"1Mi\". ")
        );
        assert_eq!(over_limit(&pod_with_limit("10Mi"), &dir), None);
    }
}
