//! `describe`, `delete`, `api-resources`, `explain`, and an older kubectl.

mod common;

use common::{
    KUBECTL_1_27, Server, arg, eventually, manifest, pod_manifest, row, shared_server, table,
};
use serde_json::{Value, json};

/// The `Key: value` lines of `kubectl describe` at the top level.
fn describe_fields(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no `{key}:` in {fields:?}"))
}

#[test]
fn describe_pod() {
    let server = shared_server();
    let ns = server.namespace("describe-pod");
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("pod.yaml"))])
        .ok();

    let out = server.kubectl(&["describe", "pod", "web", "-n", &ns]).ok();
    let fields = describe_fields(&out);
    assert_eq!(field(&fields, "Name"), "web");
    assert_eq!(field(&fields, "Namespace"), ns);
    assert_eq!(field(&fields, "Labels"), "app=web");
    assert_eq!(field(&fields, "Status"), "Pending");
    assert_eq!(field(&fields, "Node"), "<none>");
    assert_eq!(field(&fields, "Events"), "<none>");
    assert!(out.contains("Containers:\n  web:\n"), "{out}");
    let image = out
        .lines()
        .find(|l| l.trim_start().starts_with("Image:"))
        .unwrap_or_else(|| panic!("no Image: in {out}"));
    assert_eq!(
        image.split_whitespace().collect::<Vec<_>>(),
        ["Image:", "nginx:1.25"]
    );
}

#[test]
fn describe_deployment() {
    let server = shared_server();
    let ns = server.namespace("describe-deploy");
    server
        .kubectl(&[
            "apply",
            "-n",
            &ns,
            "-f",
            arg(&manifest("app/deployment.yaml")),
        ])
        .ok();

    // Settled once the controllers made the two pods, which no scheduler
    // places here: none is available.
    let out = eventually("the Deployment's pods to be counted", || {
        let out = server
            .kubectl(&["describe", "deployment", "shop", "-n", &ns])
            .ok();
        let replicas = field(&describe_fields(&out), "Replicas").to_owned();
        if replicas == "2 desired | 2 updated | 2 total | 0 available | 2 unavailable" {
            Ok(out)
        } else {
            Err(replicas)
        }
    });
    let fields = describe_fields(&out);
    assert_eq!(field(&fields, "Name"), "shop");
    assert_eq!(field(&fields, "Selector"), "app=shop");
    assert_eq!(field(&fields, "StrategyType"), "RollingUpdate");
    assert!(out.contains("nginx:1.25"), "{out}");
}

#[test]
fn delete_pod_by_name_with_grace_period_and_force() {
    let server = shared_server();
    let ns = server.namespace("delete-pods");
    for name in ["plain", "graceful", "forced"] {
        server
            .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod_manifest(name, &[]))
            .ok();
    }

    let out = server.kubectl(&["delete", "pod", "plain", "-n", &ns]).ok();
    assert_eq!(out.trim(), r#"pod "plain" deleted"#);
    server.assert_absent(&ns, "pod", "plain");

    let out = server
        .kubectl(&["delete", "pod", "graceful", "-n", &ns, "--grace-period=5"])
        .ok();
    assert_eq!(out.trim(), r#"pod "graceful" deleted"#);
    server.assert_absent(&ns, "pod", "graceful");

    let run = server.kubectl(&[
        "delete",
        "pod",
        "forced",
        "-n",
        &ns,
        "--grace-period=0",
        "--force",
    ]);
    assert!(
        run.stderr.contains("Immediate deletion does not wait"),
        "{}",
        run.stderr
    );
    assert_eq!(run.ok().trim(), r#"pod "forced" force deleted"#);
    server.assert_absent(&ns, "pod", "forced");
}

#[test]
fn delete_missing_is_not_found_unless_ignored() {
    let server = shared_server();
    let ns = server.namespace("delete-missing");
    let err = server
        .kubectl(&["delete", "pod", "nope", "-n", &ns])
        .fails();
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );
    let out = server
        .kubectl(&["delete", "pod", "nope", "-n", &ns, "--ignore-not-found"])
        .ok();
    assert_eq!(out, "");
}

#[test]
fn delete_by_label_selector_deletes_only_matches() {
    let server = shared_server();
    let ns = server.namespace("delete-selector");
    let pods = [
        pod_manifest("keep", &[("env", "dev")]),
        pod_manifest("drop", &[("env", "prod")]),
    ];
    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pods.join("---\n"))
        .ok();

    let out = server
        .kubectl(&["delete", "pods", "-n", &ns, "-l", "env in (prod)"])
        .ok();
    assert_eq!(out.trim(), r#"pod "drop" deleted"#);
    assert_eq!(server.names(&["get", "pods", "-n", &ns]), ["pod/keep"]);
}

#[test]
fn delete_with_each_cascade_mode() {
    let server = shared_server();
    let ns = server.namespace("delete-cascade");
    for mode in ["background", "foreground", "orphan"] {
        let name = format!("by-{mode}");
        let deployment = std::fs::read_to_string(manifest("app/deployment.yaml"))
            .expect("manifest")
            .replace("name: shop", &format!("name: {name}"));
        server
            .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &deployment)
            .ok();
        let out = server
            .kubectl(&[
                "delete",
                "deployment",
                &name,
                "-n",
                &ns,
                &format!("--cascade={mode}"),
                "--timeout=60s",
            ])
            .ok();
        assert_eq!(out.trim(), format!(r#"deployment.apps "{name}" deleted"#));
        server.assert_absent(&ns, "deployment", &name);
    }
}

/// A ReplicaSet that names `owner` (a Deployment) as its controller.
fn owned_replicaset(server: &Server, ns: &str, owner: &str) -> String {
    let uid = server.get_json(ns, "deployment", owner)["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned();
    let rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{owner}-rs"),
            "labels": {"app": owner},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": owner,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": owner}},
            "template": {
                "metadata": {"labels": {"app": owner}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
        },
    });
    server
        .kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &rs.to_string())
        .ok();
    format!("{owner}-rs")
}

