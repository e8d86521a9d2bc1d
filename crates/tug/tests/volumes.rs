//! PersistentVolumes on the server's own node, driven with the real kubectl:
//! the default `local-path` class, a claim provisioned on its first
//! consumer's node whose data outlives the pod, reclaim policies Delete
//! (the data goes) and Retain (it stays), pre-made volumes bound by class,
//! size and selector, and a pod that waits for its claim to be bound.

mod common;

use std::path::PathBuf;

use common::pods::BUSYBOX;
use common::{Server, eventually, node_name, node_server};
use serde_json::{Value, json};

fn claim(name: &str, size: &str, extra: Value) -> Value {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec})
}

/// A busybox pod running `script` with claim `claim` at `/data`; `extra`
/// is merged into its spec.
fn pod(name: &str, claim: &str, script: &str, extra: Value) -> Value {
    let mut spec = json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "app",
            "image": BUSYBOX,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
    });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

fn wait_phase(server: &Server, namespace: &str, kind: &str, name: &str, phase: &str) -> Value {
    eventually(&format!("{kind} {name} {phase}"), || {
        let out = server.kubectl(&["get", kind, name, "-n", namespace, "-o", "json"]);
        let object: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        if object["status"]["phase"] == phase {
            Ok(object)
        } else {
            Err(format!("{} {}", object["status"], out.stderr))
        }
    })
}

fn exec(server: &Server, namespace: &str, pod: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", pod, "-n", namespace, "--"];
    args.extend(command);
    server.kubectl(&args).ok()
}

fn gone(server: &Server, args: &[&str]) -> bool {
    let mut full = args.to_vec();
    full.push("--ignore-not-found");
    server.kubectl(&full).ok().trim().is_empty()
}

#[test]
fn a_claim_gets_a_local_path_volume_on_its_pods_node_whose_data_outlives_the_pod() {
    let server = node_server();
    let ns = server.namespace("vol-local");
    let class = eventually("the default class", || {
        let out = server.kubectl(&["get", "storageclass", "local-path", "-o", "json"]);
        serde_json::from_str::<Value>(&out.stdout).map_err(|_| out.stderr)
    });
    assert_eq!(
        class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");

    // Applied together, as a user would: the claim gets the default class
    // at once and waits for its consumer.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        claim("notes", "20Mi", json!({})),
        pod("writer", "notes", "echo kept > /data/note && exec sleep 3600", json!({})),
    ]});
    server.apply_json(&ns, &list);
    let writer = wait_phase(server, &ns, "pod", "writer", "Running");
    assert_eq!(writer["spec"]["nodeName"], node_name());
    let claim = wait_phase(server, &ns, "pvc", "notes", "Bound");
    assert_eq!(claim["spec"]["storageClassName"], "local-path");
    assert_eq!(
        claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    assert_eq!(claim["status"]["capacity"]["storage"], "20Mi");
    let volume_name = claim["spec"]["volumeName"].as_str().unwrap().to_owned();
    assert_eq!(
        volume_name,
        format!("pvc-{}", claim["metadata"]["uid"].as_str().unwrap())
    );
    let volume = wait_phase(server, "", "pv", &volume_name, "Bound");
    assert_eq!(volume["spec"]["claimRef"]["name"], "notes");
    assert_eq!(volume["spec"]["claimRef"]["uid"], claim["metadata"]["uid"]);
    assert_eq!(volume["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(
        volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!([node_name()])
    );
    // The data is in the node's agent dir, where the volume says.
    let dir = PathBuf::from(volume["spec"]["hostPath"]["path"].as_str().unwrap());
    assert!(dir.starts_with(server.data_dir()), "{}", dir.display());
    eventually("the note on the node", || {
        std::fs::read_to_string(dir.join("note")).map_err(|e| e.to_string())
    });
    assert_eq!(std::fs::read_to_string(dir.join("note")).unwrap(), "kept\n");

    // Another pod on the same claim sees what the first wrote.
    server
        .kubectl(&["delete", "pod", "writer", "-n", &ns, "--wait=true"])
        .ok();
    server.apply_json(&ns, &pod("reader", "notes", "exec sleep 3600", json!({})));
    wait_phase(server, &ns, "pod", "reader", "Running");
    assert_eq!(
        exec(server, &ns, "reader", &["cat", "/data/note"]),
        "kept\n"
    );

    // Delete: the claim's end is the volume's and its data's.
    server
        .kubectl(&["delete", "pod", "reader", "-n", &ns, "--wait=true"])
        .ok();
    server.kubectl(&["delete", "pvc", "notes", "-n", &ns]).ok();
    eventually("the volume and its directory gone", || {
        if gone(server, &["get", "pv", &volume_name]) && !dir.exists() {
            Ok(())
        } else {
            Err(format!("directory exists: {}", dir.exists()))
        }
    });
}

#[test]
fn a_pre_made_volume_is_bound_by_class_size_and_selector_and_retained() {
    let server = node_server();
    let ns = server.namespace("vol-manual");
    let root = server.data_dir().join("manual-volumes");
    let volume = |name: &str, size: &str, tier: &str| {
        let path = root.join(name);
        std::fs::create_dir_all(&path).unwrap();
        json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": format!("{ns}-{name}"), "labels": {"tier": tier}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual",
                "hostPath": {"path": path},
            },
        })
    };
    // Too small; right size but wrong tier; the one that fits; bigger.
    for (name, size, tier) in [
        ("small", "5Mi", "fast"),
        ("slow", "50Mi", "slow"),
        ("fit", "50Mi", "fast"),
        ("big", "1Gi", "fast"),
    ] {
        server.apply_json("default", &volume(name, size, tier));
    }
    server.apply_json(
        &ns,
        &claim(
            "db",
            "40Mi",
            json!({"storageClassName": "manual", "selector": {"matchLabels": {"tier": "fast"}}}),
        ),
    );
    let bound = wait_phase(server, &ns, "pvc", "db", "Bound");
    assert_eq!(bound["spec"]["volumeName"], format!("{ns}-fit"));
    assert_eq!(bound["status"]["capacity"]["storage"], "50Mi");
    for other in ["small", "slow", "big"] {
        wait_phase(server, "", "pv", &format!("{ns}-{other}"), "Available");
    }

    // Retain (the default for volumes made by hand): released, data kept.
    std::fs::write(root.join("fit/keep"), "me").unwrap();
    server.kubectl(&["delete", "pvc", "db", "-n", &ns]).ok();
    let released = wait_phase(server, "", "pv", &format!("{ns}-fit"), "Released");
    assert_eq!(released["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(
        std::fs::read_to_string(root.join("fit/keep")).unwrap(),
        "me"
    );
}

