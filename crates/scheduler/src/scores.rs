//! Scores: among the nodes that can take the pod, which suits it best.
//! Each scorer gives 0 to 100 per node; the weighted sum decides, ties
//! broken at random so that equal nodes share the load.
//!
//! - least allocated (NodeResourcesFit): the most cpu and memory left;
//! - balanced allocation (NodeResourcesBalancedAllocation): cpu and memory
//!   used in like proportions.

use crate::cache::NodeInfo;
use crate::pod::PodInfo;

const MAX_SCORE: i64 = 100;

/// The best of `feasible` (which is not empty) for `pod`.
pub fn best<'a>(pod: &PodInfo, feasible: &[&'a NodeInfo]) -> &'a NodeInfo {
    let mut best = feasible[0];
    let mut best_score = i64::MIN;
    let mut ties = 0;
    for node in feasible {
        let score = least_allocated(pod, node) + balanced_allocation(pod, node);
        if score > best_score {
            (best, best_score, ties) = (node, score, 1);
        } else if score == best_score {
            ties += 1;
            if fastrand::usize(..ties) == 0 {
                best = node;
            }
        }
    }
    best
}

/// cpu and memory as the node would have them requested with the pod,
/// beside what it can give.
fn with_pod(pod: &PodInfo, node: &NodeInfo) -> [(i64, i64); 2] {
    let (cpu, memory) = node.scoring_requested;
    [
        (cpu + pod.scoring_requests.0, node.allocatable.milli_cpu),
        (memory + pod.scoring_requests.1, node.allocatable.memory),
    ]
}

fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
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

fn balanced_allocation(pod: &PodInfo, node: &NodeInfo) -> i64 {
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
