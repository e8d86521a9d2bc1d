//! Label matching as the scheduler needs it, on typed objects: node
//! selector terms (with the node-only `Gt` and `Lt`) and label selectors
//! (inter-pod affinity, topology spreading).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

static NO_LABELS: Labels = BTreeMap::new();

pub fn node_labels(node: &Node) -> &Labels {
    node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

/// One requirement: `operator` over the value of `key` in `labels`.
pub fn requirement_matches(key: &str, operator: &str, values: &[String], labels: &Labels) -> bool {
    let value = labels.get(key);
    match operator {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), [bound]) = (value.and_then(|v| v.parse::<i64>().ok()), values) else {
                return false;
            };
            let Ok(bound) = bound.parse::<i64>() else {
                return false;
            };
            if operator == "Gt" {
                have > bound
            } else {
                have < bound
            }
        }
        _ => false,
    }
}

/// A node selector: any of its terms matches. No term matches nothing.
pub fn node_selector_matches(selector: &NodeSelector, node: &Node) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|term| term_matches(term, node))
}

/// A term: all its expressions over labels and fields; an empty term
/// matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node_labels(node);
    let node_fields: Labels = [(
        "metadata.name".to_owned(),
        node.metadata.name.clone().unwrap_or_default(),
    )]
    .into();
    expressions.iter().all(|r| matches_requirement(r, labels))
        && fields.iter().all(|r| matches_requirement(r, &node_fields))
}

fn matches_requirement(r: &NodeSelectorRequirement, labels: &Labels) -> bool {
    requirement_matches(
        &r.key,
        &r.operator,
        r.values.as_deref().unwrap_or_default(),
        labels,
    )
}

/// A label selector: its labels and all its expressions; `{}` matches everything.
pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().flatten().all(|e| {
            requirement_matches(
                &e.key,
                &e.operator,
                e.values.as_deref().unwrap_or_default(),
                labels,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn operators() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(requirement_matches("zone", "In", &v(&["a", "b"]), &l));
        assert!(!requirement_matches("zone", "NotIn", &v(&["a"]), &l));
        assert!(requirement_matches("gpu", "NotIn", &v(&["x"]), &l));
        assert!(requirement_matches("zone", "Exists", &[], &l));
        assert!(requirement_matches("gpu", "DoesNotExist", &[], &l));
        assert!(requirement_matches("cores", "Gt", &v(&["4"]), &l));
        assert!(!requirement_matches("cores", "Lt", &v(&["8"]), &l));
        assert!(!requirement_matches("zone", "Gt", &v(&["1"]), &l));
    }
}
