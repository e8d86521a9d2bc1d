//! Printers of the scheduling kinds.

use jiff::Timestamp;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::{Value, json};

use super::format::{age, str_at};
use super::{Column, doc};
use crate::meta;

pub fn priority_class_columns() -> Vec<Column> {
    let class = doc::<PriorityClass>;
    vec![
        Column::name(),
        Column::new("Value", "integer", class("value")),
        Column::new("Global-Default", "boolean", class("globalDefault")),
        Column::age(),
        Column::new("PreemptionPolicy", "string", class("preemptionPolicy")),
    ]
}

pub fn priority_class_cells(class: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(meta::name(class)),
        json!(class["value"].as_i64().unwrap_or(0)),
        json!(class["globalDefault"].as_bool().unwrap_or(false)),
        json!(age(class, now)),
        json!(str_at(class, "/preemptionPolicy")),
    ]
}
