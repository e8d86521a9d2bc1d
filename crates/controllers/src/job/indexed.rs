//! Indexed Jobs: each pod carries its completion index (annotation, label,
//! `JOB_COMPLETION_INDEX` in every container, hostname `<job>-<index>`), and
//! `status.completedIndexes` lists the indexes done in Kubernetes' compact
//! text form, "1,3-5,7".

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::SuccessPolicy;
use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod};

pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The pod's completion index, from its annotation as Kubernetes reads it.
pub fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(INDEX_KEY)?
        .parse()
        .ok()
        .filter(|i: &i32| *i >= 0)
}

/// Marks a new pod of an Indexed Job with its index, as the job controller
/// does: annotation and label, the environment variable (a downward API
/// reference to the annotation) and, unless the template names one, the
/// hostname `<job>-<index>`.
pub fn mark(pod: &mut Pod, job_name: &str, index: i32) {
    let value = index.to_string();
    pod.metadata
        .annotations
        .get_or_insert_default()
        .insert(INDEX_KEY.to_owned(), value.clone());
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert(INDEX_KEY.to_owned(), value);
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    if spec.hostname.is_none() {
        spec.hostname = Some(format!("{job_name}-{index}"));
    }
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        add_index_env(container);
    }
}

fn add_index_env(container: &mut Container) {
    let env = container.env.get_or_insert_default();
    if env.iter().any(|e| e.name == INDEX_ENV) {
        return;
    }
    env.push(EnvVar {
        name: INDEX_ENV.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.annotations['{INDEX_KEY}']"),
            }),
            ..EnvVarSource::default()
        }),
    });
}

/// Parses `status.completedIndexes`; parts that do not parse are skipped.
pub fn parse(text: Option<&str>) -> BTreeSet<i32> {
    let mut indexes = BTreeSet::new();
    for part in text
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(first), Ok(last)) = (first.parse::<i32>(), last.parse::<i32>()) {
            indexes.extend(first..=last);
        }
    }
    indexes
}

/// The compact text form: runs of three or more become `first-last`.
pub fn format(indexes: &BTreeSet<i32>) -> String {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &i in indexes {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => runs.push((i, i)),
        }
    }
    let parts: Vec<String> = runs
        .into_iter()
        .flat_map(|(first, last)| match last - first {
            0 => vec![first.to_string()],
            1 => vec![first.to_string(), last.to_string()],
            _ => vec![format!("{first}-{last}")],
        })
        .collect();
    parts.join(",")
}

/// The first `successPolicy` rule the completed indexes meet, as
/// Kubernetes words it ("Matched rules at index 0"). A rule with indexes
/// wants `succeededCount` of them done, or all of them without a count; a
/// rule with only a count wants that many indexes done.
pub fn success_rule_met(policy: &SuccessPolicy, completed: &BTreeSet<i32>) -> Option<String> {
    let met = |count: Option<i32>, done: usize, all: usize| match count {
        Some(count) => usize::try_from(count).is_ok_and(|c| done >= c),
        None => done == all,
    };
    let index = policy
        .rules
        .iter()
        .position(|rule| match &rule.succeeded_indexes {
            Some(indexes) => {
                let wanted = parse(Some(indexes));
                let done = wanted.intersection(completed).count();
                met(rule.succeeded_count, done, wanted.len())
            }
            None => met(rule.succeeded_count, completed.len(), usize::MAX),
        })?;
    Some(format!("Matched rules at index {index}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_round_trip_in_kubernetes_form() {
        let indexes: BTreeSet<i32> = [1, 3, 4, 5, 7, 9, 10].into();
        assert_eq!(format(&indexes), "1,3-5,7,9,10");
        assert_eq!(parse(Some("1,3-5,7,9,10")), indexes);
        assert_eq!(format(&BTreeSet::new()), "");
        assert!(parse(None).is_empty());
    }

    #[test]
    fn a_success_policy_rule_is_met_by_its_indexes_or_its_count() {
        let policy: SuccessPolicy = serde_json::from_value(serde_json::json!({"rules": [
            {"succeededIndexes": "0,2-3"},
            {"succeededIndexes": "4-9", "succeededCount": 2},
            {"succeededCount": 5},
        ]}))
        .unwrap();
        let met = |done: &[i32]| success_rule_met(&policy, &done.iter().copied().collect());
        assert_eq!(met(&[0, 2]), None);
        assert_eq!(met(&[0, 2, 3]), Some("Matched rules at index 0".into()));
        assert_eq!(met(&[5, 9]), Some("Matched rules at index 1".into()));
        assert_eq!(
            met(&[0, 1, 2, 4, 10]),
            Some("Matched rules at index 2".into())
        );
    }
}
