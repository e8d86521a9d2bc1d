//! The OpenAPI documents: `/openapi/v3` (an index of one document per
//! group-version) and `/openapi/v2` (one Swagger 2.0 document). kubectl reads
//! them for `kubectl explain`, for server-side field validation support and
//! for client-side validation and `kubectl apply`'s merge keys.

mod paths;
mod protobuf;
mod schemas;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use crate::registry::{Kind, group_versions};
use schemas::{Flavor, Schemas};

const INFO_TITLE: &str = "Kubernetes";
const INFO_VERSION: &str = "v1.33.0";

/// A document with the hash clients cache it by.
struct Document {
    body: Value,
    hash: String,
}

/// `api/v1`, `apis/apps/v1`: where a group-version's document is served under `/openapi/v3/`.
fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The schemas of the built-in kinds, built once.
fn v3_schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| schemas::schemas(Flavor::V3))
}

fn v3_documents() -> &'static BTreeMap<String, Document> {
    static DOCUMENTS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let schemas = v3_schemas();
        group_versions()
            .into_iter()
            .map(|(group, version)| {
                let mut paths = Map::new();
                for (kind, name) in &schemas.kinds {
                    if kind.group == group && kind.version == version {
                        paths.extend(paths::kind_paths(kind, name, Flavor::V3));
                    }
                }
                let body = v3_body(paths, |name| schemas.definitions.get(name));
                let hash = digest(&body);
                (group_version_path(group, version), Document { body, hash })
            })
            .collect()
    })
}

/// The documents of the group-versions custom kinds are served in, made
/// from the kinds `custom` serves now (CustomResourceDefinitions change
/// while the server runs; their hashes change with them).
fn v3_custom_documents(custom: &[&'static Kind]) -> BTreeMap<String, Document> {
    let mut by_path: BTreeMap<String, Vec<&Kind>> = BTreeMap::new();
    for kind in custom.iter().filter(|k| k.custom.is_some()) {
        let path = group_version_path(kind.group, kind.version);
        if !v3_documents().contains_key(&path) {
            by_path.entry(path).or_default().push(kind);
        }
    }
    let built_in = &v3_schemas().definitions;
    by_path
        .into_iter()
        .map(|(path, kinds)| {
            let mut paths = Map::new();
            let mut definitions = Map::new();
            for kind in kinds {
                let (name, schemas) = schemas::custom_schemas(kind);
                paths.extend(paths::kind_paths(kind, &name, Flavor::V3));
                definitions.extend(schemas);
            }
            let body = v3_body(paths, |name| {
                definitions.get(name).or_else(|| built_in.get(name))
            });
            let hash = digest(&body);
            (path, Document { body, hash })
        })
        .collect()
}

/// A group-version's document: its paths and the schemas they reach.
fn v3_body<'a>(paths: Map<String, Value>, lookup: impl Fn(&str) -> Option<&'a Value>) -> Value {
    let paths = Value::Object(paths);
    let components: Map<String, Value> = reachable(&paths, &|name| lookup(name), Flavor::V3)
        .into_iter()
        .filter_map(|name| lookup(&name).map(|schema| (name, schema.clone())))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": INFO_TITLE, "version": INFO_VERSION},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"},
            },
        },
        "security": [{"BearerToken": []}],
    })
}

/// The names of all schemas `root` refers to, directly or through other schemas.
fn reachable<'a>(
    root: &'a Value,
    lookup: &impl Fn(&str) -> Option<&'a Value>,
    flavor: Flavor,
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                let target = map
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix(flavor.ref_prefix()));
                if let Some(name) = target
                    && found.insert(name.to_owned())
                    && let Some(schema) = lookup(name)
                {
                    pending.push(schema);
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    found
}

/// A stable digest of a document: SHA-512 in upper-case hex, as Kubernetes hashes them.
fn digest(document: &Value) -> String {
    let bytes = serde_json::to_vec(document).expect("a JSON value serializes");
    Sha512::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// GET /openapi/v3: {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=<hex>"}, "apis/apps/v1": {...}, ...}},
/// with the group-versions of the custom kinds among `custom`.
pub fn v3_index(custom: &[&'static Kind]) -> Value {
    let custom = v3_custom_documents(custom);
    let paths: Map<String, Value> = v3_documents()
        .iter()
        .chain(&custom)
        .map(|(path, doc)| {
            let url = format!("/openapi/v3/{path}?hash={}", doc.hash);
            (path.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({ "paths": paths })
}

/// GET /openapi/v3/api/v1 etc. (path without leading slash), also of the
/// custom kinds among `custom`; None for an unknown group-version.
pub fn v3_document(path: &str, custom: &[&'static Kind]) -> Option<Value> {
    match v3_documents().get(path) {
        Some(doc) => Some(doc.body.clone()),
        None => v3_custom_documents(custom).remove(path).map(|doc| doc.body),
    }
}

/// GET /openapi/v2 (Swagger 2.0), the same schemas under `definitions`.
pub fn v2_document() -> Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let schemas = schemas::schemas(Flavor::V2);
            let mut paths = Map::new();
            for (kind, name) in &schemas.kinds {
                paths.extend(paths::kind_paths(kind, name, Flavor::V2));
            }
            json!({
                "swagger": "2.0",
                "info": {"title": INFO_TITLE, "version": INFO_VERSION},
                "paths": paths,
                "definitions": schemas.definitions,
                "securityDefinitions": {
                    "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"},
                },
                "security": [{"BearerToken": []}],
            })
        })
        .clone()
}

/// GET /openapi/v2 with `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
/// (also served at `/swagger-2.0.0.pb-v1`): `v2_document` in gnostic's protobuf encoding,
/// which kubectl 1.27 and 1.28 insist on.
pub fn v2_protobuf() -> &'static [u8] {
    static ENCODED: OnceLock<Vec<u8>> = OnceLock::new();
    ENCODED.get_or_init(|| protobuf::encode(&v2_document()))
}

#[cfg(test)]
mod tests;
