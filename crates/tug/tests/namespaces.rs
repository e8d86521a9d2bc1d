//! Namespace deletion: `kubectl delete namespace` removes everything in the
//! namespace, running pods included, and then the namespace; content held
//! by a finalizer holds the namespace, with the conditions Kubernetes
//! reports, and nothing new may be created in it meanwhile.

mod common;

use common::pods::BUSYBOX;
use common::{Server, eventually, node_name, node_server};
use serde_json::{Value, json};

fn apply(server: &Server, obj: &Value) {
    server
        .kubectl_stdin(&["apply", "-f", "-"], &obj.to_string())
        .ok();
}

fn config_map(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"},
    })
}

fn sleeper_spec() -> Value {
    json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "main",
            "image": BUSYBOX,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "sleep 3600"],
        }],
    })
}

/// The namespace's condition of type `type_`, once it has one.
fn condition(server: &Server, namespace: &str, type_: &str) -> Result<Value, String> {
    let ns = server.get_json("", "namespace", namespace);
    ns["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .ok_or_else(|| ns["status"].to_string())
}

#[test]
fn deleting_a_namespace_deletes_its_content_then_the_namespace() {
    let server = node_server();
    let ns = server.namespace("doomed");
    let keeper = server.namespace("keeper");
    let mut pod_spec = sleeper_spec();
    pod_spec["nodeName"] = node_name().into();
    apply(
        server,
        &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "sleeper", "namespace": ns}, "spec": pod_spec}),
    );
    apply(server, &config_map(&ns, "settings"));
    apply(server, &config_map(&keeper, "settings"));
    apply(
        server,
        &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "token", "namespace": ns}, "stringData": {"k": "v"}}),
    );
    server.apply_json(&ns, &common::deployment("web", 1, sleeper_spec()));
    eventually("the pod running", || {
        let pod = server.get_json(&ns, "pod", "sleeper");
        (pod["status"]["phase"] == "Running")
            .then_some(())
            .ok_or(pod["status"].to_string())
    });

    // kubectl waits until the namespace is gone.
    server.kubectl(&["delete", "namespace", &ns]).ok();
    server.assert_absent("", "namespace", &ns);
    for kind in [
        "pods",
        "configmaps",
        "secrets",
        "deployments",
        "replicasets",
        "serviceaccounts",
    ] {
        let left = server.names(&["get", kind, "-n", &ns]);
        assert!(
            left.is_empty(),
            "{kind} left in the deleted namespace: {left:?}"
        );
    }
    let kept = server.names(&["get", "configmaps", "-n", &keeper]);
    assert!(kept.contains(&"configmap/settings".to_owned()), "{kept:?}");
}

#[test]
fn content_held_by_a_finalizer_holds_the_namespace_and_says_so() {
    let server = node_server();
    let ns = server.namespace("held");
    let mut held = config_map(&ns, "held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    apply(server, &held);

    server
        .kubectl(&["delete", "namespace", &ns, "--wait=false"])
        .ok();
    let remaining = eventually("the namespace reports what remains", || {
        let c = condition(server, &ns, "NamespaceContentRemaining")?;
        (c["status"] == "True")
            .then_some(c.clone())
            .ok_or(c.to_string())
    });
    assert_eq!(remaining["reason"], "SomeResourcesRemain");
    assert_eq!(
        remaining["message"],
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    let finalizers = condition(server, &ns, "NamespaceFinalizersRemaining").unwrap();
    assert_eq!(finalizers["status"], "True");
    assert_eq!(finalizers["reason"], "SomeFinalizersRemain");
    assert_eq!(
        finalizers["message"],
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    let failure = condition(server, &ns, "NamespaceDeletionContentFailure").unwrap();
    assert_eq!(failure["status"], "False");
    assert_eq!(failure["reason"], "ContentDeleted");
    assert_eq!(
        server.get_json("", "namespace", &ns)["status"]["phase"],
        "Terminating"
    );

    let refused = server
        .kubectl_stdin(&["create", "-f", "-"], &config_map(&ns, "late").to_string())
        .fails();
    assert!(
        refused.contains(&format!(
            "is forbidden: unable to create new content in namespace {ns} because it is being terminated"
        )),
        "{refused}"
    );

    server
        .kubectl(&[
            "patch",
            "configmap",
            "held",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ])
        .ok();
    eventually("the namespace gone once its content is", || {
        let run = server.kubectl(&["get", "namespace", &ns, "--ignore-not-found", "-o", "name"]);
        let out = run.ok();
        out.trim().is_empty().then_some(()).ok_or(out)
    });
}
