use serde_json::json;

use super::*;

const NOW: &str = "2026-01-01T00:00:00Z";

fn config(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}
    })
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    entries_of(obj)
        .into_iter()
        .map(|e| (e.manager, e.operation))
        .collect()
}

#[test]
fn apply_creates_and_records_the_applied_fields() {
    let created = server_side_apply(None, &config(2, "nginx"), "kubectl", false, NOW).unwrap();
    assert_eq!(created["spec"]["replicas"], 2);
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "kubectl");
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    let container = &entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
    assert_eq!(container["."], json!({}));
    assert_eq!(container["f:image"], json!({}));
}

#[test]
fn reapplying_changes_the_fields_the_manager_owns() {
    let live = server_side_apply(None, &config(2, "nginx"), "kubectl", false, NOW).unwrap();
    let updated =
        server_side_apply(Some(&live), &config(5, "nginx:2"), "kubectl", false, NOW).unwrap();
    assert_eq!(updated["spec"]["replicas"], 5);
    assert_eq!(
        updated["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    assert_eq!(managers(&updated), [("kubectl".into(), "Apply".into())]);
}

#[test]
fn another_manager_conflicts_unless_forced() {
    let live = server_side_apply(None, &config(2, "nginx"), "kubectl", false, NOW).unwrap();
    let err =
        server_side_apply(Some(&live), &config(3, "nginx"), "autoscaler", false, NOW).unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"
    );
    let cause = &err.details.unwrap().causes.unwrap()[0];
    assert_eq!(cause.message.as_deref(), Some("conflict with \"kubectl\""));
    assert_eq!(cause.reason.as_deref(), Some("FieldManagerConflict"));
    assert_eq!(cause.field.as_deref(), Some(".spec.replicas"));

    let forced =
        server_side_apply(Some(&live), &config(3, "nginx"), "autoscaler", true, NOW).unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    let kubectl = entries_of(&forced)
        .into_iter()
        .find(|e| e.manager == "kubectl")
        .unwrap();
    assert!(
        !kubectl
            .fields
            .contains(&vec!["f:spec".to_owned(), "f:replicas".to_owned()])
    );
}

#[test]
fn same_value_is_shared_not_a_conflict() {
    let live = server_side_apply(None, &config(2, "nginx"), "kubectl", false, NOW).unwrap();
    let shared = server_side_apply(Some(&live), &config(2, "nginx"), "other", false, NOW).unwrap();
    assert_eq!(managers(&shared).len(), 2);
}

#[test]
fn a_field_no_longer_applied_is_removed() {
    let mut with_label = config(2, "nginx");
    with_label["metadata"]["labels"]["tier"] = "front".into();
    let live = server_side_apply(None, &with_label, "kubectl", false, NOW).unwrap();
    let updated =
        server_side_apply(Some(&live), &config(2, "nginx"), "kubectl", false, NOW).unwrap();
    assert_eq!(updated["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn an_update_takes_ownership_and_then_apply_conflicts() {
    let live = server_side_apply(None, &config(2, "nginx"), "kubectl", false, NOW).unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = 7.into();
    record_update(Some(&live), &mut scaled, "kubectl-scale", NOW);
    assert!(managers(&scaled).contains(&("kubectl-scale".into(), "Update".into())));
    let err =
        server_side_apply(Some(&scaled), &config(2, "nginx"), "kubectl", false, NOW).unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn several_conflicts_are_listed_under_each_manager() {
    let live = server_side_apply(None, &config(2, "nginx"), "kubectl", false, NOW).unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = 7.into();
    record_update(Some(&live), &mut scaled, "kubectl-scale", NOW);
    let err =
        server_side_apply(Some(&scaled), &config(3, "nginx:2"), "ci", false, NOW).unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 2 conflicts: conflicts with \"kubectl\":\n\
         - .spec.template.spec.containers[name=\"app\"].image\n\
         conflicts with \"kubectl-scale\" using apps/v1:\n\
         - .spec.replicas"
    );
    assert_eq!(err.details.unwrap().causes.unwrap().len(), 2);
}

#[test]
fn a_create_records_its_manager() {
    let mut obj = config(1, "nginx");
    record_update(None, &mut obj, "kubectl-create", NOW);
    assert_eq!(managers(&obj), [("kubectl-create".into(), "Update".into())]);
}

#[test]
fn applying_a_status_keeps_what_the_same_manager_applied_to_the_object() {
    let live = server_side_apply(None, &config(2, "nginx"), "agent", false, NOW).unwrap();
    let status = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "status": {"replicas": 2}
    });
    let through_status = Writer {
        manager: "agent",
        subresource: "status",
    };
    let updated = server_side_apply(Some(&live), &status, through_status, false, NOW).unwrap();
    assert_eq!(updated["metadata"]["labels"]["app"], "web");
    assert_eq!(updated["spec"]["replicas"], 2);
    assert_eq!(updated["status"]["replicas"], 2);
    let entries = updated["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["subresource"], "status");
    assert_eq!(entries[1]["fieldsV1"]["f:status"]["f:replicas"], json!({}));
    assert!(entries[0].get("subresource").is_none());
}
