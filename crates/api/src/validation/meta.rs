//! `metadata` checks every kind shares: name format per kind, namespace,
//! labels, annotations, owner references, finalizers, and what an update may
//! not change (`ValidateObjectMeta`, `ValidateObjectMetaUpdate`).

use serde_json::Value;

use super::names::{self, is_qualified_name};
use super::{array_of, field, go_format, object_of, str_of, validate_labels};
use crate::{FieldError, Kind};

/// Annotations of one object may hold at most this many bytes, keys and values together.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// A CronJob's name plus the 11 characters of a Job name suffix must fit a label value.
const CRON_JOB_NAME_MAX: usize = 52;

/// How `kind` checks `metadata.name` (and `generateName`, as a prefix).
fn name_rule(kind: &Kind) -> fn(&str, bool) -> Vec<String> {
    match (kind.group, kind.kind) {
        ("", "Namespace") => names::name_is_dns_label,
        ("", "Service") => names::name_is_dns1035_label,
        _ => names::name_is_dns_subdomain,
    }
}

pub(super) fn validate_object_meta(obj: &Value, kind: &Kind) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = field(obj, "metadata");
    let rule = name_rule(kind);

    let generate_name = str_of(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in rule(generate_name, true) {
            errs.push(FieldError::invalid(
                "metadata.generateName",
                generate_name,
                &msg,
            ));
        }
    }
    let name = str_of(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required_because(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for msg in rule(name, false) {
            errs.push(FieldError::invalid("metadata.name", name, &msg));
        }
        if (kind.group, kind.kind) == ("batch", "CronJob") && name.len() > CRON_JOB_NAME_MAX {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                &names::max_len_error(CRON_JOB_NAME_MAX),
            ));
        }
    }

    let namespace = str_of(meta, "namespace");
    if kind.namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace"));
        } else {
            for msg in names::name_is_dns_label(namespace, false) {
                errs.push(FieldError::invalid("metadata.namespace", namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }

    if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        errs.push(FieldError::invalid_unquoted(
            "metadata.generation",
            generation,
            "must be greater than or equal to 0",
        ));
    }
    errs.extend(validate_labels(
        object_of(meta, "labels"),
        "metadata.labels",
    ));
    errs.extend(validate_annotations(meta, "metadata.annotations"));
    errs.extend(validate_owner_references(meta));
    for finalizer in array_of(meta, "finalizers") {
        let finalizer = finalizer.as_str().unwrap_or_default();
        for msg in is_qualified_name(finalizer) {
            errs.push(FieldError::invalid("metadata.finalizers", finalizer, &msg));
        }
    }
    errs
}

/// The annotations of `meta` (an object's or a pod template's metadata) at
/// `path`: keys are qualified names in any case; values are free text but
/// all of them together have a size limit.
pub(super) fn validate_annotations(meta: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(annotations) = object_of(meta, "annotations") else {
        return errs;
    };
    let mut size = 0;
    for (key, value) in annotations {
        for msg in is_qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid(path, key, &msg));
        }
        size += key.len() + value.as_str().map_or(0, str::len);
    }
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

fn validate_owner_references(meta: &Value) -> Vec<FieldError> {
    const PATH: &str = "metadata.ownerReferences";
    let mut errs = Vec::new();
    let references = array_of(meta, "ownerReferences");
    for reference in references {
        let api_version = str_of(reference, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{PATH}.apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        for key in ["kind", "name", "uid"] {
            if str_of(reference, key).is_empty() {
                errs.push(FieldError::invalid(
                    format!("{PATH}.{key}"),
                    "",
                    "must not be empty",
                ));
            }
        }
    }
    let controllers: Vec<String> = references
        .iter()
        .filter(|r| r.get("controller") == Some(&Value::Bool(true)))
        .map(|r| format!("{}/{}", str_of(r, "kind"), str_of(r, "name")))
        .collect();
    if controllers.len() > 1 {
        errs.push(FieldError::invalid_unquoted(
            PATH,
            "[]v1.OwnerReference{...}",
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
    errs
}

/// What no update may change: name, namespace and uid; and no finalizer may
/// be added once deletion started.
pub(super) fn validate_object_meta_update(obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = field(obj, "metadata");
    let old_meta = field(old, "metadata");
    for key in ["name", "namespace", "uid"] {
        let (new, was) = (str_of(meta, key), str_of(old_meta, key));
        // An update that leaves the uid out keeps the stored one.
        if new != was && !(key == "uid" && new.is_empty()) {
            errs.push(FieldError::invalid(
                format!("metadata.{key}"),
                new,
                "field is immutable",
            ));
        }
    }
    if old_meta
        .get("deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        let old_finalizers = array_of(old_meta, "finalizers");
        let added: Vec<Value> = array_of(meta, "finalizers")
            .iter()
            .filter(|f| !old_finalizers.contains(f))
            .cloned()
            .collect();
        if !added.is_empty() {
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_format::string_slice(Some(&Value::Array(added)))
                ),
            ));
        }
    }
    errs
}

/// Finalizers in a Namespace's spec are the standard `kubernetes` or a
/// qualified name with a domain.
pub(super) fn validate_namespace_finalizers(obj: &Value) -> Vec<FieldError> {
    const PATH: &str = "spec.finalizers";
    let mut errs = Vec::new();
    let finalizers = obj
        .get("spec")
        .map_or(&[][..], |s| array_of(s, "finalizers"));
    for finalizer in finalizers {
        let finalizer = finalizer.as_str().unwrap_or_default();
        for msg in is_qualified_name(finalizer) {
            errs.push(FieldError::invalid(PATH, finalizer, &msg));
        }
        let standard = ["kubernetes", "orphan", "foregroundDeletion"].contains(&finalizer);
        if !finalizer.contains('/') && !standard {
            errs.push(FieldError::invalid(
                PATH,
                finalizer,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    errs
}
