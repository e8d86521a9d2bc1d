//! The node's own fitness: cordoned (NodeUnschedulable) and matching the
//! pod's nodeSelector and required node affinity (NodeAffinity).

use k8s_openapi::api::core::v1::Taint;

use super::Unfit;
use super::taints::tolerates;
use crate::cache::NodeInfo;
use crate::labels::{node_labels, node_selector_matches};
use crate::pod::PodInfo;

/// A cordoned node takes only pods that tolerate its unschedulable taint.
pub fn schedulable(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    if !node.cordoned {
        return Ok(());
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".to_owned(),
        effect: "NoSchedule".to_owned(),
        ..Taint::default()
    };
    if !tolerates(pod, &taint) {
        return Err(Unfit::unresolvable("node(s) were unschedulable"));
    }
    Ok(())
}

/// Every nodeSelector label, and one of the required affinity terms.
pub fn affinity(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let spec = pod.spec();
    let labels = node_labels(node.object());
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok = required.is_none_or(|r| node_selector_matches(r, node.object()));
    if selector_ok && affinity_ok {
        Ok(())
    } else {
        Err(Unfit::unresolvable(
            "node(s) didn't match Pod's node affinity/selector",
        ))
    }
}
