//! Required inter-pod affinity and anti-affinity (InterPodAffinity). Counted
//! once per attempt over every pod in the cluster, per topology domain
//! (`topologyKey` and the value of that label on the pod's node):
//! - pods matching all the incoming pod's affinity terms: a node qualifies
//!   if its domain holds one, for each term (or, for the first pod of a
//!   group that selects itself, if no pod matches at all);
//! - pods matching one of its anti-affinity terms: their domains are out;
//! - pods whose own anti-affinity terms match the incoming pod: their
//!   domains are out too.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::PodAffinityTerm;

use super::Unfit;
use crate::cache::{Cache, NodeInfo};
use crate::labels::{Labels, node_labels, selector_matches};
use crate::pod::PodInfo;

type Domain = (String, String);

#[derive(Default)]
pub struct InterPod {
    affinity: HashMap<Domain, usize>,
    anti_affinity: HashMap<Domain, usize>,
    existing_anti_affinity: HashMap<Domain, usize>,
}

impl InterPod {
    pub fn count(pod: &PodInfo, cache: &Cache) -> InterPod {
        let mut counts = InterPod::default();
        let (affinity, anti) = pod.required_terms();
        let own_terms = !affinity.is_empty() || !anti.is_empty();
        for node in cache.nodes_for_pod_affinity(own_terms) {
            let labels = node_labels(node.object());
            let add = |map: &mut HashMap<Domain, usize>, key: &str| {
                if let Some(value) = labels.get(key) {
                    *map.entry((key.to_owned(), value.clone())).or_default() += 1;
                }
            };
            let with_anti_affinity = node
                .pods_with_anti_affinity
                .iter()
                .filter_map(|k| node.pods.get(k));
            for existing in with_anti_affinity {
                for term in existing.required_terms().1 {
                    if term_matches(term, existing.namespace(), pod) {
                        add(&mut counts.existing_anti_affinity, &term.topology_key);
                    }
                }
            }
            if !own_terms {
                continue;
            }
            for existing in node.pods.values() {
                if !affinity.is_empty()
                    && affinity
                        .iter()
                        .all(|t| term_matches(t, pod.namespace(), existing))
                {
                    for term in affinity {
                        add(&mut counts.affinity, &term.topology_key);
                    }
                }
                for term in anti {
                    if term_matches(term, pod.namespace(), existing) {
                        add(&mut counts.anti_affinity, &term.topology_key);
                    }
                }
            }
        }
        counts
    }

    pub fn check(&self, pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
        let (affinity, anti) = pod.required_terms();
        if affinity.is_empty() && anti.is_empty() && self.existing_anti_affinity.is_empty() {
            return Ok(());
        }
        let labels = node_labels(node.object());
        if !self.affinity_satisfied(pod, affinity, labels) {
            return Err(Unfit::unresolvable(
                "node(s) didn't match pod affinity rules",
            ));
        }
        let in_domain = |map: &HashMap<Domain, usize>, key: &str| {
            labels.get(key).is_some_and(|value| {
                map.get(&(key.to_owned(), value.clone()))
                    .is_some_and(|n| *n > 0)
            })
        };
        if anti
            .iter()
            .any(|t| in_domain(&self.anti_affinity, &t.topology_key))
        {
            return Err(Unfit::resolvable(vec![
                "node(s) didn't match pod anti-affinity rules".to_owned(),
            ]));
        }
        if labels
            .keys()
            .any(|key| in_domain(&self.existing_anti_affinity, key))
        {
            return Err(Unfit::resolvable(vec![
                "node(s) didn't satisfy existing pods anti-affinity rules".to_owned(),
            ]));
        }
        Ok(())
    }

    fn affinity_satisfied(
        &self,
        pod: &PodInfo,
        terms: &[PodAffinityTerm],
        labels: &Labels,
    ) -> bool {
        let mut pods_exist = true;
        for term in terms {
            let Some(value) = labels.get(&term.topology_key) else {
                return false;
            };
            let domain = (term.topology_key.clone(), value.clone());
            if self.affinity.get(&domain).is_none_or(|n| *n == 0) {
                pods_exist = false;
            }
        }
        pods_exist
            || (self.affinity.is_empty()
                && terms.iter().all(|t| term_matches(t, pod.namespace(), pod)))
    }
}

/// Whether `term`, written in a pod of namespace `owner_namespace`, selects
/// `pod`: by namespace (the term's list, or its selector over the
/// namespace's name label; by default the owner's) and by labels.
pub fn term_matches(term: &PodAffinityTerm, owner_namespace: &str, pod: &PodInfo) -> bool {
    let namespaces = term.namespaces.as_deref().unwrap_or_default();
    let namespace = pod.namespace();
    let namespace_ok = match &term.namespace_selector {
        None if namespaces.is_empty() => namespace == owner_namespace,
        None => namespaces.iter().any(|n| n == namespace),
        Some(selector) => {
            let name_label: Labels = [(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )]
            .into();
            namespaces.iter().any(|n| n == namespace) || selector_matches(selector, &name_label)
        }
    };
    namespace_ok
        && term
            .label_selector
            .as_ref()
            .is_some_and(|s| selector_matches(s, pod.labels()))
}
