//! Image garbage collection, as the kubelet's image GC manager runs it:
//! when the file system of the node's image store is fuller than the high
//! threshold (`--image-gc-high-threshold`, 85 % by default), images no pod
//! of this node uses are removed, oldest first, until it is at or below the
//! low one (`--image-gc-low-threshold`, 80 %); `ImageStore::gc` does the
//! removing.
//!
//! An image is in use while a container of a pod bound to this node names
//! it (by reference, or by the image ID its status reports): containers
//! live no longer than their pod, and a pod whose container is not made
//! yet keeps the image it is about to run. The pods are listed only when a
//! collection is due, so a node below the threshold costs one `statvfs` a
//! period.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use tugboat_events::{Recorder, Type};
use tugboat_images::{GcThresholds, ImageId, ImageStore};

/// How often the disk is looked at.
const PERIOD: Duration = Duration::from_secs(10);
/// The least time between two FreeDiskSpaceFailed events: the kubelet's
/// GC period, at which it reports each failed collection.
const WARN_EVERY: Duration = Duration::from_secs(300);

pub struct ImageGc {
    pub client: Client,
    pub node_name: String,
    pub images: ImageStore,
    pub thresholds: GcThresholds,
    pub events: Recorder,
}

impl ImageGc {
    /// Collects every period until the future is dropped; failures are
    /// logged and tried again next period.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(PERIOD);
        let mut warned: Option<Instant> = None;
        loop {
            tick.tick().await;
            match self.collect().await {
                Ok(None) => {}
                Ok(Some(usage)) if usage > self.thresholds.high_percent => {
                    if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                        warned = Some(Instant::now());
                        self.warn(usage).await;
                    }
                }
                Ok(Some(_)) => warned = None,
                Err(e) => tracing::warn!("image garbage collection: {e:#}"),
            }
        }
    }

    /// One collection if the disk is past the high threshold; the disk's use
    /// after it (`None`: none was due).
    async fn collect(&self) -> anyhow::Result<Option<u8>> {
        let images = self.images.clone();
        let usage = tokio::task::spawn_blocking(move || images.disk_usage_percent()).await??;
        if usage < self.thresholds.high_percent {
            return Ok(None);
        }
        let pods: Api<Pod> = Api::all(self.client.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node_name));
        let pods = pods.list(&params).await?.items;
        let images = self.images.clone();
        let thresholds = self.thresholds;
        let (report, names) = tokio::task::spawn_blocking(move || {
            let names: HashMap<ImageId, Vec<String>> = images
                .list()?
                .into_iter()
                .map(|image| (image.id, image.repo_tags))
                .collect();
            let in_use = in_use(&images, &pods);
            images.gc(&in_use, thresholds).map(|report| (report, names))
        })
        .await??;
        if !report.removed.is_empty() {
            let removed: Vec<String> = report
                .removed
                .iter()
                .map(|id| match names.get(id).and_then(|tags| tags.first()) {
                    Some(tag) => format!("{tag} ({id})"),
                    None => id.to_string(),
                })
                .collect();
            tracing::info!(
                "image garbage collection: the image file system was {}% full (high threshold {}%): removed {}, freeing {} bytes",
                report.usage_percent,
                thresholds.high_percent,
                removed.join(", "),
                report.freed_bytes
            );
        }
        let images = self.images.clone();
        Ok(Some(
            tokio::task::spawn_blocking(move || images.disk_usage_percent()).await??,
        ))
    }

    /// The kubelet's event for a collection that left the disk too full.
    async fn warn(&self, usage: u8) {
        let node = ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Node".to_owned()),
            name: Some(self.node_name.clone()),
            uid: Some(self.node_name.clone()),
            ..ObjectReference::default()
        };
        let message = format!(
            "Failed to garbage collect required amount of images: the image file system is {usage}% full after removing every unused image, above the high threshold of {}%",
            self.thresholds.high_percent
        );
        self.events
            .record_about(node, Type::Warning, "FreeDiskSpaceFailed", message)
            .await;
    }
}

/// The images the pods' containers name, by reference or by image ID.
fn in_use(images: &ImageStore, pods: &[Pod]) -> HashSet<ImageId> {
    let mut names = Vec::new();
    for pod in pods {
        if let Some(spec) = &pod.spec {
            let containers = spec.containers.iter().map(|c| &c.image);
            let inits = spec.init_containers.iter().flatten().map(|c| &c.image);
            let ephemeral = spec.ephemeral_containers.iter().flatten().map(|c| &c.image);
            names.extend(containers.chain(inits).chain(ephemeral).flatten().cloned());
        }
        if let Some(status) = &pod.status {
            let statuses = [
                &status.container_statuses,
                &status.init_container_statuses,
                &status.ephemeral_container_statuses,
            ];
            for list in statuses.into_iter().flatten() {
                names.extend(list.iter().map(|s| s.image_id.clone()));
            }
        }
    }
    names
        .iter()
        .filter(|name| !name.is_empty())
        .filter_map(|name| images.resolve(name).ok().flatten())
        .map(|image| image.id)
        .collect()
}
