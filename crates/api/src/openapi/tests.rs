use serde_json::{Value, json};

use super::*;
use crate::registry::KINDS;

/// Follows a property schema to the schema it names, through `$ref` or `allOf`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let reference = schema
        .get("$ref")
        .or_else(|| schema.pointer("/allOf/0/$ref"))
        .and_then(Value::as_str);
    match reference {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .expect("reference resolves"),
        None => schema,
    }
}

fn has_gvk(schema: &Value, group: &str, version: &str, kind: &str) -> bool {
    schema["x-kubernetes-group-version-kind"]
        == json!([{"group": group, "kind": kind, "version": version}])
}

#[test]
fn every_kind_has_its_schema_with_gvk_in_its_group_version_document() {
    for kind in KINDS {
        let path = group_version_path(kind.group, kind.version);
        let doc = v3_document(&path, &[]).unwrap_or_else(|| panic!("no document {path}"));
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let found = schemas
            .values()
            .any(|s| has_gvk(s, kind.group, kind.version, kind.kind));
        assert!(found, "{} has no schema in {path}", kind.kind);
        let list = format!("{}List", kind.kind);
        assert!(
            schemas
                .values()
                .any(|s| has_gvk(s, kind.group, kind.version, &list)),
            "{list} missing"
        );
    }
}

#[test]
fn index_lists_each_group_version_with_a_stable_hash() {
    let index = v3_index(&[]);
    let url = index["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap();
    assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
    assert_eq!(url.len(), "/openapi/v3/api/v1?hash=".len() + 128);
    assert_eq!(v3_index(&[]), index);
    assert!(index["paths"]["apis/apps/v1"].is_object());
    assert!(index["paths"]["apis/networking.k8s.io/v1"].is_object());
    assert!(v3_document("apis/nope/v1", &[]).is_none());
}

#[test]
fn pod_containers_schema_has_name_and_image_for_kubectl_explain() {
    let doc = v3_document("api/v1", &[]).unwrap();
    let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
    assert!(has_gvk(pod, "", "v1", "Pod"));
    let spec = &pod["properties"]["spec"];
    assert!(
        spec["description"]
            .as_str()
            .unwrap()
            .starts_with("Specification of the desired behavior")
    );
    let containers = &resolve(&doc, spec)["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    let container = resolve(&doc, &containers["items"]);
    assert!(container["properties"]["name"]["description"].is_string());
    assert!(container["properties"]["image"]["description"].is_string());
    let ports = &container["properties"]["ports"];
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["containerPort", "protocol"])
    );
}

#[test]
fn refs_point_inside_the_document() {
    for (path, doc) in [
        ("api/v1", v3_document("api/v1", &[]).unwrap()),
        ("v2", v2_document()),
    ] {
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"").skip(1) {
            let target = &piece[..piece.find('"').unwrap()];
            assert!(
                doc.pointer(target.trim_start_matches('#')).is_some(),
                "{path}: {target}"
            );
        }
    }
}

#[test]
fn pod_patch_lists_field_validation_so_kubectl_validates_on_the_server() {
    let doc = v3_document("api/v1", &[]).unwrap();
    for path in [
        "/api/v1/namespaces/{namespace}/pods/{name}",
        "/api/v1/namespaces/{namespace}/pods/{name}/status",
    ] {
        let patch = &doc["paths"][path]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "", "kind": "Pod", "version": "v1"})
        );
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for want in ["fieldValidation", "dryRun", "fieldManager", "force"] {
            assert!(names.contains(&want), "{path} lacks {want}");
        }
        assert!(
            patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object()
        );
    }
    let item = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
    for method in ["get", "put", "patch", "delete"] {
        assert!(item[method].is_object(), "{method}");
    }
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/pods"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/namespaces/{name}"]["patch"].is_object());
}

#[test]
fn deployment_scale_uses_the_autoscaling_scale_schema() {
    let doc = v3_document("apis/apps/v1", &[]).unwrap();
    let scale =
        &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
    assert!(has_gvk(
        &doc["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"],
        "autoscaling",
        "v1",
        "Scale"
    ));
}

#[test]
fn v2_has_the_same_schemas_under_definitions_with_body_parameters() {
    let doc = v2_document();
    assert_eq!(doc["swagger"], "2.0");
    let deploy = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
    assert!(has_gvk(deploy, "apps", "v1", "Deployment"));
    assert_eq!(
        deploy["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    let finalizers = &doc["definitions"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
        ["finalizers"];
    assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    let params = patch["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "body" && p["in"] == "body")
    );
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["type"] == "string")
    );
}
