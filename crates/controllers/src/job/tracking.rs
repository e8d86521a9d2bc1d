//! Counting finished pods without losing any, as Kubernetes does since 1.26:
//! every pod of a Job is made with the `batch.kubernetes.io/job-tracking`
//! finalizer, so it cannot vanish before it is counted. A finished pod is
//! first written into `status.uncountedTerminatedPods`, then its finalizer
//! is removed, then it moves into `succeeded` or `failed`. A crash between
//! the steps leaves its uid in the uncounted lists, so the next pass counts
//! it once; deleting finished pods (they are kept until someone does)
//! never changes the counts.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{Job, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

use super::failure_policy::{self, Judgement};
use super::{indexed, per_index};

pub const FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// How a pod ended, as the job controller counts it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
}

/// Succeeded or Failed by its phase; a pod deleted before it succeeded
/// counts as failed (it may never reach a phase), unless the Job replaces
/// only pods that failed (`podReplacementPolicy: Failed`).
pub fn outcome(pod: &Pod, job: &Job) -> Option<Outcome> {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => Some(Outcome::Succeeded),
        Some("Failed") => Some(Outcome::Failed),
        _ if pod.metadata.deletion_timestamp.is_some() && replaces_terminating(job) => {
            Some(Outcome::Failed)
        }
        _ => None,
    }
}

/// True unless `podReplacementPolicy` is `Failed`: a pod being deleted is
/// then replaced at once rather than when it is gone.
pub fn replaces_terminating(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.pod_replacement_policy.as_deref())
        != Some("Failed")
}

pub fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == FINALIZER)
}

/// Counts the Job's finished pods into `job.status` (succeeded, failed,
/// completedIndexes, failedIndexes), releasing each from the finalizer. The status is
/// written once before any finalizer goes; the caller writes the counts.
/// Returns the message of a pod failure policy rule that fails the Job.
pub async fn account(
    jobs: &Api<Job>,
    pods_api: &Api<Pod>,
    job: &mut Job,
    pods: &[Pod],
) -> kube::Result<Option<String>> {
    let indexed_completions = indexed_completions(job);
    let limits_per_index = per_index::limit(job).is_some();
    let status = job.status.get_or_insert_default();
    let uncounted = status.uncounted_terminated_pods.get_or_insert_default();
    let mut succeeded: BTreeSet<String> = uncounted
        .succeeded
        .take()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut failed: BTreeSet<String> = uncounted
        .failed
        .take()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut completed = indexed::parse(status.completed_indexes.as_deref());
    let mut failed_indexes = indexed::parse(status.failed_indexes.as_deref());
    let mut recorded = false;
    let mut ignored = Vec::new();
    let mut fail_job = None;
    for pod in pods.iter().filter(|p| has_finalizer(p)) {
        let uid = pod.uid().unwrap_or_default();
        if succeeded.contains(&uid) || failed.contains(&uid) {
            continue;
        }
        match outcome(pod, job) {
            Some(Outcome::Succeeded) => {
                if let (Some(completions), Some(index)) =
                    (indexed_completions, indexed::index_of(pod))
                    && index < completions
                {
                    completed.insert(index);
                }
                succeeded.insert(uid);
            }
            Some(Outcome::Failed) => {
                let judgement = failure_policy::judge(job, pod);
                if per_index::fails_index(job, pod, &judgement)
                    && let Some(index) = indexed::index_of(pod)
                {
                    failed_indexes.insert(index);
                }
                match judgement {
                    Judgement::Ignore => {
                        ignored.push(pod);
                        continue;
                    }
                    Judgement::FailJob(message) => {
                        fail_job.get_or_insert(message);
                        failed.insert(uid);
                    }
                    Judgement::Count | Judgement::FailIndex => {
                        failed.insert(uid);
                    }
                }
            }
            None => continue,
        }
        recorded = true;
    }
    let status = job.status.get_or_insert_default();
    if indexed_completions.is_some() {
        status.completed_indexes = Some(indexed::format(&completed));
    }
    if limits_per_index {
        status.failed_indexes = Some(indexed::format(&failed_indexes));
    }
    if recorded {
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: Some(succeeded.iter().cloned().collect()),
            failed: Some(failed.iter().cloned().collect()),
        });
        *job = jobs
            .replace_status(&job.name_any(), &PostParams::default(), job)
            .await?;
    }
    for pod in pods.iter().filter(|p| has_finalizer(p)) {
        let uid = pod.uid().unwrap_or_default();
        if succeeded.contains(&uid) || failed.contains(&uid) {
            release(pods_api, pod).await?;
        }
    }
    // An ignored failure is never counted, so it needs no record first.
    for pod in ignored {
        release(pods_api, pod).await?;
    }
    let status = job.status.get_or_insert_default();
    status.succeeded = super::nonzero(status.succeeded.unwrap_or(0) + count(&succeeded));
    status.failed = super::nonzero(status.failed.unwrap_or(0) + count(&failed));
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    Ok(fail_job)
}

/// `completions` of an Indexed Job; `None` for a NonIndexed one.
pub fn indexed_completions(job: &Job) -> Option<i32> {
    let spec = job.spec.as_ref()?;
    (spec.completion_mode.as_deref() == Some("Indexed")).then(|| spec.completions.unwrap_or(0))
}

fn count(uids: &BTreeSet<String>) -> i32 {
    i32::try_from(uids.len()).unwrap_or(i32::MAX)
}

/// Removes the tracking finalizer from the pod. The strategic merge patch
/// deletes only this entry, so others' finalizers added meanwhile stay; a
/// pod already gone is fine.
pub async fn release(pods_api: &Api<Pod>, pod: &Pod) -> kube::Result<()> {
    let patch =
        serde_json::json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER]}});
    match pods_api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other.map(drop),
    }
}
