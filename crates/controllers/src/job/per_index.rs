//! `backoffLimitPerIndex` for Indexed Jobs: each index has its own budget
//! of failures. Every pod carries how many times its index failed before
//! it (`batch.kubernetes.io/job-index-failure-count`, and in
//! `job-index-ignored-failure-count` the failures the pod failure policy
//! ignored); a pod failing with the first count at the limit, or a
//! `FailIndex` rule of the pod failure policy, fails its index for good
//! (`status.failedIndexes`). The Job fails once more indexes failed than
//! `maxFailedIndexes`, or once every index either completed or failed and
//! some failed. A failed index gets its next pod after the back-off of all
//! its own failures, not the Job's.

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
const IGNORED_COUNT_KEY: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// `backoffLimitPerIndex` of an Indexed Job that sets it.
pub fn limit(job: &Job) -> Option<i32> {
    tracking::indexed_completions(job)?;
    job.spec.as_ref()?.backoff_limit_per_index
}

/// The failures of its index before this pod, as its annotation says.
fn failure_count(pod: &Pod) -> i32 {
    annotation(pod, FAILURE_COUNT_KEY)
}

/// A count annotation of the pod; 0 when missing or not a count, as
/// Kubernetes reads it.
fn annotation(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|c| c.parse().ok())
        .filter(|c: &i32| *c >= 0)
        .unwrap_or(0)
}

/// How many times a pod's index failed before it, counted or ignored by
/// the pod failure policy (the two annotations Kubernetes keeps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failures {
    pub counted: i32,
    pub ignored: i32,
}

impl Failures {
    fn of(pod: &Pod) -> Failures {
        Failures {
            counted: failure_count(pod),
            ignored: annotation(pod, IGNORED_COUNT_KEY),
        }
    }

    /// All of them: what the back-off of the index goes by.
    fn all(self) -> i32 {
        self.counted.saturating_add(self.ignored)
    }
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

/// For each index that failed, its last failed pod: the one carrying the
/// most failures, the last to end of those (Kubernetes'
/// `getPodsWithDelayedDeletionPerIndex`). Failures the pod failure policy
/// ignores count here: they add to the back-off, not to the limit.
fn last_failed<'p>(job: &Job, pods: &'p [Pod]) -> BTreeMap<i32, &'p Pod> {
    let mut last: BTreeMap<i32, &Pod> = BTreeMap::new();
    for pod in pods {
        let Some(index) = indexed::index_of(pod) else {
            continue;
        };
        if tracking::outcome(pod, job) != Some(Outcome::Failed) {
            continue;
        }
        let later = |p: &Pod| (Failures::of(p).all(), finished_at(p));
        if last.get(&index).is_none_or(|l| later(pod) >= later(l)) {
            last.insert(index, pod);
        }
    }
    last
}

/// For each index that failed, the failures its next pod carries: those
/// its last failed pod carried, and that pod's own, counted or ignored as
/// the pod failure policy judges it (Kubernetes' `getNewIndexFailureCounts`).
pub fn next_failure_counts(job: &Job, pods: &[Pod]) -> BTreeMap<i32, Failures> {
    last_failed(job, pods)
        .into_iter()
        .map(|(index, pod)| {
            let mut next = Failures::of(pod);
            if failure_policy::judge(job, pod) == Judgement::Ignore {
                next.ignored = next.ignored.saturating_add(1);
            } else {
                next.counted = next.counted.saturating_add(1);
            }
            (index, next)
        })
        .collect()
}

/// The indexes of `make` whose pods may be made at `now`, and how long
/// until the first of the others may. Each index waits out the back-off of
/// its own failures (all its last failed pod carried, and that pod's),
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
            let failures = u32::try_from(Failures::of(pod).all() + 1).unwrap_or(u32::MAX);
            back_off_left(failures, finished_at(pod)?, now)
        });
        match left {
            Some(left) => wait = Some(wait.map_or(left, |w| w.min(left))),
            None => now_due.push(index),
        }
    }
    (now_due, wait)
}

