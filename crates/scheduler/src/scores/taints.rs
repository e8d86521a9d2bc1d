//! Taint toleration (TaintToleration): the fewer PreferNoSchedule taints a
//! node has that the pod does not tolerate, the better.

use k8s_openapi::api::core::v1::Taint;

use crate::cache::NodeInfo;
use crate::filters::taints::toleration_matches;
use crate::pod::PodInfo;

/// The count of untolerated PreferNoSchedule taints (lower is better).
pub fn intolerable(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let tolerations: Vec<_> = pod
        .spec()
        .tolerations
        .iter()
        .flatten()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .collect();
    node.taints
        .iter()
        .filter(|t: &&Taint| t.effect == "PreferNoSchedule")
        .filter(|t| !tolerations.iter().any(|tol| toleration_matches(tol, t)))
        .count() as i64
}
