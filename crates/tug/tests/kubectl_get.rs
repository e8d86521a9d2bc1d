//! `kubectl get`: printed columns, output formats, selectors, watches.

mod common;

use common::{
    Server, arg, eventually, manifest, pod_manifest, row, shared_server, starts_with_columns, table,
};
use serde_json::{Value, json};

/// Creates pods `a`..`d` with labels that set-based selectors tell apart.
fn labelled_pods(server: &Server, ns: &str) {
    let pods = [
        pod_manifest("a", &[("env", "prod"), ("tier", "web")]),
        pod_manifest("b", &[("env", "dev")]),
        pod_manifest("c", &[("env", "test"), ("tier", "db")]),
        pod_manifest("d", &[]),
    ];
    server
        .kubectl_stdin(&["apply", "-n", ns, "-f", "-"], &pods.join("---\n"))
        .ok();
}

#[test]
fn get_pods_prints_the_pod_columns() {
    let server = shared_server();
    let ns = server.namespace("get-pods");
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("pod.yaml"))])
        .ok();

    let out = table(&server.kubectl(&["get", "pods", "-n", &ns]).ok());
    assert_eq!(out[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(row(&out, "web")[..4], ["web", "0/1", "Pending", "0"]);

    let wide = server
        .kubectl(&["get", "pods", "-n", &ns, "-o", "wide"])
        .ok();
    let header = wide.lines().next().unwrap_or_default();
    for column in ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"] {
        assert!(header.contains(column), "no {column} in {header}");
    }
    assert_eq!(
        row(&table(&wide), "web")[5..],
        ["<none>", "<none>", "<none>", "<none>"],
        "an unscheduled pod has no IP, node, nominated node or readiness gates"
    );
}

#[test]
fn get_deployments_and_services_print_their_columns() {
    let server = shared_server();
    let ns = server.namespace("get-columns");
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("app"))])
        .ok();

    // Settled once the controllers made the two (never scheduled) pods.
    let deployments = eventually("the Deployment's pods to be made", || {
        let deployments = table(&server.kubectl(&["get", "deployments", "-n", &ns]).ok());
        if row(&deployments, "shop")[..4] == ["shop", "0/2", "2", "0"] {
            Ok(deployments)
        } else {
            Err(format!("{deployments:?}"))
        }
    });
    assert_eq!(
        deployments[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );

    let wide = table(
        &server
            .kubectl(&["get", "deployment", "shop", "-n", &ns, "-o", "wide"])
            .ok(),
    );
    assert_eq!(
        wide[0][5..],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
        "wide deployment columns"
    );
    assert_eq!(row(&wide, "shop")[5..], ["shop", "nginx:1.25", "app=shop"]);

    let services = table(&server.kubectl(&["get", "services", "-n", &ns]).ok());
    assert_eq!(
        services[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let shop = row(&services, "shop");
    assert_eq!(shop[1], "ClusterIP");
    assert_eq!(shop[3..5], ["<none>", "80/TCP"]);
}

#[test]
fn get_output_formats() {
    let server = shared_server();
    let ns = server.namespace("get-formats");
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("pod.yaml"))])
        .ok();

    let name = server
        .kubectl(&["get", "pod", "web", "-n", &ns, "-o", "name"])
        .ok();
    assert_eq!(name.trim(), "pod/web");

    let image = server
        .kubectl(&[
            "get",
            "pod",
            "web",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ])
        .ok();
    assert_eq!(image, "nginx:1.25");

    let yaml = server
        .kubectl(&["get", "pod", "web", "-n", &ns, "-o", "yaml"])
        .ok();
    let from_yaml: Value = serde_saphyr::from_str(&yaml).expect("-o yaml prints YAML");
    let json = server
        .kubectl(&["get", "pod", "web", "-n", &ns, "-o", "json"])
        .ok();
    let from_json: Value = serde_json::from_str(&json).expect("-o json prints JSON");
    assert_eq!(from_yaml, from_json, "yaml and json show the same object");

    assert_eq!(from_json["apiVersion"], "v1");
    assert_eq!(from_json["kind"], "Pod");
    assert_eq!(from_json["metadata"]["name"], "web");
    assert_eq!(from_json["metadata"]["namespace"], ns.as_str());
    for field in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(
            from_json["metadata"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "metadata.{field} is set: {from_json}"
        );
    }

    let list = server
        .kubectl(&["get", "pods", "-n", &ns, "-o", "json"])
        .ok();
    let list: Value = serde_json::from_str(&list).expect("JSON list");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
}

