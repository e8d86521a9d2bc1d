//! Server-side apply and the field ownership (`metadata.managedFields`)
//! every write records, in the manner of structured-merge-diff: each manager
//! owns the fields it last set; applying a field another manager owns with a
//! different value is a conflict unless forced; a field an applier stops
//! applying is removed unless someone else owns it too.

mod fields;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{Map, Value, json};

use crate::schema::{ListStrategy, list_strategy};
use crate::{ApiError, ApiResult, meta};
use fields::{
    FieldSet, display, fields_of, from_fields_v1, key_step, remove_at, to_fields_v1, value_at,
};

/// Who writes: a field manager, and the subresource it writes through.
/// Kubernetes keeps a manager's writes to `/status` in an entry of their own,
/// so that applying a status never drops the fields it applied to the spec.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    pub manager: &'a str,
    /// `""` for the object itself, else e.g. `"status"` or `"scale"`.
    pub subresource: &'a str,
}

impl<'a> From<&'a str> for Writer<'a> {
    fn from(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            subresource: "",
        }
    }
}

/// One `managedFields` entry, with its field set decoded.
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

impl Entry {
    /// The manager as conflict messages name it: appliers by name alone,
    /// updaters with the API version they wrote with.
    fn label(&self) -> String {
        if self.operation == "Update" {
            format!("{:?} using {}", self.manager, self.api_version)
        } else {
            format!("{:?}", self.manager)
        }
    }

    fn is(&self, writer: Writer, operation: &str) -> bool {
        self.manager == writer.manager
            && self.operation == operation
            && self.subresource == writer.subresource
    }

    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.fields),
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = self.subresource.clone().into();
        }
        entry
    }
}

fn entries_of(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: str_of(e, "manager"),
            operation: str_of(e, "operation"),
            api_version: str_of(e, "apiVersion"),
            time: str_of(e, "time"),
            subresource: str_of(e, "subresource"),
            fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
        .collect()
}

fn str_of(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn store_entries(obj: &mut Value, entries: Vec<Entry>) {
    let kept: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    let value = if kept.is_empty() {
        Value::Null
    } else {
        Value::Array(kept)
    };
    meta::set(obj, "managedFields", value);
}

/// The entry of `writer` for `operation`, created if missing.
fn entry_mut<'a>(
    entries: &'a mut Vec<Entry>,
    writer: Writer,
    operation: &str,
    api_version: &str,
) -> &'a mut Entry {
    let found = entries.iter().position(|e| e.is(writer, operation));
    let i = match found {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: writer.manager.to_owned(),
                operation: operation.to_owned(),
                api_version: api_version.to_owned(),
                time: String::new(),
                subresource: writer.subresource.to_owned(),
                fields: FieldSet::new(),
            });
            entries.len() - 1
        }
    };
    &mut entries[i]
}

/// Merges an applied configuration into the live object (`None`: create) for
/// `writer`, returning the new object with its managedFields.
pub fn server_side_apply<'a>(
    live: Option<&Value>,
    config: &Value,
    writer: impl Into<Writer<'a>>,
    force: bool,
    now: &str,
) -> ApiResult<Value> {
    let writer = writer.into();
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let applied = fields_of(config, writer.subresource);
    let (mut merged, mut entries) = match live {
        Some(live) => (
            merge_applied(live, config, &mut Vec::new()),
            entries_of(live),
        ),
        None => (config.clone(), Vec::new()),
    };
    if let Some(live) = live {
        resolve_conflicts(live, config, &applied, writer.manager, force, &mut entries)?;
    }
    let previously: FieldSet = entries
        .iter()
        .find(|e| e.is(writer, "Apply"))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for dropped in previously.difference(&applied) {
        let owned_elsewhere = entries
            .iter()
            .any(|e| !e.is(writer, "Apply") && e.fields.contains(dropped));
        if !owned_elsewhere {
            remove_at(&mut merged, dropped);
        }
    }
    let entry = entry_mut(&mut entries, writer, "Apply", &api_version);
    entry.fields = applied;
    entry.time = now.to_owned();
    entry.api_version = api_version;
    store_entries(&mut merged, entries);
    Ok(merged)
}

/// Conflicts are fields the config sets to a value other than the live one
/// while another manager owns them. Forcing takes them over.
fn resolve_conflicts(
    live: &Value,
    config: &Value,
    applied: &FieldSet,
    manager: &str,
    force: bool,
    entries: &mut [Entry],
) -> ApiResult<()> {
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for entry in entries.iter_mut() {
        if entry.manager == manager {
            continue;
        }
        let clashing: Vec<_> = entry
            .fields
            .intersection(applied)
            .filter(|path| value_at(config, path) != value_at(live, path))
            .filter(|path| !value_at(config, path).is_some_and(is_container))
            .cloned()
            .collect();
        if force {
            for path in &clashing {
                entry.fields.remove(path);
            }
        } else {
            let owner = entry.label();
            conflicts.extend(clashing.iter().map(|p| (owner.clone(), display(p))));
        }
    }
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(conflict_error(&conflicts))
    }
}

