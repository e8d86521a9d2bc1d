//! The component schemas: k8s-openapi's JsonSchema impls of every served kind
//! and everything they reference, named as Kubernetes names them, plus what
//! the typed structs do not carry: List types, `x-kubernetes-group-version-kind`
//! and the list-merge extensions `kubectl apply` reads.

use std::collections::HashSet;

use k8s_openapi::api::autoscaling::v1 as autoscaling;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::registry::{KINDS, Kind};
use crate::schema::{ListStrategy, list_strategy};

/// Which OpenAPI version the schemas are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// OpenAPI 3.0: schemas under `#/components/schemas/`; a `$ref` with a
    /// description becomes `allOf: [{$ref}]`, as Kubernetes publishes it.
    V3,
    /// Swagger 2.0: schemas under `#/definitions/`; a `$ref` keeps its
    /// description beside it, as Kubernetes publishes it.
    V2,
}

impl Flavor {
    pub fn ref_prefix(self) -> &'static str {
        match self {
            Flavor::V3 => "#/components/schemas/",
            Flavor::V2 => "#/definitions/",
        }
    }

    fn generator(self) -> SchemaGenerator {
        match self {
            Flavor::V3 => SchemaSettings::openapi3().with(|s| s.meta_schema = None),
            Flavor::V2 => SchemaSettings::draft07().with(|s| {
                s.definitions_path = "/definitions".into();
                s.meta_schema = None;
                s.transforms.clear();
            }),
        }
        .into_generator()
    }
}

pub const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
/// The bodies of subresources that take an object of their own kind:
/// `serviceaccounts/token`, `pods/binding`, `pods/eviction`.
const SUBRESOURCE_BODIES: [(&str, &str, &str, &str); 3] = [
    (
        "io.k8s.api.authentication.v1.TokenRequest",
        "authentication.k8s.io",
        "v1",
        "TokenRequest",
    ),
    ("io.k8s.api.core.v1.Binding", "", "v1", "Binding"),
    ("io.k8s.api.policy.v1.Eviction", "policy", "v1", "Eviction"),
];
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The name of the List type of a kind's schema.
pub fn list_schema_name(kind_schema: &str) -> String {
    format!("{kind_schema}List")
}

/// The schemas of one document flavor.
pub struct Schemas {
    /// Every schema the documents refer to, by name.
    pub definitions: Map<String, Value>,
    /// Each served kind with the name of its schema, e.g. `io.k8s.api.core.v1.Pod`.
    pub kinds: Vec<(&'static Kind, String)>,
}

pub fn schemas(flavor: Flavor) -> Schemas {
    let mut generator = flavor.generator();
    let mut kinds = Vec::new();
    for kind in KINDS {
        let reference = (kind.schema)(&mut generator);
        if let Some(name) = referenced(reference.as_value(), flavor) {
            kinds.push((kind, name));
        }
    }
    generator.subschema_for::<autoscaling::Scale>();
    generator.subschema_for::<k8s_openapi::api::authentication::v1::TokenRequest>();
    generator.subschema_for::<k8s_openapi::api::core::v1::Binding>();
    generator.subschema_for::<k8s_openapi::api::policy::v1::Eviction>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::ListMeta>();
    let mut defs = generator.take_definitions(true);
    defs.insert(
        PATCH.into(),
        json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object",
        }),
    );
    set_gvk(&mut defs, SCALE, "autoscaling", "v1", "Scale");
    for (name, group, version, kind) in SUBRESOURCE_BODIES {
        set_gvk(&mut defs, name, group, version, kind);
    }
    for (kind, name) in &kinds {
        add_kind_and_list(&mut defs, kind, name, flavor);
        annotate_lists(
            &mut defs,
            name,
            &mut Vec::new(),
            &mut HashSet::new(),
            flavor,
        );
    }
    Schemas {
        definitions: defs,
        kinds,
    }
}

