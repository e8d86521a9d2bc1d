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
//! - `volumes`: claims that exist, and the node affinity of the volumes
//!   they are bound to (VolumeBinding).
//! - `spread`: topology spread constraints (PodTopologySpread).
//! - `interpod`: required pod affinity and anti-affinity (InterPodAffinity).
//!
//! The last three count what they need over the whole cluster once per
//! attempt ([`Prepared`]), then judge each node from the counts.

mod fit;
pub mod interpod;
pub mod node;
mod ports;
pub mod spread;
pub mod taints;
mod volumes;

use crate::cache::{Cache, NodeInfo};
use crate::pod::PodInfo;
use crate::volumes::Volumes;
use interpod::InterPod;
use spread::Spread;
use volumes::BoundVolumes;

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

/// What the filters count once per attempt (kube-scheduler's PreFilter).
pub struct Prepared {
    volumes: BoundVolumes,
    spread: Spread,
    interpod: InterPod,
}

impl Prepared {
    /// The counts for `pod`, or why no node at all can take it.
    pub fn new(pod: &PodInfo, cache: &Cache, volumes: &Volumes) -> Result<Prepared, String> {
        Ok(Prepared {
            volumes: BoundVolumes::find(pod, volumes)?,
            spread: Spread::count(pod, cache),
            interpod: InterPod::count(pod, cache),
        })
    }

    /// Whether `node` can take `pod`, and if not, why.
    pub fn check(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        node::schedulable(pod, node)?;
        taints::tolerated(pod, node)?;
        node::affinity(pod, node)?;
        ports::free(pod, node)?;
        fit::fits(pod, node)?;
        self.volumes.check(node)?;
        self.spread.check(node)?;
        self.interpod.check(pod, node)?;
        Ok(())
    }
}
