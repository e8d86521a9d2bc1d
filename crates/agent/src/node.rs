//! The Node object: registered at start, its status kept current.
//!
//! The status carries the node's images (`status.images`), which the
//! scheduler's image locality score reads.
//!
//! Both writes are server-side applies by the field manager `tug-agent`, so
//! the agent owns exactly the fields it sets and others (kubectl label,
//! cordon, the node controller's taints) keep theirs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tugboat_images::ImageStore;

use crate::machine::{self, Available, Capacity};
use crate::thresholds::EvictionThresholds;
use crate::{Config, rfc3339, storage};

const FIELD_MANAGER: &str = "tug-agent";

/// The agent's answer to `containerRuntimeVersion` and `kubeletVersion`.
const RUNTIME_VERSION: &str = concat!("tugboat://", env!("CARGO_PKG_VERSION"));
const KUBELET_VERSION: &str = concat!("v1.33.0-tug.", env!("CARGO_PKG_VERSION"));

/// How many images the status lists, the largest first, and how many names
/// each: the kubelet's `nodeStatusMaxImages` and
/// `maxNamesPerImageInNodeStatus`.
const MAX_IMAGES: usize = 50;
const MAX_NAMES_PER_IMAGE: usize = 5;

/// Kubernetes posts an unchanged status every few minutes so that
/// `lastHeartbeatTime` tells a reader the agent still looks.
const UNCHANGED_STATUS_EVERY: Duration = Duration::from_secs(60);

pub struct NodeReporter {
    nodes: Api<Node>,
    config: Config,
    images: ImageStore,
    /// The last status posted and when, to post only changes and heartbeats.
    last: Option<(Observed, Instant)>,
    /// When each condition last changed: type -> (status, since).
    transitions: BTreeMap<&'static str, (bool, Timestamp)>,
}

/// What the status reports of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observed {
    health: NodeHealth,
    capacity: Capacity,
    /// `status.images`, as the API takes them.
    images: Vec<Value>,
}

/// The conditions as booleans: true means trouble.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeHealth {
    memory_pressure: bool,
    disk_pressure: bool,
    pid_pressure: bool,
}

impl NodeReporter {
    pub fn new(client: Client, config: Config, images: ImageStore) -> NodeReporter {
        NodeReporter {
            nodes: Api::all(client),
            config,
            images,
            last: None,
            transitions: BTreeMap::new(),
        }
    }

    /// Creates the Node (or takes over the existing one of that name), posts
    /// its first status, and returns its uid for the lease's owner reference.
    pub async fn register(&mut self) -> anyhow::Result<String> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let node = self
            .nodes
            .patch(
                &self.config.node_name,
                &params,
                &Patch::Apply(self.registration()),
            )
            .await?;
        self.report_status().await?;
        Ok(node.metadata.uid.unwrap_or_default())
    }

    /// Posts the status if the machine's health, capacity or images
    /// changed, or if the last post is a minute old.
    pub async fn report_status(&mut self) -> anyhow::Result<()> {
        let observed = Observed {
            capacity: machine::capacity(&self.config.data_dir)?,
            health: NodeHealth::of(
                &machine::available(&self.config.data_dir)?,
                &self.config.eviction_hard,
            ),
            images: node_images(self.images.list()?),
        };
        if let Some((last, at)) = &self.last
            && *last == observed
            && at.elapsed() < UNCHANGED_STATUS_EVERY
        {
            return Ok(());
        }
        let status = self.status(&observed, Timestamp::now());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.nodes
            .patch_status(&self.config.node_name, &params, &Patch::Apply(status))
            .await?;
        self.last = Some((observed, Instant::now()));
        Ok(())
    }

    fn registration(&self) -> Value {
        let info = machine::system_info();
        let mut labels = BTreeMap::from([
            (
                "kubernetes.io/hostname".to_owned(),
                self.config.node_name.clone(),
            ),
            ("kubernetes.io/os".to_owned(), "linux".to_owned()),
            ("kubernetes.io/arch".to_owned(), info.architecture.clone()),
            ("beta.kubernetes.io/os".to_owned(), "linux".to_owned()),
            ("beta.kubernetes.io/arch".to_owned(), info.architecture),
        ]);
        labels.extend(self.config.labels.clone());
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.config.node_name,
                "labels": labels,
                // Where local-path volumes of this node live, for the
                // provisioner that names their directories.
                "annotations": {
                    storage::DIR_ANNOTATION: storage::dir(&self.config.data_dir),
                },
            },
            "spec": {
                "podCIDR": self.config.pod_cidr.to_string(),
                "podCIDRs": [self.config.pod_cidr.to_string()],
            },
        })
    }

    fn status(&mut self, observed: &Observed, now: Timestamp) -> Value {
        let (capacity, health) = (&observed.capacity, &observed.health);
        let info = machine::system_info();
        // The kubelet keeps the hard eviction thresholds of memory and disk
        // from pods: a node filled to its allocatable is not yet pressed.
        let thresholds = &self.config.eviction_hard;
        let allocatable_memory = capacity.memory_bytes
            - EvictionThresholds::reserved(thresholds.memory_available, capacity.memory_bytes);
        let allocatable_storage = capacity.ephemeral_storage_bytes
            - EvictionThresholds::reserved(
                thresholds.nodefs_available,
                capacity.ephemeral_storage_bytes,
            );
        let conditions = vec![
            self.condition(
                "MemoryPressure",
                health.memory_pressure,
                (
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available",
                ),
                (
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                now,
            ),
            self.condition(
                "DiskPressure",
                health.disk_pressure,
                ("KubeletHasDiskPressure", "kubelet has disk pressure"),
                ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                now,
            ),
            self.condition(
                "PIDPressure",
                health.pid_pressure,
                (
                    "KubeletHasInsufficientPID",
                    "kubelet has insufficient PID available",
                ),
                (
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                now,
            ),
            // Ready is the one condition where true is good news.
            self.condition(
                "Ready",
                true,
                ("KubeletReady", "kubelet is posting ready status"),
                ("KubeletNotReady", "kubelet is not ready"),
                now,
            ),
        ];
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.config.node_name},
            "status": {
                "capacity": {
                    "cpu": capacity.cpus.to_string(),
                    "memory": format!("{}Ki", capacity.memory_bytes / 1024),
                    "ephemeral-storage": format!("{}Ki", capacity.ephemeral_storage_bytes / 1024),
                    "pods": self.config.max_pods.to_string(),
                },
                "allocatable": {
                    "cpu": capacity.cpus.to_string(),
                    "memory": format!("{}Ki", allocatable_memory / 1024),
                    "ephemeral-storage": allocatable_storage.to_string(),
                    "pods": self.config.max_pods.to_string(),
                },
                "conditions": conditions,
                "images": observed.images,
                "addresses": [
                    {"type": "InternalIP", "address": machine::internal_ip().to_string()},
                    {"type": "Hostname", "address": self.config.node_name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.config.kubelet_port}},
                "nodeInfo": {
                    "machineID": info.machine_id,
                    "systemUUID": info.machine_id,
                    "bootID": info.boot_id,
                    "kernelVersion": info.kernel_version,
                    "osImage": info.os_image,
                    "containerRuntimeVersion": RUNTIME_VERSION,
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": info.architecture,
                },
            },
        })
    }

    /// One condition; `when_true` and `when_false` are its (reason, message)
    /// for each status. The transition time moves only when the status does.
    fn condition(
        &mut self,
        kind: &'static str,
        status: bool,
        when_true: (&str, &str),
        when_false: (&str, &str),
        now: Timestamp,
    ) -> Value {
        let since = match self.transitions.get(kind) {
            Some((last, since)) if *last == status => *since,
            _ => {
                self.transitions.insert(kind, (status, now));
                now
            }
        };
        let (reason, message) = if status { when_true } else { when_false };
        json!({
            "type": kind,
            "status": if status { "True" } else { "False" },
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": rfc3339(now),
            "lastTransitionTime": rfc3339(since),
        })
    }
}

