//! The imperative `kubectl create`, `run` and `expose` commands. These go
//! through client-go's typed clients, which send Kubernetes protobuf.

mod common;

use common::shared_server;

#[test]
fn create_namespace_then_refuse_it_twice() {
    let server = shared_server();
    let out = server
        .kubectl(&["create", "namespace", "made-by-create"])
        .ok();
    assert_eq!(out.trim(), "namespace/made-by-create created");
    let ns = server.get_json("", "namespace", "made-by-create");
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "made-by-create"
    );

    let err = server
        .kubectl(&["create", "namespace", "made-by-create"])
        .fails();
    assert!(err.contains("AlreadyExists"), "{err}");
}

#[test]
fn create_configmap_and_secret_from_literals() {
    let server = shared_server();
    let ns = server.namespace("create-config");
    server
        .kubectl(&[
            "create",
            "configmap",
            "settings",
            "-n",
            &ns,
            "--from-literal=mode=fast",
            "--from-literal=size=3",
        ])
        .ok();
    let cm = server.get_json(&ns, "configmap", "settings");
    assert_eq!(cm["data"]["mode"], "fast");
    assert_eq!(cm["data"]["size"], "3");

    server
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            &ns,
            "--from-literal=password=hunter2",
        ])
        .ok();
    let secret = server.get_json(&ns, "secret", "creds");
    assert_eq!(secret["type"], "Opaque");
    // base64 of "hunter2": bytes survive the protobuf round trip.
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
}

#[test]
fn run_creates_a_pod_with_defaults() {
    let server = shared_server();
    let ns = server.namespace("create-run");
    let out = server
        .kubectl(&[
            "run",
            "hello",
            "-n",
            &ns,
            "--image=busybox:1.36",
            "--labels=app=hello",
            "--port=8080",
            "--",
            "sleep",
            "3600",
        ])
        .ok();
    assert_eq!(out.trim(), "pod/hello created");
    let pod = server.get_json(&ns, "pod", "hello");
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox:1.36");
    assert_eq!(container["args"], serde_json::json!(["sleep", "3600"]));
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(container["ports"][0]["protocol"], "TCP");
    assert_eq!(pod["metadata"]["labels"]["app"], "hello");
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(pod["status"]["phase"], "Pending");
}

#[test]
fn create_deployment_and_expose_it() {
    let server = shared_server();
    let ns = server.namespace("create-deploy");
    server
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "-n",
            &ns,
            "--image=nginx:1.25",
            "--replicas=3",
            "--port=80",
        ])
        .ok();
    let deploy = server.get_json(&ns, "deployment", "web");
    assert_eq!(deploy["spec"]["replicas"], 3);
    assert_eq!(deploy["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );

    server
        .kubectl(&[
            "expose",
            "deployment",
            "web",
            "-n",
            &ns,
            "--port=80",
            "--target-port=8080",
        ])
        .ok();
    let svc = server.get_json(&ns, "service", "web");
    assert_eq!(svc["spec"]["selector"]["app"], "web");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
}
