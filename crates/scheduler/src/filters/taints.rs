//! Taints and tolerations (TaintToleration): a pod goes only where it
//! tolerates every NoSchedule and NoExecute taint. A node whose Ready
//! condition is not True counts as carrying the taint the node lifecycle
//! controller gives it (`not-ready`, or `unreachable` when Unknown), so no
//! pod lands on a dead node in the seconds before the controller acts.

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};

use super::Unfit;
use crate::cache::NodeInfo;
use crate::pod::PodInfo;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

pub fn tolerated(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let untolerated = node
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerates(pod, t));
    match untolerated {
        None => Ok(()),
        Some(t) => Err(Unfit::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or_default()
        ))),
    }
}

/// The node's taints, with the readiness taint it is due if it lacks it
/// (the cache keeps them in [`NodeInfo::taints`]).
pub fn node_taints(node: &Node) -> Vec<Taint> {
    let mut taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let due = match ready {
        Some("True") => None,
        Some("Unknown") => Some(UNREACHABLE),
        _ => Some(NOT_READY),
    };
    if let Some(key) = due
        && !taints.iter().any(|t| t.key == key)
    {
        taints.push(Taint {
            key: key.to_owned(),
            effect: "NoSchedule".to_owned(),
            ..Taint::default()
        });
    }
    taints
}

/// Whether one of the pod's tolerations tolerates `taint`.
pub fn tolerates(pod: &PodInfo, taint: &Taint) -> bool {
    pod.spec()
        .tolerations
        .iter()
        .flatten()
        .any(|t| toleration_matches(t, taint))
}

/// Kubernetes' ToleratesTaint: an empty effect or key matches any; `Exists`
/// ignores the value, `Equal` (the default) compares it.
pub fn toleration_matches(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    let key = toleration.key.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}
