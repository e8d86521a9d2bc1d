//! Kinds that CustomResourceDefinitions define: each served version of a
//! definition becomes a [`Kind`] like the built-in ones, so the one generic
//! REST path serves custom resources too. What differs is read from
//! [`Custom`]: the version's `openAPIV3Schema` prunes, defaults and
//! validates (`schema`) where built-in kinds decode through their typed
//! structs, and its `additionalPrinterColumns` make the Table rows.
//!
//! `Kind` holds `&'static` names (it is shared by every request without
//! reference counting), so a definition's kinds are leaked. They are
//! interned by the definition's spec and version: re-reading or restarting
//! makes no new ones, and only a changed spec leaks one more `Kind` per
//! served version, a few hundred bytes per CRD edit.

mod schema;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{Value, json};

pub use schema::{apply_defaults, prune, validate};

use crate::registry::Kind;

/// What a CustomResourceDefinition says of one of its served versions.
#[derive(Debug)]
pub struct Custom {
    /// The definition's name (`widgets.example.com`).
    pub crd: String,
    /// The version objects are stored in (`storage: true`).
    pub storage_version: String,
    /// The version's `openAPIV3Schema`; none means anything goes.
    pub schema: Option<Value>,
    /// `additionalPrinterColumns`, as the definition writes them.
    pub columns: Vec<Value>,
    /// `subresources.scale`: where replicas and the selector live.
    pub scale: Option<Value>,
}

/// The finalizer through which a deleted definition's objects are deleted first.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The kinds a definition serves, one per served version, in the order
/// Kubernetes prefers versions (GA over beta over alpha, newest first).
pub fn kinds_of(crd: &Value) -> Vec<&'static Kind> {
    static INTERNED: LazyLock<Mutex<HashMap<String, &'static Kind>>> =
        LazyLock::new(Mutex::default);
    let spec = &crd["spec"];
    let mut versions: Vec<&Value> = spec["versions"]
        .as_array()
        .map(|v| v.iter().filter(|v| v["served"] == true).collect())
        .unwrap_or_default();
    versions.sort_by(|a, b| compare_versions(str_of(a, "name"), str_of(b, "name")));
    let name = crate::meta::name(crd);
    let mut interned = INTERNED.lock().expect("interned kinds lock");
    versions
        .into_iter()
        .map(|version| {
            let key = json!([name, spec, version["name"]]).to_string();
            *interned
                .entry(key)
                .or_insert_with(|| &*Box::leak(Box::new(kind_of(name, spec, version))))
        })
        .collect()
}

fn kind_of(crd: &str, spec: &Value, version: &Value) -> Kind {
    let names = &spec["names"];
    let kind = str_of(names, "kind");
    let singular = match str_of(names, "singular") {
        "" => kind.to_lowercase(),
        s => s.to_owned(),
    };
    let storage_version = spec["versions"]
        .as_array()
        .and_then(|all| all.iter().find(|v| v["storage"] == true))
        .map_or_else(|| str_of(version, "name"), |v| str_of(v, "name"));
    let subresources = &version["subresources"];
    Kind {
        group: leak(str_of(spec, "group")),
        version: leak(str_of(version, "name")),
        kind: leak(kind),
        plural: leak(str_of(names, "plural")),
        singular: leak(&singular),
        short_names: leak_all(&names["shortNames"]),
        categories: leak_all(&names["categories"]),
        namespaced: str_of(spec, "scope") != "Cluster",
        has_status: subresources.get("status").is_some_and(Value::is_object),
        has_scale: subresources.get("scale").is_some_and(Value::is_object),
        // A custom resource is pruned by its schema instead ([`prune`]), and
        // its OpenAPI schema is made from the definition
        // (`openapi::schemas::custom_schemas`), not generated.
        normalize: Ok,
        schema: |_| schemars::json_schema!({"type": "object"}),
        custom: Some(Custom {
            crd: crd.to_owned(),
            storage_version: storage_version.to_owned(),
            schema: version.pointer("/schema/openAPIV3Schema").cloned(),
            columns: version["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            scale: subresources.get("scale").cloned(),
        }),
    }
}

/// The names a definition asks for, which it is then served under
/// (`status.acceptedNames`).
pub fn accepted_names(crd: &Value) -> Value {
    let names = &crd["spec"]["names"];
    let kind = str_of(names, "kind");
    let mut accepted = json!({
        "plural": names["plural"],
        "kind": kind,
        "listKind": match str_of(names, "listKind") {
            "" => format!("{kind}List"),
            list => list.to_owned(),
        },
        "singular": match str_of(names, "singular") {
            "" => kind.to_lowercase(),
            s => s.to_owned(),
        },
    });
    for field in ["shortNames", "categories"] {
        if names[field].as_array().is_some_and(|a| !a.is_empty()) {
            accepted[field] = names[field].clone();
        }
    }
    accepted
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_all(list: &Value) -> &'static [&'static str] {
    let all: Vec<&'static str> = list
        .as_array()
        .map(|l| l.iter().filter_map(Value::as_str).map(leak).collect())
        .unwrap_or_default();
    Box::leak(all.into_boxed_slice())
}

/// Kubernetes' version priority (`CompareKubeAwareVersionStrings`): `v2`
/// before `v1` before `v1beta2` before `v1beta1` before `v1alpha1`, then
/// versions of other forms in alphabetical order.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (kube_version(a), kube_version(b)) {
        (Some(a), Some(b)) => b.cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `(stability, major, minor)` of `v1`, `v2beta1`, `v1alpha3`; GA is the most stable.
fn kube_version(v: &str) -> Option<(u8, u64, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let major: u64 = rest[..digits].parse().ok().filter(|m| *m > 0)?;
    let (stability, minor) = match &rest[digits..] {
        "" => return Some((2, major, 0)),
        tail => match (tail.strip_prefix("beta"), tail.strip_prefix("alpha")) {
            (Some(n), _) => (1, n),
            (_, Some(n)) => (0, n),
            _ => return None,
        },
    };
    Some((
        stability,
        major,
        minor.parse::<u64>().ok().filter(|m| *m > 0)?,
    ))
}

/// The value a printer column's `jsonPath` names in `obj`: the simple paths
/// Kubernetes allows there (`.spec.size`, `.status.items[0].name`,
/// `.status.conditions[?(@.type=="Ready")].status`).
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut rest = path.trim();
    let mut at = obj;
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix('.') {
            let end = tail.find(['.', '[']).unwrap_or(tail.len());
            at = at.get(&tail[..end])?;
            rest = &tail[end..];
        } else if let Some(tail) = rest.strip_prefix("[?(@.") {
            let end = tail.find(")]")?;
            let (field, wanted) = tail[..end].split_once("==")?;
            let wanted = wanted.trim().trim_matches(['"', '\'']);
            at = at.as_array()?.iter().find(|item| {
                item.get(field.trim()).is_some_and(|v| {
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned) == wanted
                })
            })?;
            rest = &tail[end + 2..];
        } else if let Some(tail) = rest.strip_prefix('[') {
            let end = tail.find(']')?;
            let inside = tail[..end].trim_matches(['"', '\'']);
            at = match inside.parse::<usize>() {
                Ok(index) => at.get(index)?,
                Err(_) => at.get(inside)?,
            };
            rest = &tail[end + 1..];
        } else {
            return None;
        }
    }
    Some(at)
}
