//! The Job controller: runs a Job's pods until enough of them succeed
//! (`completions`, at most `parallelism` at once, each index once when
//! Indexed) or the Job fails (`backoffLimit`, `backoffLimitPerIndex` and
//! `maxFailedIndexes`, `activeDeadlineSeconds`), as
//! kube-controller-manager's job controller does; suspends and resumes it;
//! deletes it `ttlSecondsAfterFinished` after it ends. Finished pods are
//! kept, as Kubernetes keeps them, for their logs.
//!
//! Map:
//! - here: the control loop and one pass over a Job (verdict, pods to make
//!   or delete, status);
//! - `tracking`: finished pods counted through the job-tracking finalizer;
//! - `orphans`: that finalizer taken off pods whose Job is gone;
//! - `indexed`: completion indexes on pods and in `completedIndexes`;
//! - `per_index`: `backoffLimitPerIndex`, failure counts on pods and
//!   `failedIndexes`;
//! - `conditions`: the status conditions and the verdicts behind them;
//! - `failure_policy`: what `podFailurePolicy` makes of a failed pod;
//! - `ttl`: deleting finished Jobs.

mod conditions;
mod failure_policy;
mod indexed;
mod orphans;
mod per_index;
mod tracking;
mod ttl;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tugboat_events::{Recorder, Type};

use crate::pods::{self, controller_of, is_active, is_ready};
use crate::selector::Selector;
use conditions::Verdict;

/// The Job's terminal condition (`Complete` or `Failed`), if it has ended.
pub(crate) use conditions::finished as finished_condition;
use tracking::Outcome;

/// The pause before replacing a failed pod doubles with each failure since
/// the last success (with `backoffLimitPerIndex`, each failure of the pod's
/// index), from 10 s up to 10 minutes, as kube-controller-manager's
/// `MaxJobPodFailureBackOff` has it (the Job docs' "six minutes" is not
/// what the code does).
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(600);

struct Context {
    client: Client,
    recorder: Recorder,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let context = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), "job-controller", None),
    });
    let jobs = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .run(reconcile, retry, context)
        .for_each(|_| async {});
    let ((), orphans) = tokio::join!(jobs, orphans::run(client));
    orphans
}

fn retry(job: Arc<Job>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!(job = job.name_any(), "Job controller: {error}");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(cached: Arc<Job>, ctx: Arc<Context>) -> kube::Result<Action> {
    let namespace = cached.namespace().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    // The cache can lag behind our own last status write: read it afresh,
    // so that counts and conditions build on what the store holds.
    let Some(mut job) = jobs.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let pods = owned_pods(&pods_api, &job).await?;
    let before = job.status.clone();
    let fail_job = tracking::account(&jobs, &pods_api, &mut job, &pods).await?;
    let now = Timestamp::now();
    let mut next = Action::await_change();
    if conditions::finished(&job).is_none() {
        let mut pass = Pass {
            ctx: &ctx,
            pods_api: &pods_api,
            job: &mut job,
            now,
        };
        next = pass.run(&pods, fail_job).await?;
    }
    if job.status != before {
        job = jobs
            .replace_status(&job.name_any(), &PostParams::default(), &job)
            .await?;
    }
    if conditions::finished(&job).is_some() {
        next = ttl::expire(&jobs, &job, now).await?;
    }
    Ok(next)
}

/// The pods the Job controls: selected by its selector and owned by it.
async fn owned_pods(pods_api: &Api<Pod>, job: &Job) -> kube::Result<Vec<Pod>> {
    let selector = job.spec.as_ref().and_then(|s| s.selector.as_ref());
    let Ok(selects) = Selector::new(selector) else {
        return Ok(Vec::new());
    };
    // The API server narrows the list by the selector's plain labels; the
    // full selector (expressions too) is checked here.
    let query: Vec<String> = selector
        .and_then(|s| s.match_labels.as_ref())
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let listed = pods_api
        .list(&ListParams::default().labels(&query.join(",")))
        .await?;
    Ok(listed
        .items
        .into_iter()
        .filter(|pod| {
            selects.matches(pod.metadata.labels.as_ref())
                && controller_of(pod).is_some_and(|o| Some(&o.uid) == job.metadata.uid.as_ref())
        })
        .collect())
}

/// One pass over an unfinished Job, changing its status in memory.
struct Pass<'a> {
    ctx: &'a Context,
    pods_api: &'a Api<Pod>,
    job: &'a mut Job,
    now: Timestamp,
}

