use serde_json::{Value, json};

use super::*;
use crate::FieldError;

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wg"]},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false},
                {"name": "v1alpha1", "served": false, "storage": false},
                {"name": "v1", "served": true, "storage": true,
                 "subresources": {"status": {}},
                 "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "integer", "minimum": 1, "maximum": 10},
                            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        },
                    }},
                 }}},
            ],
        },
    })
}

fn v1() -> &'static Kind {
    kinds_of(&widget_crd())[0]
}

fn messages(obj: Value) -> Vec<String> {
    validate(v1().custom.as_ref().unwrap(), &obj)
        .iter()
        .map(FieldError::summary)
        .collect()
}

#[test]
fn each_served_version_is_a_kind_in_order_of_preference() {
    let kinds = kinds_of(&widget_crd());
    let versions: Vec<&str> = kinds.iter().map(|k| k.version).collect();
    assert_eq!(versions, ["v1", "v1beta1"]);
    let kind = kinds[0];
    assert_eq!(
        (kind.group, kind.kind, kind.plural, kind.singular),
        ("example.com", "Widget", "widgets", "widget")
    );
    assert_eq!(kind.short_names, ["wg"]);
    assert!(kind.namespaced && kind.has_status && !kind.has_scale);
    assert_eq!(kinds[1].stored_api_version(), "example.com/v1");
    assert!(!kinds[1].has_status, "subresources are per version");
}

#[test]
fn the_same_definition_gives_the_same_kinds() {
    assert!(std::ptr::eq(v1(), v1()));
}

#[test]
fn versions_sort_as_kubernetes_sorts_them() {
    let mut versions = vec!["v1alpha1", "foo", "v2", "v1beta2", "v1", "v1beta1", "bar"];
    versions.sort_by(|a, b| compare_versions(a, b));
    assert_eq!(
        versions,
        ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"]
    );
}

#[test]
fn a_wrong_type_is_reported_as_kubernetes_words_it() {
    assert_eq!(
        messages(json!({"spec": {"size": "big"}})),
        [
            r#"spec.size: Invalid value: "string": spec.size in body must be of type integer: "string""#
        ]
    );
}

#[test]
fn required_enum_bounds_and_patterns() {
    assert_eq!(
        messages(json!({"spec": {"color": "pink", "name": "Abcdef"}})),
        [
            "spec.size: Required value",
            r#"spec.color: Unsupported value: "pink": supported values: "red", "blue""#,
            r#"spec.name: Invalid value: "Abcdef": spec.name in body should be at most 5 chars long"#,
            r#"spec.name: Invalid value: "Abcdef": spec.name in body should match '^[a-z]+$'"#,
        ]
    );
    assert_eq!(
        messages(json!({"spec": {"size": 0}})),
        ["spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"]
    );
    assert_eq!(
        messages(json!({"spec": {"size": 11, "tags": ["a", 2]}})),
        [
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10",
            r#"spec.tags[1]: Invalid value: "integer": spec.tags[1] in body must be of type string: "integer""#,
        ]
    );
    assert!(messages(json!({"spec": {"size": 3}})).is_empty());
}

#[test]
fn unknown_fields_are_pruned_except_where_preserved() {
    let custom = v1().custom.as_ref().unwrap();
    let obj = json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "bogus": 1},
        "spec": {"size": 1, "shape": "round", "extra": {"anything": {"goes": true}}},
        "other": 1,
    });
    assert_eq!(
        prune(custom, obj),
        json!({
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 1, "extra": {"anything": {"goes": true}}},
        })
    );
}

#[test]
fn defaults_fill_absent_fields_of_present_objects() {
    let custom = v1().custom.as_ref().unwrap();
    let mut obj = json!({"spec": {"size": 1}});
    apply_defaults(custom, &mut obj);
    assert_eq!(obj["spec"]["color"], "red");
    let mut without_spec = json!({"metadata": {"name": "w"}});
    apply_defaults(custom, &mut without_spec);
    assert!(without_spec.get("spec").is_none());
}

#[test]
fn printer_column_paths() {
    let obj = json!({"status": {"conditions": [
        {"type": "Synced", "status": "False"},
        {"type": "Ready", "status": "True"},
    ]}});
    assert_eq!(
        json_path(&obj, r#".status.conditions[?(@.type=="Ready")].status"#),
        Some(&json!("True"))
    );
    assert_eq!(
        json_path(&obj, ".status.conditions[0].type"),
        Some(&json!("Synced"))
    );
    assert_eq!(json_path(&obj, ".spec.size"), None);
}

#[test]
fn embedded_resources_keep_their_type_and_metadata() {
    let definition = json!({
        "metadata": {"name": "templates.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "templates", "kind": "Template"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object"}},
                    },
                }}}}],
        },
    });
    let custom = kinds_of(&definition)[0].custom.as_ref().unwrap();
    let obj = json!({"template": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "other": 1,
    }});
    assert_eq!(
        prune(custom, obj)["template"],
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}})
    );
}
