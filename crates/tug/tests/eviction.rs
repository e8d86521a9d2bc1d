//! A pod whose disk emptyDir outgrows its sizeLimit is evicted, as the
//! kubelet's eviction manager does it; one that stays under its limit keeps
//! running.

mod common;

use common::{Server, eventually, node_name, node_server};
use serde_json::{Value, json};

/// A busybox pod that writes `mebibytes` MiB into its emptyDir `data`
/// (limited to `limit`), marks it done, and sleeps; Ready once written.
fn filling_pod(name: &str, limit: &str, mebibytes: u32) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node_name(),
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "writer",
                "image": "tugboat.test/busybox:latest",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", format!(
                    "dd if=/dev/zero of=/data/fill bs=1M count={mebibytes} && sync && touch /data/written && sleep 3600"
                )],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "readinessProbe": {
                    "exec": {"command": ["test", "-f", "/data/written"]},
                    "periodSeconds": 1,
                },
            }],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": limit}}],
        },
    })
}

fn wait_pod(server: &Server, ns: &str, name: &str, what: &str, check: impl Fn(&Value) -> bool) {
    eventually(&format!("pod {ns}/{name}: {what}"), || {
        let pod = server.get_json(ns, "pod", name);
        if check(&pod) {
            Ok(())
        } else {
            Err(pod["status"].to_string())
        }
    });
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[test]
fn a_pod_outgrowing_its_empty_dir_limit_is_evicted_and_one_within_it_runs_on() {
    let server = node_server();
    let ns = server.namespace("empty-dir-limits");
    server.apply_json(&ns, &filling_pod("within", "10Mi", 1));
    wait_pod(server, &ns, "within", "Ready", ready);

    server.apply_json(&ns, &filling_pod("outgrown", "1Mi", 3));
    wait_pod(server, &ns, "outgrown", "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    let pod = server.get_json(&ns, "pod", "outgrown");
    let message = "Usage of EmptyDir volume \"data\" exceeds the limit \"1Mi\". ";
    assert_eq!(pod["status"]["reason"], "Evicted");
    assert_eq!(pod["status"]["message"], message);
    let writer = &pod["status"]["containerStatuses"][0];
    assert!(
        writer["state"]["terminated"].is_object(),
        "the evicted pod's container still runs: {writer}"
    );
    assert_eq!(writer["restartCount"], 0, "{writer}");
    assert_eq!(
        server.event_messages(&ns, "outgrown", "Evicted"),
        [message],
        "one Evicted event"
    );
    let uid = pod["metadata"]["uid"].as_str().expect("a uid");
    let volume = server
        .data_dir()
        .join("agent/pods")
        .join(uid)
        .join("volumes/empty-dir/data");
    assert!(
        !volume.exists(),
        "the evicted pod's emptyDir keeps its space"
    );

    // Measured since it wrote its file, and left alone.
    let within = server.get_json(&ns, "pod", "within");
    assert_eq!(within["status"]["phase"], "Running", "{}", within["status"]);
    assert!(ready(&within), "{}", within["status"]);
    assert!(server.event_messages(&ns, "within", "Evicted").is_empty());
}
