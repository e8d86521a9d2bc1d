//! Server-side printing: `meta.k8s.io/v1` Tables, the rows `kubectl get`
//! shows, with the columns and cell formats of Kubernetes' printers
//! (`pkg/printers/internalversion`). The server always prints the wide
//! columns; kubectl hides priority-1 columns unless `-o wide`.

mod core;
mod custom;
mod format;
mod networking;
mod scheduling;
mod workloads;

use std::collections::HashMap;
use std::sync::OnceLock;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::registry::{KINDS, Kind};
use crate::{ApiError, ApiResult, FieldError};

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses `?includeObject=`; absent or empty means `Metadata`.
    pub fn parse(s: Option<&str>) -> ApiResult<IncludeObject> {
        match s.unwrap_or_default() {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => {
                let err = FieldError::not_supported(
                    "includeObject",
                    other,
                    &["Metadata", "None", "Object"],
                );
                Err(ApiError::bad_request(format!(
                    "unable to convert to Table as requested: {}",
                    err.summary()
                )))
            }
        }
    }
}

/// A meta.k8s.io/v1 Table (apiVersion, kind, columnDefinitions, rows) of `objects`, without `metadata`
/// (the server adds resourceVersion/continue). Rows carry `cells` and `object` (PartialObjectMetadata with
/// apiVersion meta.k8s.io/v1 for Metadata, the full object for Object, absent for None).
pub fn table(kind: &Kind, objects: &[Value], include: IncludeObject) -> Value {
    let now = Timestamp::now();
    let (columns, rows) = match &kind.custom {
        Some(custom_kind) => (
            custom::column_definitions(custom_kind),
            rows(objects, include, |obj| {
                (custom::cells(custom_kind, obj, now), None)
            }),
        ),
        None => {
            let printer = printer(kind);
            let rows = rows(objects, include, |obj| {
                ((printer.cells)(obj, now), (printer.conditions)(obj))
            });
            (column_definitions(kind).clone(), rows)
        }
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// One row per object: its cells and conditions from `print`, and the
/// object as `include` asks.
fn rows(
    objects: &[Value],
    include: IncludeObject,
    print: impl Fn(&Value) -> (Vec<Value>, Option<Value>),
) -> Vec<Value> {
    objects
        .iter()
        .map(|obj| {
            let (cells, conditions) = print(obj);
            let mut row = json!({ "cells": cells });
            if let Some(conditions) = conditions {
                row["conditions"] = conditions;
            }
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(obj),
                IncludeObject::Object => row["object"] = obj.clone(),
            }
            row
        })
        .collect()
}

fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

type ColumnsFn = fn() -> Vec<Column>;
type CellsFn = fn(&Value, Timestamp) -> Vec<Value>;

/// How one kind prints: its columns and the cells of one object.
struct Printer {
    columns: ColumnsFn,
    cells: CellsFn,
    conditions: fn(&Value) -> Option<Value>,
}

fn no_conditions(_: &Value) -> Option<Value> {
    None
}

fn printer(kind: &Kind) -> Printer {
    let (columns, cells): (ColumnsFn, CellsFn) = match (kind.group, kind.kind) {
        ("", "Pod") => {
            return Printer {
                columns: core::pod_columns,
                cells: core::pod_cells,
                conditions: core::pod_conditions,
            };
        }
        ("", "Namespace") => (core::namespace_columns, core::namespace_cells),
        ("", "Node") => (core::node_columns, core::node_cells),
        ("", "Service") => (core::service_columns, core::service_cells),
        ("", "Endpoints") => (core::endpoints_columns, core::endpoints_cells),
        ("", "ConfigMap") => (core::config_map_columns, core::config_map_cells),
        ("", "Secret") => (core::secret_columns, core::secret_cells),
        ("", "ServiceAccount") => (core::service_account_columns, core::service_account_cells),
        ("", "Event") => (core::event_columns, core::core_event_cells),
        ("events.k8s.io", "Event") => (core::event_columns, core::events_api_event_cells),
        ("", "PersistentVolume") => (core::pv_columns, core::pv_cells),
        ("", "PersistentVolumeClaim") => (core::pvc_columns, core::pvc_cells),
        ("", "ResourceQuota") => (core::quota_columns, core::quota_cells),
        ("", "ReplicationController") => (workloads::rc_columns, workloads::rc_cells),
        ("apps", "Deployment") => (workloads::deployment_columns, workloads::deployment_cells),
        ("apps", "ReplicaSet") => (workloads::replica_set_columns, workloads::replica_set_cells),
        ("apps", "StatefulSet") => (
            workloads::stateful_set_columns,
            workloads::stateful_set_cells,
        ),
        ("apps", "DaemonSet") => (workloads::daemon_set_columns, workloads::daemon_set_cells),
        ("apps", "ControllerRevision") => (workloads::revision_columns, workloads::revision_cells),
        ("batch", "Job") => (workloads::job_columns, workloads::job_cells),
        ("batch", "CronJob") => (workloads::cron_job_columns, workloads::cron_job_cells),
        ("discovery.k8s.io", "EndpointSlice") => (
            networking::endpoint_slice_columns,
            networking::endpoint_slice_cells,
        ),
        ("networking.k8s.io", "Ingress") => {
            (networking::ingress_columns, networking::ingress_cells)
        }
        ("networking.k8s.io", "IngressClass") => (
            networking::ingress_class_columns,
            networking::ingress_class_cells,
        ),
        ("networking.k8s.io", "NetworkPolicy") => (
            networking::network_policy_columns,
            networking::network_policy_cells,
        ),
        ("coordination.k8s.io", "Lease") => (networking::lease_columns, networking::lease_cells),
        ("storage.k8s.io", "StorageClass") => (
            networking::storage_class_columns,
            networking::storage_class_cells,
        ),
        ("scheduling.k8s.io", "PriorityClass") => (
            scheduling::priority_class_columns,
            scheduling::priority_class_cells,
        ),
        _ => (default_columns, default_cells),
    };
    Printer {
        columns,
        cells,
        conditions: no_conditions,
    }
}

/// The columns of every served kind, built once (descriptions come from the
/// schemas, which are costly to generate).
fn column_definitions(kind: &Kind) -> &'static Value {
    static DEFINITIONS: OnceLock<HashMap<(&str, &str), Value>> = OnceLock::new();
    let all = DEFINITIONS.get_or_init(|| {
        KINDS
            .iter()
            .map(|k| ((k.group, k.kind), json!((printer(k).columns)())))
            .collect()
    });
    &all[&(kind.group, kind.kind)]
}