#[test]
fn created_pod_shows_kubernetes_defaults_and_pending_phase() {
    let server = shared_server();
    let ns = server.namespace("get-defaults");
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("pod.yaml"))])
        .ok();

    let pod = server.get_json(&ns, "pod", "web");
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["imagePullPolicy"], "IfNotPresent");
    assert_eq!(container["terminationMessagePolicy"], "File");
    assert_eq!(container["ports"][0]["protocol"], "TCP");
    assert_eq!(pod["status"]["phase"], "Pending");
}

#[test]
fn get_jsonpath_over_a_list() {
    let server = shared_server();
    let ns = server.namespace("get-jsonpath");
    labelled_pods(server, &ns);

    let names = server
        .kubectl(&[
            "get",
            "pods",
            "-n",
            &ns,
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .ok();
    assert_eq!(names, "a b c d");

    let envs = server
        .kubectl(&[
            "get",
            "pods",
            "-n",
            &ns,
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.env}{"\n"}{end}"#,
        ])
        .ok();
    assert_eq!(envs, "a=prod\nb=dev\nc=test\nd=\n");
}

#[test]
fn get_with_set_based_label_selectors() {
    let server = shared_server();
    let ns = server.namespace("get-labels");
    labelled_pods(server, &ns);

    let cases: [(&str, &[&str]); 7] = [
        ("env in (prod,dev)", &["pod/a", "pod/b"]),
        ("!tier", &["pod/b", "pod/d"]),
        ("tier", &["pod/a", "pod/c"]),
        ("env notin (prod,dev)", &["pod/c", "pod/d"]),
        ("env=prod,tier=web", &["pod/a"]),
        ("env!=prod", &["pod/b", "pod/c", "pod/d"]),
        ("env in (prod,dev),!tier", &["pod/b"]),
    ];
    for (selector, expected) in cases {
        assert_eq!(
            server.names(&["get", "pods", "-n", &ns, "-l", selector]),
            expected,
            "-l '{selector}'"
        );
    }

    let none = server
        .kubectl(&["get", "pods", "-n", &ns, "-l", "env=staging"])
        .ok();
    assert_eq!(none, "");
}

#[test]
fn get_with_field_selectors() {
    let server = shared_server();
    let ns = server.namespace("get-fields");
    labelled_pods(server, &ns);

    assert_eq!(
        server.names(&[
            "get",
            "pods",
            "-n",
            &ns,
            "--field-selector",
            "metadata.name=b"
        ]),
        ["pod/b"]
    );
    assert_eq!(
        server.names(&[
            "get",
            "pods",
            "-n",
            &ns,
            "--field-selector",
            "metadata.name!=b"
        ]),
        ["pod/a", "pod/c", "pod/d"]
    );
    assert_eq!(
        server.names(&[
            "get",
            "pods",
            "-n",
            &ns,
            "--field-selector",
            "metadata.name!=b",
            "-l",
            "tier",
        ]),
        ["pod/a", "pod/c"]
    );
}

#[test]
fn get_all_lists_workloads_and_services() {
    let server = shared_server();
    let ns = server.namespace("get-all");
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("app"))])
        .ok();
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("pod.yaml"))])
        .ok();

    // The Deployment's ReplicaSet and its two pods come from the controllers;
    // `all` holds workloads and services but not the namespace's configmaps.
    eventually("the Deployment's ReplicaSet and pods", || {
        let names = server.names(&["get", "all", "-n", &ns]);
        let mut shape: Vec<String> = names
            .iter()
            .map(|n| match n.find("/shop-") {
                Some(at) => format!("{}*", &n[..at + "/shop-".len()]),
                None => n.clone(),
            })
            .collect();
        shape.sort();
        let wanted = [
            "deployment.apps/shop",
            "pod/shop-*",
            "pod/shop-*",
            "pod/web",
            "replicaset.apps/shop-*",
            "service/shop",
        ];
        if shape == wanted {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
    let printed = server.kubectl(&["get", "all", "-n", &ns]).ok();
    let rows = table(&printed);
    assert_eq!(row(&rows, "pod/web")[1..3], ["0/1", "Pending"]);
    assert_eq!(row(&rows, "service/shop")[1], "ClusterIP");
    assert_eq!(row(&rows, "deployment.apps/shop")[1], "0/2");
}

#[test]
fn get_across_namespaces_and_the_builtin_namespaces() {
    let server = shared_server();
    let ns = server.namespace("get-across");
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("pod.yaml"))])
        .ok();

    let all = table(&server.kubectl(&["get", "pods", "-A"]).ok());
    assert_eq!(all[0][..2], ["NAMESPACE", "NAME"]);
    assert!(
        all.iter().any(|r| r[..2] == [ns.as_str(), "web"]),
        "pod web of {ns} in {all:?}"
    );

    let namespaces = table(&server.kubectl(&["get", "namespaces"]).ok());
    assert_eq!(namespaces[0], ["NAME", "STATUS", "AGE"]);
    for builtin in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert_eq!(row(&namespaces, builtin)[1], "Active");
    }
}

