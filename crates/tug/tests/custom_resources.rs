//! CustomResourceDefinitions: their objects served like built-in ones to
//! kubectl (printer columns, short names, schema validation, pruning and
//! defaults, the status and scale subresources, watches), and deleted with
//! their definition.

mod common;

use common::{Server, eventually, nodeless_server, row, table};
use serde_json::{Value, json};

/// Installs the namespaced definition `{plural}.{group}` of kind `kind`
/// (one version, v1, storing) with short name `short` and waits, as a
/// user does, until kubectl sees it established.
fn define(server: &Server, group: &str, plural: &str, kind: &str, short: &str) -> String {
    let name = format!("{plural}.{group}");
    let definition = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, "shortNames": [short]},
            "versions": [version("v1", true)],
        },
    });
    server
        .kubectl_stdin(&["apply", "-f", "-"], &definition.to_string())
        .ok();
    server
        .kubectl(&[
            "wait",
            "--for",
            "condition=established",
            "--timeout=60s",
            &format!("crd/{name}"),
        ])
        .ok();
    name
}

/// One version of the test definitions: a `spec.size` from 1 to 10, a
/// `spec.color` that defaults to red, replicas behind `/scale`, a status
/// subresource and printer columns.
fn version(name: &str, storage: bool) -> Value {
    json!({
        "name": name,
        "served": true,
        "storage": storage,
        "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                        "replicas": {"type": "integer"},
                        "options": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                },
                "status": {
                    "type": "object",
                    "properties": {"phase": {"type": "string"}, "replicas": {"type": "integer"}},
                },
            },
        }},
        "subresources": {
            "status": {},
            "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
        },
        "additionalPrinterColumns": [
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
            {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    })
}

/// Applies the custom resource [`object`] makes into `ns`; kubectl's output.
fn apply(
    server: &Server,
    ns: &str,
    api_version: &str,
    kind: &str,
    name: &str,
    spec: Value,
) -> String {
    server
        .kubectl_stdin(
            &["apply", "-n", ns, "-f", "-"],
            &object(api_version, kind, name, spec),
        )
        .ok()
}

fn object(api_version: &str, kind: &str, name: &str, spec: Value) -> String {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "labels": {"shape": name}},
        "spec": spec,
    })
    .to_string()
}

#[test]
fn custom_resources_are_served_and_printed_like_built_in_ones() {
    let server = nodeless_server();
    let ns = server.namespace("crd-serve");
    let crd = define(server, "serve.example.com", "gizmos", "Gizmo", "gz");
    let status = server.get_json("", "crd", &crd)["status"].clone();
    assert_eq!(status["acceptedNames"]["kind"], "Gizmo");
    assert_eq!(status["acceptedNames"]["listKind"], "GizmoList");
    assert_eq!(status["storedVersions"], json!(["v1"]));
    let conditions: Vec<(&str, &str)> = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        conditions,
        [("NamesAccepted", "True"), ("Established", "True")]
    );

    let out = apply(
        server,
        &ns,
        "serve.example.com/v1",
        "Gizmo",
        "small",
        json!({"size": 2}),
    );
    assert_eq!(out.trim(), "gizmo.serve.example.com/small created");
    apply(
        server,
        &ns,
        "serve.example.com/v1",
        "Gizmo",
        "large",
        json!({"size": 9, "color": "blue"}),
    );

    let printed = table(&server.kubectl(&["get", "gizmos", "-n", &ns]).ok());
    assert_eq!(printed[0], ["NAME", "SIZE", "COLOR", "PHASE", "AGE"]);
    // No phase yet: kubectl leaves the cell blank.
    assert_eq!(row(&printed, "small")[..3], ["small", "2", "red"]);
    assert_eq!(row(&printed, "large")[..3], ["large", "9", "blue"]);
    assert_eq!(row(&printed, "large").len(), 4, "{printed:?}");

    // By short name, kind and qualified plural; defaults filled in.
    for name in ["gz", "gizmo", "Gizmo", "gizmos.serve.example.com"] {
        let small = server.get_json(&ns, name, "small");
        assert_eq!(small["spec"], json!({"size": 2, "color": "red"}), "{name}");
        assert_eq!(small["metadata"]["generation"], 1);
    }
    let resources = server
        .kubectl(&["api-resources", "--api-group=serve.example.com"])
        .ok();
    let resources = table(&resources);
    assert_eq!(
        row(&resources, "gizmos"),
        ["gizmos", "gz", "serve.example.com/v1", "true", "Gizmo"]
    );

    // Selectors and pages, as for built-in kinds.
    assert_eq!(
        server.names(&["get", "gz", "-n", &ns, "-l", "shape=large"]),
        ["gizmo.serve.example.com/large"]
    );
    assert_eq!(
        server.names(&[
            "get",
            "gz",
            "-n",
            &ns,
            "--field-selector",
            "metadata.name=small"
        ]),
        ["gizmo.serve.example.com/small"]
    );
    let paged = server
        .kubectl(&["get", "gz", "-n", &ns, "--chunk-size=1", "-o", "name"])
        .ok();
    assert_eq!(paged.lines().count(), 2, "{paged}");

    // Changes: merge and JSON patches, server-side apply, replace.
    server
        .kubectl(&[
            "patch",
            "gz",
            "small",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"size":3}}"#,
        ])
        .ok();
    server
        .kubectl(&[
            "patch",
            "gz",
            "small",
            "-n",
            &ns,
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/color","value":"blue"}]"#,
        ])
        .ok();
    let small = server.get_json(&ns, "gz", "small");
    assert_eq!(small["spec"], json!({"size": 3, "color": "blue"}));
    assert_eq!(small["metadata"]["generation"], 3);
    server
        .kubectl_stdin(
            &["apply", "--server-side", "-n", &ns, "-f", "-"],
            &object(
                "serve.example.com/v1",
                "Gizmo",
                "applied",
                json!({"size": 4}),
            ),
        )
        .ok();
    assert_eq!(server.get_json(&ns, "gz", "applied")["spec"]["size"], 4);

    // Kubernetes takes no strategic merge patch for custom resources, and
    // that is kubectl patch's default.
    let err = server
        .kubectl(&[
            "patch",
            "gz",
            "small",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"size":5}}"#,
        ])
        .fails();
    assert!(
        err.contains(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        ),
        "{err}"
    );

    server.kubectl(&["delete", "gz", "applied", "-n", &ns]).ok();
    server.assert_absent(&ns, "gz", "applied");
}

