//! The ReplicaSet and ReplicationController controller, seen through the
//! real kubectl on a server with no node: pods are made, counted, adopted,
//! released and deleted by the controller, and their readiness is set the
//! way a kubelet sets it (a patch of pods/status), so what the controller
//! does with ready and unready pods shows without running containers.

mod common;

use common::{Server, eventually, nodeless_server};
use serde_json::{Value, json};

fn template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "tugboat.test/httpd:latest"}]},
    })
}

fn replicaset(name: &str, replicas: i32, extra_spec: Value) -> Value {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": template(name),
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
        spec.extend(extra);
    }
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name}, "spec": spec})
}

fn names_of(pods: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = pods
        .iter()
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

/// Waits until `namespace` holds exactly `count` pods and returns them.
fn wait_pod_count(server: &Server, namespace: &str, count: usize) -> Vec<Value> {
    eventually(&format!("{count} pods in {namespace}"), || {
        let pods = server.list_json(namespace, "pods");
        if pods.len() == count {
            Ok(pods)
        } else {
            Err(format!("{:?}", names_of(&pods)))
        }
    })
}

/// Waits until the object's status has `field` = `value`.
fn wait_status(server: &Server, namespace: &str, kind: &str, name: &str, field: &str, value: i64) {
    eventually(&format!("{kind} {name}: status.{field} = {value}"), || {
        let object = server.get_json(namespace, kind, name);
        let seen = object["status"][field].as_i64().unwrap_or(0);
        if seen == value {
            Ok(())
        } else {
            Err(object["status"].to_string())
        }
    })
}

/// Marks a pod Ready (Running, Ready=True since `since`), as a kubelet would.
fn make_ready(server: &Server, namespace: &str, pod: &str, since: &str) {
    let status = json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}],
    });
    server
        .patch_status(Some(namespace), "pod", pod, &status)
        .ok();
}

/// The time now, as RFC 3339 in UTC (what `lastTransitionTime` holds).
fn utc_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn scale(server: &Server, namespace: &str, kind: &str, name: &str, replicas: i32) {
    server
        .kubectl(&[
            "scale",
            kind,
            name,
            "-n",
            namespace,
            &format!("--replicas={replicas}"),
        ])
        .ok();
}

#[test]
fn a_replicaset_makes_its_pods_and_replaces_a_deleted_one() {
    let server = nodeless_server();
    let ns = server.namespace("rs-count");
    server.apply_json(&ns, &replicaset("web", 3, json!({})));
    let made = wait_pod_count(server, &ns, 3);
    let owner = server.get_json(&ns, "rs", "web");
    for pod in &made {
        let name = pod["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("web-") && name.len() == "web-".len() + 5,
            "{name}"
        );
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": owner["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            }])
        );
    }
    wait_status(server, &ns, "rs", "web", "replicas", 3);
    wait_status(server, &ns, "rs", "web", "fullyLabeledReplicas", 3);
    wait_status(server, &ns, "rs", "web", "observedGeneration", 1);
    let status = server.get_json(&ns, "rs", "web")["status"].clone();
    assert_eq!(status["readyReplicas"].as_i64().unwrap_or(0), 0);

    let mut created = server.event_messages(&ns, "web", "SuccessfulCreate");
    created.sort();
    let expected: Vec<String> = names_of(&made)
        .iter()
        .map(|n| format!("Created pod: {n}"))
        .collect();
    assert_eq!(created, expected);

    let victim = names_of(&made)[0].clone();
    server.kubectl(&["delete", "pod", &victim, "-n", &ns]).ok();
    let after = eventually("a replacement for the deleted pod", || {
        let now = names_of(&server.list_json(&ns, "pods"));
        if now.len() == 3 && !now.contains(&victim) {
            Ok(now)
        } else {
            Err(format!("{now:?}"))
        }
    });
    assert_eq!(
        after
            .iter()
            .filter(|n| !names_of(&made).contains(n))
            .count(),
        1,
        "exactly one new pod: {after:?}"
    );
}

#[test]
fn many_replicas_are_created_once_each() {
    let server = nodeless_server();
    let ns = server.namespace("rs-burst");
    // Five batches of creations (1, 2, 4, 8, 9), and one event short of the
    // 25 a controller may write about one object at once: an extra create
    // or delete would still be written.
    server.apply_json(&ns, &replicaset("many", 24, json!({})));
    wait_pod_count(server, &ns, 24);
    wait_status(server, &ns, "rs", "many", "replicas", 24);
    // A controller that trusted a cache not yet showing its own creations
    // would make too many pods and then delete the extra ones.
    assert_eq!(server.event_count(&ns, "many", "SuccessfulCreate"), 24);
    assert!(
        server
            .event_messages(&ns, "many", "SuccessfulDelete")
            .is_empty()
    );
    assert_eq!(server.list_json(&ns, "pods").len(), 24);
}

#[test]
fn scaling_down_deletes_unready_pods_first_then_the_most_recently_ready() {
    let server = nodeless_server();
    let ns = server.namespace("rs-scale-down");
    server.apply_json(&ns, &replicaset("web", 3, json!({})));
    let names = names_of(&wait_pod_count(server, &ns, 3));
    make_ready(server, &ns, &names[0], "2026-01-01T10:00:00Z");
    make_ready(server, &ns, &names[1], "2026-01-01T11:00:00Z");
    wait_status(server, &ns, "rs", "web", "readyReplicas", 2);
    wait_status(server, &ns, "rs", "web", "availableReplicas", 2);

    scale(server, &ns, "rs", "web", 2);
    wait_pod_count(server, &ns, 2);
    assert_eq!(names_of(&server.list_json(&ns, "pods")), names[..2]);
    assert_eq!(
        server.event_messages(&ns, "web", "SuccessfulDelete"),
        [format!("Deleted pod: {}", names[2])]
    );

    scale(server, &ns, "rs", "web", 1);
    wait_pod_count(server, &ns, 1);
    assert_eq!(names_of(&server.list_json(&ns, "pods")), names[..1]);
    wait_status(server, &ns, "rs", "web", "replicas", 1);
    wait_status(server, &ns, "rs", "web", "observedGeneration", 3);
}

