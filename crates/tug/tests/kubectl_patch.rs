//! Changing live objects: `label`, `annotate`, `patch` of each type, `scale`.

mod common;

use common::{Server, arg, eventually, manifest, pod_manifest, row, shared_server, table};
use serde_json::{Value, json};

fn shop_deployment(server: &Server, ns: &str) {
    server
        .kubectl(&[
            "apply",
            "-n",
            ns,
            "-f",
            arg(&manifest("app/deployment.yaml")),
        ])
        .ok();
}

fn container_names(deployment: &Value) -> Vec<String> {
    let mut names: Vec<String> = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["name"].as_str().expect("container name").to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn label_add_overwrite_and_remove() {
    let server = shared_server();
    let ns = server.namespace("label");
    server
        .kubectl_stdin(
            &["apply", "-n", &ns, "-f", "-"],
            &pod_manifest("p", &[("app", "p")]),
        )
        .ok();

    let out = server
        .kubectl(&["label", "pod", "p", "-n", &ns, "env=prod"])
        .ok();
    assert_eq!(out.trim(), "pod/p labeled");

    let err = server
        .kubectl(&["label", "pod", "p", "-n", &ns, "env=dev"])
        .fails();
    assert!(
        err.contains("'env' already has a value (prod), and --overwrite is false"),
        "{err}"
    );
    assert_eq!(
        server.get_json(&ns, "pod", "p")["metadata"]["labels"]["env"],
        "prod"
    );

    server
        .kubectl(&["label", "pod", "p", "-n", &ns, "env=dev", "--overwrite"])
        .ok();
    assert_eq!(
        server.get_json(&ns, "pod", "p")["metadata"]["labels"],
        json!({"app": "p", "env": "dev"})
    );

    let out = server
        .kubectl(&["label", "pod", "p", "-n", &ns, "env-"])
        .ok();
    assert_eq!(out.trim(), "pod/p unlabeled");
    assert_eq!(
        server.get_json(&ns, "pod", "p")["metadata"]["labels"],
        json!({"app": "p"})
    );
    assert_eq!(
        server.names(&["get", "pods", "-n", &ns, "-l", "env"]),
        Vec::<String>::new()
    );
}

#[test]
fn annotate_add_overwrite_and_remove() {
    let server = shared_server();
    let ns = server.namespace("annotate");
    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod_manifest("p", &[]))
        .ok();

    let out = server
        .kubectl(&["annotate", "pod", "p", "-n", &ns, "note=first"])
        .ok();
    assert_eq!(out.trim(), "pod/p annotated");

    let err = server
        .kubectl(&["annotate", "pod", "p", "-n", &ns, "note=second"])
        .fails();
    assert!(err.contains("--overwrite is false"), "{err}");
    assert!(err.contains("'note' already has a value (first)"), "{err}");

    server
        .kubectl(&[
            "annotate",
            "pod",
            "p",
            "-n",
            &ns,
            "note=second",
            "--overwrite",
        ])
        .ok();
    let annotations = &server.get_json(&ns, "pod", "p")["metadata"]["annotations"];
    assert_eq!(annotations["note"], "second");

    let out = server
        .kubectl(&["annotate", "pod", "p", "-n", &ns, "note-"])
        .ok();
    assert_eq!(out.trim(), "pod/p annotated");
    let annotations = &server.get_json(&ns, "pod", "p")["metadata"]["annotations"];
    assert!(annotations.get("note").is_none(), "{annotations}");
}

