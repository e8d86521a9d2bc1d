//! Filters: may this pod go to this node? Run in kube-scheduler's order,
//! a node is out at the first family that refuses it, with that family's
//! reasons worded as Kubernetes words them.
//!
//! - `node`: cordoned nodes (NodeUnschedulable), nodeSelector and required
//!   node affinity (NodeAffinity).
//! - `taints`: NoSchedule and NoExecute taints the pod does not tolerate
//!   (TaintToleration), with a node that is not Ready counted as tainted.
//! - `ports`: host ports already taken (NodePorts).
//! - `fit`: requests against what is left of the node (NodeResourcesFit).

mod fit;
mod node;
mod ports;
pub mod taints;

use crate::cache::NodeInfo;
use crate::pod::PodInfo;

/// Why a node cannot take the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfit {
    pub reasons: Vec<String>,
    /// Evicting lower-priority pods could make room (too few resources,
    /// ports taken), as opposed to a mismatch no eviction changes.
    pub preemption_may_help: bool,
}

impl Unfit {
    /// A refusal preemption cannot change (Kubernetes' UnschedulableAndUnresolvable).
    fn unresolvable(reason: impl Into<String>) -> Unfit {
        Unfit {
            reasons: vec![reason.into()],
            preemption_may_help: false,
        }
    }

    fn resolvable(reasons: Vec<String>) -> Unfit {
        Unfit {
            reasons,
            preemption_may_help: true,
        }
    }
}

/// Whether `node` can take `pod`, and if not, why.
pub fn check(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    node::schedulable(pod, node)?;
    taints::tolerated(pod, node)?;
    node::affinity(pod, node)?;
    ports::free(pod, node)?;
    fit::fits(pod, node)?;
    Ok(())
}
