//! The CronJob controller: makes a Job from the template at each time the
//! schedule names, as kube-controller-manager's cronjob controller (v2)
//! does. Standard five-field schedules and the `@hourly`-style descriptors
//! (parsed by `croner`), `@every <duration>`, in `spec.timeZone`, a
//! `CRON_TZ=`/`TZ=` prefix or the controller's local zone (jiff's zone
//! database). After downtime only the most recent missed time is run, and
//! none older than `startingDeadlineSeconds`. Jobs are named
//! `<cronjob>-<scheduled time in minutes since the epoch>`, so a time is
//! never run twice; finished Jobs are pruned to the history limits.

use std::sync::Arc;
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use futures::StreamExt;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tugboat_events::{Recorder, Type};

use crate::job::finished_condition;

/// The annotation that tells a Job which scheduled time it runs for.
const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Beyond this many missed times the controller warns, as Kubernetes does.
const TOO_MANY_MISSED: usize = 100;
/// Looking again a little after the next time, so that it has come.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

struct Context {
    client: Client,
    recorder: Recorder,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let context = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), "cronjob-controller", None),
    });
    Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<Job>::all(client), watcher::Config::default())
    .run(reconcile, retry, context)
    .for_each(|_| async {})
    .await;
    Ok(())
}

fn retry(cron_job: Arc<CronJob>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!(cronjob = cron_job.name_any(), "CronJob controller: {error}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(cached: Arc<CronJob>, ctx: Arc<Context>) -> kube::Result<Action> {
    let namespace = cached.namespace().unwrap_or_default();
    let cron_jobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    // Read afresh: the cache may not hold our last status write yet, and
    // `lastScheduleTime` is what keeps a time from running twice.
    let Some(mut cron_job) = cron_jobs.get_opt(&cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let owned: Vec<Job> = jobs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|job| is_controlled_by(job, &cron_job))
        .collect();
    let before = cron_job.status.clone();
    let mut pass = Pass {
        ctx: &ctx,
        jobs: &jobs,
        cron_job: &mut cron_job,
        now: Timestamp::now(),
    };
    pass.track(&owned).await?;
    let next = if pass.cron_job.metadata.deletion_timestamp.is_none() {
        pass.schedule().await?
    } else {
        None
    };
    pass.prune(&owned).await?;
    if cron_job.status != before {
        cron_jobs
            .replace_status(&cron_job.name_any(), &PostParams::default(), &cron_job)
            .await?;
    }
    Ok(next.map_or_else(Action::await_change, Action::requeue))
}

fn is_controlled_by(job: &Job, cron_job: &CronJob) -> bool {
    job.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == cron_job.metadata.uid.as_ref())
}

/// One pass over a CronJob, changing its status in memory.
struct Pass<'a> {
    ctx: &'a Context,
    jobs: &'a Api<Job>,
    cron_job: &'a mut CronJob,
    now: Timestamp,
}

