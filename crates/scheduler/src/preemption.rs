//! Preemption (DefaultPreemption): a pod that fits nowhere may evict pods
//! of lower priority. On each node refused for reasons eviction can fix
//! (resources, ports, spreading, anti-affinity), every lower-priority pod
//! is taken away in thought; if the pod then fits, as many of them as
//! possible are given back, highest priority first, and the rest are the
//! victims. The node chosen has the lowest highest-priority victim, then
//! the lowest sum of victim priorities, then the fewest victims.

use std::sync::Arc;

use crate::cache::NodeInfo;
use crate::filters::{Prepared, Unfit};
use crate::pod::PodInfo;

/// The pods to evict from `node` so that the preemptor fits there.
pub struct Plan {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

/// Why the pod may not preempt at all, as kube-scheduler says it.
pub fn ineligible(pod: &PodInfo) -> Option<&'static str> {
    (pod.spec().preemption_policy.as_deref() == Some("Never"))
        .then_some("not eligible due to preemptionPolicy=Never.")
}

/// The best plan over the refused nodes, if any node can be freed.
pub fn plan(pod: &PodInfo, prepared: &Prepared, refused: &[(&NodeInfo, &Unfit)]) -> Option<Plan> {
    refused
        .iter()
        .filter(|(_, why)| why.preemption_may_help)
        .filter_map(|(node, _)| victims_on(pod, prepared, node).map(|v| (node, v)))
        .min_by_key(|(_, victims)| {
            let highest = victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN);
            let sum: i64 = victims.iter().map(|v| i64::from(v.priority)).sum();
            (highest, sum, victims.len())
        })
        .map(|(node, victims)| Plan {
            node: node.name().to_owned(),
            victims,
        })
}

/// The fewest lower-priority pods whose eviction lets the pod onto `node`.
fn victims_on(pod: &PodInfo, prepared: &Prepared, node: &NodeInfo) -> Option<Vec<Arc<PodInfo>>> {
    let mut lower: Vec<Arc<PodInfo>> = node
        .pods
        .values()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    let mut trial = node.clone();
    for victim in &lower {
        trial.remove_pod(&victim.key);
    }
    prepared.check(pod, &trial).ok()?;
    lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
    let mut victims = Vec::new();
    for candidate in lower {
        trial.add_pod(candidate.clone());
        if prepared.check(pod, &trial).is_err() {
            trial.remove_pod(&candidate.key);
            victims.push(candidate);
        }
    }
    Some(victims)
}
