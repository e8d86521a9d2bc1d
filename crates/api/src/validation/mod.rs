//! Validation of objects on create and update, as the Kubernetes API server's
//! `Validate*` functions do it: every problem found becomes a [`FieldError`]
//! with the path and the wording Kubernetes reports, so that clients showing
//! `The Pod "x" is invalid: spec.containers[0].image: Required value` read the
//! same here.
//!
//! Objects arrive decoded and defaulted: fields a default fills in are
//! present, field types are right.

mod config;
mod definitions;
mod go_format;
mod ingress;
mod meta;
pub mod names;
mod pod;
mod quota;
pub mod scheduling;
mod service;
mod storage;
mod workloads;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::{FieldError, Kind};

/// Errors for `obj` (old: Some on update). Paths as Kubernetes writes them: `metadata.name`, `spec.containers[0].image`, `spec.template.metadata.labels`.
pub fn validate(kind: &Kind, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = meta::validate_object_meta(obj, kind);
    if let Some(old) = old {
        errs.extend(meta::validate_object_meta_update(obj, old));
    }
    if let Some(custom) = &kind.custom {
        errs.extend(crate::custom::validate(custom, obj));
        return errs;
    }
    errs.extend(match (kind.group, kind.kind) {
        ("", "Pod") => pod::validate_pod(obj, old),
        ("", "Service") => service::validate_service(obj, old),
        ("", "ConfigMap") => config::validate_config_map(obj, old),
        ("", "Secret") => config::validate_secret(obj, old),
        ("", "ReplicationController") => workloads::validate_replication_controller(obj),
        ("apps", "Deployment") => workloads::validate_deployment(obj, old),
        ("apps", "ReplicaSet") => workloads::validate_replica_set(obj, old),
        ("apps", "StatefulSet") => workloads::validate_stateful_set(obj, old),
        ("apps", "DaemonSet") => workloads::validate_daemon_set(obj, old),
        ("batch", "Job") => workloads::validate_job(obj, old),
        ("batch", "CronJob") => workloads::validate_cron_job(obj),
        ("", "PersistentVolumeClaim") => storage::validate_claim(obj, old),
        ("", "ResourceQuota") => quota::validate_resource_quota(obj, old),
        ("", "Namespace") => meta::validate_namespace_finalizers(obj),
        ("networking.k8s.io", "Ingress") => ingress::validate_ingress(obj),
        ("scheduling.k8s.io", "PriorityClass") => scheduling::validate_priority_class(obj, old),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            definitions::validate_definition(obj)
        }
        _ => Vec::new(),
    });
    errs
}

/// The value at `key`, or null when absent: checks read an absent part as
/// an empty one.
fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.get(key).unwrap_or(&NULL)
}

/// The string at `key`, or "" when absent or not a string.
fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The array at `key`, or an empty slice.
fn array_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The object at `key`, if any.
fn object_of<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// Whether `key` holds a value (Go: a non-nil pointer).
fn is_set(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

/// `Invalid value: 70000: must be between 1 and 65535, inclusive`.
fn check_range(errs: &mut Vec<FieldError>, field: String, value: i64, min: i64, max: i64) {
    if !(min..=max).contains(&value) {
        errs.push(FieldError::invalid_unquoted(
            field,
            value,
            &format!("must be between {min} and {max}, inclusive"),
        ));
    }
}

/// An integer field that may not be negative, when set.
fn check_non_negative(errs: &mut Vec<FieldError>, v: &Value, key: &str, path: &str) {
    if let Some(n) = v.get(key).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid_unquoted(
            format!("{path}.{key}"),
            n,
            "must be greater than or equal to 0",
        ));
    }
}

/// Labels (label selectors' `matchLabels`, `nodeSelector`, ...) at `path`:
/// qualified-name keys and label values. Kubernetes reports them at the map's
/// path, not per key.
fn validate_labels(labels: Option<&Map<String, Value>>, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (key, value) in labels.into_iter().flatten() {
        for msg in names::is_qualified_name(key) {
            errs.push(FieldError::invalid(path, key, &msg));
        }
        let value = value.as_str().unwrap_or_default();
        for msg in names::is_valid_label_value(value) {
            errs.push(FieldError::invalid(path, value, &msg));
        }
    }
    errs
}

/// `Invalid value: "x": field is immutable` when a set value changed.
fn check_immutable(
    errs: &mut Vec<FieldError>,
    new: &Value,
    old: &Value,
    field: &str,
    shown: String,
) {
    if new != old {
        errs.push(FieldError::invalid_unquoted(
            field,
            shown,
            "field is immutable",
        ));
    }
}

/// Sets `to.key` to `from.key`, removing it when `from` has none.
fn copy_field(from: &Value, to: &mut Value, key: &str) {
    let Some(to) = to.as_object_mut() else {
        return;
    };
    match from.get(key) {
        Some(v) => to.insert(key.to_owned(), v.clone()),
        None => to.remove(key),
    };
}
