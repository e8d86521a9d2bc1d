//! `backoffLimitPerIndex` for Indexed Jobs: each index has its own budget
//! of failures. Every pod carries how many times its index failed before
//! it (`batch.kubernetes.io/job-index-failure-count`); a pod failing with
//! that count at the limit, or a `FailIndex` rule of the pod failure
//! policy, fails its index for good (`status.failedIndexes`). The Job
//! fails once more indexes failed than `maxFailedIndexes`, or once every
//! index either completed or failed and some failed. A failed index gets
//! its next pod after the back-off of its own failures, not the Job's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

use super::conditions::{self, Verdict};
use super::failure_policy::{self, Judgement};
use super::indexed;
use super::tracking::{self, Outcome};
use super::{back_off_left, finished_at};

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

/// For each index with counted failures, its last failed pod: the one
/// carrying the most failures, the last to end of those.
fn last_failed<'p>(job: &Job, pods: &'p [Pod]) -> BTreeMap<i32, &'p Pod> {
    let mut last: BTreeMap<i32, &Pod> = BTreeMap::new();
    for pod in pods {
        let Some(index) = indexed::index_of(pod) else {
            continue;
        };
        if tracking::outcome(pod, job) != Some(Outcome::Failed)
            || failure_policy::judge(job, pod) == Judgement::Ignore
        {
            continue;
        }
        let later = |p: &Pod| (failure_count(p), finished_at(p));
        if last.get(&index).is_none_or(|l| later(pod) >= later(l)) {
            last.insert(index, pod);
        }
    }
    last
}

/// For each index with counted failures, the count its next pod carries:
/// one more than the last failed pod of that index carried.
pub fn next_failure_counts(job: &Job, pods: &[Pod]) -> BTreeMap<i32, i32> {
    last_failed(job, pods)
        .into_iter()
        .map(|(index, pod)| (index, failure_count(pod) + 1))
        .collect()
}

/// The indexes of `make` whose pods may be made at `now`, and how long
/// until the first of the others may. Each index waits out the back-off of
/// its own failures (those its last failed pod carried, and that pod's),
/// from that pod's end, as Kubernetes' `getRemainingTimePerIndex` does:
/// one index failing often delays no other.
pub fn due(
    job: &Job,
    pods: &[Pod],
    make: Vec<Option<i32>>,
    now: Timestamp,
) -> (Vec<Option<i32>>, Option<Duration>) {
    let last = last_failed(job, pods);
    let mut wait: Option<Duration> = None;
    let mut now_due = Vec::new();
    for index in make {
        let left = index.and_then(|i| last.get(&i)).and_then(|pod| {
            let failures = u32::try_from(failure_count(pod) + 1).unwrap_or(u32::MAX);
            back_off_left(failures, finished_at(pod)?, now)
        });
        match left {
            Some(left) => wait = Some(wait.map_or(left, |w| w.min(left))),
            None => now_due.push(index),
        }
    }
    (now_due, wait)
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

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use serde_json::json;

    fn job() -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {
                "completionMode": "Indexed", "completions": 3, "parallelism": 3,
                "backoffLimitPerIndex": 5, "template": {},
            },
        }))
        .unwrap()
    }

    /// A failed pod of `index` that carried `failures` earlier failures of
    /// its index and ended at `ended`.
    fn failed(index: i32, failures: i32, ended: Timestamp) -> Pod {
        let annotations = BTreeMap::from([
            (indexed::INDEX_KEY, index.to_string()),
            (FAILURE_COUNT_KEY, failures.to_string()),
        ]);
        serde_json::from_value(json!({
            "metadata": {"name": format!("j-{index}-{failures}"), "annotations": annotations},
            "status": {
                "phase": "Failed",
                "containerStatuses": [{
                    "name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 1, "finishedAt": ended.to_string()}},
                }],
            },
        }))
        .unwrap()
    }

    #[test]
    fn each_index_waits_out_the_back_off_of_its_own_failures() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let ago = |s: i64| now - SignedDuration::from_secs(s);
        let pods = [
            // Index 0 failed three times, the last 30 s ago: 40 s of
            // back-off, 10 s left.
            failed(0, 0, ago(100)),
            failed(0, 1, ago(60)),
            failed(0, 2, ago(30)),
            // Index 1 failed once, 15 s ago: its 10 s are over. Counted
            // with index 0's failures (four, the last 15 s ago) it would
            // still wait 65 s.
            failed(1, 0, ago(15)),
        ];
        let (now_due, wait) = due(&job(), &pods, vec![Some(0), Some(1), Some(2)], now);
        assert_eq!(now_due, [Some(1), Some(2)]);
        assert_eq!(wait, Some(Duration::from_secs(10)));
        assert_eq!(
            next_failure_counts(&job(), &pods),
            BTreeMap::from([(0, 3), (1, 1)])
        );

        // Once index 0's back-off is over it is due too, and nothing waits.
        let later = now + SignedDuration::from_secs(10);
        assert_eq!(
            due(&job(), &pods, vec![Some(0)], later),
            (vec![Some(0)], None)
        );
    }
}
