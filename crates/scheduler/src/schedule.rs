//! One scheduling attempt: filter the nodes until enough fit (all of
//! them in a small cluster), score those, pick the best; when none fits,
//! see whether evicting lower-priority pods would make room.

use crate::cache::{Cache, NodeInfo};
use crate::filters;
use crate::messages::FitError;
use crate::pod::PodInfo;
use crate::preemption::{self, Plan};
use crate::scores;
use crate::volumes::Volumes;

/// Below this many nodes every node is looked at; above it, at least
/// this many feasible ones are found (kube-scheduler's minFeasibleNodesToFind).
const MIN_FEASIBLE_NODES: usize = 100;
/// The least share of a large cluster's nodes scored, in percent
/// (kube-scheduler's minFeasibleNodesPercentageToFind).
const MIN_PERCENTAGE_OF_NODES: usize = 5;

pub enum Decision {
    Bind(String),
    /// Evict the plan's victims; the pod waits for the room they leave.
    Preempt(Plan, FitError),
    Unschedulable(FitError),
}

/// Decides pods one after the other, each attempt going on through the
/// nodes where the last one stopped, so that every node gets its turn
/// while only some are looked at (kube-scheduler's nextStartNodeIndex).
#[derive(Default)]
pub struct Scheduler {
    /// The name of the node the next attempt starts at (or after, if it is
    /// gone): a name rather than an index, so that no attempt has to list
    /// every node to find its place.
    next_start: String,
}

impl Scheduler {
    /// What to do with `pod`.
    pub fn decide(&mut self, pod: &PodInfo, cache: &Cache, volumes: &Volumes) -> Decision {
        let node_count = cache.node_count() as usize;
        let prepared = match filters::Prepared::new(pod, cache, volumes) {
            Ok(prepared) => prepared,
            Err(why) => {
                return Decision::Unschedulable(FitError::before_filters(node_count, why));
            }
        };
        let wanted = feasible_nodes_to_find(node_count);
        let mut refused = Vec::new();
        let mut feasible = Vec::new();
        let mut next_start = None;
        for node in cache.nodes_from(&self.next_start) {
            if feasible.len() == wanted {
                next_start = Some(node.name().to_owned());
                break;
            }
            match prepared.check(pod, &cache.with_nominated(pod, node)) {
                Ok(()) => feasible.push(node),
                Err(why) => refused.push((node, why)),
            }
        }
        // Having gone all the way round, the next attempt starts where this one did.
        if let Some(next_start) = next_start {
            self.next_start = next_start;
        }
        decide(pod, &prepared, feasible, refused, cache)
    }
}

/// How many feasible nodes an attempt looks for before it scores them:
/// kube-scheduler's numFeasibleNodesToFind with the adaptive default of
/// percentageOfNodesToScore (50% less a point per 125 nodes, at least 5%,
/// and never fewer than 100 nodes).
pub fn feasible_nodes_to_find(nodes: usize) -> usize {
    if nodes < MIN_FEASIBLE_NODES {
        return nodes;
    }
    let percentage = 50usize
        .saturating_sub(nodes / 125)
        .max(MIN_PERCENTAGE_OF_NODES);
    (nodes * percentage / 100).max(MIN_FEASIBLE_NODES)
}

/// The node among `feasible` for `pod`, or else what preemption makes of
/// the `refused` ones.
fn decide(
    pod: &PodInfo,
    prepared: &filters::Prepared,
    feasible: Vec<&NodeInfo>,
    refused: Vec<(&NodeInfo, filters::Unfit)>,
    cache: &Cache,
) -> Decision {
    if !feasible.is_empty() {
        return Decision::Bind(scores::best(pod, &feasible, cache).name().to_owned());
    }
    let unfit = || {
        refused
            .iter()
            .map(|(_, why)| why.clone())
            .collect::<Vec<_>>()
    };
    if let Some(why) = preemption::ineligible(pod) {
        return Decision::Unschedulable(FitError::not_preempting(unfit(), why));
    }
    let refused_refs: Vec<_> = refused.iter().map(|(n, why)| (*n, why)).collect();
    match preemption::plan(pod, prepared, &refused_refs) {
        Some(plan) => Decision::Preempt(plan, FitError::preempting(unfit())),
        None => Decision::Unschedulable(FitError::without_victims(unfit())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use serde_json::json;

    #[test]
    fn feasible_nodes_to_find_as_kube_scheduler() {
        assert_eq!(feasible_nodes_to_find(0), 0);
        assert_eq!(feasible_nodes_to_find(99), 99);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(200), 100);
        assert_eq!(feasible_nodes_to_find(1_000), 420);
        assert_eq!(feasible_nodes_to_find(5_000), 500);
        assert_eq!(feasible_nodes_to_find(6_000), 300);
        assert_eq!(feasible_nodes_to_find(10_000), 500);
    }

    #[test]
    fn a_large_cluster_is_looked_at_in_turns() {
        let cache = cluster(1_000);
        let pod = pod("1");
        let mut scheduler = Scheduler::default();
        for (looked_at, next_start) in [(0..420, 420), (420..840, 840), (840..1_000, 260)] {
            let Decision::Bind(node) = scheduler.decide(&pod, &cache, &no_volumes()) else {
                panic!("the pod fits every node");
            };
            let index: usize = node["node-".len()..].parse().expect("a node's number");
            assert!(
                looked_at.contains(&index) || (next_start == 260 && index < 260),
                "{node} was not among the nodes looked at"
            );
            assert_eq!(scheduler.next_start, format!("node-{next_start:04}"));
        }
    }

    #[test]
    fn a_pod_that_fits_nowhere_is_checked_against_every_node() {
        let cache = cluster(1_000);
        let mut scheduler = Scheduler::default();
        let Decision::Unschedulable(why) = scheduler.decide(&pod("64"), &cache, &no_volumes())
        else {
            panic!("no node has 64 cpus");
        };
        assert!(
            why.message()
                .starts_with("0/1000 nodes are available: 1000 Insufficient cpu."),
            "{}",
            why.message()
        );
    }

    fn cluster(nodes: usize) -> Cache {
        let mut cache = Cache::default();
        for i in 0..nodes {
            let resources = json!({"cpu": "32", "memory": "256Gi", "pods": "110"});
            let node = serde_json::from_value(json!({
                "metadata": {"name": format!("node-{i:04}")},
                "status": {
                    "allocatable": resources,
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }))
            .expect("a node");
            cache.set_node(node);
        }
        cache
    }

    fn pod(cpu: &str) -> PodInfo {
        PodInfo::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": [{
                    "name": "web",
                    "resources": {"requests": {"cpu": cpu}},
                }]},
            }))
            .expect("a pod"),
        )
    }

    fn no_volumes() -> Volumes {
        Volumes {
            claims: reflector::store().0,
            volumes: reflector::store().0,
            classes: reflector::store().0,
        }
    }
}
