//! Image locality (ImageLocality): a node that already holds the pod's
//! images starts it sooner. Each image counts by its size, scaled by the
//! share of nodes holding it (so an image everywhere does not pull every
//! pod to one node), between a floor of 23 MB and a ceiling of 1000 MB per
//! container.

use std::collections::HashMap;

use super::MAX_SCORE;
use crate::cache::{Cache, NodeInfo};
use crate::pod::PodInfo;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// How many nodes hold each of the pod's images, and how many nodes there are.
pub struct ImageSpread {
    holders: HashMap<String, i64>,
    nodes: i64,
}

impl ImageSpread {
    pub fn count(pod: &PodInfo, cache: &Cache) -> ImageSpread {
        let mut holders: HashMap<String, i64> = images(pod).map(|i| (i.to_owned(), 0)).collect();
        let mut nodes = 0;
        for node in cache.nodes() {
            nodes += 1;
            for (image, count) in holders.iter_mut() {
                if size_on(node, image).is_some() {
                    *count += 1;
                }
            }
        }
        ImageSpread { holders, nodes }
    }

    pub fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        if self.nodes == 0 {
            return 0;
        }
        let sum: i64 = images(pod)
            .filter_map(|image| {
                let size = size_on(node, image)?;
                let holders = self.holders.get(image).copied().unwrap_or(0);
                Some((size as f64 * holders as f64 / self.nodes as f64) as i64)
            })
            .sum();
        let containers = pod.spec().containers.len().max(1) as i64;
        let max = MAX_CONTAINER_THRESHOLD * containers;
        let sum = sum.clamp(MIN_THRESHOLD, max);
        MAX_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

fn images(pod: &PodInfo) -> impl Iterator<Item = &str> {
    let spec = pod.spec();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.image.as_deref())
}

/// The image's size if the node lists it under its name, or under the name
/// with the registry and tag a short name implies (`busybox` is
/// `docker.io/library/busybox:latest`).
fn size_on(node: &NodeInfo, image: &str) -> Option<i64> {
    let normalized = normalize(image);
    node.object()
        .status
        .as_ref()?
        .images
        .as_ref()?
        .iter()
        .find(|i| {
            i.names
                .iter()
                .flatten()
                .any(|n| n == image || normalize(n) == normalized)
        })
        .map(|i| i.size_bytes.unwrap_or(0))
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
