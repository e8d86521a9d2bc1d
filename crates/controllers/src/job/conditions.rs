//! A Job's status conditions. Since Kubernetes 1.31 a Job first gets an
//! interim condition when its fate is decided (`SuccessCriteriaMet` or
//! `FailureTarget`) and the terminal one (`Complete` or `Failed`, with the
//! same reason) only once none of its pods is still running or terminating.

use std::borrow::Cow;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUSPENDED: &str = "Suspended";

/// What decided a Job's end, in Kubernetes' words.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verdict {
    pub success: bool,
    pub reason: &'static str,
    pub message: Cow<'static, str>,
}

const POD_FAILURE_POLICY: &str = "PodFailurePolicy";
const SUCCESS_POLICY: &str = "SuccessPolicy";

pub const COMPLETIONS_REACHED: Verdict = Verdict {
    success: true,
    reason: "CompletionsReached",
    message: Cow::Borrowed("Reached expected number of succeeded pods"),
};
pub const BACKOFF_LIMIT_EXCEEDED: Verdict = Verdict {
    success: false,
    reason: "BackoffLimitExceeded",
    message: Cow::Borrowed("Job has reached the specified backoff limit"),
};
pub const DEADLINE_EXCEEDED: Verdict = Verdict {
    success: false,
    reason: "DeadlineExceeded",
    message: Cow::Borrowed("Job was active longer than specified deadline"),
};
pub const MAX_FAILED_INDEXES_EXCEEDED: Verdict = Verdict {
    success: false,
    reason: "MaxFailedIndexesExceeded",
    message: Cow::Borrowed("Job has exceeded the specified maximal number of failed indexes"),
};
pub const FAILED_INDEXES: Verdict = Verdict {
    success: false,
    reason: "FailedIndexes",
    message: Cow::Borrowed("Job has failed indexes"),
};

impl Verdict {
    /// A `FailJob` rule of the pod failure policy matched.
    pub fn pod_failure_policy(message: String) -> Verdict {
        Verdict {
            success: false,
            reason: POD_FAILURE_POLICY,
            message: Cow::Owned(message),
        }
    }

    /// A rule of an Indexed Job's success policy was met.
    pub fn success_policy(message: String) -> Verdict {
        Verdict {
            success: true,
            reason: SUCCESS_POLICY,
            message: Cow::Owned(message),
        }
    }

    /// The interim condition type: `SuccessCriteriaMet` or `FailureTarget`.
    pub fn interim(&self) -> &'static str {
        if self.success {
            SUCCESS_CRITERIA_MET
        } else {
            FAILURE_TARGET
        }
    }

    /// The terminal condition type: `Complete` or `Failed`.
    pub fn terminal(&self) -> &'static str {
        if self.success { COMPLETE } else { FAILED }
    }

    /// The verdict an interim condition already written records.
    fn from_interim(condition: &JobCondition) -> Option<Verdict> {
        let success = condition.type_ == SUCCESS_CRITERIA_MET;
        let reason = [
            COMPLETIONS_REACHED.reason,
            BACKOFF_LIMIT_EXCEEDED.reason,
            DEADLINE_EXCEEDED.reason,
            MAX_FAILED_INDEXES_EXCEEDED.reason,
            FAILED_INDEXES.reason,
            POD_FAILURE_POLICY,
            SUCCESS_POLICY,
        ]
        .into_iter()
        .find(|r| Some(*r) == condition.reason.as_deref())?;
        Some(Verdict {
            success,
            reason,
            message: Cow::Owned(condition.message.clone().unwrap_or_default()),
        })
    }
}

/// The condition of this type if its status is True.
pub fn true_condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The Job's terminal condition (`Complete` or `Failed`), if it has ended.
pub fn finished(job: &Job) -> Option<&JobCondition> {
    let status = job.status.as_ref()?;
    true_condition(status, COMPLETE).or_else(|| true_condition(status, FAILED))
}

/// The verdict already reached (an interim condition), if any.
pub fn decided(status: &JobStatus) -> Option<Verdict> {
    true_condition(status, SUCCESS_CRITERIA_MET)
        .or_else(|| true_condition(status, FAILURE_TARGET))
        .and_then(Verdict::from_interim)
}

/// Sets a condition, keeping its transition time unless its status
/// changes. Returns whether it changed.
pub fn set(
    status: &mut JobStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let value = if value { "True" } else { "False" };
    let conditions = status.conditions.get_or_insert_default();
    if conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == value)
    {
        return false;
    }
    conditions.retain(|c| c.type_ != type_);
    conditions.push(JobCondition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}
