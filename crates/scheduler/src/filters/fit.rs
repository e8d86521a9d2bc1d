//! Resource fit (NodeResourcesFit): the pod's requests must fit in what the
//! node's allocatable leaves after the requests of the pods already there,
//! and the node must take one more pod. Every shortfall is a reason.

use super::Unfit;
use crate::cache::NodeInfo;
use crate::pod::PodInfo;

pub fn fits(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        reasons.push("Too many pods".to_owned());
    }
    let want = &pod.requests;
    let have = &node.allocatable;
    let used = &node.requested;
    let short = |want: i64, have: i64, used: i64| want > 0 && want > have - used;
    if short(want.milli_cpu, have.milli_cpu, used.milli_cpu) {
        reasons.push("Insufficient cpu".to_owned());
    }
    if short(want.memory, have.memory, used.memory) {
        reasons.push("Insufficient memory".to_owned());
    }
    if short(
        want.ephemeral_storage,
        have.ephemeral_storage,
        used.ephemeral_storage,
    ) {
        reasons.push("Insufficient ephemeral-storage".to_owned());
    }
    for (name, amount) in &want.scalar {
        if short(*amount, have.scalar(name), used.scalar(name)) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Unfit::resolvable(reasons))
    }
}
