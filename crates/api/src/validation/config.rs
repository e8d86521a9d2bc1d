//! ConfigMaps and Secrets (`ValidateConfigMap`, `ValidateSecret` and their
//! updates): keys that can become file names, a size limit, the keys each
//! Secret type needs, and `immutable`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::names::is_config_map_key;
use super::{object_of, str_of};
use crate::FieldError;

/// A ConfigMap's or Secret's data may hold at most 1 MiB.
const MAX_DATA_SIZE: usize = 1024 * 1024;

const IMMUTABLE: &str = "field is immutable when `immutable` is set";

pub(super) fn validate_config_map(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let data = object_of(obj, "data");
    let binary = object_of(obj, "binaryData");
    let mut size = check_keys(data, "data", &mut errs, |v| v.as_str().map_or(0, str::len));
    for key in data.into_iter().flatten().map(|(k, _)| k) {
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.push(FieldError::invalid(
                format!("data[{key}]"),
                key,
                "duplicate of key present in binaryData",
            ));
        }
    }
    size += check_keys(binary, "binaryData", &mut errs, decoded_len);
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("", MAX_DATA_SIZE));
    }
    if let Some(old) = old {
        check_immutable_data(obj, old, &["data", "binaryData"], &mut errs);
    }
    errs
}

pub(super) fn validate_secret(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let data = object_of(obj, "data");
    let size = check_keys(data, "data", &mut errs, decoded_len);
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let has = |key: &str| data.is_some_and(|d| d.contains_key(key));
    let require = |key: &str, errs: &mut Vec<FieldError>| {
        errs.push(FieldError::required(format!("data[{key}]")));
    };
    match str_of(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let annotation = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if annotation.is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                ));
            }
        }
        kind @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if kind == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.and_then(|d| d.get(key)) {
                None => require(key, &mut errs),
                Some(encoded) => {
                    if let Err(why) = decoded_json_object(encoded) {
                        errs.push(FieldError::invalid(
                            format!("data[{key}]"),
                            "<secret contents redacted>",
                            &why,
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            require("username", &mut errs);
            require("password", &mut errs);
        }
        "kubernetes.io/ssh-auth"
            if data
                .and_then(|d| d.get("ssh-privatekey"))
                .is_none_or(|v| decoded_len(v) == 0) =>
        {
            require("ssh-privatekey", &mut errs);
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    require(key, &mut errs);
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let (new_type, old_type) = (str_of(obj, "type"), str_of(old, "type"));
        if new_type != old_type {
            errs.push(FieldError::invalid("type", new_type, "field is immutable"));
        }
        check_immutable_data(obj, old, &["data"], &mut errs);
    }
    errs
}

/// Checks each key of the map at `path` and returns the total size of its
/// values as `size` measures them.
fn check_keys(
    map: Option<&Map<String, Value>>,
    path: &str,
    errs: &mut Vec<FieldError>,
    size: impl Fn(&Value) -> usize,
) -> usize {
    let mut total = 0;
    for (key, value) in map.into_iter().flatten() {
        for msg in is_config_map_key(key) {
            errs.push(FieldError::invalid(format!("{path}[{key}]"), key, &msg));
        }
        total += size(value);
    }
    total
}

/// The byte length of a base64 value, as stored after decoding.
fn decoded_len(v: &Value) -> usize {
    v.as_str()
        .and_then(|s| STANDARD.decode(s).ok())
        .map_or(0, |bytes| bytes.len())
}

/// A docker config must decode to a JSON object; the error reads as Go's
/// JSON decoder words it.
fn decoded_json_object(encoded: &Value) -> Result<(), String> {
    let bytes = encoded
        .as_str()
        .and_then(|s| STANDARD.decode(s).ok())
        .unwrap_or_default();
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(_)) => Ok(()),
        Ok(other) => Err(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_type_name(&other)
        )),
        Err(_) if bytes.is_empty() => Err("unexpected end of JSON input".to_owned()),
        Err(e) => Err(format!("invalid character in JSON: {e}")),
    }
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Once `immutable: true` is stored, neither it nor the data may change.
fn check_immutable_data(obj: &Value, old: &Value, fields: &[&str], errs: &mut Vec<FieldError>) {
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    if obj.get("immutable") != Some(&Value::Bool(true)) {
        errs.push(FieldError::forbidden("immutable", IMMUTABLE));
    }
    for field in fields {
        if obj.get(*field) != old.get(*field) {
            errs.push(FieldError::forbidden(*field, IMMUTABLE));
        }
    }
}
