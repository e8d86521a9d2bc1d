//! A custom resource's `openAPIV3Schema` at work, as the apiextensions
//! server uses a structural schema: pruning the fields it does not declare,
//! filling in `default`s, and validating with kube-openapi's messages
//! (`spec.size in body must be of type integer: "string"`) turned into
//! field errors the way `apiextensions-apiserver` turns them.

use serde_json::{Map, Value};

use super::Custom;
use crate::FieldError;

/// Drops what the schema does not declare (kept under
/// `x-kubernetes-preserve-unknown-fields`). `apiVersion`, `kind` and
/// `metadata` are always kept; metadata keeps the ObjectMeta fields only.
pub fn prune(custom: &Custom, mut obj: Value) -> Value {
    let Some(root) = obj.as_object_mut() else {
        return obj;
    };
    let kept: Vec<(String, Value)> = ["apiVersion", "kind", "metadata"]
        .into_iter()
        .filter_map(|k| root.remove(k).map(|v| (k.to_owned(), v)))
        .collect();
    if let Some(schema) = &custom.schema {
        prune_value(schema, &mut obj);
    }
    let root = obj.as_object_mut().expect("still an object");
    for (key, value) in kept {
        let value = if key == "metadata" {
            typed_metadata(value)
        } else {
            value
        };
        root.insert(key, value);
    }
    obj
}

/// Metadata through the typed ObjectMeta: unknown fields dropped, as for
/// every kind. Metadata that does not decode is kept for validation to refuse.
fn typed_metadata(metadata: Value) -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    serde_json::from_value::<ObjectMeta>(metadata.clone())
        .ok()
        .and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or(metadata)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

fn prune_value(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown = preserves_unknown(schema) || schema["additionalProperties"] == true;
            // An embedded object (a Pod template's like) has its type and
            // metadata whether the schema names them or not.
            let embedded = schema["x-kubernetes-embedded-resource"] == true;
            map.retain(
                |key, child| match properties.and_then(|p| p.get(key)).or(additional) {
                    Some(child_schema) => {
                        prune_value(child_schema, child);
                        true
                    }
                    None => {
                        keep_unknown
                            || embedded
                                && matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                    }
                },
            );
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune_value(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Fills in the schema's `default`s where a field is absent (or null and
/// not nullable), inside every object present.
pub fn apply_defaults(custom: &Custom, obj: &mut Value) {
    if let Some(schema) = &custom.schema {
        default_value(schema, obj);
    }
}

fn default_value(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, child_schema) in properties {
                    let Some(default) = child_schema.get("default") else {
                        continue;
                    };
                    let nullable = child_schema["nullable"] == true;
                    if map.get(key).is_none_or(|v| v.is_null() && !nullable) {
                        map.insert(key.clone(), default.clone());
                    }
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map.iter_mut() {
                let child_schema = schema
                    .get("properties")
                    .and_then(|p| p.get(key))
                    .or(additional);
                if let Some(child_schema) = child_schema {
                    default_value(child_schema, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default_value(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Every way `obj` breaks its schema; `metadata`, `apiVersion` and `kind`
/// are left to the checks all kinds share.
pub fn validate(custom: &Custom, obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let (Some(schema), Some(root)) = (&custom.schema, obj.as_object()) else {
        return errors;
    };
    let rest: Map<String, Value> = root
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut root_schema = schema.clone();
    if let Some(required) = root_schema
        .get_mut("required")
        .and_then(Value::as_array_mut)
    {
        required.retain(|r| !matches!(r.as_str(), Some("apiVersion" | "kind" | "metadata")));
    }
    if let Some(properties) = root_schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
    {
        for key in ["apiVersion", "kind", "metadata"] {
            properties.remove(key);
        }
    }
    check(&root_schema, &Value::Object(rest), "", &mut errors);
    errors
}

/// The JSON type kube-openapi names a value by.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_matches(wanted: &str, value: &Value) -> bool {
    match (wanted, value) {
        ("integer", Value::Number(n)) => is_integer(n),
        ("number", Value::Number(_)) => true,
        (wanted, value) => wanted == type_name(value),
    }
}

/// A value as Go's `%v` shows it in `Invalid value: ...`: strings quoted.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A schema bound (`minimum: 1`) as Go's `%v` prints the float64 it is.
fn bound(n: &Value) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

fn invalid(path: &str, value: &Value, why: String) -> FieldError {
    FieldError::invalid_unquoted(path, shown(value), &format!("{path} in body {why}"))
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    if int_or_string {
        if !matches!(value, Value::String(_)) && !type_matches("integer", value) {
            let name = type_name(value);
            errors.push(FieldError {
                reason: "FieldValueTypeInvalid",
                field: path.to_owned(),
                message: format!(
                    "Invalid value: {name:?}: {path} in body must be of type integer,string: {name:?}"
                ),
            });
            return;
        }
    } else if let Some(wanted) = schema.get("type").and_then(Value::as_str)
        && !type_matches(wanted, value)
    {
        let name = type_name(value);
        errors.push(FieldError {
            reason: "FieldValueTypeInvalid",
            field: path.to_owned(),
            message: format!(
                "Invalid value: {name:?}: {path} in body must be of type {wanted}: {name:?}"
            ),
        });
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(shown).collect();
        errors.push(FieldError {
            reason: "FieldValueNotSupported",
            field: path.to_owned(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                shown(value),
                list.join(", ")
            ),
        });
    }
    match value {
        Value::Number(n) => check_number(schema, value, n, path, errors),
        Value::String(s) => check_string(schema, value, s, path, errors),
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && count > max
            {
                errors.push(FieldError {
                    reason: "FieldValueTooMany",
                    field: path.to_owned(),
                    message: format!("Too many: {count}: must have at most {max} items"),
                });
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && count < min
            {
                errors.push(invalid(
                    path,
                    value,
                    format!("should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(required) {
                    errors.push(FieldError::required(child_path(path, required)));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
                    check(child_schema, child, &child_path(path, key), errors);
                }
            }
        }
        _ => {}
    }
}

fn check_number(
    schema: &Value,
    value: &Value,
    n: &serde_json::Number,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Some(x) = n.as_f64() else {
        return;
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = schema["exclusiveMinimum"] == true;
        if x < min || exclusive && x == min {
            let how = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(invalid(
                path,
                value,
                format!("should be {how} {}", bound(&schema["minimum"])),
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = schema["exclusiveMaximum"] == true;
        if x > max || exclusive && x == max {
            let how = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(invalid(
                path,
                value,
                format!("should be {how} {}", bound(&schema["maximum"])),
            ));
        }
    }
    if let Some(step) = schema.get("multipleOf").and_then(Value::as_f64)
        && step > 0.0
        && (x / step).fract() != 0.0
    {
        errors.push(invalid(
            path,
            value,
            format!("should be a multiple of {}", bound(&schema["multipleOf"])),
        ));
    }
}

fn check_string(schema: &Value, value: &Value, s: &str, path: &str, errors: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        errors.push(invalid(
            path,
            value,
            format!("should be at most {max} chars long"),
        ));
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        errors.push(invalid(
            path,
            value,
            format!("should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // A pattern Rust's regex cannot compile is not checked: it shares
        // Go's RE2 syntax nearly everywhere.
        let matches = regex::Regex::new(pattern)
            .ok()
            .is_none_or(|re| re.is_match(s));
        if !matches {
            errors.push(invalid(path, value, format!("should match '{pattern}'")));
        }
    }
}
