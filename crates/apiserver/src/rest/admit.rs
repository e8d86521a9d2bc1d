//! The steps every write shares: the object's type, its schema, the fields
//! the server owns, defaults, validation and managedFields.

use serde_json::{Value, json};
use tugboat_api::{ApiError, ApiResult, Kind, apply, custom, defaults, meta, validation};

use crate::body::{FieldValidation, unknown_fields};
use crate::objects::Objects;
use crate::service_allocation;

/// Metadata only the server sets; what a client sends for these is ignored.
const SERVER_OWNED: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
];

/// Fills in or checks `apiVersion` and `kind` against the kind the URL names.
pub fn check_type(kind: &Kind, obj: &mut Value) -> ApiResult<()> {
    let expected_version = kind.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = expected_version.clone().into(),
        Some(v) if v == expected_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = kind.kind.into(),
        Some(k) if k == kind.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )));
        }
    }
    Ok(())
}

/// Decodes the object through its kind's schema: wrong types are 400, fields
/// the schema does not know are dropped and warned about or refused. A
/// custom resource is pruned by its definition's schema instead, which
/// validation then checks types against (422, as Kubernetes answers).
pub fn normalize(
    kind: &Kind,
    input: Value,
    validation: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    let normalized = match &kind.custom {
        Some(definition) => custom::prune(definition, input.clone()),
        None => (kind.normalize)(input.clone()).map_err(|e| {
            ApiError::bad_request(format!(
                "failed to decode {} {:?}: {e}",
                kind.kind,
                meta::name(&input)
            ))
        })?,
    };
    let warnings = validation.check(unknown_fields(&input, &normalized))?;
    Ok((normalized, warnings))
}

/// The server's fields of a new object: identity, timestamps, generation and
/// (for kinds with a status subresource) a fresh status.
pub fn prepare_create(kind: &Kind, obj: &mut Value, now: &str) {
    for field in SERVER_OWNED {
        meta::set(obj, field, Value::Null);
    }
    meta::set(obj, "uid", uuid::Uuid::new_v4().to_string().into());
    meta::set(obj, "creationTimestamp", now.into());
    if tracks_generation(kind) {
        meta::set(obj, "generation", 1.into());
    }
    if kind.has_status
        && kind.kind != "Node"
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    defaults::apply_defaults(kind, obj);
    if kind.kind == "Pod" {
        super::service_account_admission::mount_token(obj);
    }
}

/// Kinds whose `metadata.generation` counts spec changes for their
/// controllers (custom resources too, as their controllers read it).
fn tracks_generation(kind: &Kind) -> bool {
    kind.custom.is_some()
        || matches!(
            kind.group,
            "apps" | "batch" | "networking.k8s.io" | "policy"
        )
        || matches!(kind.kind, "ReplicationController" | "Pod")
}

/// The object an update writes: `desired` with the server's metadata carried
/// over from `old`, the part the subresource may not change taken from `old`,
/// defaults applied and the generation bumped on a spec change.
pub fn prepare_update(
    kind: &Kind,
    status_only: bool,
    old: &Value,
    desired: Value,
) -> ApiResult<Value> {
    let old_rv = meta::resource_version(old);
    let desired_rv = meta::resource_version(&desired);
    if !desired_rv.is_empty() && desired_rv != old_rv {
        return Err(ApiError::stale(kind.group, kind.plural, meta::name(old)));
    }
    let mut new = if status_only {
        let mut new = old.clone();
        new["status"] = desired.get("status").cloned().unwrap_or_else(|| json!({}));
        new
    } else {
        let mut new = desired;
        match old.get("status") {
            Some(status) if kind.has_status => new["status"] = status.clone(),
            None if kind.has_status => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
            _ => {}
        }
        new
    };
    for field in SERVER_OWNED.iter().chain(&["name", "namespace"]) {
        let value = old
            .pointer(&format!("/metadata/{field}"))
            .cloned()
            .unwrap_or(Value::Null);
        meta::set(&mut new, field, value);
    }
    defaults::apply_defaults(kind, &mut new);
    if service_allocation::allocates(kind) {
        service_allocation::carry_over(old, &mut new);
    }
    if tracks_generation(kind) && generation_counts(kind, &new) != generation_counts(kind, old) {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta::set(&mut new, "generation", (generation + 1).into());
    }
    Ok(new)
}

/// The part of an object whose changes raise its generation: the spec, and
/// for a custom resource without a status subresource everything but its
/// metadata, status included (as the apiextensions server counts).
fn generation_counts(kind: &Kind, obj: &Value) -> Value {
    let mut counted = Value::Object(meta::spec_part(obj));
    if kind.custom.is_some() && !kind.has_status {
        counted["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
    }
    counted
}

/// 422 Invalid with every field problem, or nothing.
pub fn validate(kind: &Kind, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let errors = validation::validate(kind, obj, old);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            kind.group,
            kind.kind,
            meta::name(obj),
            errors,
        ))
    }
}

/// Records in managedFields what `writer` changed with a non-apply write.
pub fn record_manager(old: Option<&Value>, new: &mut Value, writer: apply::Writer, now: &str) {
    apply::record_update(old, new, writer, now);
}

/// Two objects the same apart from managedFields and resourceVersion: an
/// update that changes nothing else is not written.
pub fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        meta::set(&mut v, "managedFields", Value::Null);
        meta::set(&mut v, "resourceVersion", Value::Null);
        v
    };
    strip(a) == strip(b)
}

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .expect("rounding to seconds")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The name of the cluster's default class of `kind` (StorageClass,
/// IngressClass): the newest one annotated `true` under one of
/// `annotations`, as the DefaultStorageClass and DefaultIngressClass
/// plugins choose it.
pub async fn default_class(
    objects: &Objects,
    kind: &Kind,
    annotations: &[&str],
) -> ApiResult<Option<String>> {
    let mut default: Option<Value> = None;
    for class in objects.list(kind, "").await? {
        let is_default = annotations
            .iter()
            .any(|a| class["metadata"]["annotations"][a] == "true");
        let newer = |d: &Value| {
            class["metadata"]["creationTimestamp"].as_str()
                >= d["metadata"]["creationTimestamp"].as_str()
        };
        if is_default && default.as_ref().is_none_or(newer) {
            default = Some(class);
        }
    }
    Ok(default.and_then(|c| c["metadata"]["name"].as_str().map(str::to_owned)))
}