#[test]
fn the_schema_refuses_in_kubernetes_words_prunes_and_defaults() {
    let server = nodeless_server();
    let ns = server.namespace("crd-schema");
    define(server, "schema.example.com", "sprockets", "Sprocket", "spr");
    let api_version = "schema.example.com/v1";

    let err = server
        .kubectl_stdin(
            &["apply", "-n", &ns, "-f", "-"],
            &object(api_version, "Sprocket", "typed", json!({"size": "big"})),
        )
        .fails();
    assert!(
        err.contains(
            r#"The Sprocket "typed" is invalid: spec.size: Invalid value: "string": spec.size in body must be of type integer: "string""#
        ),
        "{err}"
    );
    let err = server
        .kubectl_stdin(
            &["create", "-n", &ns, "-f", "-"],
            &object(
                api_version,
                "Sprocket",
                "many",
                json!({"size": 11, "color": "green"}),
            ),
        )
        .fails();
    for wanted in [
        r#"The Sprocket "many" is invalid: "#,
        "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
        r#"spec.color: Unsupported value: "green": supported values: "red", "blue""#,
    ] {
        assert!(err.contains(wanted), "no {wanted:?} in {err}");
    }
    let err = server
        .kubectl_stdin(
            &["create", "-n", &ns, "-f", "-"],
            &object(api_version, "Sprocket", "sizeless", json!({})),
        )
        .fails();
    assert!(
        err.contains(r#"The Sprocket "sizeless" is invalid: spec.size: Required value"#),
        "{err}"
    );
    for refused in ["typed", "many", "sizeless"] {
        server.assert_absent(&ns, "sprockets", refused);
    }

    // kubectl asks for strict field validation by default: an undeclared
    // field is refused; without it, it is pruned, except where the schema
    // keeps unknown fields.
    let with_unknown = object(
        api_version,
        "Sprocket",
        "pruned",
        json!({"size": 1, "shape": "round", "options": {"anything": {"goes": [1]}}}),
    );
    let err = server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &with_unknown)
        .fails();
    assert!(err.contains(r#"unknown field "spec.shape""#), "{err}");
    server
        .kubectl_stdin(
            &["apply", "--validate=false", "-n", &ns, "-f", "-"],
            &with_unknown,
        )
        .ok();
    assert_eq!(
        server.get_json(&ns, "spr", "pruned")["spec"],
        json!({"size": 1, "color": "red", "options": {"anything": {"goes": [1]}}})
    );
}

#[test]
fn status_and_scale_are_written_through_their_subresources() {
    let server = nodeless_server();
    let ns = server.namespace("crd-status");
    define(server, "status.example.com", "gadgets", "Gadget", "gd");
    let mut gadget: Value = serde_json::from_str(&object(
        "status.example.com/v1",
        "Gadget",
        "g",
        json!({"size": 1, "replicas": 1}),
    ))
    .unwrap();
    gadget["status"] = json!({"phase": "Bogus"});
    server
        .kubectl_stdin(&["create", "-n", &ns, "-f", "-"], &gadget.to_string())
        .ok();
    assert_eq!(server.get_json(&ns, "gd", "g").get("status"), None);

    // The main resource ignores status; /status takes status alone.
    server
        .kubectl(&[
            "patch",
            "gd",
            "g",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"size":2},"status":{"phase":"Ignored"}}"#,
        ])
        .ok();
    server
        .patch_status(
            Some(&ns),
            "gd",
            "g",
            &json!({"phase": "Ready", "replicas": 1}),
        )
        .ok();
    server
        .kubectl(&[
            "patch",
            "gd",
            "g",
            "-n",
            &ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"spec":{"size":7}}"#,
        ])
        .ok();
    let g = server.get_json(&ns, "gd", "g");
    assert_eq!(g["spec"]["size"], 2);
    assert_eq!(g["status"], json!({"phase": "Ready", "replicas": 1}));
    let printed = table(&server.kubectl(&["get", "gd", "-n", &ns]).ok());
    assert_eq!(row(&printed, "g")[..4], ["g", "2", "red", "Ready"]);

    let out = server
        .kubectl(&["scale", "gd", "g", "-n", &ns, "--replicas=3"])
        .ok();
    assert_eq!(out.trim(), "gadget.status.example.com/g scaled");
    assert_eq!(server.get_json(&ns, "gd", "g")["spec"]["replicas"], 3);
    let scale: Value = serde_json::from_str(
        &server
            .kubectl(&[
                "get",
                "--raw",
                &format!("/apis/status.example.com/v1/namespaces/{ns}/gadgets/g/scale"),
            ])
            .ok(),
    )
    .unwrap();
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["replicas"], 1);
}