fn set_gvk(defs: &mut Map<String, Value>, name: &str, group: &str, version: &str, kind: &str) {
    if let Some(schema) = defs.get_mut(name).and_then(Value::as_object_mut) {
        schema.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": group, "kind": kind, "version": version}]),
        );
    }
}

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// The OpenAPI v3 schemas of a custom kind and its List, named as
/// Kubernetes names them (`com.example.v1.Widget`): its definition's
/// `openAPIV3Schema` with the fields every object has.
pub fn custom_schemas(kind: &Kind) -> (String, Map<String, Value>) {
    let group: Vec<&str> = kind.group.split('.').rev().collect();
    let name = format!("{}.{}.{}", group.join("."), kind.version, kind.kind);
    let mut schema = kind
        .custom
        .as_ref()
        .and_then(|c| c.schema.clone())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if !schema["properties"].is_object() {
        schema["properties"] = json!({});
    }
    let object_meta = format!("{}{OBJECT_META}", Flavor::V3.ref_prefix());
    schema["properties"]["apiVersion"] = json!({"type": "string", "description": API_VERSION_DOC});
    schema["properties"]["kind"] = json!({"type": "string", "description": KIND_DOC});
    schema["properties"]["metadata"] = json!({
        "allOf": [{"$ref": object_meta}],
        "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    });
    let mut defs = Map::new();
    defs.insert(name.clone(), schema);
    add_kind_and_list(&mut defs, kind, &name, Flavor::V3);
    (name, defs)
}

/// Marks the kind's schema `name` with its group, version and kind, and adds
/// its List's schema, marked likewise.
fn add_kind_and_list(defs: &mut Map<String, Value>, kind: &Kind, name: &str, flavor: Flavor) {
    set_gvk(defs, name, kind.group, kind.version, kind.kind);
    let list = list_schema_name(name);
    defs.insert(list.clone(), list_schema(kind, name, flavor));
    set_gvk(
        defs,
        &list,
        kind.group,
        kind.version,
        &format!("{}List", kind.kind),
    );
}

/// `<Kind>List`, which the typed structs have no schema for.
fn list_schema(kind: &Kind, item_schema: &str, flavor: Flavor) -> Value {
    let prefix = flavor.ref_prefix();
    let metadata = json!({"$ref": format!("{prefix}{LIST_META}")});
    let metadata_doc = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
    let metadata = match flavor {
        Flavor::V3 => json!({"allOf": [metadata], "description": metadata_doc}),
        Flavor::V2 => {
            let mut m = metadata;
            m["description"] = json!(metadata_doc);
            m
        }
    };
    json!({
        "description": format!("{}List is a list of {} objects.", kind.kind, kind.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": API_VERSION_DOC, "type": "string"},
            "items": {
                "description": format!("List of {}.", kind.plural),
                "type": "array",
                "items": {"$ref": format!("{prefix}{item_schema}")},
            },
            "kind": {"description": KIND_DOC, "type": "string"},
            "metadata": metadata,
        },
    })
}

/// The schema name a property refers to, directly or through `allOf`.
fn referenced(schema: &Value, flavor: Flavor) -> Option<String> {
    let direct = schema.get("$ref");
    let wrapped = schema.pointer("/allOf/0/$ref");
    direct
        .or(wrapped)
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(flavor.ref_prefix()))
        .map(str::to_owned)
}

/// Walks the schema `name` from a kind's root, marking each list property
/// with how it merges (`schema::list_strategy` of its path). Kubernetes
/// reuses structs across kinds and the strategy depends only on the path's
/// tail, so each schema is visited once.
fn annotate_lists(
    defs: &mut Map<String, Value>,
    name: &str,
    path: &mut Vec<String>,
    seen: &mut HashSet<String>,
    flavor: Flavor,
) {
    if !seen.insert(name.to_owned()) {
        return;
    }
    let Some(properties) = defs
        .get(name)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return;
    };
    let mut nested = Vec::new();
    let mut lists = Vec::new();
    for (field, schema) in properties {
        if schema.get("type").and_then(Value::as_str) == Some("array") {
            lists.push(field.clone());
            if let Some(item) = schema.get("items").and_then(|i| referenced(i, flavor)) {
                nested.push((field.clone(), item));
            }
        } else if let Some(target) = referenced(schema, flavor) {
            nested.push((field.clone(), target));
        }
    }
    for field in lists {
        path.push(field.clone());
        let strategy = list_strategy(&path.iter().map(String::as_str).collect::<Vec<_>>());
        path.pop();
        let property = defs[name]["properties"][&field]
            .as_object_mut()
            .expect("listed above as an object property");
        property.extend(list_extensions(&field, strategy));
    }
    for (field, target) in nested {
        path.push(field);
        annotate_lists(defs, &target, path, seen, flavor);
        path.pop();
    }
}

/// The extensions Kubernetes publishes for a list merged by `strategy`.
fn list_extensions(field: &str, strategy: ListStrategy) -> Map<String, Value> {
    let mut extensions = Map::new();
    let mut set = |key: &str, value: Value| extensions.insert(key.to_owned(), value);
    match strategy {
        ListStrategy::Atomic => {
            set("x-kubernetes-list-type", json!("atomic"));
        }
        ListStrategy::Set => {
            set("x-kubernetes-list-type", json!("set"));
            set("x-kubernetes-patch-strategy", json!("merge"));
        }
        ListStrategy::Map(keys) => {
            // Volumes also drop the fields of a replaced volume source.
            let patch_strategy = if field == "volumes" {
                "merge,retainKeys"
            } else {
                "merge"
            };
            set("x-kubernetes-list-type", json!("map"));
            set("x-kubernetes-list-map-keys", json!(keys));
            set("x-kubernetes-patch-merge-key", json!(keys[0]));
            set("x-kubernetes-patch-strategy", json!(patch_strategy));
        }
    }
    extensions
}