/// A `TableColumnDefinition`.
#[derive(serde::Serialize)]
struct Column {
    name: &'static str,
    #[serde(rename = "type")]
    ty: &'static str,
    format: &'static str,
    description: String,
    priority: i32,
}

impl Column {
    fn new(name: &'static str, ty: &'static str, description: impl Into<String>) -> Column {
        Column {
            name,
            ty,
            format: "",
            description: description.into(),
            priority: 0,
        }
    }

    /// Shown only by `kubectl get -o wide`.
    fn wide(self) -> Column {
        Column {
            priority: 1,
            ..self
        }
    }

    /// The NAME column every printer starts with.
    fn name() -> Column {
        Column {
            format: "name",
            ..Column::new("Name", "string", object_meta_doc("name"))
        }
    }

    fn age() -> Column {
        Column::new("Age", "string", object_meta_doc("creationTimestamp"))
    }

    fn containers() -> Column {
        Column::new(
            "Containers",
            "string",
            "Names of each container in the template.",
        )
        .wide()
    }

    fn images() -> Column {
        Column::new(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        )
        .wide()
    }
}

/// The description of `T`'s field, as Go's `T{}.SwaggerDoc()[field]` gives it.
fn doc<T: JsonSchema>(field: &str) -> String {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema
        .as_value()
        .pointer(&format!("/properties/{field}/description"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn object_meta_doc(field: &str) -> String {
    doc::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(field)
}

/// `rest.NewDefaultTableConvertor`, for kinds without a printer.
fn default_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Created At", "date", object_meta_doc("creationTimestamp")),
    ]
}

fn default_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let created = format::timestamp(obj.pointer("/metadata/creationTimestamp"))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    vec![json!(crate::meta::name(obj)), json!(created)]
}

#[cfg(test)]
mod tests;