#[test]
fn a_watch_sees_custom_resources_change() {
    let server = nodeless_server();
    let ns = server.namespace("crd-watch");
    define(server, "watch.example.com", "doohickeys", "Doohickey", "dh");
    apply(
        server,
        &ns,
        "watch.example.com/v1",
        "Doohickey",
        "d",
        json!({"size": 1}),
    );
    let mut watch = server.kubectl_background(&["get", "dh", "-n", &ns, "-w"]);
    watch.expect_line(|l| table(l).first().is_some_and(|r| r[..2] == ["d", "1"]));
    server
        .kubectl(&[
            "patch",
            "dh",
            "d",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"size":6}}"#,
        ])
        .ok();
    watch.expect_line(|l| table(l).first().is_some_and(|r| r[..2] == ["d", "6"]));
}

#[test]
fn versions_differ_in_api_version_alone() {
    let server = nodeless_server();
    let ns = server.namespace("crd-versions");
    let definition = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gears.versions.example.com"},
        "spec": {
            "group": "versions.example.com",
            "scope": "Namespaced",
            "names": {"plural": "gears", "kind": "Gear"},
            "versions": [version("v1beta1", false), version("v1", true)],
        },
    });
    server
        .kubectl_stdin(&["apply", "-f", "-"], &definition.to_string())
        .ok();
    server
        .kubectl(&[
            "wait",
            "--for",
            "condition=established",
            "crd/gears.versions.example.com",
        ])
        .ok();
    apply(
        server,
        &ns,
        "versions.example.com/v1beta1",
        "Gear",
        "old",
        json!({"size": 1}),
    );
    let read = |version: &str| -> Value {
        let path = format!("/apis/versions.example.com/{version}/namespaces/{ns}/gears/old");
        serde_json::from_str(&server.kubectl(&["get", "--raw", &path]).ok()).unwrap()
    };
    assert_eq!(read("v1")["apiVersion"], "versions.example.com/v1");
    assert_eq!(
        read("v1beta1")["apiVersion"],
        "versions.example.com/v1beta1"
    );
    assert_eq!(read("v1")["spec"], read("v1beta1")["spec"]);
    // kubectl reads the preferred version, GA before beta.
    assert_eq!(
        server.get_json(&ns, "gears", "old")["apiVersion"],
        "versions.example.com/v1"
    );
}

