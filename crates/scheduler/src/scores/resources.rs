//! Scores from requests against allocatable cpu and memory, counting
//! request-less containers as asking for a little:
//! - least allocated (NodeResourcesFit's default strategy): the more left
//!   free once the pod is there, the better;
//! - balanced allocation (NodeResourcesBalancedAllocation): cpu and memory
//!   used in like proportions, so neither runs out while the other idles.

use super::MAX_SCORE;
use crate::cache::NodeInfo;
use crate::pod::PodInfo;

/// cpu and memory as the node would have them requested with the pod,
/// beside what it can give.
fn with_pod(pod: &PodInfo, node: &NodeInfo) -> [(i64, i64); 2] {
    let (cpu, memory) = node.scoring_requested;
    [
        (cpu + pod.scoring_requests.0, node.allocatable.milli_cpu),
        (memory + pod.scoring_requests.1, node.allocatable.memory),
    ]
}

pub fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let resources = with_pod(pod, node);
    let free = |(requested, allocatable): (i64, i64)| {
        if allocatable <= 0 || requested > allocatable {
            0
        } else {
            (allocatable - requested) * MAX_SCORE / allocatable
        }
    };
    resources.into_iter().map(free).sum::<i64>() / resources.len() as i64
}

pub fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let fraction = |(requested, allocatable): (i64, i64)| {
        if allocatable <= 0 {
            1.0
        } else {
            (requested as f64 / allocatable as f64).min(1.0)
        }
    };
    let [cpu, memory] = with_pod(pod, node).map(fraction);
    let deviation = ((cpu - memory) / 2.0).abs();
    ((1.0 - deviation) * MAX_SCORE as f64) as i64
}