#[test]
fn delete_with_orphan_cascade_keeps_dependents() {
    let server = shared_server();
    let ns = server.namespace("delete-orphan");
    server
        .kubectl(&[
            "apply",
            "-n",
            &ns,
            "-f",
            arg(&manifest("app/deployment.yaml")),
        ])
        .ok();
    let rs = owned_replicaset(server, &ns, "shop");

    server
        .kubectl(&[
            "delete",
            "deployment",
            "shop",
            "-n",
            &ns,
            "--cascade=orphan",
            "--timeout=60s",
        ])
        .ok();
    server.assert_absent(&ns, "deployment", "shop");
    // The dependent stays. (Removing its ownerReferences is the garbage
    // collector's part of orphaning, which comes with the controllers.)
    let orphan = server.get_json(&ns, "replicaset", &rs);
    assert_eq!(orphan["metadata"]["name"], rs.as_str());
}

#[test]
fn delete_dash_f_deletes_what_the_files_name() {
    let server = shared_server();
    let ns = server.namespace("delete-files");
    let dir = manifest("app");
    server.kubectl(&["apply", "-n", &ns, "-f", arg(&dir)]).ok();

    let out = server.kubectl(&["delete", "-n", &ns, "-f", arg(&dir)]).ok();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"configmap "shop-config" deleted"#,
            r#"deployment.apps "shop" deleted"#,
            r#"service "shop" deleted"#,
        ]
    );
    server.assert_absent(&ns, "configmap", "shop-config");
    server.assert_absent(&ns, "deployment", "shop");
    server.assert_absent(&ns, "service", "shop");
}

#[test]
fn api_resources_lists_kinds_with_short_names() {
    let server = shared_server();
    let out = server.kubectl(&["api-resources"]).ok();
    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    let expected: [&[&str]; 9] = [
        &["pods", "po", "v1", "true", "Pod"],
        &["services", "svc", "v1", "true", "Service"],
        &["configmaps", "cm", "v1", "true", "ConfigMap"],
        &["secrets", "v1", "true", "Secret"],
        &["namespaces", "ns", "v1", "false", "Namespace"],
        &["nodes", "no", "v1", "false", "Node"],
        &["deployments", "deploy", "apps/v1", "true", "Deployment"],
        &["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
        &[
            "ingresses",
            "ing",
            "networking.k8s.io/v1",
            "true",
            "Ingress",
        ],
    ];
    for wanted in expected {
        assert_eq!(row(&rows, wanted[0]), wanted, "api-resources row");
    }

    let mut apps = server
        .kubectl(&["api-resources", "--api-group=apps", "-o", "name"])
        .ok()
        .lines()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    apps.sort();
    assert_eq!(
        apps,
        [
            "controllerrevisions.apps",
            "daemonsets.apps",
            "deployments.apps",
            "replicasets.apps",
            "statefulsets.apps",
        ]
    );

    let cluster = server
        .kubectl(&["api-resources", "--namespaced=false", "-o", "name"])
        .ok();
    let cluster: Vec<&str> = cluster.lines().collect();
    assert!(
        cluster.contains(&"namespaces") && cluster.contains(&"nodes"),
        "{cluster:?}"
    );
    assert!(!cluster.contains(&"pods"), "{cluster:?}");
}

#[test]
fn explain_pod_containers() {
    let server = shared_server();
    let out = server.kubectl(&["explain", "pods.spec.containers"]).ok();
    let rows = table(&out);
    assert!(
        rows.contains(&vec!["KIND:".to_owned(), "Pod".to_owned()]),
        "{out}"
    );
    assert!(
        rows.contains(&vec!["VERSION:".to_owned(), "v1".to_owned()]),
        "{out}"
    );
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(out.contains("DESCRIPTION:"), "{out}");
    assert_eq!(row(&rows, "name"), ["name", "<string>", "-required-"]);
    assert_eq!(row(&rows, "image"), ["image", "<string>"]);

    let replicas = server
        .kubectl(&["explain", "deployment.spec.replicas"])
        .ok();
    assert!(replicas.contains("FIELD: replicas <integer>"), "{replicas}");
}

#[test]
fn kubectl_1_27_smoke() {
    let server = shared_server();
    let ns = server.namespace("kubectl-127");
    let old = |args: &[&str]| server.kubectl_with(KUBECTL_1_27, args, None);

    let out = old(&["apply", "-n", &ns, "-f", arg(&manifest("pod.yaml"))]).ok();
    assert_eq!(out.trim(), "pod/web created");

    let rows = table(&old(&["get", "pods", "-n", &ns]).ok());
    assert_eq!(rows[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(row(&rows, "web")[..4], ["web", "0/1", "Pending", "0"]);

    let json = old(&["get", "pod", "web", "-n", &ns, "-o", "json"]).ok();
    let pod: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx:1.25");

    assert_eq!(
        old(&["label", "pod", "web", "-n", &ns, "old=kubectl"])
            .ok()
            .trim(),
        "pod/web labeled"
    );
    assert_eq!(
        old(&["delete", "pod", "web", "-n", &ns]).ok().trim(),
        r#"pod "web" deleted"#
    );
    server.assert_absent(&ns, "pod", "web");
}
