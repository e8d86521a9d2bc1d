//! A Deployment's status: counts summed over its ReplicaSets and the
//! Available and Progressing conditions, worded as Kubernetes words them,
//! which `kubectl rollout status` reads to say how a rollout goes.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::sets::{Created, Sets, available, ready, status_replicas};
use super::spec_of;
use super::strategy::Fenceposts;

const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
const COMPLETE: &str = "NewReplicaSetAvailable";
const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The status the Deployment should have now, and how long until its
/// progress deadline should be checked again (while a rollout runs).
pub fn compute(
    deployment: &Deployment,
    sets: &Sets,
    posts: Fenceposts,
    created: Option<Created>,
    now: Timestamp,
) -> (DeploymentStatus, Option<Duration>) {
    let spec = spec_of(deployment);
    let wanted = spec.replicas.unwrap_or(1);
    let old = deployment.status.clone().unwrap_or_default();
    let available_count = sets.total(available);
    let mut status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(sets.total(status_replicas)),
        updated_replicas: Some(sets.new.as_ref().map_or(0, status_replicas)),
        ready_replicas: Some(sets.total(ready)),
        available_replicas: Some(available_count),
        unavailable_replicas: Some((wanted - available_count).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    let minimum = available_count >= wanted - posts.unavailable;
    set_condition(
        &mut status,
        if minimum {
            condition(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            )
        } else {
            condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            )
        },
    );
    carry_replica_failure(sets, &mut status);
    let recheck = progress(deployment, sets, &old, &mut status, created, now);
    (status, recheck)
}

/// Sets the Progressing condition, as Kubernetes' syncRolloutStatus.
fn progress(
    deployment: &Deployment,
    sets: &Sets,
    old: &DeploymentStatus,
    status: &mut DeploymentStatus,
    created: Option<Created>,
    now: Timestamp,
) -> Option<Duration> {
    let spec = spec_of(deployment);
    let current = find(status, PROGRESSING).cloned();
    let new_name = sets.new.as_ref().map(ResourceExt::name_any);
    if spec.paused == Some(true) {
        if current.as_ref().and_then(|c| c.reason.as_deref()) != Some(PAUSED) {
            set_condition(
                status,
                condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now),
            );
        }
        return None;
    }
    if current.as_ref().and_then(|c| c.reason.as_deref()) == Some(PAUSED) {
        set_condition(
            status,
            condition(
                PROGRESSING,
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed",
                now,
            ),
        );
        return None;
    }
    let deadline = spec.progress_deadline_seconds?;
    let wanted = spec.replicas.unwrap_or(1);
    let complete = status.updated_replicas == Some(wanted)
        && status.replicas == Some(wanted)
        && status.available_replicas == Some(wanted)
        && status.observed_generation >= deployment.metadata.generation;
    let reason = current.as_ref().and_then(|c| c.reason.clone());
    if let (Some(name), Some(created)) = (&new_name, created) {
        if created == Created::Made {
            let message = format!("Created new replica set \"{name}\"");
            set_condition(
                status,
                condition(PROGRESSING, "True", "NewReplicaSetCreated", &message, now),
            );
            return Some(Duration::from_secs(deadline.unsigned_abs().into()));
        }
        if current.is_none() {
            let message = format!("Found new replica set \"{name}\"");
            set_condition(
                status,
                condition(PROGRESSING, "True", "FoundNewReplicaSet", &message, now),
            );
        }
    }
    if complete {
        if reason.as_deref() != Some(COMPLETE) {
            let message = format!(
                "ReplicaSet \"{}\" has successfully progressed.",
                new_name.unwrap_or_default()
            );
            set_condition(
                status,
                condition(PROGRESSING, "True", COMPLETE, &message, now),
            );
        }
        return None;
    }
    if moved_on(old, status) {
        let message = match &new_name {
            Some(name) => format!("ReplicaSet \"{name}\" is progressing."),
            None => "Deployment is progressing.".to_owned(),
        };
        set_condition(
            status,
            condition(PROGRESSING, "True", "ReplicaSetUpdated", &message, now),
        );
        return Some(Duration::from_secs(deadline.unsigned_abs().into()));
    }
    if reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let since = find(status, PROGRESSING)
        .and_then(|c| c.last_update_time.as_ref())
        .map_or(now, |t| t.0);
    let due = since + SignedDuration::from_secs(deadline.into());
    if now >= due {
        let message = format!(
            "ReplicaSet \"{}\" has timed out progressing.",
            new_name.unwrap_or_default()
        );
        set_condition(
            status,
            condition(PROGRESSING, "False", TIMED_OUT, &message, now),
        );
        return None;
    }
    Some(Duration::try_from(due.duration_since(now)).unwrap_or_default() + Duration::from_secs(1))
}

/// A ReplicaSet that cannot make or delete its pods (the new one first)
/// shows as the Deployment's ReplicaFailure condition, which goes when
/// none has it any more.
fn carry_replica_failure(sets: &Sets, status: &mut DeploymentStatus) {
    let failure = sets.all().find_map(|rs| {
        rs.status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE && c.status == "True")
    });
    match failure {
        Some(c) => set_condition(
            status,
            DeploymentCondition {
                type_: REPLICA_FAILURE.to_owned(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            },
        ),
        None => {
            if let Some(conditions) = status.conditions.as_mut() {
                conditions.retain(|c| c.type_ != REPLICA_FAILURE);
            }
        }
    }
}

/// New pods came up or old ones went since the last status.
fn moved_on(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_pods = |s: &DeploymentStatus| n(s.replicas) - n(s.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
        || old_pods(new) < old_pods(old)
}

fn find<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Puts `new` in place of the condition of its type. The transition time
/// stays when the status does not change, and nothing changes at all when
/// only the times would.
fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            let same =
                old.status == new.status && old.reason == new.reason && old.message == new.message;
            // Progressing's update time is when progress was last seen, so
            // it moves on every step; Available's does not.
            if same && new.type_ != PROGRESSING {
                return;
            }
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}
