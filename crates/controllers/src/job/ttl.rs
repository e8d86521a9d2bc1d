//! `ttlSecondsAfterFinished`: a finished Job is deleted (with its pods, in
//! the foreground) that long after its terminal condition, as Kubernetes'
//! ttl-after-finished controller does.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::conditions;

/// Deletes the finished Job if its time is up, or says when to look again.
pub async fn expire(jobs: &Api<Job>, job: &Job, now: Timestamp) -> kube::Result<Action> {
    let ttl = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished);
    let finished_at = conditions::finished(job)
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let (Some(ttl), Some(finished_at)) = (ttl, finished_at) else {
        return Ok(Action::await_change());
    };
    let expires = finished_at + SignedDuration::from_secs(ttl.into());
    if let Ok(left) = Duration::try_from(expires.duration_since(now))
        && !left.is_zero()
    {
        return Ok(Action::requeue(left));
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: job.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match jobs.delete(&job.name_any(), &params).await {
        Ok(_) => tracing::debug!(job = job.name_any(), "deleted after its TTL"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e),
    }
    Ok(Action::await_change())
}
