//! Image locality (ImageLocality): a node that already holds the pod's
//! images starts it sooner. Each image counts by its size, scaled by the
//! share of nodes holding it (so an image everywhere does not pull every
//! pod to one node), between a floor of 23 MB and a ceiling of 1000 MB per
//! container.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Node;

use super::MAX_SCORE;
use crate::cache::{Cache, NodeInfo};
use crate::pod::PodInfo;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The pod's images (one per container, by the name a short one implies)
/// and how many nodes hold each, and how many nodes there are.
pub struct ImageSpread {
    images: Vec<Image>,
    nodes: i64,
}

struct Image {
    normalized: String,
    holders: i64,
}

impl ImageSpread {
    pub fn count(pod: &PodInfo, cache: &Cache) -> ImageSpread {
        let images = images(pod)
            .map(|name| {
                let normalized = normalize(name);
                Image {
                    holders: cache.image_holders(&normalized),
                    normalized,
                }
            })
            .collect();
        ImageSpread {
            images,
            nodes: cache.node_count(),
        }
    }

    pub fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        if self.nodes == 0 {
            return 0;
        }
        let sum: i64 = self
            .images
            .iter()
            .filter_map(|image| {
                let size = node.images.get(&image.normalized)?;
                Some((*size as f64 * image.holders as f64 / self.nodes as f64) as i64)
            })
            .sum();
        let containers = pod.spec().containers.len().max(1) as i64;
        let max = MAX_CONTAINER_THRESHOLD * containers;
        let sum = sum.clamp(MIN_THRESHOLD, max);
        MAX_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

/// The sizes of the images a node lists, by each of their names with the
/// registry and tag a short name implies (`busybox` is
/// `docker.io/library/busybox:latest`); the first image listed under a
/// name is the one that counts.
pub fn node_images(node: &Node) -> HashMap<String, i64> {
    let mut sizes = HashMap::new();
    let listed = node.status.as_ref().and_then(|s| s.images.as_ref());
    for image in listed.into_iter().flatten() {
        for name in image.names.iter().flatten() {
            sizes
                .entry(normalize(name))
                .or_insert(image.size_bytes.unwrap_or(0));
        }
    }
    sizes
}

fn images(pod: &PodInfo) -> impl Iterator<Item = &str> {
    let spec = pod.spec();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.image.as_deref())
}

fn normalize(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tagged = if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    };
    let first = tagged.split('/').next().unwrap_or_default();
    let has_registry = tagged.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_registry, tagged.contains('/')) {
        (true, _) => tagged,
        (false, true) => format!("docker.io/{tagged}"),
        (false, false) => format!("docker.io/library/{tagged}"),
    }
}