impl Pass<'_> {
    /// Brings `status.active` and `lastSuccessfulTime` up to date with the
    /// Jobs that exist.
    async fn track(&mut self, owned: &[Job]) -> kube::Result<()> {
        for job in owned {
            let active = self.is_active(job);
            match finished_condition(job) {
                None if !active => {
                    let message = format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        job.name_any()
                    );
                    self.event(Type::Warning, "UnexpectedJob", message).await;
                }
                None => {}
                Some(condition) => {
                    if active {
                        self.forget(job);
                        let message = format!(
                            "Saw completed job: {}, condition: {}",
                            job.name_any(),
                            condition.type_
                        );
                        self.event(Type::Normal, "SawCompletedJob", message).await;
                    }
                    let completed = job.status.as_ref().and_then(|s| s.completion_time.clone());
                    let status = self.cron_job.status.get_or_insert_default();
                    if completed > status.last_successful_time {
                        status.last_successful_time = completed;
                    }
                }
            }
        }
        let listed: Vec<String> = owned.iter().filter_map(|j| j.uid()).collect();
        let active = self.cron_job.status.as_ref().and_then(|s| s.active.clone());
        for reference in active.into_iter().flatten() {
            let uid = reference.uid.clone().unwrap_or_default();
            if listed.contains(&uid) {
                continue;
            }
            let name = reference.name.clone().unwrap_or_default();
            // The list may be older than a Job just made: ask for it by name.
            if self.jobs.get_opt(&name).await?.is_none() {
                self.forget_uid(&uid);
                let message = format!("Active job went missing: {name}");
                self.event(Type::Normal, "MissingJob", message).await;
            }
        }
        Ok(())
    }

    /// Starts the Job for the most recent time due, if any is; returns when
    /// to look again.
    async fn schedule(&mut self) -> kube::Result<Option<Duration>> {
        let spec = self.cron_job.spec.clone().unwrap_or_default();
        if spec.suspend == Some(true) {
            return Ok(None);
        }
        let schedule = match Schedule::of(&spec.schedule, spec.time_zone.as_deref()) {
            Ok(schedule) => schedule,
            Err((reason, message)) => {
                self.event(Type::Warning, reason, message).await;
                return Ok(None);
            }
        };
        let last = self.last_schedule_time();
        let mut earliest = last.unwrap_or_else(|| self.created());
        if let Some(seconds) = spec.starting_deadline_seconds {
            earliest = earliest.max(self.now - SignedDuration::from_secs(seconds));
        }
        let (missed, due) = schedule.missed(earliest, self.now);
        let next = schedule
            .next_after(self.now)
            .and_then(|t| Duration::try_from(t.duration_since(self.now)).ok())
            .map(|d| d + NEXT_SCHEDULE_DELTA);
        let Some(due) = due else {
            return Ok(next);
        };
        if missed > TOO_MANY_MISSED {
            let message = "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew";
            self.event(Type::Warning, "TooManyMissedTimes", message.into())
                .await;
        }
        if last == Some(due) {
            return Ok(next);
        }
        if spec.concurrency_policy.as_deref() == Some("Forbid") && !self.active().is_empty() {
            let message = "Not starting job because prior execution is running and concurrency policy is Forbid";
            self.event(Type::Normal, "JobAlreadyActive", message.into())
                .await;
            return Ok(next);
        }
        if spec.concurrency_policy.as_deref() == Some("Replace") {
            for reference in self.active() {
                let name = reference.name.clone().unwrap_or_default();
                self.delete_job(&name).await?;
                self.forget_uid(reference.uid.as_deref().unwrap_or_default());
            }
        }
        let job = self.job_for(due, &schedule.zone);
        let made = match self.jobs.create(&PostParams::default(), &job).await {
            Ok(made) => {
                let message = format!("Created job {}", made.name_any());
                self.event(Type::Normal, "SuccessfulCreate", message).await;
                made
            }
            // Made in an earlier pass whose status write was lost.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                match self.jobs.get_opt(&job.name_any()).await? {
                    Some(existing) if is_controlled_by(&existing, self.cron_job) => existing,
                    _ => return Err(kube::Error::Api(e)),
                }
            }
            Err(e) => {
                let message = format!("Error creating job: {e}");
                self.event(Type::Warning, "FailedCreate", message).await;
                return Err(e);
            }
        };
        if finished_condition(&made).is_none() && !self.is_active(&made) {
            let reference = reference_to(&made);
            let status = self.cron_job.status.get_or_insert_default();
            status.active.get_or_insert_default().push(reference);
        }
        let status = self.cron_job.status.get_or_insert_default();
        status.last_schedule_time = Some(Time(due));
        Ok(next)
    }

    /// Deletes the oldest finished Jobs beyond the history limits.
    async fn prune(&mut self, owned: &[Job]) -> kube::Result<()> {
        let spec = self.cron_job.spec.clone().unwrap_or_default();
        for (limit, type_) in [
            (spec.successful_jobs_history_limit, "Complete"),
            (spec.failed_jobs_history_limit, "Failed"),
        ] {
            let Some(limit) = limit.and_then(|l| usize::try_from(l).ok()) else {
                continue;
            };
            let mut finished: Vec<&Job> = owned
                .iter()
                .filter(|j| finished_condition(j).is_some_and(|c| c.type_ == type_))
                .collect();
            // Oldest first by start time, Jobs never started last, as
            // Kubernetes sorts them.
            finished.sort_by_key(|j| {
                let start = j.status.as_ref().and_then(|s| s.start_time.clone());
                (start.is_none(), start, j.name_any())
            });
            let excess = finished.len().saturating_sub(limit);
            for job in &finished[..excess] {
                self.delete_job(&job.name_any()).await?;
            }
        }
        Ok(())
    }

    /// A new Job for the scheduled time, from the template.
    fn job_for(&self, scheduled: Timestamp, zone: &TimeZone) -> Job {
        let spec = self.cron_job.spec.clone().unwrap_or_default();
        let template = spec.job_template;
        let meta = template.metadata.unwrap_or_default();
        let mut annotations = meta.annotations.unwrap_or_default();
        annotations.insert(SCHEDULED_TIMESTAMP.to_owned(), rfc3339_in(scheduled, zone));
        let minutes = scheduled.as_second().div_euclid(60);
        Job {
            metadata: ObjectMeta {
                name: Some(format!("{}-{minutes}", self.cron_job.name_any())),
                labels: meta.labels,
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "CronJob".into(),
                    name: self.cron_job.name_any(),
                    uid: self.cron_job.uid().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: template.spec,
            status: None,
        }
    }

    async fn delete_job(&self, name: &str) -> kube::Result<()> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match self.jobs.delete(name, &params).await {
            Ok(_) => {
                let message = format!("Deleted job {name}");
                self.event(Type::Normal, "SuccessfulDelete", message).await;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn active(&self) -> Vec<ObjectReference> {
        let status = self.cron_job.status.as_ref();
        status.and_then(|s| s.active.clone()).unwrap_or_default()
    }

    fn is_active(&self, job: &Job) -> bool {
        self.active().iter().any(|r| r.uid == job.uid())
    }

    fn forget(&mut self, job: &Job) {
        self.forget_uid(&job.uid().unwrap_or_default());
    }

    fn forget_uid(&mut self, uid: &str) {
        let status = self.cron_job.status.get_or_insert_default();
        if let Some(active) = status.active.as_mut() {
            active.retain(|r| r.uid.as_deref() != Some(uid));
            if active.is_empty() {
                status.active = None;
            }
        }
    }

    fn last_schedule_time(&self) -> Option<Timestamp> {
        let status = self.cron_job.status.as_ref()?;
        status.last_schedule_time.as_ref().map(|t| t.0)
    }

    fn created(&self) -> Timestamp {
        let created = self.cron_job.metadata.creation_timestamp.as_ref();
        created.map_or(self.now, |t| t.0)
    }

    async fn event(&self, kind: Type, reason: &str, message: String) {
        self.ctx
            .recorder
            .record(&*self.cron_job, kind, reason, message)
            .await;
    }
}

fn reference_to(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some(Job::api_version(&()).into_owned()),
        kind: Some(Job::kind(&()).into_owned()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// RFC 3339 in the schedule's zone, as Go formats it (`Z` for UTC).
fn rfc3339_in(time: Timestamp, zone: &TimeZone) -> String {
    let zoned = time.to_zoned(zone.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// A parsed schedule in its time zone.
struct Schedule {
    times: Times,
    zone: TimeZone,
}

enum Times {
    Cron(Box<Cron>),
    /// `@every <duration>`: that long after the previous time.
    Every(SignedDuration),
}

impl Schedule {
    /// Parses `schedule`, or says why not as an event (reason, message).
    fn of(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, (&'static str, String)> {
        let mut text = schedule.trim();
        let mut zone_name = time_zone;
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let (zone, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                zone_name = Some(zone);
                text = rest.trim();
            }
        }
        let zone = match zone_name {
            Some(name) => TimeZone::get(name).map_err(|e| {
                (
                    "UnknownTimeZone",
                    format!("invalid timeZone: {name:?}: {e}"),
                )
            })?,
            None => TimeZone::system(),
        };
        let unparseable = |why: String| {
            (
                "UnparseableSchedule",
                format!("unparseable schedule: {schedule:?} : {why}"),
            )
        };
        let times = if let Some(every) = text.strip_prefix("@every ") {
            let every: SignedDuration = every
                .trim()
                .parse()
                .map_err(|e| unparseable(format!("{e}")))?;
            // Like robfig/cron, at least a second apart, on whole seconds.
            Times::Every(SignedDuration::from_secs(every.as_secs().max(1)))
        } else {
            // `@midnight` is robfig/cron's other name for `@daily`.
            let text = if text == "@midnight" { "@daily" } else { text };
            let parser = CronParser::builder()
                .seconds(Seconds::Disallowed)
                .year(Year::Disallowed)
                .build();
            Times::Cron(Box::new(
                parser.parse(text).map_err(|e| unparseable(e.to_string()))?,
            ))
        };
        Ok(Schedule { times, zone })
    }

    /// The first time strictly after `after`.
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.times {
            Times::Cron(cron) => {
                let from = after.to_zoned(self.zone.clone());
                cron.find_next_occurrence(&from, false)
                    .ok()
                    .map(|z| z.timestamp())
            }
            Times::Every(every) => Some(
                after
                    .checked_add(*every)
                    .ok()?
                    .round(jiff::Unit::Second)
                    .ok()?,
            ),
        }
    }

    /// How many times fell after `earliest` up to `now` (counting stops a
    /// little past the warning threshold), and the most recent of them.
    fn missed(&self, earliest: Timestamp, now: Timestamp) -> (usize, Option<Timestamp>) {
        let mut count = 0;
        let mut latest = None;
        let mut next = self.next_after(earliest);
        while let Some(time) = next.filter(|t| *t <= now) {
            count += 1;
            latest = Some(time);
            if count > TOO_MANY_MISSED {
                return (count, self.latest_until(now).or(latest));
            }
            next = self.next_after(time);
        }
        (count, latest)
    }

    /// The most recent time at or before `now`, found without walking.
    fn latest_until(&self, now: Timestamp) -> Option<Timestamp> {
        match &self.times {
            Times::Cron(cron) => {
                let from = now.to_zoned(self.zone.clone());
                cron.find_previous_occurrence(&from, true)
                    .ok()
                    .map(|z| z.timestamp())
            }
            Times::Every(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn only_the_most_recent_missed_time_is_due() {
        let schedule = Schedule::of("*/5 * * * *", Some("UTC")).unwrap();
        let (missed, due) = schedule.missed(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:17:30Z"));
        assert_eq!(missed, 3);
        assert_eq!(due, Some(at("2026-01-01T10:15:00Z")));
        let (missed, due) = schedule.missed(at("2026-01-01T10:15:00Z"), at("2026-01-01T10:17:30Z"));
        assert_eq!((missed, due), (0, None));
    }

    #[test]
    fn a_long_outage_counts_as_too_many_missed_but_still_finds_the_latest() {
        let schedule = Schedule::of("* * * * *", Some("UTC")).unwrap();
        let (missed, due) = schedule.missed(at("2026-01-01T00:00:00Z"), at("2026-01-03T08:30:10Z"));
        assert!(missed > TOO_MANY_MISSED);
        assert_eq!(due, Some(at("2026-01-03T08:30:00Z")));
    }

    #[test]
    fn schedules_follow_their_time_zone() {
        let berlin = Schedule::of("0 9 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            berlin.next_after(at("2026-07-01T00:00:00Z")),
            Some(at("2026-07-01T07:00:00Z"))
        );
        let prefixed = Schedule::of("CRON_TZ=America/New_York 30 6 * * 1", None).unwrap();
        // 2026-01-05 is a Monday; New York is five hours behind UTC in winter.
        assert_eq!(
            prefixed.next_after(at("2026-01-04T00:00:00Z")),
            Some(at("2026-01-05T11:30:00Z"))
        );
        let hourly = Schedule::of("@hourly", Some("UTC")).unwrap();
        assert_eq!(
            hourly.next_after(at("2026-01-01T10:59:59Z")),
            Some(at("2026-01-01T11:00:00Z"))
        );
        let every = Schedule::of("@every 90s", Some("UTC")).unwrap();
        assert_eq!(
            every.next_after(at("2026-01-01T10:00:00Z")),
            Some(at("2026-01-01T10:01:30Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones_are_worded_as_kubernetes_words_them() {
        let (reason, message) = Schedule::of("0 9 * * *", Some("Mars/Olympus"))
            .err()
            .unwrap();
        assert_eq!(reason, "UnknownTimeZone");
        assert!(
            message.starts_with("invalid timeZone: \"Mars/Olympus\""),
            "{message}"
        );
        let (reason, _) = Schedule::of("61 * * * *", Some("UTC")).err().unwrap();
        assert_eq!(reason, "UnparseableSchedule");
    }

    #[test]
    fn the_scheduled_time_annotation_is_rfc3339_in_the_zone() {
        let time = at("2026-07-01T07:00:00Z");
        assert_eq!(rfc3339_in(time, &TimeZone::UTC), "2026-07-01T07:00:00Z");
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(rfc3339_in(time, &berlin), "2026-07-01T09:00:00+02:00");
    }
}
