//! PersistentVolumeClaims (`ValidatePersistentVolumeClaim` and its update).

use serde_json::Value;

use super::{array_of, copy_field, field, str_of};
use crate::FieldError;

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

pub(super) fn validate_claim(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = validate_claim_spec(spec, "spec");
    if let Some(old) = old {
        errs.extend(validate_claim_update(spec, field(old, "spec")));
    }
    errs
}

/// A claim asks for a size and how it will be mounted.
fn validate_claim_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let modes = array_of(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required_because(
            format!("{path}.accessModes"),
            "at least 1 access mode is required",
        ));
    }
    for mode in modes {
        let mode = mode.as_str().unwrap_or_default();
        if !ACCESS_MODES.contains(&mode) {
            errs.push(FieldError::not_supported(
                format!("{path}.accessModes"),
                mode,
                &ACCESS_MODES,
            ));
        }
    }
    if spec.pointer("/resources/requests/storage").is_none() {
        errs.push(FieldError::required(format!("{path}.resources[storage]")));
    }
    let mode = str_of(spec, "volumeMode");
    if !mode.is_empty() && !["Block", "Filesystem"].contains(&mode) {
        errs.push(FieldError::not_supported(
            format!("{path}.volumeMode"),
            mode,
            &["Block", "Filesystem"],
        ));
    }
    errs
}

/// After create only the requested size, the attributes class and (once,
/// when bound) the volume name may change.
fn validate_claim_update(spec: &Value, old_spec: &Value) -> Vec<FieldError> {
    let mut allowed = old_spec.clone();
    if let (Some(resources), Some(new_resources)) =
        (allowed.get_mut("resources"), spec.get("resources"))
    {
        copy_field(new_resources, resources, "requests");
    }
    copy_field(spec, &mut allowed, "volumeAttributesClassName");
    if str_of(old_spec, "volumeName").is_empty() {
        copy_field(spec, &mut allowed, "volumeName");
    }
    if &allowed == spec {
        Vec::new()
    } else {
        vec![FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        )]
    }
}
