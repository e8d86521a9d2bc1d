//! Printers of the workload kinds: apps/v1, batch/v1 and ReplicationControllers.

use jiff::Timestamp;
use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
use schemars::JsonSchema;
use serde_json::{Value, json};

use super::format::{
    age, array, containers, human_duration, int_at, label_selector, labels, since, str_at,
    timestamp,
};
use super::{Column, doc};
use crate::meta;
use crate::selector::LabelSelector;

pub fn rc_columns() -> Vec<Column> {
    replica_columns::<core::ReplicationControllerSpec, core::ReplicationControllerStatus>()
}

/// ReplicationControllers and ReplicaSets print the same columns, described
/// from their own types.
fn replica_columns<Spec: JsonSchema, Status: JsonSchema>() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Desired", "integer", doc::<Spec>("replicas")),
        Column::new("Current", "integer", doc::<Status>("replicas")),
        Column::new("Ready", "integer", doc::<Status>("readyReplicas")),
        Column::age(),
        Column::containers(),
        Column::images(),
        Column::new("Selector", "string", doc::<Spec>("selector")).wide(),
    ]
}

pub fn rc_cells(rc: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(rc.pointer("/spec/template/spec"));
    vec![
        json!(meta::name(rc)),
        json!(int_at(rc, "/spec/replicas")),
        json!(int_at(rc, "/status/replicas")),
        json!(int_at(rc, "/status/readyReplicas")),
        json!(age(rc, now)),
        json!(names),
        json!(images),
        json!(labels(rc.pointer("/spec/selector"))),
    ]
}

pub fn deployment_columns() -> Vec<Column> {
    let status = doc::<apps::DeploymentStatus>;
    vec![
        Column::name(),
        Column::new("Ready", "string", "Number of the pod with ready state"),
        Column::new("Up-to-date", "string", status("updatedReplicas")),
        Column::new("Available", "string", status("availableReplicas")),
        Column::age(),
        Column::containers(),
        Column::images(),
        Column::new(
            "Selector",
            "string",
            doc::<apps::DeploymentSpec>("selector"),
        )
        .wide(),
    ]
}

pub fn deployment_cells(deploy: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(deploy.pointer("/spec/template/spec"));
    // Unlike the other workloads, an empty selector prints as "".
    let selector = match LabelSelector::from_object(
        deploy.pointer("/spec/selector").unwrap_or(&Value::Null),
    ) {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".into(),
    };
    vec![
        json!(meta::name(deploy)),
        json!(format!(
            "{}/{}",
            int_at(deploy, "/status/readyReplicas"),
            int_at(deploy, "/spec/replicas")
        )),
        json!(int_at(deploy, "/status/updatedReplicas")),
        json!(int_at(deploy, "/status/availableReplicas")),
        json!(age(deploy, now)),
        json!(names),
        json!(images),
        json!(selector),
    ]
}

pub fn replica_set_columns() -> Vec<Column> {
    replica_columns::<apps::ReplicaSetSpec, apps::ReplicaSetStatus>()
}

pub fn replica_set_cells(rs: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(rs.pointer("/spec/template/spec"));
    vec![
        json!(meta::name(rs)),
        json!(int_at(rs, "/spec/replicas")),
        json!(int_at(rs, "/status/replicas")),
        json!(int_at(rs, "/status/readyReplicas")),
        json!(age(rs, now)),
        json!(names),
        json!(images),
        json!(label_selector(rs.pointer("/spec/selector"))),
    ]
}

pub fn stateful_set_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Ready", "string", "Number of the pod with ready state"),
        Column::age(),
        Column::containers(),
        Column::images(),
    ]
}

pub fn stateful_set_cells(sts: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(sts.pointer("/spec/template/spec"));
    vec![
        json!(meta::name(sts)),
        json!(format!(
            "{}/{}",
            int_at(sts, "/status/readyReplicas"),
            int_at(sts, "/spec/replicas")
        )),
        json!(age(sts, now)),
        json!(names),
        json!(images),
    ]
}

pub fn daemon_set_columns() -> Vec<Column> {
    let status = doc::<apps::DaemonSetStatus>;
    vec![
        Column::name(),
        Column::new("Desired", "integer", status("desiredNumberScheduled")),
        Column::new("Current", "integer", status("currentNumberScheduled")),
        Column::new("Ready", "integer", status("numberReady")),
        Column::new("Up-to-date", "integer", status("updatedNumberScheduled")),
        Column::new("Available", "integer", status("numberAvailable")),
        Column::new(
            "Node Selector",
            "string",
            doc::<core::PodSpec>("nodeSelector"),
        ),
        Column::age(),
        Column::containers(),
        Column::images(),
        Column::new("Selector", "string", doc::<apps::DaemonSetSpec>("selector")).wide(),
    ]
}

