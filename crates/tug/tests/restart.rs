//! Nothing acknowledged is lost: objects survive a `kill -9` of the server,
//! and resource versions keep increasing across the restart.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Server, arg, eventually, manifest, pod_manifest};
use serde_json::Value;

/// Every object of the kinds this test writes, by `kind/namespace/name`:
/// (uid, resourceVersion, the object without its status).
fn snapshot(server: &Server) -> BTreeMap<String, (String, u64, Value)> {
    let list = server
        .kubectl(&[
            "get",
            "namespaces,pods,deployments,services,configmaps",
            "-A",
            "-o",
            "json",
        ])
        .ok();
    let list: Value = serde_json::from_str(&list).expect("JSON list");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let meta = &item["metadata"];
            let key = format!(
                "{}/{}/{}",
                item["kind"].as_str().unwrap_or_default(),
                meta["namespace"].as_str().unwrap_or_default(),
                meta["name"].as_str().unwrap_or_default()
            );
            let uid = meta["uid"].as_str().expect("uid").to_owned();
            (key, (uid, resource_version(item), item["spec"].clone()))
        })
        .collect()
}

fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or_else(|| panic!("numeric resourceVersion in {}", object["metadata"]))
}

#[test]
fn objects_survive_kill_9_and_resource_versions_keep_increasing() {
    // No node and no scheduler: nothing writes the pods after the crash,
    // so their resourceVersions must come back exactly as they were. No
    // DNS either: a restarted DNS may rightly move kube-dns's target port
    // (to the asked-for port 53 when a parallel test no longer holds it).
    let mut server =
        Server::start_with(&["--disable-agent", "--disable-scheduler", "--disable-dns"]);
    let ns = server.namespace("durable");
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("app"))])
        .ok();
    server
        .kubectl(&["apply", "-n", &ns, "-f", arg(&manifest("multi.yaml"))])
        .ok();
    server
        .kubectl(&["scale", "deployment", "shop", "-n", &ns, "--replicas=7"])
        .ok();
    server
        .kubectl(&["label", "configmap", "shop-config", "-n", &ns, "edited=yes"])
        .ok();
    server
        .kubectl(&["delete", "service", "multi", "-n", &ns])
        .ok();
    // The controllers finish what those writes asked for (pods, statuses).
    eventually("the controllers settled", || {
        let first = snapshot(&server);
        std::thread::sleep(Duration::from_secs(1));
        (snapshot(&server) == first)
            .then_some(())
            .ok_or_else(|| "objects still changing".to_owned())
    });
    // The last write is acknowledged right before the crash.
    server
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &pod_manifest("last", &[]))
        .ok();

    let before = snapshot(&server);
    let highest_before = before
        .values()
        .map(|(_, rv, _)| *rv)
        .max()
        .expect("objects");
    assert!(before.contains_key(&format!("Pod/{ns}/last")), "{before:?}");
    assert!(!before.contains_key(&format!("Service/{ns}/multi")));

    server.restart();

    let after = snapshot(&server);
    assert_eq!(after, before, "the same objects, uids, versions and specs");
    let config = server.get_json(&ns, "configmap", "shop-config");
    assert_eq!(config["metadata"]["labels"]["edited"], "yes");
    assert_eq!(
        server.get_json(&ns, "deployment", "shop")["spec"]["replicas"],
        7
    );

    server
        .kubectl_stdin(
            &["apply", "-n", &ns, "-f", "-"],
            &pod_manifest("after", &[]),
        )
        .ok();
    let created = resource_version(&server.get_json(&ns, "pod", "after"));
    assert!(
        created > highest_before,
        "a write after the restart gets resourceVersion {created}, not above {highest_before}"
    );

    server
        .kubectl(&["label", "pod", "last", "-n", &ns, "touched=yes"])
        .ok();
    let updated = resource_version(&server.get_json(&ns, "pod", "last"));
    assert!(updated > created, "{updated} after {created}");
}

#[test]
fn restart_keeps_the_kubeconfig_and_the_builtin_namespaces() {
    let mut server = Server::start();
    let kubeconfig = std::fs::read(server.kubeconfig()).expect("kubeconfig");

    server.restart();

    assert_eq!(
        std::fs::read(server.kubeconfig()).expect("kubeconfig"),
        kubeconfig,
        "the same CA and credentials after a restart"
    );
    let names = server.names(&["get", "namespaces"]);
    for builtin in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(names.contains(&format!("namespace/{builtin}")), "{names:?}");
    }
}