impl Pass<'_> {
    async fn run(&mut self, pods: &[Pod], fail_job: Option<String>) -> kube::Result<Action> {
        let suspended = self.job.spec.as_ref().and_then(|s| s.suspend) == Some(true);
        if !suspended {
            self.resume().await;
        }
        let mut active: Vec<&Pod> = pods.iter().filter(|p| is_active(p)).collect();
        let mut terminating = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p))
            .count();
        let status = self.job.status.get_or_insert_default();
        let verdict = conditions::decided(status)
            .or_else(|| fail_job.map(Verdict::pod_failure_policy))
            .or_else(|| self.judge(&active, suspended));
        let mut next = Action::await_change();
        if let Some(verdict) = verdict {
            self.set_condition(verdict.interim(), verdict.reason, &verdict.message);
            terminating += self.delete_pods(&active).await?;
            active.clear();
            if terminating == 0 {
                self.finish(verdict).await;
            }
        } else if suspended {
            terminating += self.delete_pods(&active).await?;
            active.clear();
            if self.set_condition(conditions::SUSPENDED, "JobSuspended", "Job suspended") {
                self.event(Type::Normal, "Suspended", "Job suspended".into())
                    .await;
            }
        } else {
            let (make, extra) = self.plan(pods, &active);
            terminating += self.delete_pods(&extra).await?;
            active.retain(|p| !extra.iter().any(|e| e.uid() == p.uid()));
            let (make, delay) = self.hold_back(make, pods);
            let made = self.create_pods(make, pods).await?;
            let wake = delay.into_iter().chain(self.deadline_left()).min();
            if let Some(wake) = wake {
                next = Action::requeue(wake);
            }
            let status = self.job.status.get_or_insert_default();
            status.active = nonzero(count(active.len() + made));
            status.ready = Some(count(active.iter().filter(|p| is_ready(p)).count()));
            status.terminating = Some(count(terminating));
            return Ok(next);
        }
        let status = self.job.status.get_or_insert_default();
        status.active = None;
        status.ready = Some(0);
        status.terminating = Some(count(terminating));
        Ok(next)
    }

    /// Starts the clock (`startTime`) of a Job that runs, and records a
    /// resumption after a suspension.
    async fn resume(&mut self) {
        let status = self.job.status.get_or_insert_default();
        let was_suspended = conditions::true_condition(status, conditions::SUSPENDED).is_some();
        if status.start_time.is_none() || was_suspended {
            status.start_time = Some(Time(self.now));
        }
        if was_suspended {
            self.set_condition_false(conditions::SUSPENDED, "JobResumed", "Job resumed");
            self.event(Type::Normal, "Resumed", "Job resumed".into())
                .await;
        }
    }

    /// Whether the Job has now met its completions or failed, in the order
    /// Kubernetes checks.
    fn judge(&self, active: &[&Pod], suspended: bool) -> Option<Verdict> {
        let spec = self.job.spec.as_ref()?;
        let status = self.job.status.as_ref()?;
        let succeeded = status.succeeded.unwrap_or(0);
        let completed = indexed::parse(status.completed_indexes.as_deref());
        let complete = match (tracking::indexed_completions(self.job), spec.completions) {
            (Some(completions), _) => count(completed.len()) >= completions,
            (None, Some(completions)) => succeeded >= completions,
            // A work queue is done once a pod succeeded and none is left.
            (None, None) => succeeded > 0 && active.is_empty(),
        };
        let failed_indexes = indexed::parse(status.failed_indexes.as_deref());
        let index_verdict = tracking::indexed_completions(self.job)
            .filter(|_| per_index::limit(self.job).is_some())
            .and_then(|completions| {
                per_index::verdict(self.job, &failed_indexes, &completed, completions)
            });
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let success_rule = spec
            .success_policy
            .as_ref()
            .and_then(|policy| indexed::success_rule_met(policy, &completed));
        if let Some(message) = success_rule {
            Some(Verdict::success_policy(message))
        } else if status.failed.unwrap_or(0) > backoff_limit
            || past_backoff_limit_on_failure(self.job, active, backoff_limit)
        {
            Some(conditions::BACKOFF_LIMIT_EXCEEDED)
        } else if !suspended && self.deadline_left() == Some(Duration::ZERO) {
            Some(conditions::DEADLINE_EXCEEDED)
        } else if index_verdict.is_some() {
            index_verdict
        } else if complete {
            Some(conditions::COMPLETIONS_REACHED)
        } else {
            None
        }
    }

    /// Time left before `activeDeadlineSeconds`, zero once past it.
    fn deadline_left(&self) -> Option<Duration> {
        let seconds = self.job.spec.as_ref()?.active_deadline_seconds?;
        let start = self.job.status.as_ref()?.start_time.as_ref()?.0;
        let deadline = start + SignedDuration::from_secs(seconds);
        Some(Duration::try_from(deadline.duration_since(self.now)).unwrap_or(Duration::ZERO))
    }

    /// The indexes of pods to make (`None` for a NonIndexed Job) and the
    /// active pods beyond what the Job wants.
    fn plan<'p>(&self, pods: &'p [Pod], active: &[&'p Pod]) -> (Vec<Option<i32>>, Vec<&'p Pod>) {
        let spec = self.job.spec.clone().unwrap_or_default();
        let status = self.job.status.clone().unwrap_or_default();
        let parallelism = usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
        // With `podReplacementPolicy: Failed` a terminating pod still
        // holds its place until it is gone.
        let holding = if tracking::replaces_terminating(self.job) {
            0
        } else {
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p))
                .count()
        };
        if let Some(completions) = tracking::indexed_completions(self.job) {
            // Failed indexes are done too: they get no more pods.
            let mut done = indexed::parse(status.completed_indexes.as_deref());
            done.extend(indexed::parse(status.failed_indexes.as_deref()));
            let room = parallelism.saturating_sub(holding);
            return plan_indexed(completions, &done, active, room);
        }
        let succeeded = status.succeeded.unwrap_or(0);
        let wanted = match spec.completions {
            Some(completions) => {
                parallelism.min(usize::try_from(completions - succeeded).unwrap_or(0))
            }
            // A work queue makes no new pods once one succeeded.
            None if succeeded > 0 => active.len(),
            None => parallelism,
        };
        let have = active.len() + holding;
        if have <= wanted {
            return (vec![None; wanted - have], Vec::new());
        }
        let mut by_preference = active.to_vec();
        // Delete first the pods that are not ready, then the newest.
        by_preference.sort_by_key(|p| {
            let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            (is_ready(p), std::cmp::Reverse(created))
        });
        by_preference.truncate(have - wanted);
        (Vec::new(), by_preference)
    }

    /// The pods of `make` that may be made now, and how long until the
    /// others may: with `backoffLimitPerIndex` each index waits out the
    /// back-off of its own failures, otherwise all wait out the Job's.
    fn hold_back(
        &self,
        make: Vec<Option<i32>>,
        pods: &[Pod],
    ) -> (Vec<Option<i32>>, Option<Duration>) {
        if make.is_empty() {
            return (make, None);
        }
        if per_index::limit(self.job).is_some() {
            return per_index::due(self.job, pods, make, self.now);
        }
        match creation_delay(self.job, pods, self.now) {
            Some(delay) => (Vec::new(), Some(delay)),
            None => (make, None),
        }
    }

    /// Makes a pod for each of `indexes` (`None`: a NonIndexed pod); with
    /// `backoffLimitPerIndex` each carries its index's failures in `pods`.
    async fn create_pods(&self, indexes: Vec<Option<i32>>, pods: &[Pod]) -> kube::Result<usize> {
        let failures =
            per_index::limit(self.job).map(|_| per_index::next_failure_counts(self.job, pods));
        let name = self.job.name_any();
        let namespace = self.job.namespace().unwrap_or_default();
        let template = self
            .job
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let owner = OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: name.clone(),
            uid: self.job.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let mut made = 0;
        for index in indexes {
            let generate_name = match index {
                Some(i) => format!("{name}-{i}-"),
                None => format!("{name}-"),
            };
            let mut pod = pods::from_template(&template, &namespace, &generate_name, owner.clone());
            pod.metadata
                .finalizers
                .get_or_insert_default()
                .push(tracking::FINALIZER.to_owned());
            if let Some(i) = index {
                indexed::mark(&mut pod, &name, i);
                if let Some(failures) = &failures {
                    per_index::mark(&mut pod, failures.get(&i).copied().unwrap_or_default());
                }
            }
            let created = self.pods_api.create(&PostParams::default(), &pod).await?;
            made += 1;
            let message = format!("Created pod: {}", created.name_any());
            self.event(Type::Normal, "SuccessfulCreate", message).await;
        }
        Ok(made)
    }

    /// Deletes the pods, returning how many began terminating.
    async fn delete_pods(&self, doomed: &[&Pod]) -> kube::Result<usize> {
        let mut deleted = 0;
        for pod in doomed {
            match self
                .pods_api
                .delete(&pod.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {
                    deleted += 1;
                    let message = format!("Deleted pod: {}", pod.name_any());
                    self.event(Type::Normal, "SuccessfulDelete", message).await;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// The terminal condition, once no pod of the Job runs any more.
    async fn finish(&mut self, verdict: Verdict) {
        self.set_condition(verdict.terminal(), verdict.reason, &verdict.message);
        if verdict.success {
            let status = self.job.status.get_or_insert_default();
            status.completion_time = Some(Time(self.now));
            self.event(Type::Normal, "Completed", "Job completed".into())
                .await;
        } else {
            self.event(Type::Warning, verdict.reason, verdict.message.into_owned())
                .await;
        }
    }

    fn set_condition(&mut self, type_: &str, reason: &str, message: &str) -> bool {
        let status = self.job.status.get_or_insert_default();
        conditions::set(status, type_, true, reason, message, self.now)
    }

    fn set_condition_false(&mut self, type_: &str, reason: &str, message: &str) -> bool {
        let status = self.job.status.get_or_insert_default();
        conditions::set(status, type_, false, reason, message, self.now)
    }

    async fn event(&self, kind: Type, reason: &str, message: String) {
        self.ctx
            .recorder
            .record(&*self.job, kind, reason, message)
            .await;
    }
}

/// For an Indexed Job: the lowest indexes neither done (completed or
/// failed) nor running, as many as `room` allows, and the pods whose index
/// is done, out of range or run twice.
fn plan_indexed<'p>(
    completions: i32,
    completed: &BTreeSet<i32>,
    active: &[&'p Pod],
    room: usize,
) -> (Vec<Option<i32>>, Vec<&'p Pod>) {
    let mut running = BTreeSet::new();
    let mut extra = Vec::new();
    for pod in active {
        match indexed::index_of(pod) {
            Some(i) if i < completions && !completed.contains(&i) && running.insert(i) => {}
            _ => extra.push(*pod),
        }
    }
    let make = (0..completions)
        .filter(|i| !completed.contains(i) && !running.contains(i))
        .take(room.saturating_sub(running.len()))
        .map(Some)
        .collect();
    (make, extra)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// With `restartPolicy: OnFailure` failures restart containers in place:
/// the restarts of the running pods count against `backoffLimit`.
fn past_backoff_limit_on_failure(job: &Job, active: &[&Pod], backoff_limit: i32) -> bool {
    let policy = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if policy != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = active
        .iter()
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if backoff_limit == 0 {
        restarts > 0
    } else {
        restarts >= backoff_limit
    }
}

/// How long to wait before replacing failed pods of a Job without
/// `backoffLimitPerIndex`: the back-off after the failures since the last
/// success (ignored ones aside), from the last failure's end.
fn creation_delay(job: &Job, pods: &[Pod], now: Timestamp) -> Option<Duration> {
    let ended = |outcome| {
        pods.iter()
            .filter(move |p| tracking::outcome(p, job) == Some(outcome))
            .filter(move |p| {
                outcome == Outcome::Succeeded
                    || failure_policy::judge(job, p) != failure_policy::Judgement::Ignore
            })
            .filter_map(finished_at)
    };
    let last_success = ended(Outcome::Succeeded).max();
    let failures: Vec<Timestamp> = ended(Outcome::Failed)
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = failures.iter().max()?;
    back_off_left(
        u32::try_from(failures.len()).unwrap_or(u32::MAX),
        *last,
        now,
    )
}

/// What is left at `now` of the back-off after `failures` failures, the
/// last ending at `last`: 10 s, doubled for each failure after the first,
/// at most 10 minutes; `None` once it is over.
fn back_off_left(failures: u32, last: Timestamp, now: Timestamp) -> Option<Duration> {
    let doublings = failures.saturating_sub(1);
    let delay = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(BACKOFF_MAX);
    let ready_at = last + SignedDuration::try_from(delay).ok()?;
    Duration::try_from(ready_at.duration_since(now))
        .ok()
        .filter(|d| !d.is_zero())
}

/// When the pod ended: its last container's exit, or its deletion.
fn finished_at(pod: &Pod) -> Option<Timestamp> {
    let exited = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    exited.or(pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Counts Kubernetes leaves out of the status when zero (`omitempty`).
pub fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}
