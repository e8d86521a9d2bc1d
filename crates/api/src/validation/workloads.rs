//! Workloads: Deployments, ReplicaSets, StatefulSets, DaemonSets,
//! ReplicationControllers, Jobs and CronJobs (`pkg/apis/apps/validation`,
//! `pkg/apis/batch/validation`). All of them hold a pod template their
//! selector must select.

use serde_json::Value;

use super::names::{is_qualified_name, is_valid_label_value};
use super::pod::validate_pod_template;
use super::{
    check_immutable, check_non_negative, copy_field, field, go_format, is_set, object_of, str_of,
    validate_labels,
};
use crate::FieldError;
use crate::selector::LabelSelector;

const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";

/// The fields a StatefulSet update may change.
const STATEFUL_SET_UPDATE_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

pub(super) fn validate_deployment(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    check_non_negative(&mut errs, spec, "replicas", "spec");
    validate_required_selector(spec, "deployment", &mut errs);
    validate_replica_template(spec, "ReplicaSet", &mut errs);
    validate_deployment_strategy(spec, &mut errs);
    for key in [
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        check_non_negative(&mut errs, spec, key, "spec");
    }
    if let Some(deadline) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
        let min_ready = spec
            .get("minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if deadline <= min_ready {
            errs.push(FieldError::invalid_unquoted(
                "spec.progressDeadlineSeconds",
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    if let Some(old) = old {
        check_selector_immutable(spec, field(old, "spec"), &mut errs);
    }
    errs
}

pub(super) fn validate_replica_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    check_non_negative(&mut errs, spec, "replicas", "spec");
    check_non_negative(&mut errs, spec, "minReadySeconds", "spec");
    // Kubernetes words the empty-selector error for ReplicaSets as for Deployments.
    validate_required_selector(spec, "deployment", &mut errs);
    validate_replica_template(spec, "ReplicaSet", &mut errs);
    if let Some(old) = old {
        check_selector_immutable(spec, field(old, "spec"), &mut errs);
    }
    errs
}

pub(super) fn validate_stateful_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    match str_of(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = field(spec, "updateStrategy");
    match str_of(strategy, "type") {
        "" => errs.push(FieldError::required("spec.updateStrategy")),
        "OnDelete" if is_set(strategy, "rollingUpdate") => errs.push(FieldError::invalid_unquoted(
            "spec.updateStrategy.rollingUpdate",
            strategy["rollingUpdate"].to_string(),
            "only allowed for updateStrategy 'RollingUpdate'",
        )),
        "OnDelete" => {}
        "RollingUpdate" => {
            if let Some(rolling) = strategy.get("rollingUpdate") {
                check_non_negative(
                    &mut errs,
                    rolling,
                    "partition",
                    "spec.updateStrategy.rollingUpdate",
                );
            }
        }
        _ => errs.push(FieldError::invalid_unquoted(
            "spec.updateStrategy",
            strategy.to_string(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    for key in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        check_non_negative(&mut errs, spec, key, "spec");
    }
    validate_required_selector(spec, "statefulset", &mut errs);
    validate_replica_template(&with_claim_volumes(spec), "StatefulSet", &mut errs);
    if let Some(old) = old {
        let old_spec = field(old, "spec");
        let mut unchanged = spec.clone();
        for key in [
            "replicas",
            "template",
            "updateStrategy",
            "minReadySeconds",
            "ordinals",
            "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy",
        ] {
            copy_field(old_spec, &mut unchanged, key);
        }
        if &unchanged != old_spec {
            errs.push(FieldError::forbidden("spec", STATEFUL_SET_UPDATE_FORBIDDEN));
        }
    }
    errs
}

pub(super) fn validate_daemon_set(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    if let Some(selector) = spec.get("selector").filter(|s| s.is_object()) {
        validate_label_selector(selector, "spec.selector", &mut errs);
        if selector_is_empty(selector) {
            errs.push(FieldError::invalid_unquoted(
                "spec.selector",
                go_format::label_selector(Some(selector)),
                "empty selector is invalid for daemonset",
            ));
        }
    }
    check_template_selected(spec, &mut errs);
    validate_template_restarts_always(spec, &mut errs);
    if is_set(&spec["template"]["spec"], "activeDeadlineSeconds") {
        errs.push(FieldError::invalid_unquoted(
            "spec.template.spec.activeDeadlineSeconds",
            &spec["template"]["spec"]["activeDeadlineSeconds"],
            "activeDeadlineSeconds must be nil for daemonset",
        ));
    }
    check_non_negative(&mut errs, spec, "minReadySeconds", "spec");
    check_non_negative(&mut errs, spec, "revisionHistoryLimit", "spec");
    validate_daemon_set_strategy(spec, &mut errs);
    if let Some(old) = old {
        check_selector_immutable(spec, field(old, "spec"), &mut errs);
    }
    errs
}

/// `ValidateDaemonSetUpdateStrategy`: a rolling update either starts new
/// pods beside the old ones (`maxSurge`) or takes old ones away first
/// (`maxUnavailable`), exactly one of the two.
fn validate_daemon_set_strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    let strategy = field(spec, "updateStrategy");
    match str_of(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            const PATH: &str = "spec.updateStrategy.rollingUpdate";
            let Some(rolling) = strategy.get("rollingUpdate").filter(|r| r.is_object()) else {
                errs.push(FieldError::required(PATH));
                return;
            };
            let mut amount = |key: &str| {
                let path = format!("{PATH}.{key}");
                let amount = check_int_or_percent(rolling.get(key), &path, errs);
                check_at_most_100_percent(rolling.get(key), amount, &path, errs);
                amount.unwrap_or_else(|| int_value(rolling.get(key)))
            };
            let unavailable = amount("maxUnavailable");
            let surge = amount("maxSurge");
            match (unavailable != 0, surge != 0) {
                (true, true) => errs.push(FieldError::invalid_unquoted(
                    format!("{PATH}.maxSurge"),
                    go_format::int_or_string(field(rolling, "maxSurge")),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => errs.push(FieldError::required_because(
                    format!("{PATH}.maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

pub(super) fn validate_replication_controller(obj: &Value) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    check_non_negative(&mut errs, spec, "minReadySeconds", "spec");
    let selector = object_of(spec, "selector");
    if selector.is_none_or(|s| s.is_empty()) {
        errs.push(FieldError::required("spec.selector"));
    }
    errs.extend(validate_labels(selector, "spec.selector"));
    check_non_negative(&mut errs, spec, "replicas", "spec");
    let Some(template) = spec.get("template").filter(|t| t.is_object()) else {
        errs.push(FieldError::required("spec.template"));
        return errs;
    };
    let template_labels = template.pointer("/metadata/labels");
    let selects = selector
        .into_iter()
        .flatten()
        .all(|(key, value)| template_labels.and_then(|l| l.get(key)) == Some(value));
    if !selects {
        errs.push(FieldError::invalid_unquoted(
            "spec.template.metadata.labels",
            go_format::string_map(template_labels),
            SELECTOR_MISMATCH,
        ));
    }
    errs.extend(validate_pod_template(template, "spec.template"));
    validate_template_restarts_always(spec, &mut errs);
    forbid_active_deadline(spec, "ReplicationController", &mut errs);
    errs
}

pub(super) fn validate_job(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    match spec.get("selector").filter(|s| s.is_object()) {
        None => errs.push(FieldError::required("spec.selector")),
        Some(selector) => validate_label_selector(selector, "spec.selector", &mut errs),
    }
    if let Ok(selector) = LabelSelector::from_object(field(spec, "selector")) {
        let labels = spec.pointer("/template/metadata/labels");
        if !selector.matches(labels.and_then(Value::as_object)) {
            errs.push(FieldError::invalid_unquoted(
                "spec.template.metadata.labels",
                go_format::string_map(labels),
                SELECTOR_MISMATCH,
            ));
        }
    }
    validate_job_spec(spec, "spec", &mut errs);
    if let Some(old) = old {
        let old_spec = field(old, "spec");
        check_selector_immutable(spec, old_spec, &mut errs);
        for key in [
            "completions",
            "completionMode",
            "podFailurePolicy",
            "backoffLimitPerIndex",
        ] {
            let new = field(spec, key);
            check_immutable(
                &mut errs,
                new,
                field(old_spec, key),
                &format!("spec.{key}"),
                go_format::scalar(new),
            );
        }
        let template = field(spec, "template");
        check_immutable(
            &mut errs,
            template,
            field(old_spec, "template"),
            "spec.template",
            template.to_string(),
        );
    }
    errs
}

/// What a Job and a CronJob's job template share: counts, completion mode,
/// and a pod template that does not restart in place.
fn validate_job_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        check_non_negative(errs, spec, key, path);
    }
    validate_per_index_limits(spec, path, errs);
    let mode = str_of(spec, "completionMode");
    match mode {
        "" | "NonIndexed" => {}
        "Indexed" if !is_set(spec, "completions") => errs.push(FieldError::required_because(
            format!("{path}.completions"),
            "when completion mode is Indexed",
        )),
        "Indexed" => {}
        other => errs.push(FieldError::not_supported(
            format!("{path}.completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    let template = field(spec, "template");
    errs.extend(validate_pod_template(template, &format!("{path}.template")));
    let restart = format!("{path}.template.spec.restartPolicy");
    match str_of(&template["spec"], "restartPolicy") {
        "" | "Always" => errs.push(FieldError::required_because(
            restart,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {}
        other => errs.push(FieldError::not_supported(
            restart,
            other,
            &["OnFailure", "Never"],
        )),
    }
}

/// `backoffLimitPerIndex` and `maxFailedIndexes`: Indexed Jobs only, the
/// second only with the first and no more than `completions`; and a
/// `FailIndex` pod failure policy rule only with a limit per index.
fn validate_per_index_limits(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let per_index = spec.get("backoffLimitPerIndex").and_then(Value::as_i64);
    let max_failed = spec.get("maxFailedIndexes").and_then(Value::as_i64);
    if max_failed.is_some() && per_index.is_none() {
        errs.push(FieldError::required_because(
            format!("{path}.backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    if str_of(spec, "completionMode") == "Indexed" {
        if let (Some(max), Some(completions)) =
            (max_failed, spec.get("completions").and_then(Value::as_i64))
            && max > completions
        {
            errs.push(FieldError::invalid_unquoted(
                format!("{path}.maxFailedIndexes"),
                max,
                "must be less than or equal to completions",
            ));
        }
    } else {
        for (key, value) in [
            ("backoffLimitPerIndex", per_index),
            ("maxFailedIndexes", max_failed),
        ] {
            if let Some(value) = value {
                errs.push(FieldError::invalid_unquoted(
                    format!("{path}.{key}"),
                    value,
                    "requires indexed completion mode",
                ));
            }
        }
    }
    let rules = spec
        .pointer("/podFailurePolicy/rules")
        .and_then(Value::as_array);
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        if str_of(rule, "action") == "FailIndex" && per_index.is_none() {
            errs.push(FieldError::invalid(
                format!("{path}.podFailurePolicy.rules[{i}].action"),
                "FailIndex",
                "requires the backoffLimitPerIndex to be set",
            ));
        }
    }
}

pub(super) fn validate_cron_job(obj: &Value) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    let schedule = str_of(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule"));
    } else if let Err(why) = check_schedule(schedule) {
        errs.push(FieldError::invalid("spec.schedule", schedule, &why));
    }
    if schedule.contains("TZ") && is_set(spec, "timeZone") {
        errs.push(FieldError::invalid(
            "spec.schedule",
            schedule,
            "cannot use both timeZone field and TZ or CRON_TZ in schedule",
        ));
    }
    match str_of(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy")),
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        check_non_negative(&mut errs, spec, key, "spec");
    }
    let job_spec = field(field(spec, "jobTemplate"), "spec");
    if let Some(selector) = job_spec.get("selector").filter(|s| !s.is_null()) {
        errs.push(FieldError::invalid_unquoted(
            "spec.jobTemplate.spec.selector",
            go_format::label_selector(Some(selector)),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.get("manualSelector") == Some(&Value::Bool(true)) {
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.jobTemplate.spec.manualSelector".into(),
            message: "Unsupported value: true: supported values: \"nil\", \"false\"".into(),
        });
    }
    validate_job_spec(job_spec, "spec.jobTemplate.spec", &mut errs);
    errs
}

/// The standard cron syntax the CronJob controller accepts: five fields, or
/// a descriptor such as `@hourly` or `@every 1h30m`; optionally after a
/// `TZ=` or `CRON_TZ=` zone. Errors are worded as the cron parser words them.
fn check_schedule(schedule: &str) -> Result<(), String> {
    let mut rest = schedule.trim();
    if rest.starts_with("TZ=") || rest.starts_with("CRON_TZ=") {
        rest = rest.split_once(' ').map_or("", |(_, r)| r.trim());
    }
    if let Some(descriptor) = rest.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {rest}")),
        };
    }
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "*/,-?".contains(c);
    match fields.iter().find(|f| !f.chars().all(allowed)) {
        Some(bad) => Err(format!("failed to parse int from {bad}")),
        None => Ok(()),
    }
}

/// `spec.selector` of the apps kinds: required, valid, not empty.
fn validate_required_selector(spec: &Value, kind_word: &str, errs: &mut Vec<FieldError>) {
    let Some(selector) = spec.get("selector").filter(|s| s.is_object()) else {
        errs.push(FieldError::required("spec.selector"));
        return;
    };
    validate_label_selector(selector, "spec.selector", errs);
    if selector_is_empty(selector) {
        errs.push(FieldError::invalid_unquoted(
            "spec.selector",
            go_format::label_selector(Some(selector)),
            &format!("empty selector is invalid for {kind_word}"),
        ));
    }
}

fn selector_is_empty(selector: &Value) -> bool {
    let count = |key| {
        selector.get(key).map_or(0, |v| match v {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        })
    };
    count("matchLabels") + count("matchExpressions") == 0
}

/// A `metav1.LabelSelector`'s own validity (`ValidateLabelSelector`).
fn validate_label_selector(selector: &Value, path: &str, errs: &mut Vec<FieldError>) {
    errs.extend(validate_labels(
        object_of(selector, "matchLabels"),
        &format!("{path}.matchLabels"),
    ));
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    for (i, expr) in expressions.into_iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = expr
            .get("values")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        match str_of(expr, "operator") {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required_because(
                format!("{at}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{at}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = str_of(expr, "key");
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid(format!("{at}.key"), key, &msg));
        }
        for (j, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or_default();
            for msg in is_valid_label_value(value) {
                errs.push(FieldError::invalid(
                    format!("{at}.values[{j}]"),
                    value,
                    &msg,
                ));
            }
        }
    }
}

/// A StatefulSet's spec with each volumeClaimTemplate as a volume of its
/// pod template, as the controller gives its pods: containers mount claims
/// by the template's name, which the pod spec alone does not declare.
fn with_claim_volumes(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let claims: Vec<String> = spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    if let Some(pod) = spec
        .pointer_mut("/template/spec")
        .and_then(Value::as_object_mut)
    {
        let volumes = pod
            .entry("volumes")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(volumes) = volumes.as_array_mut() {
            for name in claims {
                if !volumes.iter().any(|v| v["name"] == name.as_str()) {
                    volumes.push(serde_json::json!({
                        "name": name,
                        "persistentVolumeClaim": {"claimName": name},
                    }));
                }
            }
        }
    }
    spec
}

/// The template of a Deployment, ReplicaSet or StatefulSet: selected by the
/// selector, a valid pod template, restarting always, without a deadline.
fn validate_replica_template(spec: &Value, owner: &str, errs: &mut Vec<FieldError>) {
    let Some(template) = spec.get("template").filter(|t| t.is_object()) else {
        errs.push(FieldError::required("spec.template"));
        return;
    };
    check_template_selected(spec, errs);
    errs.extend(validate_pod_template(template, "spec.template"));
    validate_template_restarts_always(spec, errs);
    forbid_active_deadline(spec, owner, errs);
}

/// The selector must select the pods made from the template. An absent
/// selector selects nothing, so it fails this check too.
fn check_template_selected(spec: &Value, errs: &mut Vec<FieldError>) {
    let Ok(selector) = LabelSelector::from_object(field(spec, "selector")) else {
        errs.push(FieldError::invalid_unquoted(
            "spec.selector",
            go_format::label_selector(spec.get("selector")),
            "invalid label selector",
        ));
        return;
    };
    let labels = spec.pointer("/template/metadata/labels");
    if !selector.is_empty() && !selector.matches(labels.and_then(Value::as_object)) {
        errs.push(FieldError::invalid_unquoted(
            "spec.template.metadata.labels",
            go_format::string_map(labels),
            SELECTOR_MISMATCH,
        ));
    }
}

/// Controllers replace pods that exit, so their pods must restart in place.
fn validate_template_restarts_always(spec: &Value, errs: &mut Vec<FieldError>) {
    let policy = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if policy != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
}

fn forbid_active_deadline(spec: &Value, owner: &str, errs: &mut Vec<FieldError>) {
    if spec
        .pointer("/template/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            &format!("activeDeadlineSeconds in {owner} is not Supported"),
        ));
    }
}

fn validate_deployment_strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    let strategy = field(spec, "strategy");
    match str_of(strategy, "type") {
        "Recreate" if is_set(strategy, "rollingUpdate") => errs.push(FieldError::forbidden(
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        )),
        "Recreate" => {}
        "RollingUpdate" => {
            let rolling = field(strategy, "rollingUpdate");
            const PATH: &str = "spec.strategy.rollingUpdate";
            let unavailable = check_int_or_percent(
                rolling.get("maxUnavailable"),
                &format!("{PATH}.maxUnavailable"),
                errs,
            );
            let surge =
                check_int_or_percent(rolling.get("maxSurge"), &format!("{PATH}.maxSurge"), errs);
            if unavailable == Some(0) && surge == Some(0) {
                errs.push(FieldError::invalid_unquoted(
                    format!("{PATH}.maxUnavailable"),
                    go_format::int_or_string(field(rolling, "maxUnavailable")),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            check_at_most_100_percent(
                rolling.get("maxUnavailable"),
                unavailable,
                &format!("{PATH}.maxUnavailable"),
                errs,
            );
        }
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
}

/// A count or a percentage (`25%`), neither negative; returns its number.
fn check_int_or_percent(v: Option<&Value>, field: &str, errs: &mut Vec<FieldError>) -> Option<i64> {
    match v? {
        Value::Number(n) => {
            let n = n.as_i64()?;
            if n < 0 {
                errs.push(FieldError::invalid_unquoted(
                    field,
                    n,
                    "must be greater than or equal to 0",
                ));
            }
            Some(n)
        }
        Value::String(s) => {
            let number = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match number.and_then(|d| d.parse().ok()) {
                Some(n) => Some(n),
                None => {
                    errs.push(FieldError::invalid(
                        field,
                        s,
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    ));
                    None
                }
            }
        }
        _ => None,
    }
}

/// `IsNotMoreThan100Percent`: a percentage past 100% (`amount` is its number).
fn check_at_most_100_percent(
    v: Option<&Value>,
    amount: Option<i64>,
    field: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(Value::String(percent)) = v
        && amount.is_some_and(|p| p > 100)
    {
        errs.push(FieldError::invalid(
            field,
            percent,
            "must not be greater than 100%",
        ));
    }
}

/// Go's `IntOrString.IntValue()` for what is not a valid percentage: a
/// numeric string counts as its number, anything else as 0.
fn int_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// apps/v1 and batch/v1 selectors cannot change after create.
fn check_selector_immutable(spec: &Value, old_spec: &Value, errs: &mut Vec<FieldError>) {
    let new = field(spec, "selector");
    check_immutable(
        errs,
        new,
        field(old_spec, "selector"),
        "spec.selector",
        go_format::label_selector(Some(new)),
    );
}
