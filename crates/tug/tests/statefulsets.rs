//! StatefulSets on the server's own node, driven with the real kubectl:
//! ordered start, stable names and hostnames, claims from
//! volumeClaimTemplates on local-path volumes whose data outlives the pod,
//! scale down from the highest ordinal, and rolling updates with a
//! partition that `kubectl rollout status` follows.

mod common;

use common::pods::BUSYBOX;
use common::{Server, eventually, node_server};
use serde_json::{Value, json};

/// A StatefulSet of `replicas` busybox pods; each appends its hostname and
/// `VERSION` to `/data/log` on its claim at every start, then sleeps.
fn stateful_set(name: &str, replicas: i32, extra_spec: Value) -> Value {
    let mut set = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "app",
                        "image": BUSYBOX,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", "echo $(hostname) v$VERSION >> /data/log; exec sleep 3600"],
                        "env": [{"name": "VERSION", "value": "1"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}},
            }],
        },
    });
    set["spec"]
        .as_object_mut()
        .unwrap()
        .extend(extra_spec.as_object().unwrap().clone());
    set
}

fn ready_since(pod: &Value) -> Option<String> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .map(|c| {
            c["lastTransitionTime"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
}

/// Waits until pod `name` is ready and not being deleted, and returns it.
fn wait_ready(server: &Server, namespace: &str, name: &str) -> Value {
    eventually(&format!("pod {name} ready"), || {
        let out = server.kubectl(&["get", "pod", name, "-n", namespace, "-o", "json"]);
        let pod: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        if ready_since(&pod).is_some() && pod["metadata"]["deletionTimestamp"].is_null() {
            Ok(pod)
        } else {
            Err(pod["status"].to_string())
        }
    })
}

fn pod_names(server: &Server, namespace: &str, app: &str) -> Vec<String> {
    server.names(&["get", "pods", "-n", namespace, "-l", &format!("app={app}")])
}

fn data_log(server: &Server, namespace: &str, pod: &str) -> String {
    server
        .kubectl(&["exec", pod, "-n", namespace, "--", "cat", "/data/log"])
        .ok()
}

#[test]
fn a_stateful_set_starts_in_order_keeps_names_and_data_and_scales_down_from_the_top() {
    let server = node_server();
    let ns = server.namespace("sts-web");
    server.apply_json(&ns, &stateful_set("web", 2, json!({})));

    let web0 = wait_ready(server, &ns, "web-0");
    let web1 = wait_ready(server, &ns, "web-1");
    // OrderedReady: web-1 was made only once web-0 was Ready (timestamps
    // are to the second, hence <=).
    let web0_ready = ready_since(&web0).unwrap();
    let web1_created = web1["metadata"]["creationTimestamp"].as_str().unwrap();
    assert!(
        web0_ready.as_str() <= web1_created,
        "web-0 ready {web0_ready}, web-1 made {web1_created}"
    );

    for (pod, name) in [(&web0, "web-0"), (&web1, "web-1")] {
        assert_eq!(pod["spec"]["hostname"], name);
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            name
        );
        let hostname = server
            .kubectl(&["exec", name, "-n", &ns, "--", "hostname"])
            .ok();
        assert_eq!(hostname.trim(), name);
        assert_eq!(data_log(server, &ns, name), format!("{name} v1\n"));
        let claim = server.get_json(&ns, "pvc", &format!("data-{name}"));
        assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
        assert_eq!(claim["spec"]["storageClassName"], "local-path");
    }
    let out = server
        .kubectl(&["rollout", "status", "sts/web", "-n", &ns, "--timeout=60s"])
        .ok();
    // kubectl words every RollingUpdate set's end so, partition 0 included.
    assert!(
        out.contains("partitioned roll out complete: 2 new pods"),
        "{out}"
    );

    // The replacement of web-0 is web-0 again, on the same claim and data.
    server
        .kubectl(&["delete", "pod", "web-0", "-n", &ns, "--wait=false"])
        .ok();
    let again = eventually("web-0 made again", || {
        let pod = wait_ready(server, &ns, "web-0");
        if pod["metadata"]["uid"] != web0["metadata"]["uid"] {
            Ok(pod)
        } else {
            Err("still the first web-0".to_owned())
        }
    });
    assert_eq!(again["metadata"]["name"], "web-0");
    assert_eq!(data_log(server, &ns, "web-0"), "web-0 v1\nweb-0 v1\n");

    server
        .kubectl(&["scale", "sts/web", "-n", &ns, "--replicas=1"])
        .ok();
    eventually("web-1 goes, web-0 stays", || {
        let names = pod_names(server, &ns, "web");
        if names == ["pod/web-0"] {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
    // Claims outlive scale down (whenScaled: Retain, the default).
    server.get_json(&ns, "pvc", "data-web-1");
    let set = server.get_json(&ns, "sts", "web");
    assert_eq!(set["status"]["replicas"], 1, "{}", set["status"]);
}

#[test]
fn a_rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let server = node_server();
    let ns = server.namespace("sts-roll");
    let partitioned =
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
    server.apply_json(&ns, &stateful_set("db", 3, partitioned));
    for name in ["db-0", "db-1", "db-2"] {
        wait_ready(server, &ns, name);
    }
    let first = server.get_json(&ns, "sts", "db")["status"]["updateRevision"].clone();

    server
        .kubectl(&["set", "env", "sts/db", "-n", &ns, "VERSION=2"])
        .ok();
    let out = server
        .kubectl(&["rollout", "status", "sts/db", "-n", &ns, "--timeout=90s"])
        .ok();
    assert!(
        out.contains("partitioned roll out complete: 2 new pods have been updated"),
        "{out}"
    );
    let status = server.get_json(&ns, "sts", "db")["status"].clone();
    assert_ne!(status["updateRevision"], first);
    assert_eq!(status["currentRevision"], first, "{status}");
    assert_eq!(status["updatedReplicas"], 2, "{status}");
    // Below the partition, db-0 keeps the old template; db-1 and db-2 moved.
    for (name, log) in [
        ("db-0", "db-0 v1\n"),
        ("db-1", "db-1 v1\ndb-1 v2\n"),
        ("db-2", "db-2 v1\ndb-2 v2\n"),
    ] {
        assert_eq!(data_log(server, &ns, name), log, "{name}");
        let pod = server.get_json(&ns, "pod", name);
        let expected = if name == "db-0" {
            &first
        } else {
            &status["updateRevision"]
        };
        assert_eq!(
            &pod["metadata"]["labels"]["controller-revision-hash"],
            expected
        );
    }

    // Lifting the partition finishes the rollout, and the set's current
    // revision becomes the new one.
    server
        .kubectl(&[
            "patch",
            "sts/db",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
        ])
        .ok();
    let out = server
        .kubectl(&["rollout", "status", "sts/db", "-n", &ns, "--timeout=90s"])
        .ok();
    assert!(
        out.contains("partitioned roll out complete: 3 new pods"),
        "{out}"
    );
    eventually("the current revision becomes the update revision", || {
        let status = server.get_json(&ns, "sts", "db")["status"].clone();
        if status["currentRevision"] == status["updateRevision"] && status["currentReplicas"] == 3 {
            Ok(())
        } else {
            Err(status.to_string())
        }
    });
    assert_eq!(data_log(server, &ns, "db-0"), "db-0 v1\ndb-0 v2\n");
    let history = server
        .kubectl(&["rollout", "history", "sts/db", "-n", &ns])
        .ok();
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );

    // Undo brings the first template back to every pod, top down again.
    server
        .kubectl(&["rollout", "undo", "sts/db", "-n", &ns])
        .ok();
    eventually("every pod back at v1", || {
        let logs: Vec<String> = ["db-0", "db-1", "db-2"]
            .iter()
            .map(|name| {
                let out = server.kubectl(&["exec", name, "-n", &ns, "--", "cat", "/data/log"]);
                out.stdout
            })
            .collect();
        // Each pod has run v1, v2 and v1 again on its claim.
        if logs
            .iter()
            .all(|l| l.ends_with(" v1\n") && l.lines().count() == 3)
        {
            Ok(())
        } else {
            Err(format!("{logs:?}"))
        }
    });
}

#[test]
fn parallel_pods_start_and_stop_together_and_scaled_away_claims_go_when_asked() {
    let server = node_server();
    let ns = server.namespace("sts-parallel");
    let mut set = stateful_set(
        "cache",
        3,
        json!({
            "podManagementPolicy": "Parallel",
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete", "whenDeleted": "Retain"},
        }),
    );
    // Never ready: OrderedReady would stop at cache-0.
    set["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
        json!({"exec": {"command": ["false"]}, "periodSeconds": 1});
    server.apply_json(&ns, &set);
    eventually("three pods running, none ready", || {
        let names = pod_names(server, &ns, "cache");
        let set = server.get_json(&ns, "sts", "cache");
        if names == ["pod/cache-0", "pod/cache-1", "pod/cache-2"]
            && set["status"]["replicas"] == 3
            && set["status"]["readyReplicas"] == 0
        {
            Ok(())
        } else {
            Err(format!("{names:?} {}", set["status"]))
        }
    });
    for i in 0..3 {
        wait_claim_bound(server, &ns, &format!("data-cache-{i}"));
    }

    server
        .kubectl(&["scale", "sts/cache", "-n", &ns, "--replicas=1"])
        .ok();
    eventually("cache-1 and cache-2 gone with their claims", || {
        let names = pod_names(server, &ns, "cache");
        let claims = server.names(&["get", "pvc", "-n", &ns]);
        if names == ["pod/cache-0"] && claims == ["persistentvolumeclaim/data-cache-0"] {
            Ok(())
        } else {
            Err(format!("{names:?} {claims:?}"))
        }
    });
}

#[test]
fn an_orphaned_member_pod_is_adopted_by_a_new_set_of_the_same_name() {
    let server = node_server();
    let ns = server.namespace("sts-adopt");
    server.apply_json(&ns, &stateful_set("solo", 1, json!({})));
    let first = wait_ready(server, &ns, "solo-0");
    server
        .kubectl(&["delete", "sts", "solo", "-n", &ns, "--cascade=orphan"])
        .ok();
    eventually("the set gone and its pod an orphan", || {
        let pod = server.get_json(&ns, "pod", "solo-0");
        if pod["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            Ok(())
        } else {
            Err(pod["metadata"]["ownerReferences"].to_string())
        }
    });

    server.apply_json(&ns, &stateful_set("solo", 1, json!({})));
    let set = server.get_json(&ns, "sts", "solo");
    eventually("the new set adopts solo-0", || {
        let pod = server.get_json(&ns, "pod", "solo-0");
        if pod["metadata"]["ownerReferences"][0]["uid"] == set["metadata"]["uid"] {
            Ok(pod)
        } else {
            Err(pod["metadata"].to_string())
        }
    });
    let adopted = wait_ready(server, &ns, "solo-0");
    assert_eq!(adopted["metadata"]["uid"], first["metadata"]["uid"]);
}

fn wait_claim_bound(server: &Server, namespace: &str, name: &str) {
    eventually(&format!("claim {name} bound"), || {
        let out = server.kubectl(&["get", "pvc", name, "-n", namespace, "-o", "json"]);
        let claim: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        if claim["status"]["phase"] == "Bound" {
            Ok(())
        } else {
            Err(claim["status"].to_string())
        }
    });
}
