//! Strategic merge patch, as apimachinery's `strategicpatch` applies it:
//! maps merge key by key, `null` deletes, and lists merge by the strategy the
//! schema gives them (keyed lists by their merge key, sets by value, the rest
//! replaced whole). The directives kubectl sends are honoured: `$patch`
//! (`replace`, `delete`, `merge`), `$retainKeys`, `$deleteFromPrimitiveList/`
//! and `$setElementOrder/`.

use serde_json::{Map, Value};

use crate::schema::{ListStrategy, list_strategy};
use crate::{ApiError, ApiResult};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ORDER: &str = "$setElementOrder/";

/// `original` with `patch` (a JSON object) merged in.
pub fn merge(original: &Value, patch: &Value) -> ApiResult<Value> {
    let original = original.as_object().cloned().unwrap_or_default();
    let patch = patch.as_object().cloned().unwrap_or_default();
    let merged = merge_map(original, &patch, &mut Vec::new())?;
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// Merges one map; `None` when the patch deletes it (`$patch: delete`).
fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    path: &mut Vec<String>,
) -> ApiResult<Option<Map<String, Value>>> {
    match patch.get(PATCH).and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => return Ok(Some(without_directives(patch))),
        Some("merge") | None => {}
        Some(other) => return Err(bad(format!("unknown patch type: {other:?}"))),
    }
    for (key, value) in patch.iter().filter(|(k, _)| !k.starts_with('$')) {
        if value.is_null() {
            original.remove(key);
            continue;
        }
        path.push(key.clone());
        let merged = merge_field(original.remove(key), value, path)?;
        path.pop();
        if let Some(merged) = merged {
            original.insert(key.clone(), merged);
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(DELETE_FROM_LIST) {
            let remove = as_list(value, key)?;
            if let Some(Value::Array(items)) = original.get_mut(field) {
                items.retain(|item| !remove.contains(item));
            }
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix(SET_ORDER) {
            let order = as_list(value, key)?;
            path.push(field.to_owned());
            let merge_key = merge_key(path);
            path.pop();
            if let Some(Value::Array(items)) = original.get_mut(field) {
                reorder(items, order, merge_key);
            }
        }
    }
    if let Some(keep) = patch.get(RETAIN_KEYS) {
        let keep = as_list(keep, RETAIN_KEYS)?;
        original.retain(|key, _| keep.iter().any(|k| k.as_str() == Some(key)));
    }
    Ok(Some(original))
}

fn merge_field(
    original: Option<Value>,
    patch: &Value,
    path: &mut Vec<String>,
) -> ApiResult<Option<Value>> {
    match patch {
        Value::Object(patch) => {
            let original = match original {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            Ok(merge_map(original, patch, path)?.map(Value::Object))
        }
        Value::Array(patch) => merge_list(original, patch, path).map(Some),
        scalar => Ok(Some(scalar.clone())),
    }
}

fn merge_list(
    original: Option<Value>,
    patch: &[Value],
    path: &mut Vec<String>,
) -> ApiResult<Value> {
    let original = match original {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    match list_strategy(&names) {
        ListStrategy::Atomic => Ok(Value::Array(patch.to_vec())),
        ListStrategy::Set => {
            let mut merged = original;
            for item in patch {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            Ok(Value::Array(merged))
        }
        ListStrategy::Map(keys) => merge_keyed_list(original, patch, keys[0], path),
    }
}

/// A list of objects identified by `key` (a container's `name`): patch items
/// merge into the item with the same key, or are appended.
fn merge_keyed_list(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    path: &mut Vec<String>,
) -> ApiResult<Value> {
    let replaces = patch
        .iter()
        .any(|item| item.get(PATCH).and_then(Value::as_str) == Some("replace"));
    if replaces {
        let rest = patch
            .iter()
            .filter(|item| item.get(PATCH).is_none())
            .cloned();
        return Ok(Value::Array(rest.collect()));
    }
    for item in patch {
        let Some(fields) = item.as_object() else {
            return Err(bad(format!(
                "{}: expected a list of objects keyed by {key:?}",
                path.join(".")
            )));
        };
        let id = fields.get(key).ok_or_else(|| {
            bad(format!(
                "{}: map does not contain declared merge key: {key}",
                path.join(".")
            ))
        })?;
        let found = original.iter().position(|o| o.get(key) == Some(id));
        if fields.get(PATCH).and_then(Value::as_str) == Some("delete") {
            if let Some(i) = found {
                original.remove(i);
            }
            continue;
        }
        match found {
            Some(i) => {
                let existing = original[i].as_object().cloned().unwrap_or_default();
                match merge_map(existing, fields, path)? {
                    Some(merged) => original[i] = Value::Object(merged),
                    None => {
                        original.remove(i);
                    }
                }
            }
            None => {
                if let Some(added) = merge_map(Map::new(), fields, path)? {
                    original.push(Value::Object(added));
                }
            }
        }
    }
    Ok(Value::Array(original))
}

/// The merge key of the keyed list at `path`, if it is one.
fn merge_key(path: &[String]) -> Option<&'static str> {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    match list_strategy(&names) {
        ListStrategy::Map(keys) => Some(keys[0]),
        _ => None,
    }
}

/// Puts the items `order` names first, in its order; the others keep their
/// relative order after them.
fn reorder(items: &mut [Value], order: &[Value], key: Option<&str>) {
    let position = |item: &Value| {
        order
            .iter()
            .position(|o| match key {
                Some(key) => o.get(key).is_some() && o.get(key) == item.get(key),
                None => o == item,
            })
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(position);
}

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn as_list<'a>(value: &'a Value, directive: &str) -> ApiResult<&'a [Value]> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| bad(format!("{directive} must be a list")))
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request(message)
}