/// `status.images` as the kubelet reports them: the largest images first,
/// each by its repo digests then its tags; images with no name are left out,
/// as nothing could ask for them.
fn node_images(mut images: Vec<tugboat_images::Image>) -> Vec<Value> {
    images.sort_by_key(|image| std::cmp::Reverse(image.size()));
    images
        .iter()
        .filter_map(|image| {
            let names: Vec<&String> = image
                .repo_digests
                .iter()
                .chain(&image.repo_tags)
                .take(MAX_NAMES_PER_IMAGE)
                .collect();
            (!names.is_empty()).then(|| json!({"names": names, "sizeBytes": image.size()}))
        })
        .take(MAX_IMAGES)
        .collect()
}

impl NodeHealth {
    fn of(available: &Available, thresholds: &EvictionThresholds) -> NodeHealth {
        let met = EvictionThresholds::met;
        NodeHealth {
            memory_pressure: met(
                thresholds.memory_available,
                available.memory_bytes,
                available.memory_total_bytes,
            ),
            disk_pressure: met(
                thresholds.nodefs_available,
                available.disk_bytes,
                available.disk_total_bytes,
            ),
            pid_pressure: met(
                thresholds.pid_available,
                available.pid_max.saturating_sub(available.pids),
                available.pid_max,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available(memory: u64, disk: u64, pids: u64) -> Available {
        Available {
            memory_bytes: memory,
            memory_total_bytes: 1 << 30,
            disk_bytes: disk,
            disk_total_bytes: 1000,
            pids,
            pid_max: 1000,
        }
    }

    #[test]
    fn pressure_starts_at_the_kubelets_eviction_thresholds() {
        let defaults = EvictionThresholds::default();
        let healthy = NodeHealth::of(&available(200 << 20, 500, 100), &defaults);
        assert!(!healthy.memory_pressure && !healthy.disk_pressure && !healthy.pid_pressure);
        let edge = NodeHealth::of(&available(100 << 20, 100, 900), &defaults);
        assert!(!edge.memory_pressure && !edge.disk_pressure && !edge.pid_pressure);
        let starved = NodeHealth::of(&available(50 << 20, 99, 901), &defaults);
        assert!(starved.memory_pressure && starved.disk_pressure && starved.pid_pressure);
    }

    #[test]
    fn pressure_follows_the_thresholds_given() {
        // 5 % of the disk free: pressed at the default 10 %, not at 1 %.
        let crowded = available(50 << 20, 50, 901);
        assert!(NodeHealth::of(&crowded, &EvictionThresholds::default()).disk_pressure);
        let low: EvictionThresholds = "nodefs.available<1%".parse().unwrap();
        let health = NodeHealth::of(&crowded, &low);
        // The signals left out have no threshold, as with the kubelet.
        assert!(!health.memory_pressure && !health.disk_pressure && !health.pid_pressure);
        let amounts: EvictionThresholds =
            "memory.available<1Gi,nodefs.available<51,pid.available<50"
                .parse()
                .unwrap();
        let health = NodeHealth::of(&available(1 << 29, 50, 951), &amounts);
        assert!(health.memory_pressure && health.disk_pressure && health.pid_pressure);
        let health = NodeHealth::of(&available(1 << 30, 51, 950), &amounts);
        assert!(!health.memory_pressure && !health.disk_pressure && !health.pid_pressure);
    }
}
