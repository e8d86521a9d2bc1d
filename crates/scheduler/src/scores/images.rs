//! Image locality (ImageLocality): a node that already holds the pod's
//! images starts it sooner. Each image counts by its size, scaled by the
//! share of nodes holding it (so an image everywhere does not pull every
//! pod to one node), between a floor of 23 MB and a ceiling of 1000 MB per
//! container.

use super::MAX_SCORE;
use crate::cache::{Cache, NodeInfo};
use crate::pod::PodInfo;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The pod's images (one per container, with the name a short one
/// implies) and how many nodes hold each, and how many nodes there are.
pub struct ImageSpread {
    images: Vec<Image>,
    nodes: i64,
}

struct Image {
    name: String,
    normalized: String,
    holders: i64,
}

impl ImageSpread {
    pub fn count(pod: &PodInfo, cache: &Cache) -> ImageSpread {
        let mut images: Vec<Image> = images(pod)
            .map(|name| Image {
                name: name.to_owned(),
                normalized: normalize(name),
                holders: 0,
            })
            .collect();
        let mut nodes = 0;
        for node in cache.nodes() {
            nodes += 1;
            for image in images.iter_mut() {
                if image.size_on(node).is_some() {
                    image.holders += 1;
                }
            }
        }
        ImageSpread { images, nodes }
    }

    pub fn score(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        if self.nodes == 0 {
            return 0;
        }
        let sum: i64 = self
            .images
            .iter()
            .filter_map(|image| {
                let size = image.size_on(node)?;
                Some((size as f64 * image.holders as f64 / self.nodes as f64) as i64)
            })
            .sum();
        let containers = pod.spec().containers.len().max(1) as i64;
        let max = MAX_CONTAINER_THRESHOLD * containers;
        let sum = sum.clamp(MIN_THRESHOLD, max);
        MAX_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

impl Image {
    /// The image's size if the node lists it under its name, or under the
    /// name with the registry and tag a short name implies (`busybox` is
    /// `docker.io/library/busybox:latest`).
    fn size_on(&self, node: &NodeInfo) -> Option<i64> {
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
                    .any(|n| *n == self.name || normalize(n) == self.normalized)
            })
            .map(|i| i.size_bytes.unwrap_or(0))
    }
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
