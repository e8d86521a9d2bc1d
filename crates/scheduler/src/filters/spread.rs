//! Topology spread constraints (PodTopologySpread), the DoNotSchedule
//! ones: placing the pod in a node's domain may not make that domain hold
//! more than `maxSkew` matching pods above the emptiest domain. Domains are
//! counted over the nodes the pod could go to by its node selector and
//! affinity (nodeAffinityPolicy Honor), taints included only under
//! nodeTaintsPolicy Honor, and only nodes carrying every constraint's key.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::Unfit;
use super::{node as node_filters, taints};
use crate::cache::{Cache, NodeInfo};
use crate::labels::{node_labels, selector_matches};
use crate::pod::PodInfo;

struct Constraint {
    key: String,
    max_skew: i64,
    /// `None` (no selector) matches no pod.
    selector: Option<LabelSelector>,
    /// Matching pods per value of `key`.
    counts: HashMap<String, i64>,
    /// The emptiest domain's count (0 while fewer than minDomains domains exist).
    min: i64,
    /// The incoming pod counts itself where it goes if it matches.
    self_match: i64,
}

pub struct Spread {
    constraints: Vec<Constraint>,
}

impl Spread {
    pub fn count(pod: &PodInfo, cache: &Cache) -> Spread {
        let hard: Vec<&TopologySpreadConstraint> = pod
            .spec()
            .topology_spread_constraints
            .iter()
            .flatten()
            .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
            .collect();
        let mut constraints: Vec<Constraint> = hard
            .iter()
            .map(|c| {
                let selector = selector_with_label_keys(c, pod);
                Constraint {
                    key: c.topology_key.clone(),
                    max_skew: c.max_skew.into(),
                    self_match: matches(&selector, pod).into(),
                    selector,
                    counts: HashMap::new(),
                    min: 0,
                }
            })
            .collect();
        if constraints.is_empty() {
            return Spread { constraints };
        }
        for node in cache.nodes() {
            let labels = node_labels(node.object());
            if !constraints.iter().all(|c| labels.contains_key(&c.key)) {
                continue;
            }
            for (constraint, spec) in constraints.iter_mut().zip(&hard) {
                if !eligible(pod, node, spec) {
                    continue;
                }
                let matching = node
                    .pods
                    .values()
                    .filter(|p| {
                        p.namespace() == pod.namespace()
                            && p.pod.metadata.deletion_timestamp.is_none()
                            && matches(&constraint.selector, p)
                    })
                    .count() as i64;
                add_to_domain(&mut constraint.counts, &labels[&constraint.key], matching);
            }
        }
        for (constraint, spec) in constraints.iter_mut().zip(&hard) {
            let domains = constraint.counts.len() as i64;
            let too_few = spec.min_domains.is_some_and(|m| domains < m.into());
            constraint.min = if too_few {
                0
            } else {
                constraint.counts.values().copied().min().unwrap_or(0)
            };
        }
        Spread { constraints }
    }

    pub fn check(&self, node: &NodeInfo) -> Result<(), Unfit> {
        let labels = node_labels(node.object());
        for c in &self.constraints {
            let Some(value) = labels.get(&c.key) else {
                return Err(Unfit::unresolvable(
                    "node(s) didn't match pod topology spread constraints (missing required label)",
                ));
            };
            let here = c.counts.get(value).copied().unwrap_or(0);
            if here + c.self_match - c.min > c.max_skew {
                return Err(Unfit::resolvable(vec![
                    "node(s) didn't match pod topology spread constraints".to_owned(),
                ]));
            }
        }
        Ok(())
    }
}

/// Whether a node's pods count for the constraint, by its node policies.
pub fn eligible(pod: &PodInfo, node: &NodeInfo, constraint: &TopologySpreadConstraint) -> bool {
    let affinity_policy = constraint
        .node_affinity_policy
        .as_deref()
        .unwrap_or("Honor");
    let taints_policy = constraint.node_taints_policy.as_deref().unwrap_or("Ignore");
    (affinity_policy == "Ignore" || node_filters::affinity(pod, node).is_ok())
        && (taints_policy == "Ignore" || taints::tolerated(pod, node).is_ok())
}

/// Adds `matching` to the domain `value`, copying its name only the first
/// time the domain is seen.
pub fn add_to_domain(counts: &mut HashMap<String, i64>, value: &str, matching: i64) {
    match counts.get_mut(value) {
        Some(count) => *count += matching,
        None => {
            counts.insert(value.to_owned(), matching);
        }
    }
}

/// The constraint's selector, narrowed by `matchLabelKeys` to pods sharing
/// the incoming pod's values of those labels (its ReplicaSet's pods, by
/// `pod-template-hash`).
fn selector_with_label_keys(
    constraint: &TopologySpreadConstraint,
    pod: &PodInfo,
) -> Option<LabelSelector> {
    let mut selector = constraint.label_selector.clone()?;
    for key in constraint.match_label_keys.iter().flatten() {
        if let Some(value) = pod.labels().get(key) {
            selector
                .match_labels
                .get_or_insert_with(Default::default)
                .insert(key.clone(), value.clone());
        }
    }
    Some(selector)
}

fn matches(selector: &Option<LabelSelector>, pod: &PodInfo) -> bool {
    selector
        .as_ref()
        .is_some_and(|s| selector_matches(s, pod.labels()))
}
