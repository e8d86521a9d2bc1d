//! Preferences for nodes and for company:
//! - preferred node affinity (NodeAffinity): the weights of the preferred
//!   terms the node matches;
//! - preferred pod affinity and anti-affinity (InterPodAffinity): the
//!   weights of the pod's preferred terms matched by pods in the node's
//!   domains (anti-affinity counting against), and likewise the terms of
//!   pods already placed that match the incoming pod (a required affinity
//!   term of theirs counting 1).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{PodAffinityTerm, WeightedPodAffinityTerm};

use crate::cache::{Cache, NodeInfo};
use crate::filters::interpod::term_matches;
use crate::labels::{node_labels, term_matches as node_term_matches};
use crate::pod::PodInfo;

/// The weight a placed pod's required affinity term gives a matching
/// newcomer (kube-scheduler's hardPodAffinityWeight).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

pub fn preferred_nodes(pod: &PodInfo, node: &NodeInfo) -> i64 {
    pod.spec()
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| node_term_matches(&p.preference, node.object()))
        .map(|p| i64::from(p.weight))
        .sum()
}

/// Scores per topology domain (`topologyKey`, value).
pub struct Company(HashMap<(String, String), i64>);

impl Company {
    pub fn count(pod: &PodInfo, cache: &Cache) -> Company {
        let mut scores = HashMap::new();
        let (preferred, preferred_anti) = preferred_terms(pod);
        let own_terms = !preferred.is_empty() || !preferred_anti.is_empty();
        for node in cache.nodes_for_pod_affinity(own_terms) {
            let labels = node_labels(node.object());
            let mut add = |term: &PodAffinityTerm, weight: i64| {
                if let Some(value) = labels.get(&term.topology_key) {
                    *scores
                        .entry((term.topology_key.clone(), value.clone()))
                        .or_default() += weight;
                }
            };
            let existing: Box<dyn Iterator<Item = &std::sync::Arc<PodInfo>>> = if own_terms {
                Box::new(node.pods.values())
            } else {
                Box::new(
                    node.pods_with_affinity
                        .iter()
                        .filter_map(|k| node.pods.get(k)),
                )
            };
            for other in existing {
                for w in preferred {
                    if term_matches(&w.pod_affinity_term, pod.namespace(), other) {
                        add(&w.pod_affinity_term, w.weight.into());
                    }
                }
                for w in preferred_anti {
                    if term_matches(&w.pod_affinity_term, pod.namespace(), other) {
                        add(&w.pod_affinity_term, -i64::from(w.weight));
                    }
                }
                for term in other.required_terms().0 {
                    if term_matches(term, other.namespace(), pod) {
                        add(term, HARD_POD_AFFINITY_WEIGHT);
                    }
                }
                let (theirs, theirs_anti) = preferred_terms(other);
                for w in theirs {
                    if term_matches(&w.pod_affinity_term, other.namespace(), pod) {
                        add(&w.pod_affinity_term, w.weight.into());
                    }
                }
                for w in theirs_anti {
                    if term_matches(&w.pod_affinity_term, other.namespace(), pod) {
                        add(&w.pod_affinity_term, -i64::from(w.weight));
                    }
                }
            }
        }
        Company(scores)
    }

    pub fn score(&self, node: &NodeInfo) -> i64 {
        if self.0.is_empty() {
            return 0;
        }
        node_labels(node.object())
            .iter()
            .filter_map(|(k, v)| self.0.get(&(k.clone(), v.clone())))
            .sum()
    }
}

fn preferred_terms(pod: &PodInfo) -> (&[WeightedPodAffinityTerm], &[WeightedPodAffinityTerm]) {
    let affinity = pod.spec().affinity.as_ref();
    let preferred = affinity
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        });
    let anti = affinity
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        });
    (preferred.unwrap_or_default(), anti.unwrap_or_default())
}