/// Keyed-list items are owned as a whole and by their fields; only their
/// leaf fields can conflict.
fn is_container(v: &Value) -> bool {
    v.is_object() && v.as_object().is_some_and(|m| !m.is_empty())
}

/// The 409 as the apiserver words it: one conflict on one line; several
/// grouped under each manager, managers in sorted order. `conflicts` holds
/// (manager label, field) pairs.
fn conflict_error(conflicts: &[(String, String)]) -> ApiError {
    let message = match conflicts {
        [(owner, field)] => {
            format!("Apply failed with 1 conflict: conflict with {owner}: {field}")
        }
        many => {
            let owners: std::collections::BTreeSet<&String> =
                many.iter().map(|(owner, _)| owner).collect();
            let mut lines = Vec::new();
            for owner in owners {
                lines.push(format!("conflicts with {owner}:"));
                lines.extend(
                    many.iter()
                        .filter(|(o, _)| o == owner)
                        .map(|(_, field)| format!("- {field}")),
                );
            }
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    let causes = conflicts
        .iter()
        .map(|(owner, field)| StatusCause {
            reason: Some("FieldManagerConflict".into()),
            message: Some(format!("conflict with {owner}")),
            field: Some(field.clone()),
        })
        .collect();
    ApiError {
        code: 409,
        reason: "Conflict",
        message,
        details: Some(Box::new(StatusDetails {
            causes: Some(causes),
            ..Default::default()
        })),
    }
}

/// The live object with the config's fields set: maps merge, keyed lists
/// merge item by item, sets take the union, other lists and scalars are replaced.
fn merge_applied(live: &Value, config: &Value, names: &mut Vec<String>) -> Value {
    match (live, config) {
        (Value::Object(live), Value::Object(config)) => {
            let mut out = live.clone();
            for (key, value) in config {
                names.push(key.clone());
                let merged = match live.get(key) {
                    Some(existing) => merge_applied(existing, value, names),
                    None => value.clone(),
                };
                names.pop();
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(live), Value::Array(config)) => {
            let schema_path: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_strategy(&schema_path) {
                ListStrategy::Map(keys) => {
                    let mut out = live.clone();
                    for item in config {
                        let step = key_step(item, keys);
                        match out.iter().position(|l| key_step(l, keys) == step) {
                            Some(i) => out[i] = merge_applied(&out[i], item, names),
                            None => out.push(item.clone()),
                        }
                    }
                    Value::Array(out)
                }
                ListStrategy::Set => {
                    let mut out = live.clone();
                    out.extend(config.iter().filter(|v| !live.contains(v)).cloned());
                    Value::Array(out)
                }
                ListStrategy::Atomic => Value::Array(config.clone()),
            }
        }
        (_, config) => config.clone(),
    }
}

/// Records that `manager` (operation Update) owns the fields a create,
/// update or patch changed, taking them from other managers.
pub fn record_update<'a>(
    old: Option<&Value>,
    new: &mut Value,
    writer: impl Into<Writer<'a>>,
    now: &str,
) {
    let writer = writer.into();
    let sent = new
        .pointer("/metadata/managedFields")
        .filter(|v| !v.is_null())
        .is_some();
    let mut entries = match (sent, old) {
        (true, _) | (false, None) => entries_of(new),
        (false, Some(old)) => entries_of(old),
    };
    let new_fields = fields_of(new, writer.subresource);
    let empty = Value::Object(Map::new());
    let old_obj = old.unwrap_or(&empty);
    let changed: FieldSet = new_fields
        .iter()
        .filter(|path| old.is_none() || value_at(old_obj, path) != value_at(new, path))
        .cloned()
        .collect();
    let removed: FieldSet = fields_of(old_obj, writer.subresource)
        .difference(&new_fields)
        .cloned()
        .collect();
    for entry in entries.iter_mut() {
        entry.fields.retain(|p| !removed.contains(p));
        if !entry.is(writer, "Update") {
            entry.fields.retain(|p| !changed.contains(p) || is_item(p));
        }
    }
    if !changed.is_empty() {
        let api_version = new
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let entry = entry_mut(&mut entries, writer, "Update", &api_version);
        entry.fields.extend(changed);
        entry.time = now.to_owned();
    }
    store_entries(new, entries);
}

/// A keyed-list or set item: shared by everyone who set it, never taken away.
fn is_item(path: &[String]) -> bool {
    path.last()
        .is_some_and(|s| s.starts_with("k:") || s.starts_with("v:"))
}

#[cfg(test)]
mod tests;
