//! Tables of custom resources, as the apiextensions server's table
//! convertor makes them: NAME, then the version's
//! `additionalPrinterColumns` (AGE when it has none), cells read by their
//! `jsonPath` and typed by the column's `type`.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Column, format, object_meta_doc};
use crate::custom::{Custom, json_path};

/// The column a definition without printer columns gets.
fn age_column() -> Value {
    json!({
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": object_meta_doc("creationTimestamp"),
    })
}

fn columns(custom: &Custom) -> Vec<Value> {
    if custom.columns.is_empty() {
        vec![age_column()]
    } else {
        custom.columns.clone()
    }
}

pub(super) fn column_definitions(custom: &Custom) -> Value {
    let mut definitions = vec![json!(Column::name())];
    for column in columns(custom) {
        definitions.push(json!({
            "name": column["name"],
            "type": column["type"],
            "format": column.get("format").cloned().unwrap_or_else(|| json!("")),
            "description": column.get("description").cloned().unwrap_or_else(|| json!("")),
            "priority": column.get("priority").cloned().unwrap_or_else(|| json!(0)),
        }));
    }
    Value::Array(definitions)
}

pub(super) fn cells(custom: &Custom, obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut cells = vec![json!(crate::meta::name(obj))];
    for column in columns(custom) {
        let path = column["jsonPath"].as_str().unwrap_or_default();
        let cell = json_path(obj, path).map_or(Value::Null, |value| {
            cell(column["type"].as_str().unwrap_or_default(), value, now)
        });
        cells.push(cell);
    }
    cells
}

/// `cellForJSONValue`: the value as the column's type shows it; null when
/// it is not of that type.
fn cell(column_type: &str, value: &Value, now: Timestamp) -> Value {
    match (column_type, value) {
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => value.clone(),
        ("date", Value::String(_)) => match format::timestamp(Some(value)) {
            Some(t) => json!(format::human_duration(now.duration_since(t).as_secs())),
            None => json!("<invalid>"),
        },
        ("integer" | "number" | "boolean" | "date", _) => Value::Null,
        (_, Value::String(s)) => json!(s),
        (_, other) => json!(other.to_string()),
    }
}