#[test]
fn a_pod_waits_in_container_creating_until_its_claim_is_bound() {
    let server = node_server();
    let ns = server.namespace("vol-wait");
    server.apply_json(
        &ns,
        &claim("later", "10Mi", json!({"storageClassName": "by-hand"})),
    );
    // Placed on the node directly: the agent, not the scheduler, must wait.
    server.apply_json(
        &ns,
        &pod(
            "patient",
            "later",
            "echo $(cat /data/greeting) > /data/answer; exec sleep 3600",
            json!({"nodeName": node_name()}),
        ),
    );
    eventually("a FailedMount event naming the unbound claim", || {
        let events = server
            .kubectl(&[
                "get",
                "events",
                "-n",
                &ns,
                "--field-selector",
                "involvedObject.name=patient",
            ])
            .ok();
        if events.contains("FailedMount") && events.contains("PVC is not bound") {
            Ok(())
        } else {
            Err(events)
        }
    });
    let waiting = server.get_json(&ns, "pod", "patient");
    assert_eq!(waiting["status"]["phase"], "Pending");
    assert_eq!(
        waiting["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );

    let path = server.data_dir().join("by-hand-volume");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("greeting"), "hello\n").unwrap();
    server.apply_json(
        "default",
        &json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "by-hand"},
            "spec": {
                "capacity": {"storage": "10Mi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "by-hand",
                "hostPath": {"path": path},
            },
        }),
    );
    wait_phase(server, &ns, "pod", "patient", "Running");
    eventually("the pod's answer in the volume", || {
        std::fs::read_to_string(path.join("answer")).map_err(|e| e.to_string())
    });
    assert_eq!(
        std::fs::read_to_string(path.join("answer")).unwrap(),
        "hello\n"
    );
}

#[test]
fn a_claim_in_use_is_deleted_only_once_its_pod_is_gone() {
    let server = node_server();
    let ns = server.namespace("vol-protect");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        claim("busy", "10Mi", json!({})),
        pod("user", "busy", "exec sleep 3600", json!({})),
    ]});
    server.apply_json(&ns, &list);
    wait_phase(server, &ns, "pod", "user", "Running");
    let bound = wait_phase(server, &ns, "pvc", "busy", "Bound");
    let volume_name = bound["spec"]["volumeName"].as_str().unwrap().to_owned();

    server
        .kubectl(&["delete", "pvc", "busy", "-n", &ns, "--wait=false"])
        .ok();
    // Still there, terminating, while its pod runs on it.
    let terminating = server.get_json(&ns, "pvc", "busy");
    assert!(!terminating["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(
        terminating["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    assert_eq!(
        server.get_json("", "pv", &volume_name)["status"]["phase"],
        "Bound"
    );
    assert_eq!(
        exec(
            server,
            &ns,
            "user",
            &["sh", "-c", "echo still > /data/f && cat /data/f"]
        ),
        "still\n"
    );

    server
        .kubectl(&["delete", "pod", "user", "-n", &ns, "--wait=false"])
        .ok();
    eventually("the claim and its volume gone with the pod", || {
        if gone(server, &["get", "pvc", "busy", "-n", &ns])
            && gone(server, &["get", "pv", &volume_name])
        {
            Ok(())
        } else {
            Err("still there".to_owned())
        }
    });
}
