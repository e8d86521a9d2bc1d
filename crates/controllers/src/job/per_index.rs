//! `backoffLimitPerIndex` for Indexed Jobs: each index has its own budget
//! of failures. Every pod carries how many times its index failed before
//! it (`batch.kubernetes.io/job-index-failure-count`); a pod failing with
//! that count at the limit, or a `FailIndex` rule of the pod failure
//! policy, fails its index for good (`status.failedIndexes`). The Job
//! fails once more indexes failed than `maxFailedIndexes`, or once every
//! index either completed or failed and some failed.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use super::conditions::{self, Verdict};
use super::failure_policy::{self, Judgement};
use super::indexed;
use super::tracking::{self, Outcome};

const FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-failure-count";

/// `backoffLimitPerIndex` of an Indexed Job that sets it.
pub fn limit(job: &Job) -> Option<i32> {
    tracking::indexed_completions(job)?;
    job.spec.as_ref()?.backoff_limit_per_index
}

/// The failures of its index before this pod, as its annotation says.
fn failure_count(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FAILURE_COUNT_KEY))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Whether the failed pod, judged `judgement`, fails its index for good.
pub fn fails_index(job: &Job, pod: &Pod, judgement: &Judgement) -> bool {
    let Some(limit) = limit(job) else {
        return false;
    };
    match judgement {
        Judgement::FailIndex => true,
        Judgement::Count => failure_count(pod) >= limit,
        Judgement::FailJob(_) | Judgement::Ignore => false,
    }
}

/// For each index with counted failures, the count its next pod carries:
/// one more than the last failed pod of that index carried.
pub fn next_failure_counts(job: &Job, pods: &[Pod]) -> BTreeMap<i32, i32> {
    let mut counts = BTreeMap::new();
    for pod in pods {
        let Some(index) = indexed::index_of(pod) else {
            continue;
        };
        if tracking::outcome(pod, job) != Some(Outcome::Failed)
            || failure_policy::judge(job, pod) == Judgement::Ignore
        {
            continue;
        }
        let next = failure_count(pod) + 1;
        let count = counts.entry(index).or_insert(next);
        *count = (*count).max(next);
    }
    counts
}

/// Records `count` failures of its index on a new pod.
pub fn mark(pod: &mut Pod, count: i32) {
    pod.metadata
        .annotations
        .get_or_insert_default()
        .insert(FAILURE_COUNT_KEY.to_owned(), count.to_string());
}

/// Whether the failed indexes end the Job, in the order Kubernetes checks.
pub fn verdict(
    job: &Job,
    failed: &BTreeSet<i32>,
    completed: &BTreeSet<i32>,
    completions: i32,
) -> Option<Verdict> {
    let max_failed = job.spec.as_ref()?.max_failed_indexes;
    let failed_count = i32::try_from(failed.len()).unwrap_or(i32::MAX);
    let done = i32::try_from(failed.union(completed).count()).unwrap_or(i32::MAX);
    if max_failed.is_some_and(|max| failed_count > max) {
        Some(conditions::MAX_FAILED_INDEXES_EXCEEDED)
    } else if failed_count > 0 && done >= completions {
        Some(conditions::FAILED_INDEXES)
    } else {
        None
    }
}
