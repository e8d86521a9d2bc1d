//! Field sets: which fields of an object a manager owns, as paths of
//! `f:<field>`, `k:<merge keys>` and `v:<value>` steps, and their `FieldsV1`
//! form in `metadata.managedFields`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::schema::{ListStrategy, list_strategy};

/// One path: `["f:spec", "f:containers", "k:{\"name\":\"app\"}", "f:image"]`.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Top-level fields no one owns: they identify the object rather than
/// configure it.
const IGNORED_TOP: [&str; 2] = ["apiVersion", "kind"];
const IGNORED_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Every field `obj` sets: its leaves, and the items of keyed lists and sets.
/// The fields of `obj` a write through `subresource` can own: the status
/// through `status`, everything else through the object itself.
pub fn fields_of(obj: &Value, subresource: &str) -> FieldSet {
    let through_status = subresource == "status";
    let mut out = FieldSet::new();
    if let Some(map) = obj.as_object() {
        for (key, value) in map {
            if IGNORED_TOP.contains(&key.as_str()) || (key == "status") != through_status {
                continue;
            }
            if key == "metadata" {
                for (mkey, mvalue) in value.as_object().into_iter().flatten() {
                    if !IGNORED_METADATA.contains(&mkey.as_str()) {
                        collect(
                            mvalue,
                            &mut vec!["metadata".into(), mkey.clone()],
                            &mut vec![format!("f:metadata"), format!("f:{mkey}")],
                            &mut out,
                        );
                    }
                }
            } else {
                collect(
                    value,
                    &mut vec![key.clone()],
                    &mut vec![format!("f:{key}")],
                    &mut out,
                );
            }
        }
    }
    out
}

fn collect(value: &Value, names: &mut Vec<String>, path: &mut Path, out: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                names.push(key.clone());
                path.push(format!("f:{key}"));
                collect(child, names, path, out);
                path.pop();
                names.pop();
            }
        }
        Value::Array(items) => {
            let schema_path: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_strategy(&schema_path) {
                ListStrategy::Map(keys) => {
                    for item in items {
                        path.push(key_step(item, keys));
                        out.insert(path.clone());
                        collect(item, names, path, out);
                        path.pop();
                    }
                }
                ListStrategy::Set => {
                    for item in items {
                        path.push(format!("v:{item}"));
                        out.insert(path.clone());
                        path.pop();
                    }
                }
                ListStrategy::Atomic => {
                    out.insert(path.clone());
                }
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The `k:` step naming a keyed-list item by its merge keys.
pub fn key_step(item: &Value, keys: &[&str]) -> String {
    let ids: Map<String, Value> = keys
        .iter()
        .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    format!("k:{}", Value::Object(ids))
}

/// The value at `path`, if the object has it.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(obj, |node, step| step_into(node, step))
}

fn step_into<'a>(node: &'a Value, step: &str) -> Option<&'a Value> {
    if let Some(field) = step.strip_prefix("f:") {
        return node.get(field);
    }
    let items = node.as_array()?;
    if let Some(ids) = step.strip_prefix("k:") {
        let ids: Map<String, Value> = serde_json::from_str(ids).ok()?;
        return items
            .iter()
            .find(|item| ids.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    let wanted: Value = serde_json::from_str(step.strip_prefix("v:")?).ok()?;
    items.iter().find(|item| **item == wanted)
}

/// Removes the field or list item at `path` from `obj`.
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    for step in parent {
        let next = match step_position(node, step) {
            Some(Position::Field(field)) => node.get_mut(field),
            Some(Position::Item(i)) => node.get_mut(i),
            None => None,
        };
        match next {
            Some(next) => node = next,
            None => return,
        }
    }
    match step_position(node, last) {
        Some(Position::Field(field)) => {
            let field = field.to_owned();
            if let Some(map) = node.as_object_mut() {
                map.remove(&field);
            }
        }
        Some(Position::Item(i)) => {
            if let Some(items) = node.as_array_mut() {
                items.remove(i);
            }
        }
        None => {}
    }
}

enum Position<'a> {
    Field(&'a str),
    Item(usize),
}

fn step_position<'a>(node: &Value, step: &'a str) -> Option<Position<'a>> {
    if let Some(field) = step.strip_prefix("f:") {
        return Some(Position::Field(field));
    }
    let found = step_into(node, step)?;
    node.as_array()?
        .iter()
        .position(|item| std::ptr::eq(item, found))
        .map(Position::Item)
}

/// How Kubernetes prints a path in conflict messages: `.spec.containers[name="app"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for step in path {
        if let Some(field) = step.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(ids) = step.strip_prefix("k:") {
            let ids: Map<String, Value> = serde_json::from_str(ids).unwrap_or_default();
            let parts: Vec<String> = ids.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = step.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        }
    }
    out
}

#[derive(Default)]
struct Node {
    owned: bool,
    children: BTreeMap<String, Node>,
}

/// The `FieldsV1` JSON of a set: nested steps, `{}` for leaves and `"."`
/// for an owned item that also has owned children.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for step in path {
            node = node.children.entry(step.clone()).or_default();
        }
        node.owned = true;
    }
    node_json(&root)
}

fn node_json(node: &Node) -> Value {
    let mut map = Map::new();
    if node.owned && !node.children.is_empty() {
        map.insert(".".into(), Value::Object(Map::new()));
    }
    for (step, child) in &node.children {
        map.insert(step.clone(), node_json(child));
    }
    Value::Object(map)
}

/// Reads a `FieldsV1` value back into a set.
pub fn from_fields_v1(value: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    read_node(value, &mut Vec::new(), &mut out);
    out
}

fn read_node(value: &Value, path: &mut Path, out: &mut FieldSet) {
    let Some(map) = value.as_object() else {
        return;
    };
    if map.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (step, child) in map {
        if step == "." {
            out.insert(path.clone());
            continue;
        }
        path.push(step.clone());
        read_node(child, path, out);
        path.pop();
    }
}