pub fn daemon_set_cells(ds: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(ds.pointer("/spec/template/spec"));
    vec![
        json!(meta::name(ds)),
        json!(int_at(ds, "/status/desiredNumberScheduled")),
        json!(int_at(ds, "/status/currentNumberScheduled")),
        json!(int_at(ds, "/status/numberReady")),
        json!(int_at(ds, "/status/updatedNumberScheduled")),
        json!(int_at(ds, "/status/numberAvailable")),
        json!(labels(ds.pointer("/spec/template/spec/nodeSelector"))),
        json!(age(ds, now)),
        json!(names),
        json!(images),
        json!(label_selector(ds.pointer("/spec/selector"))),
    ]
}

pub fn revision_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Controller", "string", "Controller of the object"),
        Column::new(
            "Revision",
            "string",
            doc::<apps::ControllerRevision>("revision"),
        ),
        Column::age(),
    ]
}

pub fn revision_cells(rev: &Value, now: Timestamp) -> Vec<Value> {
    let controller = array(Some(rev), "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller") == Some(&Value::Bool(true)))
        .map(|r| {
            let group = str_at(r, "apiVersion")
                .rsplit_once('/')
                .map(|(g, _)| g)
                .unwrap_or_default();
            let kind = str_at(r, "kind");
            let group_kind = if group.is_empty() {
                kind.to_owned()
            } else {
                format!("{kind}.{group}")
            };
            format!("{}/{}", group_kind.to_lowercase(), str_at(r, "name"))
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(meta::name(rev)),
        json!(controller),
        json!(int_at(rev, "revision")),
        json!(age(rev, now)),
    ]
}

pub fn job_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Status", "string", "Status of the job."),
        Column::new(
            "Completions",
            "string",
            doc::<batch::JobStatus>("succeeded"),
        ),
        Column::new("Duration", "string", "Time required to complete the job."),
        Column::age(),
        Column::containers(),
        Column::images(),
        Column::new("Selector", "string", doc::<batch::JobSpec>("selector")).wide(),
    ]
}

pub fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(job, "/status/succeeded");
    let completions = match job.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(n) => format!("{succeeded}/{n}"),
        None => match int_at(job, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = timestamp(job.pointer("/status/startTime"));
    let end = timestamp(job.pointer("/status/completionTime"));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(_), None) => since(job.pointer("/status/startTime"), now),
        (Some(s), Some(e)) => human_duration(e.duration_since(s).as_secs()),
    };
    let (names, images) = containers(job.pointer("/spec/template/spec"));
    vec![
        json!(meta::name(job)),
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        json!(age(job, now)),
        json!(names),
        json!(images),
        json!(label_selector(job.pointer("/spec/selector"))),
    ]
}

fn job_status(job: &Value) -> &'static str {
    let conditions = array(Some(job), "/status/conditions");
    // The first condition of a type decides it, as hasJobCondition does.
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| str_at(c, "type") == kind)
            .is_some_and(|c| str_at(c, "status") == "True")
    };
    if holds("Complete") {
        "Complete"
    } else if holds("Failed") {
        "Failed"
    } else if meta::is_being_deleted(job) {
        "Terminating"
    } else if holds("Suspended") {
        "Suspended"
    } else if holds("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

pub fn cron_job_columns() -> Vec<Column> {
    let spec = doc::<batch::CronJobSpec>;
    vec![
        Column::name(),
        Column::new("Schedule", "string", spec("schedule")),
        Column::new("Timezone", "string", spec("timeZone")),
        Column::new("Suspend", "boolean", spec("suspend")),
        Column::new("Active", "integer", doc::<batch::CronJobStatus>("active")),
        Column::new(
            "Last Schedule",
            "string",
            doc::<batch::CronJobStatus>("lastScheduleTime"),
        ),
        Column::age(),
        Column::containers(),
        Column::images(),
        Column::new("Selector", "string", doc::<batch::JobSpec>("selector")).wide(),
    ]
}

pub fn cron_job_cells(cj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match cj.pointer("/status/lastScheduleTime") {
        Some(t) if !t.is_null() => since(Some(t), now),
        _ => "<none>".into(),
    };
    let suspend = match cj.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let time_zone = match str_at(cj, "/spec/timeZone") {
        "" => "<none>",
        tz => tz,
    };
    let (names, images) = containers(cj.pointer("/spec/jobTemplate/spec/template/spec"));
    vec![
        json!(meta::name(cj)),
        json!(str_at(cj, "/spec/schedule")),
        json!(time_zone),
        json!(suspend),
        json!(array(Some(cj), "/status/active").len()),
        json!(last_schedule),
        json!(age(cj, now)),
        json!(names),
        json!(images),
        json!(label_selector(
            cj.pointer("/spec/jobTemplate/spec/selector")
        )),
    ]
}