#[test]
fn get_missing_object_is_not_found() {
    let server = shared_server();
    let ns = server.namespace("get-missing");
    let err = server.kubectl(&["get", "pod", "nope", "-n", &ns]).fails();
    assert_eq!(
        err.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );
    let quiet = server
        .kubectl(&["get", "pod", "nope", "-n", &ns, "--ignore-not-found"])
        .ok();
    assert_eq!(quiet, "");
}

#[test]
fn get_watch_prints_each_change() {
    let server = shared_server();
    let ns = server.namespace("get-watch");
    server
        .kubectl_stdin(
            &["apply", "-n", &ns, "-f", "-"],
            &pod_manifest("first", &[]),
        )
        .ok();

    let mut watch = server.kubectl_background(&["get", "pods", "-n", &ns, "-w"]);
    watch.expect_line(|l| l.starts_with("NAME "));
    watch.expect_line(|l| l.starts_with("first "));

    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod_manifest("late", &[]))
        .ok();
    let line = watch.expect_line(|l| l.starts_with("late "));
    assert!(line.contains("Pending"), "{line}");
}

#[test]
fn get_watch_with_event_types() {
    let server = shared_server();
    let ns = server.namespace("get-watch-events");
    let mut watch =
        server.kubectl_background(&["get", "pods", "-n", &ns, "-w", "--output-watch-events"]);

    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod_manifest("w", &[]))
        .ok();
    watch.expect_line(|l| starts_with_columns(l, &["ADDED", "w"]));

    server
        .kubectl(&["label", "pod", "w", "-n", &ns, "seen=yes"])
        .ok();
    watch.expect_line(|l| starts_with_columns(l, &["MODIFIED", "w"]));

    server.kubectl(&["delete", "pod", "w", "-n", &ns]).ok();
    watch.expect_line(|l| starts_with_columns(l, &["DELETED", "w"]));
}

#[test]
fn get_watch_json_shows_the_changed_object() {
    let server = shared_server();
    let ns = server.namespace("get-watch-json");
    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod_manifest("j", &[]))
        .ok();
    let mut watch = server.kubectl_background(&[
        "get",
        "pod",
        "j",
        "-n",
        &ns,
        "-w",
        "-o",
        "jsonpath={.metadata.labels.color}{\"\\n\"}",
    ]);
    watch.expect_line(|l| l.is_empty());

    server
        .kubectl(&["label", "pod", "j", "-n", &ns, "color=green"])
        .ok();
    watch.expect_line(|l| l == "green");
    let stored = server.get_json(&ns, "pod", "j");
    assert_eq!(stored["metadata"]["labels"], json!({"color": "green"}));
}
