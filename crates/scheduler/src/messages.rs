//! Why a pod fits nowhere, worded as kube-scheduler words its FitError:
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated
//! taint {key: value}. preemption: 0/3 nodes are available: 1 No preemption
//! victims found for incoming pod, 2 Preemption is not helpful for scheduling.`

use std::collections::BTreeMap;

use crate::filters::Unfit;

/// With no nodes at all there is nothing to count.
const NO_NODES: &str = "no nodes available to schedule pods";

/// Why each node refused, and what preemption made of it.
pub struct FitError {
    nodes: usize,
    /// The nodes' reasons counted (`1 Insufficient cpu, 2 ...`), or the one
    /// reason that ruled out every node before any was looked at.
    reasons: String,
    /// What preemption says after `preemption: `; nothing when it found
    /// victims to evict.
    preemption: Option<String>,
}

impl FitError {
    /// Every node ruled out at once (a missing claim): preemption cannot help.
    pub fn before_filters(nodes: usize, why: String) -> FitError {
        let preemption = format!(
            "{}.",
            available(
                nodes,
                format!("{nodes} Preemption is not helpful for scheduling")
            )
        );
        FitError {
            nodes,
            reasons: why,
            preemption: Some(preemption),
        }
    }

    /// Preemption is evicting pods to make room: the message says only why
    /// the pod did not fit.
    pub fn preempting(unfit: Vec<Unfit>) -> FitError {
        FitError {
            nodes: unfit.len(),
            reasons: histogram(unfit.into_iter().flat_map(|u| u.reasons)),
            preemption: None,
        }
    }

    /// The pod may not preempt, for the reason given.
    pub fn not_preempting(unfit: Vec<Unfit>, why: &str) -> FitError {
        FitError {
            preemption: Some(why.to_owned()),
            ..FitError::preempting(unfit)
        }
    }

    /// The preemption part when preemption was tried and found no victims
    /// anywhere: nodes refused for reasons eviction could fix found none,
    /// the others could not be helped.
    pub fn without_victims(unfit: Vec<Unfit>) -> FitError {
        let reasons = unfit.iter().map(|u| {
            if u.preemption_may_help {
                "No preemption victims found for incoming pod".to_owned()
            } else {
                "Preemption is not helpful for scheduling".to_owned()
            }
        });
        let preemption = format!("{}.", available(unfit.len(), histogram(reasons)));
        FitError {
            preemption: Some(preemption),
            ..FitError::preempting(unfit)
        }
    }

    pub fn message(&self) -> String {
        if self.nodes == 0 {
            return NO_NODES.to_owned();
        }
        let reasons = available(self.nodes, self.reasons.clone());
        match &self.preemption {
            Some(preemption) => format!("{reasons}. preemption: {preemption}"),
            None => format!("{reasons}."),
        }
    }
}

fn available(nodes: usize, histogram: String) -> String {
    format!("0/{nodes} nodes are available: {histogram}")
}

/// `2 Insufficient cpu, 1 Too many pods`: each reason with how many nodes
/// gave it, sorted as strings as Kubernetes sorts them.
fn histogram(reasons: impl Iterator<Item = String>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for reason in reasons {
        *counts.entry(reason).or_default() += 1;
    }
    let mut lines: Vec<String> = counts
        .into_iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    lines.sort();
    lines.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worded_as_kubernetes() {
        let taint = Unfit {
            reasons: vec!["node(s) had untolerated taint {dedicated: gpu}".to_owned()],
            preemption_may_help: false,
        };
        let cpu = Unfit {
            reasons: vec!["Insufficient cpu".to_owned()],
            preemption_may_help: true,
        };
        let error = FitError::without_victims(vec![taint.clone(), cpu, taint]);
        assert_eq!(
            error.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling."
        );
    }
}