#[test]
fn strategic_merge_patch_merges_containers_by_name() {
    let server = shared_server();
    let ns = server.namespace("patch-strategic");
    shop_deployment(server, &ns);

    let out = server
        .kubectl(&[
            "patch",
            "deployment",
            "shop",
            "-n",
            &ns,
            "--type",
            "strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"},{"name":"shop","image":"nginx:1.27"}]}}}}"#,
        ])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/shop patched");

    let patched = server.get_json(&ns, "deployment", "shop");
    assert_eq!(container_names(&patched), ["shop", "sidecar"]);
    let shop = patched["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "shop")
        .expect("shop container");
    assert_eq!(shop["image"], "nginx:1.27");
    assert_eq!(
        shop["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}]),
        "fields the patch does not name are kept"
    );

    // kubectl says "(no change)" when the object it gets back is the one it
    // read: true once the Deployment controller has stopped updating the
    // status after the rollout the first patch started. Patching again
    // changes nothing, so it may be tried until then.
    eventually("a patch that changes nothing to say so", || {
        let again = server
            .kubectl(&[
                "patch",
                "deployment",
                "shop",
                "-n",
                &ns,
                "-p",
                r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}"#,
            ])
            .ok();
        match again.trim() {
            "deployment.apps/shop patched (no change)" => Ok(()),
            other => Err(other.to_owned()),
        }
    });
}

#[test]
fn merge_patch_replaces_lists_and_deletes_with_null() {
    let server = shared_server();
    let ns = server.namespace("patch-merge");
    shop_deployment(server, &ns);

    server
        .kubectl(&[
            "patch",
            "deployment",
            "shop",
            "-n",
            &ns,
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"labels":{"app":null,"patched":"merge"}},"spec":{"template":{"spec":{"containers":[{"name":"only","image":"busybox:1.36"}]}}}}"#,
        ])
        .ok();

    let patched = server.get_json(&ns, "deployment", "shop");
    assert_eq!(container_names(&patched), ["only"]);
    assert_eq!(patched["metadata"]["labels"], json!({"patched": "merge"}));
    assert_eq!(patched["spec"]["replicas"], 2);
}

#[test]
fn json_patch_applies_operations_in_order() {
    let server = shared_server();
    let ns = server.namespace("patch-json");
    shop_deployment(server, &ns);

    server
        .kubectl(&[
            "patch",
            "deployment",
            "shop",
            "-n",
            &ns,
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/labels/patched","value":"json"},{"op":"remove","path":"/metadata/labels/app"}]"#,
        ])
        .ok();
    let patched = server.get_json(&ns, "deployment", "shop");
    assert_eq!(patched["spec"]["replicas"], 4);
    assert_eq!(patched["metadata"]["labels"], json!({"patched": "json"}));

    server
        .kubectl(&[
            "patch",
            "deployment",
            "shop",
            "-n",
            &ns,
            "--type",
            "json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":1}]"#,
        ])
        .fails();
    assert_eq!(
        server.get_json(&ns, "deployment", "shop")["spec"]["replicas"],
        4,
        "a failed test operation changes nothing"
    );
}

#[test]
fn scale_deployment_sets_replicas() {
    let server = shared_server();
    let ns = server.namespace("scale");
    shop_deployment(server, &ns);

    let out = server
        .kubectl(&["scale", "deployment", "shop", "-n", &ns, "--replicas=5"])
        .ok();
    assert_eq!(out.trim(), "deployment.apps/shop scaled");
    assert_eq!(
        server.get_json(&ns, "deployment", "shop")["spec"]["replicas"],
        5
    );
    let listed = table(&server.kubectl(&["get", "deployments", "-n", &ns]).ok());
    assert_eq!(row(&listed, "shop")[1], "0/5");

    let scale = server
        .kubectl(&[
            "get",
            "--raw",
            &format!("/apis/apps/v1/namespaces/{ns}/deployments/shop/scale"),
        ])
        .ok();
    let scale: Value = serde_json::from_str(&scale).expect("Scale JSON");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=shop");

    let err = server
        .kubectl(&[
            "scale",
            "deployment",
            "shop",
            "-n",
            &ns,
            "--current-replicas=2",
            "--replicas=3",
        ])
        .fails();
    assert!(err.contains("Expected replicas to be 2, was 5"), "{err}");
    assert_eq!(
        server.get_json(&ns, "deployment", "shop")["spec"]["replicas"],
        5
    );
}