#[test]
fn deleting_the_definition_deletes_its_objects() {
    let server = nodeless_server();
    let ns = server.namespace("crd-delete");
    let crd = define(server, "delete.example.com", "widgets", "Widget", "wdg");
    for name in ["a", "b"] {
        apply(
            server,
            &ns,
            "delete.example.com/v1",
            "Widget",
            name,
            json!({"size": 1}),
        );
    }
    let out = server.kubectl(&["delete", "crd", &crd]).ok();
    assert_eq!(
        out.trim(),
        format!("customresourcedefinition.apiextensions.k8s.io \"{crd}\" deleted")
    );
    let err = server
        .kubectl(&[
            "get",
            "--raw",
            &format!("/apis/delete.example.com/v1/namespaces/{ns}/widgets"),
        ])
        .fails();
    assert!(err.contains("NotFound"), "{err}");

    // Defined again, it starts empty.
    define(server, "delete.example.com", "widgets", "Widget", "wdg");
    eventually("the widgets list", || {
        let names = server.names(&["get", "widgets.delete.example.com", "-n", &ns]);
        if names.is_empty() {
            Ok(())
        } else {
            Err(format!("still {names:?}"))
        }
    });
}

#[test]
fn definitions_and_their_objects_outlive_a_restart() {
    let mut server = Server::start_with(&["--disable-agent", "--disable-controllers"]);
    let ns = server.namespace("crd-restart");
    define(&server, "restart.example.com", "knobs", "Knob", "kn");
    apply(
        &server,
        &ns,
        "restart.example.com/v1",
        "Knob",
        "k",
        json!({"size": 4}),
    );
    server.restart();
    assert_eq!(server.get_json(&ns, "kn", "k")["spec"]["size"], 4);
}

#[test]
fn objects_owned_by_a_custom_resource_go_with_it() {
    let server = nodeless_server();
    let ns = server.namespace("crd-owner");
    define(server, "owner.example.com", "owners", "Owner", "own");
    apply(
        server,
        &ns,
        "owner.example.com/v1",
        "Owner",
        "o",
        json!({"size": 1}),
    );
    let uid = server.get_json(&ns, "own", "o")["metadata"]["uid"].clone();
    let owned = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "owned", "ownerReferences": [{
            "apiVersion": "owner.example.com/v1", "kind": "Owner", "name": "o", "uid": uid,
        }]},
    });
    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &owned.to_string())
        .ok();
    server.kubectl(&["delete", "own", "o", "-n", &ns]).ok();
    eventually("the owned ConfigMap to be collected", || {
        let left = server.names(&[
            "get",
            "configmaps",
            "-n",
            &ns,
            "--field-selector=metadata.name=owned",
        ]);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still {left:?}"))
        }
    });
}

#[test]
fn deleting_a_namespace_deletes_its_custom_resources() {
    let server = nodeless_server();
    let ns = server.namespace("crd-namespace");
    define(server, "namespace.example.com", "levers", "Lever", "lv");
    apply(
        server,
        &ns,
        "namespace.example.com/v1",
        "Lever",
        "l",
        json!({"size": 1}),
    );
    server
        .kubectl(&["delete", "namespace", &ns, "--timeout=60s"])
        .ok();
    let all: Value = serde_json::from_str(
        &server
            .kubectl(&["get", "--raw", "/apis/namespace.example.com/v1/levers"])
            .ok(),
    )
    .unwrap();
    assert_eq!(all["items"], json!([]));
}

#[test]
fn kubectl_explains_and_reapplies_custom_resources() {
    let server = nodeless_server();
    let ns = server.namespace("crd-explain");
    define(server, "explain.example.com", "cogs", "Cog", "cg");
    let out = server.kubectl(&["explain", "cogs.spec"]).ok();
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for wanted in [
        vec!["KIND:", "Cog"],
        vec!["FIELD:", "spec", "<Object>"],
        vec!["size", "<integer>", "-required-"],
        vec!["color", "<string>"],
    ] {
        assert!(lines.contains(&wanted), "no {wanted:?} in:\n{out}");
    }

    // The published schema takes no strategic merge patch, so a second
    // kubectl apply sends a merge patch.
    for size in [1, 2] {
        apply(
            server,
            &ns,
            "explain.example.com/v1",
            "Cog",
            "c",
            json!({"size": size}),
        );
    }
    assert_eq!(server.get_json(&ns, "cg", "c")["spec"]["size"], 2);
}

