//! `kubectl apply`: files, directories, multi-document YAML, edits that
//! converge, and server-side apply with its conflicts.

mod common;

use common::{arg, manifest, shared_server};
use serde_json::json;

#[test]
fn apply_file_creates_then_reports_unchanged() {
    let server = shared_server();
    let ns = server.namespace("apply-file");
    let pod = manifest("pod.yaml");

    let out = server.kubectl(&["apply", "-n", &ns, "-f", arg(&pod)]).ok();
    assert_eq!(out.trim(), "pod/web created");

    let stored = server.get_json(&ns, "pod", "web");
    assert_eq!(stored["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(stored["spec"]["containers"][0]["image"], "nginx:1.25");

    let again = server.kubectl(&["apply", "-n", &ns, "-f", arg(&pod)]).ok();
    assert_eq!(again.trim(), "pod/web unchanged");

    let last = server
        .kubectl(&[
            "apply",
            "view-last-applied",
            "pod/web",
            "-n",
            &ns,
            "-o",
            "json",
        ])
        .ok();
    let last: serde_json::Value = serde_json::from_str(&last).expect("last-applied JSON");
    assert_eq!(last["metadata"]["name"], "web");
    assert_eq!(last["spec"]["containers"][0]["image"], "nginx:1.25");
}

#[test]
fn apply_directory_creates_every_file() {
    let server = shared_server();
    let ns = server.namespace("apply-dir");

    let out = server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("app"))])
        .ok();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "configmap/shop-config created",
            "deployment.apps/shop created",
            "service/shop created",
        ]
    );
    assert_eq!(
        server.names(&["get", "deployments,services", "-n", &ns]),
        ["deployment.apps/shop", "service/shop"]
    );
    let config = server.get_json(&ns, "configmap", "shop-config");
    assert_eq!(
        config["data"],
        json!({"greeting": "hello", "color": "blue"})
    );
}

#[test]
fn apply_multi_document_yaml_creates_each_document() {
    let server = shared_server();
    let ns = server.namespace("apply-multi");

    let out = server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("multi.yaml"))])
        .ok();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "configmap/multi-config created",
            "service/multi created",
            "deployment.apps/multi created",
        ]
    );
    let service = server.get_json(&ns, "service", "multi");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 80);
    let deployment = server.get_json(&ns, "deployment", "multi");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["sleep", "3600"])
    );
}

#[test]
fn applying_an_edited_manifest_converges_to_it() {
    let server = shared_server();
    let ns = server.namespace("apply-edit");

    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("edit/v1.yaml"))])
        .ok();
    let v1 = server.get_json(&ns, "deployment", "editme");
    assert_eq!(
        v1["metadata"]["labels"],
        json!({"app": "editme", "tier": "backend"})
    );

    let out = server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("edit/v2.yaml"))])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/editme configured");

    let v2 = server.get_json(&ns, "deployment", "editme");
    assert_eq!(v2["metadata"]["labels"], json!({"app": "editme"}));
    let container = &v2["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["env"], json!([{"name": "MODE", "value": "prod"}]));
    assert!(
        v2["metadata"]["generation"].as_i64() > v1["metadata"]["generation"].as_i64(),
        "a spec change bumps metadata.generation: {} then {}",
        v1["metadata"]["generation"],
        v2["metadata"]["generation"]
    );
}

#[test]
fn server_side_apply_conflicts_until_forced() {
    let server = shared_server();
    let ns = server.namespace("apply-ssa");

    let out = server
        .kubectl(&[
            "apply",
            "--server-side",
            "-n",
            &ns,
            "-f",
            arg(&manifest("ssa/deployment.yaml")),
        ])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/ssa serverside-applied");

    let replicas_5 = manifest("ssa/replicas-5.yaml");
    let err = server
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-n",
            &ns,
            "-f",
            arg(&replicas_5),
        ])
        .fails();
    assert!(
        err.contains("conflict with \"kubectl\"") && err.contains(".spec.replicas"),
        "expected a conflict naming the owner and the field, got: {err}"
    );
    assert_eq!(
        server.get_json(&ns, "deployment", "ssa")["spec"]["replicas"],
        2
    );

    let out = server
        .kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=other",
            "-n",
            &ns,
            "-f",
            arg(&replicas_5),
        ])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/ssa serverside-applied");

    let forced = server
        .kubectl(&[
            "get",
            "deployment",
            "ssa",
            "-n",
            &ns,
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .ok();
    let forced: serde_json::Value = serde_json::from_str(&forced).expect("JSON");
    assert_eq!(forced["spec"]["replicas"], 5);
    assert_eq!(
        forced["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.25"
    );
    let owner_of_replicas: Vec<&str> = forced["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter(|entry| !entry["fieldsV1"]["f:spec"]["f:replicas"].is_null())
        .map(|entry| entry["manager"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(owner_of_replicas, ["other"]);
}
