//! The REST paths of each served kind and their operations, with the query
//! parameters Kubernetes lists. kubectl reads the PATCH operation's
//! parameters to decide whether the server validates fields itself.

use serde_json::{Map, Value, json};

use super::schemas::{DELETE_OPTIONS, Flavor, PATCH, SCALE, STATUS, list_schema_name};
use crate::registry::Kind;

/// One query or path parameter.
struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: String,
}

impl Param {
    fn query(name: &'static str, ty: &'static str, description: &str) -> Param {
        Param {
            name,
            location: "query",
            ty,
            description: description.to_owned(),
        }
    }

    fn render(&self, flavor: Flavor) -> Value {
        let mut p = json!({
            "name": self.name,
            "in": self.location,
            "description": self.description,
        });
        if self.location == "path" {
            p["required"] = json!(true);
        }
        match flavor {
            Flavor::V3 => p["schema"] = json!({"type": self.ty, "uniqueItems": true}),
            Flavor::V2 => {
                p["type"] = json!(self.ty);
                p["uniqueItems"] = json!(true);
            }
        }
        p
    }
}

fn pretty() -> Param {
    Param::query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
    )
}

fn dry_run() -> Param {
    Param::query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager() -> Param {
    Param::query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
    )
}

fn field_validation() -> Param {
    Param::query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
    )
}

fn write_params() -> Vec<Param> {
    vec![dry_run(), field_manager(), field_validation()]
}

fn patch_params() -> Vec<Param> {
    let mut params = write_params();
    params.push(Param::query(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    ));
    params
}

fn delete_params() -> Vec<Param> {
    vec![
        dry_run(),
        Param::query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
        ),
        Param::query(
            "orphanDependents",
            "boolean",
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
        ),
        Param::query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
        ),
    ]
}

fn list_params() -> Vec<Param> {
    vec![
        Param::query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion.",
        ),
        Param::query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        Param::query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        Param::query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        Param::query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.",
        ),
        Param::query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset",
        ),
        Param::query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls. Defaults to unset",
        ),
        Param::query(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection.",
        ),
        Param::query(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
        ),
        Param::query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
        ),
    ]
}

/// What an operation reads from the request body.
enum Body {
    Object(String),
    Patch,
    DeleteOptions,
}

/// One operation (HTTP method) on a path.
struct Operation {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    params: Vec<Param>,
    body: Option<Body>,
    response: String,
    gvk: (&'static str, &'static str, &'static str),
}

/// The paths of one kind: collection, item, all-namespaces list and
/// subresources, each with its operations.
pub fn kind_paths(kind: &Kind, schema: &str, flavor: Flavor) -> Map<String, Value> {
    let prefix = if kind.group.is_empty() {
        format!("/api/{}", kind.version)
    } else {
        format!("/apis/{}/{}", kind.group, kind.version)
    };
    let (collection, scope) = if kind.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", kind.plural),
            "Namespaced",
        )
    } else {
        (format!("{prefix}/{}", kind.plural), "")
    };
    let item = format!("{collection}/{{name}}");
    let id = |verb: &str, suffix: &str| {
        format!(
            "{verb}{}{scope}{}{suffix}",
            operation_group(kind),
            kind.kind
        )
    };
    let gvk = (kind.group, kind.version, kind.kind);
    let list = list_schema_name(schema);
    let operation =
        |method, action, id: String, description: String, params, body, response: &str| Operation {
            method,
            action,
            id,
            description,
            params,
            body,
            response: response.to_owned(),
            gvk,
        };

    let mut paths = Map::new();
    let collection_ops = vec![
        operation(
            "get",
            "list",
            id("list", ""),
            format!("list or watch objects of kind {}", kind.kind),
            list_params(),
            None,
            &list,
        ),
        operation(
            "post",
            "post",
            id("create", ""),
            format!("create a {}", kind.kind),
            write_params(),
            Some(Body::Object(schema.to_owned())),
            schema,
        ),
        operation(
            "delete",
            "deletecollection",
            id("deleteCollection", ""),
            format!("delete collection of {}", kind.kind),
            list_params().into_iter().chain(delete_params()).collect(),
            Some(Body::DeleteOptions),
            STATUS,
        ),
    ];
    paths.insert(
        collection.clone(),
        path_item(kind, false, kind.namespaced, collection_ops, flavor),
    );

    let item_ops = |suffix: &str, what: &str, target: &str, gvk| {
        let mut ops = vec![
            operation(
                "get",
                "get",
                id("read", suffix),
                format!("read {what} of the specified {}", kind.kind),
                Vec::new(),
                None,
                target,
            ),
            operation(
                "put",
                "put",
                id("replace", suffix),
                format!("replace {what} of the specified {}", kind.kind),
                write_params(),
                Some(Body::Object(target.to_owned())),
                target,
            ),
            operation(
                "patch",
                "patch",
                id("patch", suffix),
                format!("partially update {what} of the specified {}", kind.kind),
                patch_params(),
                Some(Body::Patch),
                target,
            ),
        ];
        for op in &mut ops {
            op.gvk = gvk;
        }
        ops
    };
    let mut main = item_ops("", "the", schema, gvk);
    main.push(operation(
        "delete",
        "delete",
        id("delete", ""),
        format!("delete a {}", kind.kind),
        delete_params(),
        Some(Body::DeleteOptions),
        schema,
    ));
    paths.insert(
        item.clone(),
        path_item(kind, true, kind.namespaced, main, flavor),
    );
    if kind.has_status {
        let ops = item_ops("Status", "status", schema, gvk);
        paths.insert(
            format!("{item}/status"),
            path_item(kind, true, kind.namespaced, ops, flavor),
        );
    }
    if kind.has_scale {
        let ops = item_ops("Scale", "scale", SCALE, ("autoscaling", "v1", "Scale"));
        paths.insert(
            format!("{item}/scale"),
            path_item(kind, true, kind.namespaced, ops, flavor),
        );
    }
    if kind.namespaced {
        let all = operation(
            "get",
            "list",
            format!("list{}{}ForAllNamespaces", operation_group(kind), kind.kind),
            format!("list or watch objects of kind {}", kind.kind),
            list_params(),
            None,
            &list,
        );
        paths.insert(
            format!("{prefix}/{}", kind.plural),
            path_item(kind, false, false, vec![all], flavor),
        );
    }
    paths
}