#[test]
fn available_replicas_wait_for_min_ready_seconds() {
    let server = nodeless_server();
    let ns = server.namespace("rs-min-ready");
    server.apply_json(&ns, &replicaset("web", 1, json!({"minReadySeconds": 10})));
    let pod = names_of(&wait_pod_count(server, &ns, 1)).remove(0);
    make_ready(server, &ns, &pod, &utc_now());
    eventually("ready but not yet available", || {
        let status = server.get_json(&ns, "rs", "web")["status"].clone();
        let ready = status["readyReplicas"].as_i64().unwrap_or(0);
        let available = status["availableReplicas"].as_i64().unwrap_or(0);
        if ready == 1 && available == 0 {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    wait_status(server, &ns, "rs", "web", "availableReplicas", 1);
}

#[test]
fn orphans_are_adopted_and_pods_that_stop_matching_are_released() {
    let server = nodeless_server();
    let ns = server.namespace("rs-adopt");
    let orphan = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "labels": {"app": "web"}},
        "spec": template("web")["spec"],
    });
    server.apply_json(&ns, &orphan);
    server.apply_json(&ns, &replicaset("web", 2, json!({})));
    let owned = wait_pod_count(server, &ns, 2);
    assert!(names_of(&owned).contains(&"stray".to_owned()));
    let uid = server.get_json(&ns, "rs", "web")["metadata"]["uid"].clone();
    eventually("the stray pod adopted", || {
        let refs = server.get_json(&ns, "pod", "stray")["metadata"]["ownerReferences"].clone();
        if refs[0]["uid"] == uid && refs[0]["controller"] == true {
            Ok(())
        } else {
            Err(refs.to_string())
        }
    });
    assert_eq!(
        server.event_messages(&ns, "web", "SuccessfulCreate").len(),
        1
    );

    server
        .kubectl(&[
            "label",
            "pod",
            "stray",
            "-n",
            &ns,
            "app=gone",
            "--overwrite",
        ])
        .ok();
    eventually("the relabelled pod released", || {
        let pod = server.get_json(&ns, "pod", "stray");
        match pod["metadata"].get("ownerReferences") {
            None => Ok(()),
            Some(refs) if refs.as_array().is_some_and(Vec::is_empty) => Ok(()),
            Some(refs) => Err(refs.to_string()),
        }
    });
    let all = wait_pod_count(server, &ns, 3);
    let matching = all
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .count();
    assert_eq!(matching, 2, "a replacement for the released pod");
}

#[test]
fn a_replication_controller_keeps_its_count_too() {
    let server = nodeless_server();
    let ns = server.namespace("rc-count");
    let rc = json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "selector": {"app": "legacy"}, "template": template("legacy")},
    });
    server.apply_json(&ns, &rc);
    let made = wait_pod_count(server, &ns, 2);
    for pod in &made {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicationController");
        assert_eq!(owner["name"], "legacy");
    }
    wait_status(server, &ns, "rc", "legacy", "replicas", 2);
    let table = server.kubectl(&["get", "rc", "legacy", "-n", &ns]).ok();
    let row = common::row(&common::table(&table), "legacy").to_vec();
    assert_eq!(row[1..4], ["2", "2", "0"], "{table}");

    scale(server, &ns, "rc", "legacy", 0);
    wait_pod_count(server, &ns, 0);
    wait_status(server, &ns, "rc", "legacy", "replicas", 0);
}

#[test]
fn pods_the_api_server_refuses_show_as_a_replica_failure() {
    let server = nodeless_server();
    let ns = server.namespace("rs-quota");
    let quota = json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    });
    server.apply_json(&ns, &quota);
    // Enforced once the quota controller has recorded what the quota holds
    // and uses, as in Kubernetes.
    eventually("the quota's status", || {
        let status = server.get_json(&ns, "resourcequota", "no-pods")["status"].clone();
        if status["hard"]["pods"] == "0" && status["used"]["pods"] == "0" {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    server.apply_json(&ns, &replicaset("web", 3, json!({})));
    let condition = eventually("a ReplicaFailure condition", || {
        let rs = server.get_json(&ns, "rs", "web");
        let conditions = rs["status"]["conditions"].clone();
        conditions
            .as_array()
            .and_then(|all| all.iter().find(|c| c["type"] == "ReplicaFailure").cloned())
            .ok_or_else(|| rs["status"].to_string())
    });
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "FailedCreate");
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(message.contains("exceeded quota: no-pods"), "{message}");
    assert_eq!(server.list_json(&ns, "pods").len(), 0);
    let failed = server.event_messages(&ns, "web", "FailedCreate");
    assert!(
        failed
            .iter()
            .any(|m| m.starts_with("Error creating: ") && m.contains("exceeded quota")),
        "{failed:?}"
    );

    // Room again: the pods are made and the condition goes.
    server
        .kubectl(&["delete", "resourcequota", "no-pods", "-n", &ns])
        .ok();
    wait_pod_count(server, &ns, 3);
    eventually("the condition gone", || {
        let status = server.get_json(&ns, "rs", "web")["status"].clone();
        match status.get("conditions") {
            Some(c) if c.as_array().is_some_and(|a| !a.is_empty()) => Err(c.to_string()),
            _ => Ok(()),
        }
    });
}