/// Records the earlier failures of its index on a new pod; the ignored
/// ones only when there are some, as Kubernetes writes them.
pub fn mark(pod: &mut Pod, failures: Failures) {
    let annotations = pod.metadata.annotations.get_or_insert_default();
    annotations.insert(FAILURE_COUNT_KEY.to_owned(), failures.counted.to_string());
    if failures.ignored > 0 {
        annotations.insert(IGNORED_COUNT_KEY.to_owned(), failures.ignored.to_string());
    }
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

    /// Exit code 42 is ignored by the pod failure policy.
    fn job() -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "j"},
            "spec": {
                "completionMode": "Indexed", "completions": 3, "parallelism": 3,
                "backoffLimitPerIndex": 5, "template": {},
                "podFailurePolicy": {"rules": [
                    {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}},
                ]},
            },
        }))
        .unwrap()
    }

    /// A pod of `index` that carried `before` and failed with `exit_code`
    /// at `ended`.
    fn failed(index: i32, before: Failures, exit_code: i32, ended: Timestamp) -> Pod {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("j-{index}-{}-{}", before.counted, before.ignored)},
            "status": {
                "phase": "Failed",
                "containerStatuses": [{
                    "name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": exit_code, "finishedAt": ended.to_string()}},
                }],
            },
        }))
        .unwrap();
        indexed::mark(&mut pod, "j", index);
        mark(&mut pod, before);
        pod
    }

    fn counts(counted: i32, ignored: i32) -> Failures {
        Failures { counted, ignored }
    }

    #[test]
    fn each_index_waits_out_the_back_off_of_its_own_failures() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let ago = |s: i64| now - SignedDuration::from_secs(s);
        let pods = [
            // Index 0 failed three times, the last 30 s ago: 40 s of
            // back-off, 10 s left.
            failed(0, counts(0, 0), 1, ago(100)),
            failed(0, counts(1, 0), 1, ago(60)),
            failed(0, counts(2, 0), 1, ago(30)),
            // Index 1 failed once, 15 s ago: its 10 s are over. Counted
            // with index 0's failures (four, the last 15 s ago) it would
            // still wait 65 s.
            failed(1, counts(0, 0), 1, ago(15)),
        ];
        let (now_due, wait) = due(&job(), &pods, vec![Some(0), Some(1), Some(2)], now);
        assert_eq!(now_due, [Some(1), Some(2)]);
        assert_eq!(wait, Some(Duration::from_secs(10)));
        assert_eq!(
            next_failure_counts(&job(), &pods),
            BTreeMap::from([(0, counts(3, 0)), (1, counts(1, 0))])
        );

        // Once index 0's back-off is over it is due too, and nothing waits.
        let later = now + SignedDuration::from_secs(10);
        assert_eq!(
            due(&job(), &pods, vec![Some(0)], later),
            (vec![Some(0)], None)
        );
    }

    #[test]
    fn ignored_failures_add_to_the_back_off_but_not_to_the_limit() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let ago = |s: i64| now - SignedDuration::from_secs(s);
        // A counted failure 100 s ago, then an ignored one 15 s ago: two
        // failures, 20 s of back-off, 5 s left. The counted one alone
        // would have been over long ago.
        let pods = [
            failed(0, counts(0, 0), 1, ago(100)),
            failed(0, counts(1, 0), 42, ago(15)),
        ];
        assert_eq!(
            due(&job(), &pods, vec![Some(0)], now),
            (vec![], Some(Duration::from_secs(5)))
        );
        let next = next_failure_counts(&job(), &pods);
        assert_eq!(next, BTreeMap::from([(0, counts(1, 1))]));
        let mut pod = Pod::default();
        mark(&mut pod, next[&0]);
        assert_eq!(Failures::of(&pod), counts(1, 1));
        let mut first = Pod::default();
        mark(&mut first, counts(0, 0));
        let written = first.metadata.annotations.unwrap_or_default();
        assert_eq!(
            written.into_iter().collect::<Vec<_>>(),
            [(FAILURE_COUNT_KEY.to_owned(), "0".to_owned())],
            "no ignored count while there is none"
        );
    }
}