/// `CoreV1`, `AppsV1`, `NetworkingV1`: the group-version part of operation ids and tags.
fn operation_group(kind: &Kind) -> String {
    let group = match kind.group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("{}{}", capitalize(group), capitalize(kind.version))
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn tag(kind: &Kind) -> String {
    let group = match kind.group {
        "" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("{group}_{}", kind.version)
}

/// A path with its operations and the parameters its URL template holds.
fn path_item(
    kind: &Kind,
    named: bool,
    namespaced: bool,
    operations: Vec<Operation>,
    flavor: Flavor,
) -> Value {
    let mut params = Vec::new();
    if named {
        params.push(Param {
            name: "name",
            location: "path",
            ty: "string",
            description: format!("name of the {}", kind.kind),
        });
    }
    if namespaced {
        params.push(Param {
            name: "namespace",
            location: "path",
            ty: "string",
            description: "object name and auth scope, such as for teams and projects".into(),
        });
    }
    params.push(pretty());
    let mut item = Map::new();
    for op in operations {
        item.insert(op.method.to_owned(), render_operation(kind, &op, flavor));
    }
    item.insert(
        "parameters".into(),
        params.iter().map(|p| p.render(flavor)).collect(),
    );
    Value::Object(item)
}

/// The patch types, strategic merge patch last (custom resources take the rest).
const PATCH_TYPES: [&str; 4] = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const ENCODINGS: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

fn render_operation(kind: &Kind, op: &Operation, flavor: Flavor) -> Value {
    let prefix = flavor.ref_prefix();
    let schema_ref = |name: &str| json!({"$ref": format!("{prefix}{name}")});
    let (group, version, gvk_kind) = op.gvk;
    let mut rendered = json!({
        "tags": [tag(kind)],
        "description": op.description,
        "operationId": op.id,
        "parameters": op.params.iter().map(|p| p.render(flavor)).collect::<Vec<_>>(),
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": group, "kind": gvk_kind, "version": version},
    });
    let success_codes: &[&str] = match op.action {
        "post" => &["200", "201", "202"],
        "put" => &["200", "201"],
        "patch" => &["200", "201"],
        "delete" => &["200", "202"],
        _ => &["200"],
    };
    let body = op.body.as_ref().map(|body| match body {
        Body::Object(name) => (name.as_str(), &["*/*"][..]),
        // Custom resources take no strategic merge patch; kubectl reads
        // that here and sends them merge patches.
        Body::Patch if kind.custom.is_some() => (PATCH, &PATCH_TYPES[..3]),
        Body::Patch => (PATCH, &PATCH_TYPES[..]),
        Body::DeleteOptions => (DELETE_OPTIONS, &["*/*"][..]),
    });
    let mut responses = Map::new();
    match flavor {
        Flavor::V3 => {
            let content: Map<String, Value> = ENCODINGS
                .iter()
                .map(|e| (e.to_string(), json!({"schema": schema_ref(&op.response)})))
                .collect();
            for code in success_codes {
                responses.insert(
                    code.to_string(),
                    json!({"description": "OK", "content": content}),
                );
            }
            if let Some((name, types)) = body {
                let content: Map<String, Value> = types
                    .iter()
                    .map(|t| (t.to_string(), json!({"schema": schema_ref(name)})))
                    .collect();
                rendered["requestBody"] = json!({"content": content, "required": matches!(op.body, Some(Body::Object(_) | Body::Patch))});
            }
        }
        Flavor::V2 => {
            for code in success_codes {
                responses.insert(
                    code.to_string(),
                    json!({"description": "OK", "schema": schema_ref(&op.response)}),
                );
            }
            rendered["produces"] = json!(ENCODINGS);
            rendered["consumes"] = json!(["*/*"]);
            if let Some((name, types)) = body {
                rendered["consumes"] = json!(types);
                let params = rendered["parameters"]
                    .as_array_mut()
                    .expect("built as an array");
                params.insert(0, json!({"name": "body", "in": "body", "required": true, "schema": schema_ref(name)}));
            }
        }
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    rendered["responses"] = Value::Object(responses);
    rendered
}
