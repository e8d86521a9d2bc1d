//! Spreading (PodTopologySpread's score): the fewer matching pods in a
//! node's domains, the better. The pod's ScheduleAnyway constraints count;
//! a pod with no constraints of its own, made by a controller, gets
//! Kubernetes' defaults (at most 3 more per node, 5 more per zone) over its
//! controller's pods, so a ReplicaSet's replicas spread across nodes.
//! The pods of each domain are counted once per attempt, over the nodes
//! holding the controller's pods for the defaults, else over every node;
//! a node's own domain (its hostname) is counted on the node when it is
//! scored, as kube-scheduler counts it.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::MAX_SCORE;
use crate::cache::{Cache, NodeInfo};
use crate::filters::spread::{add_to_domain, eligible};
use crate::labels::{node_labels, selector_matches};
use crate::pod::PodInfo;

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// Which pods a constraint counts.
enum Matcher {
    Selector(k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector),
    /// Pods with the same controller (by uid): the default constraints'.
    Controller(String),
}

struct Constraint {
    spec: TopologySpreadConstraint,
    matcher: Matcher,
    /// Matching pods per value of the key; not kept for the hostname.
    counts: HashMap<String, i64>,
    /// For the hostname and a controller's pods: how many are on each node
    /// (by id), counted over the nodes holding them, so that scoring a node
    /// without any reads none of its own tables.
    on_nodes: Option<HashMap<u64, i64>>,
}

pub struct Spreading {
    constraints: Vec<Constraint>,
    /// The pod's own constraints need every key on a node; the defaults do not.
    require_all_keys: bool,
}

impl Spreading {
    pub fn count(pod: &PodInfo, cache: &Cache) -> Spreading {
        let own = pod
            .spec()
            .topology_spread_constraints
            .as_deref()
            .unwrap_or_default();
        let (constraints, require_all_keys) = if own.is_empty() {
            (default_constraints(pod), false)
        } else {
            let soft = own
                .iter()
                .filter(|c| c.when_unsatisfiable == "ScheduleAnyway")
                .filter_map(|c| {
                    let selector = c.label_selector.clone()?;
                    Some(Constraint {
                        spec: c.clone(),
                        matcher: Matcher::Selector(selector),
                        counts: HashMap::new(),
                        on_nodes: None,
                    })
                })
                .collect();
            (soft, true)
        };
        let mut spreading = Spreading {
            constraints,
            require_all_keys,
        };
        let keys: Vec<String> = spreading
            .constraints
            .iter()
            .map(|c| c.spec.topology_key.clone())
            .collect();
        for c in &mut spreading.constraints {
            if c.spec.topology_key == HOSTNAME {
                if let Matcher::Controller(uid) = &c.matcher {
                    let on_nodes = cache
                        .nodes_with_controller(uid)
                        .map(|node| (node.id, c.matching(pod, node)))
                        .collect();
                    c.on_nodes = Some(on_nodes);
                }
                continue;
            }
            // A node with none of the controller's pods adds nothing.
            let nodes: Box<dyn Iterator<Item = &NodeInfo>> = match &c.matcher {
                Matcher::Controller(uid) => Box::new(cache.nodes_with_controller(uid)),
                Matcher::Selector(_) => Box::new(cache.nodes()),
            };
            for node in nodes {
                let labels = node_labels(node.object());
                if require_all_keys && !keys.iter().all(|k| labels.contains_key(k)) {
                    continue;
                }
                let Some(value) = labels.get(&c.spec.topology_key) else {
                    continue;
                };
                if !eligible(pod, node, &c.spec) {
                    continue;
                }
                let matching = c.matching(pod, node);
                add_to_domain(&mut c.counts, value, matching);
            }
        }
        spreading
    }

    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }

    /// Raw scores for `feasible` (lower raw is better), normalized to 0..100
    /// with the emptiest domains highest; a node lacking a key scores 0.
    pub fn scores(&self, pod: &PodInfo, feasible: &[&NodeInfo]) -> Vec<i64> {
        let weights: Vec<f64> = self
            .constraints
            .iter()
            .map(|c| {
                let values = feasible
                    .iter()
                    .filter_map(|n| node_labels(n.object()).get(&c.spec.topology_key));
                // Every node is a hostname domain of its own, as
                // kube-scheduler counts them: no set of names is needed.
                let domains = if c.spec.topology_key == HOSTNAME {
                    values.count()
                } else {
                    values.collect::<HashSet<_>>().len()
                };
                ((domains + 2) as f64).ln()
            })
            .collect();
        let raw: Vec<Option<i64>> = feasible
            .iter()
            .map(|n| self.raw(pod, n, &weights))
            .collect();
        let max = raw.iter().flatten().copied().max().unwrap_or(0);
        let min = raw.iter().flatten().copied().min().unwrap_or(0);
        raw.into_iter()
            .map(|s| match s {
                None => 0,
                Some(_) if max == 0 => MAX_SCORE,
                Some(s) => MAX_SCORE * (max + min - s) / max,
            })
            .collect()
    }

    /// `weights`: per constraint, the log of its domain count (plus 2).
    fn raw(&self, pod: &PodInfo, node: &NodeInfo, weights: &[f64]) -> Option<i64> {
        let labels = node_labels(node.object());
        let mut score = 0.0;
        for (c, weight) in self.constraints.iter().zip(weights) {
            let Some(value) = labels.get(&c.spec.topology_key) else {
                if self.require_all_keys {
                    return None;
                }
                continue;
            };
            let count = if c.spec.topology_key == HOSTNAME {
                match &c.on_nodes {
                    Some(on_nodes) => on_nodes.get(&node.id).copied().unwrap_or(0),
                    None => c.matching(pod, node),
                }
            } else {
                c.counts.get(value).copied().unwrap_or(0)
            };
            score += count as f64 * weight + f64::from(c.spec.max_skew - 1);
        }
        Some(score.round() as i64)
    }
}

impl Constraint {
    /// How many of the pods on `node` the constraint counts for `pod`.
    fn matching(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        match &self.matcher {
            Matcher::Controller(uid) => node.by_controller.get(uid).copied().unwrap_or(0),
            Matcher::Selector(selector) => node
                .pods
                .values()
                .filter(|p| {
                    p.namespace() == pod.namespace()
                        && p.pod.metadata.deletion_timestamp.is_none()
                        && selector_matches(selector, p.labels())
                })
                .count() as i64,
        }
    }
}

/// Kubernetes' default constraints, over the pod's controller's pods.
fn default_constraints(pod: &PodInfo) -> Vec<Constraint> {
    let Some(uid) = pod.controller_uid() else {
        return Vec::new();
    };
    [(HOSTNAME, 3), (ZONE, 5)]
        .into_iter()
        .map(|(key, max_skew)| Constraint {
            spec: TopologySpreadConstraint {
                topology_key: key.to_owned(),
                max_skew,
                when_unsatisfiable: "ScheduleAnyway".to_owned(),
                ..TopologySpreadConstraint::default()
            },
            matcher: Matcher::Controller(uid.to_owned()),
            counts: HashMap::new(),
            on_nodes: None,
        })
        .collect()
}
