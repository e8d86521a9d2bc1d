//! `podFailurePolicy`: what a failed pod means for its Job, decided by the
//! first rule that its exit codes or conditions match, as Kubernetes
//! decides it. Without a matching rule a failure counts against
//! `backoffLimit` (and `backoffLimitPerIndex`).

use k8s_openapi::api::batch::v1::{
    Job, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

/// What a failed pod does to its Job.
#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    /// The Job fails at once; the message says which rule matched.
    FailJob(String),
    /// The failure is not counted at all.
    Ignore,
    /// The pod's index fails for good (`backoffLimitPerIndex`).
    FailIndex,
    /// The failure counts against `backoffLimit`.
    Count,
}

pub fn judge(job: &Job, pod: &Pod) -> Judgement {
    let rules = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
        .map_or(&[][..], |p| p.rules.as_slice());
    let who = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
    for (index, rule) in rules.iter().enumerate() {
        let action = rule.action.as_str();
        let matched = match (&rule.on_exit_codes, &rule.on_pod_conditions) {
            (Some(requirement), _) => exit_code_match(requirement, pod).map(|(container, code)| {
                format!(
                    "Container {container} for pod {who} failed with exit code {code} matching {action} rule at index {index}"
                )
            }),
            (None, Some(patterns)) => condition_match(patterns, pod).map(|type_| {
                format!("Pod {who} has condition {type_} matching {action} rule at index {index}")
            }),
            (None, None) => None,
        };
        if let Some(message) = matched {
            return match action {
                "FailJob" => Judgement::FailJob(message),
                "Ignore" => Judgement::Ignore,
                "FailIndex" => Judgement::FailIndex,
                _ => Judgement::Count,
            };
        }
    }
    Judgement::Count
}

/// The first container (init containers included) that exited non-zero
/// with a code the requirement selects.
fn exit_code_match(
    requirement: &PodFailurePolicyOnExitCodesRequirement,
    pod: &Pod,
) -> Option<(String, i32)> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    containers
        .filter(|c| {
            requirement
                .container_name
                .as_ref()
                .is_none_or(|n| *n == c.name)
        })
        .filter_map(|c| {
            let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
            Some((c.name.clone(), code))
        })
        .find(|(_, code)| {
            let listed = requirement.values.contains(code);
            *code != 0 && (listed == (requirement.operator == "In"))
        })
}

/// The type of the first pod condition a pattern matches.
fn condition_match(
    patterns: &[PodFailurePolicyOnPodConditionsPattern],
    pod: &Pod,
) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| {
            patterns
                .iter()
                .any(|p| p.type_ == c.type_ && p.status == c.status)
        })
        .map(|c| c.type_.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(rules: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {"podFailurePolicy": {"rules": rules}, "template": {}},
        }))
        .unwrap()
    }

    fn failed_pod(exit_code: i32, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {
                "phase": "Failed",
                "conditions": conditions,
                "containerStatuses": [{
                    "name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": exit_code}},
                }],
            },
        }))
        .unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let job = job(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]));
        assert_eq!(
            judge(&job, &failed_pod(42, json!([]))),
            Judgement::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            )
        );
        let disrupted = json!([{"type": "DisruptionTarget", "status": "True"}]);
        assert_eq!(judge(&job, &failed_pod(42, disrupted)), Judgement::Ignore);
        assert_eq!(judge(&job, &failed_pod(1, json!([]))), Judgement::Count);
    }

    #[test]
    fn not_in_never_matches_a_clean_exit_or_another_container() {
        let job = job(json!([
            {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [3]}},
        ]));
        assert_eq!(judge(&job, &failed_pod(0, json!([]))), Judgement::Count);
        assert_eq!(judge(&job, &failed_pod(3, json!([]))), Judgement::Count);
        assert!(matches!(
            judge(&job, &failed_pod(4, json!([]))),
            Judgement::FailJob(_)
        ));
        let other = job_for_container("sidecar");
        assert_eq!(judge(&other, &failed_pod(4, json!([]))), Judgement::Count);
    }

    fn job_for_container(name: &str) -> Job {
        job(json!([
            {"action": "FailJob", "onExitCodes": {"containerName": name, "operator": "In", "values": [4]}},
        ]))
    }
}