#[test]
fn a_definition_not_named_by_its_plural_and_group_is_refused() {
    let server = nodeless_server();
    let definition = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widget.misnamed.example.com"},
        "spec": {
            "group": "misnamed.example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [version("v1", true)],
        },
    });
    let err = server
        .kubectl_stdin(&["apply", "-f", "-"], &definition.to_string())
        .fails();
    assert!(
        err.contains(
            r#"The CustomResourceDefinition "widget.misnamed.example.com" is invalid: metadata.name: Invalid value: "widget.misnamed.example.com": must be spec.names.plural+"."+spec.group"#
        ),
        "{err}"
    );
}

#[test]
fn cluster_scoped_resources_without_subresources_count_status_in_their_generation() {
    let server = nodeless_server();
    let mut v1 = version("v1", true);
    v1.as_object_mut().unwrap().remove("subresources");
    let definition = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "dials.cluster.example.com"},
        "spec": {
            "group": "cluster.example.com",
            "scope": "Cluster",
            "names": {"plural": "dials", "kind": "Dial"},
            "versions": [v1],
        },
    });
    server
        .kubectl_stdin(&["apply", "-f", "-"], &definition.to_string())
        .ok();
    server
        .kubectl(&[
            "wait",
            "--for",
            "condition=established",
            "crd/dials.cluster.example.com",
        ])
        .ok();
    let mut dial: Value = serde_json::from_str(&object(
        "cluster.example.com/v1",
        "Dial",
        "d",
        json!({"size": 1}),
    ))
    .unwrap();
    dial["status"] = json!({"phase": "Kept"});
    server
        .kubectl_stdin(&["create", "-f", "-"], &dial.to_string())
        .ok();
    let d = server.get_json("", "dials", "d");
    assert_eq!(d["metadata"].get("namespace"), None);
    assert_eq!(
        d["status"]["phase"], "Kept",
        "status is an ordinary field here"
    );
    server
        .kubectl(&[
            "patch",
            "dial",
            "d",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Moved"}}"#,
        ])
        .ok();
    server.kubectl(&["label", "dial", "d", "moved=yes"]).ok();
    let d = server.get_json("", "dials", "d");
    assert_eq!(d["status"]["phase"], "Moved");
    assert_eq!(d["metadata"]["generation"], 2, "a label is metadata");
    let err = server
        .kubectl(&[
            "get",
            "--raw",
            "/apis/cluster.example.com/v1/dials/d/status",
        ])
        .fails();
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn a_kind_another_definition_holds_is_not_served_until_it_goes() {
    let server = nodeless_server();
    let first = define(server, "conflict.example.com", "sprongs", "Sprong", "spg");
    let second = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "sprangs.conflict.example.com"},
        "spec": {
            "group": "conflict.example.com",
            "scope": "Namespaced",
            "names": {"plural": "sprangs", "kind": "Sprong"},
            "versions": [version("v1", true)],
        },
    });
    server
        .kubectl_stdin(&["apply", "-f", "-"], &second.to_string())
        .ok();
    let condition = |kind: &str| {
        let status = server.get_json("", "crd", "sprangs.conflict.example.com")["status"].clone();
        status["conditions"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["type"] == kind).cloned())
            .unwrap_or_default()
    };
    eventually("the second definition's names refused", || {
        let names = condition("NamesAccepted");
        if names["status"] == "False" {
            Ok(names)
        } else {
            Err(format!("NamesAccepted is {names}"))
        }
    });
    assert_eq!(condition("NamesAccepted")["reason"], "KindConflict");
    assert_eq!(
        condition("NamesAccepted")["message"],
        r#""Sprong" is already in use"#
    );
    assert_eq!(condition("Established")["status"], "False");
    let err = server
        .kubectl(&["get", "--raw", "/apis/conflict.example.com/v1/sprangs"])
        .fails();
    assert!(err.contains("NotFound"), "{err}");

    server.kubectl(&["delete", "crd", &first]).ok();
    server
        .kubectl(&[
            "wait",
            "--for",
            "condition=established",
            "crd/sprangs.conflict.example.com",
        ])
        .ok();
    server
        .kubectl(&["get", "--raw", "/apis/conflict.example.com/v1/sprangs"])
        .ok();
}
