use serde_json::json;

use super::*;

fn strategic(original: Value, patch: Value) -> Value {
    apply_patch(
        PatchType::StrategicMerge,
        &original,
        patch.to_string().as_bytes(),
    )
    .unwrap()
}

fn deployment() -> Value {
    json!({
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "app", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "sidecar", "image": "busybox"}
        ]}}}
    })
}

#[test]
fn content_types_name_the_patch_formats() {
    assert_eq!(
        PatchType::from_content_type("application/json-patch+json"),
        Some(PatchType::Json)
    );
    assert_eq!(
        PatchType::from_content_type("application/strategic-merge-patch+json; charset=utf-8"),
        Some(PatchType::StrategicMerge)
    );
    assert_eq!(PatchType::from_content_type("application/json"), None);
}

#[test]
fn strategic_patch_merges_containers_and_env_by_name() {
    // What `kubectl apply` sends after the image and one env var changed.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"name": "app", "image": "nginx:1.26",
            "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
            "env": [{"name": "B", "value": "3"}]}]
    }}}});
    let merged = strategic(deployment(), patch);
    let containers = &merged["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:1.26");
    assert_eq!(
        containers[0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}])
    );
    assert_eq!(
        containers[1],
        json!({"name": "sidecar", "image": "busybox"})
    );
}

#[test]
fn strategic_patch_adds_and_deletes_list_items() {
    let added = strategic(
        deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "logger", "image": "fluentd"}]}}}}),
    );
    let names: Vec<_> = added["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["app", "sidecar", "logger"]);

    let deleted = strategic(
        deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}),
    );
    assert_eq!(
        deleted["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn null_deletes_and_replace_replaces() {
    let merged = strategic(
        deployment(),
        json!({"metadata": {"labels": {"tier": null, "new": "x"}}}),
    );
    assert_eq!(
        merged["metadata"]["labels"],
        json!({"app": "web", "new": "x"})
    );

    let replaced = strategic(
        deployment(),
        json!({"metadata": {"labels": {"$patch": "replace", "only": "y"}}}),
    );
    assert_eq!(replaced["metadata"]["labels"], json!({"only": "y"}));
}

#[test]
fn finalizers_merge_as_a_set_and_can_be_removed() {
    let original = json!({"metadata": {"finalizers": ["a", "b"]}});
    let merged = strategic(
        original.clone(),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(merged["metadata"]["finalizers"], json!(["a", "b", "c"]));
    let removed = strategic(
        original,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(removed["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn retain_keys_drops_fields_the_patch_does_not_keep() {
    let original =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let merged = strategic(
        original,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(merged["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn keyed_list_item_without_its_key_is_a_bad_request() {
    let err = apply_patch(
        PatchType::StrategicMerge,
        &deployment(),
        br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.code, 400);
}

#[test]
fn json_patch_applies_in_order_and_fails_whole() {
    let patched = apply_patch(
        PatchType::Json,
        &deployment(),
        br#"[{"op":"replace","path":"/spec/replicas","value":5},{"op":"remove","path":"/metadata/labels/tier"}]"#,
    )
    .unwrap();
    assert_eq!(patched["spec"]["replicas"], 5);
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web"}));

    let failed = apply_patch(
        PatchType::Json,
        &deployment(),
        br#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
    )
    .unwrap_err();
    assert_eq!(failed.code, 422);
    assert_eq!(failed.reason, "Invalid");
    assert_eq!(
        failed.message,
        "the server rejected our request due to an error in our request"
    );
    let malformed = apply_patch(PatchType::Json, &deployment(), b"{not json").unwrap_err();
    assert_eq!(malformed.code, 400);
}

#[test]
fn merge_patch_replaces_lists_whole() {
    let patched = apply_patch(
        PatchType::Merge,
        &deployment(),
        br#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"x"}]}}}}"#,
    )
    .unwrap();
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
}

#[test]
fn an_added_container_keeps_no_directives_of_its_own() {
    let patched = strategic(
        deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "proxy", "image": "envoy",
             "resources": {"$retainKeys": ["limits"], "limits": {"cpu": "1"}}}
        ]}}}}),
    );
    let containers = &patched["spec"]["template"]["spec"]["containers"];
    let proxy = containers
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "proxy")
        .unwrap();
    assert_eq!(
        proxy,
        &json!({"name": "proxy", "image": "envoy", "resources": {"limits": {"cpu": "1"}}})
    );
}
