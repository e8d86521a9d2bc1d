//! Deployments through the real kubectl: ReplicaSets named by the pod
//! template's hash, revisions, rolling updates within maxSurge and
//! maxUnavailable, Recreate, pause and resume, `kubectl rollout status`,
//! `history` and `undo`, the progress deadline, and blue-green by a
//! Service's selector.
//!
//! These run on a server with no node: pods are made by the controllers
//! and marked Ready the way a kubelet marks them (a patch of pods/status),
//! so each test decides which pods become ready and when.

mod common;

use std::collections::BTreeMap;

use common::pods::{BUSYBOX, HTTPD};
use common::{Server, eventually, nodeless_server};
use serde_json::{Value, json};

/// A Deployment `name` of `replicas` pods of `image`; `extra` is merged
/// into its spec.
fn deployment(name: &str, replicas: i32, image: &str, extra: Value) -> Value {
    let pod = json!({"containers": [{"name": "app", "image": image}]});
    common::with_spec(common::deployment(name, replicas, pod), extra)
}

fn name(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The ReplicaSets of the namespace by name: (spec.replicas, revision).
fn replica_sets(server: &Server, namespace: &str) -> BTreeMap<String, (i64, String)> {
    server
        .list_json(namespace, "rs")
        .iter()
        .map(|rs| {
            let replicas = rs["spec"]["replicas"].as_i64().unwrap_or(0);
            let revision = rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (name(rs), (replicas, revision))
        })
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Does what a kubelet would for pods whose image is `image`: marks them
/// Running and Ready.
fn make_ready(server: &Server, namespace: &str, image: &str) {
    for pod in server.list_json(namespace, "pods") {
        if is_ready(&pod) || pod["spec"]["containers"][0]["image"] != image {
            continue;
        }
        let status = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        });
        // A pod deleted meanwhile is no longer ours to mark.
        let _ = server.patch_status(Some(namespace), "pod", &name(&pod), &status);
    }
}

/// Marks pods of `image` ready until `done` says the state is reached.
fn run_kubelet_until(
    server: &Server,
    namespace: &str,
    image: &str,
    what: &str,
    mut done: impl FnMut() -> Result<(), String>,
) {
    eventually(what, || {
        make_ready(server, namespace, image);
        done()
    });
}

fn rollout_complete(server: &Server, namespace: &str, deployment: &str) -> Result<(), String> {
    let out = server.kubectl(&[
        "rollout",
        "status",
        &format!("deployment/{deployment}"),
        "-n",
        namespace,
        "--watch=false",
    ]);
    if out.status.success() && out.stdout.contains("successfully rolled out") {
        Ok(())
    } else {
        Err(format!("{}{}", out.stdout, out.stderr))
    }
}

fn condition(deployment: &Value, type_: &str) -> Value {
    deployment["status"]["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null)
}

fn set_image(server: &Server, namespace: &str, deployment: &str, image: &str) {
    server
        .kubectl(&[
            "set",
            "image",
            &format!("deployment/{deployment}"),
            &format!("app={image}"),
            "-n",
            namespace,
        ])
        .ok();
}

fn annotate_cause(server: &Server, namespace: &str, deployment: &str, cause: &str) {
    server
        .kubectl(&[
            "annotate",
            &format!("deployment/{deployment}"),
            "-n",
            namespace,
            &format!("kubernetes.io/change-cause={cause}"),
            "--overwrite",
        ])
        .ok();
}

#[test]
fn a_deployment_rolls_out_through_a_replicaset_named_by_its_template_hash() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-basic");
    server.apply_json(&ns, &deployment("web", 3, HTTPD, json!({})));
    run_kubelet_until(server, &ns, HTTPD, "web rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    let sets = replica_sets(server, &ns);
    assert_eq!(sets.len(), 1, "{sets:?}");
    let (rs_name, (replicas, revision)) = sets.into_iter().next().unwrap();
    assert_eq!((replicas, revision.as_str()), (3, "1"));
    let hash = rs_name
        .strip_prefix("web-")
        .expect("named web-<hash>")
        .to_owned();
    assert!(!hash.is_empty() && hash.chars().all(|c| c.is_ascii_alphanumeric()));
    let rs = server.get_json(&ns, "rs", &rs_name);
    assert_eq!(rs["metadata"]["labels"]["pod-template-hash"], hash.as_str());
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    for pod in server.list_json(&ns, "pods") {
        assert_eq!(
            pod["metadata"]["labels"]["pod-template-hash"],
            hash.as_str()
        );
        assert!(
            name(&pod).starts_with(&format!("{rs_name}-")),
            "{}",
            name(&pod)
        );
    }
    let web = server.get_json(&ns, "deployment", "web");
    assert_eq!(
        web["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let status = &web["status"];
    assert_eq!(
        (
            status["replicas"].clone(),
            status["updatedReplicas"].clone(),
            status["readyReplicas"].clone(),
            status["availableReplicas"].clone()
        ),
        (json!(3), json!(3), json!(3), json!(3)),
        "{status}"
    );
    let available = condition(&web, "Available");
    assert_eq!(
        (available["status"].clone(), available["reason"].clone()),
        (json!("True"), json!("MinimumReplicasAvailable"))
    );
    let progressing = condition(&web, "Progressing");
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"{rs_name}\" has successfully progressed.")
    );
    assert_eq!(
        server.event_messages(&ns, "web", "ScalingReplicaSet"),
        [format!("Scaled up replica set {rs_name} from 0 to 3")]
    );
    let table = server
        .kubectl(&["get", "deployment", "web", "-n", &ns])
        .ok();
    let row = common::row(&common::table(&table), "web").to_vec();
    assert_eq!(row[1..4], ["3/3", "3", "3"], "{table}");
    let described = server
        .kubectl(&["describe", "deployment", "web", "-n", &ns])
        .ok();
    for wanted in [
        "3 desired | 3 updated | 3 total | 3 available | 0 unavailable".to_owned(),
        format!("NewReplicaSet:   {rs_name} (3/3 replicas created)"),
        format!("Scaled up replica set {rs_name} from 0 to 3"),
    ] {
        assert!(
            described.contains(&wanted),
            "no {wanted:?} in:\n{described}"
        );
    }

    // The same template always hashes the same: deleting the ReplicaSet
    // brings back one of the same name.
    server.kubectl(&["delete", "rs", &rs_name, "-n", &ns]).ok();
    eventually("the ReplicaSet made again", || {
        let sets = replica_sets(server, &ns);
        if sets.keys().eq([&rs_name]) {
            Ok(())
        } else {
            Err(format!("{sets:?}"))
        }
    });
}

#[test]
fn kubectl_scale_changes_the_replicaset_and_the_pods() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-scale");
    server.apply_json(&ns, &deployment("web", 2, HTTPD, json!({})));
    run_kubelet_until(server, &ns, HTTPD, "web rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    server
        .kubectl(&["scale", "deployment/web", "-n", &ns, "--replicas=5"])
        .ok();
    run_kubelet_until(server, &ns, HTTPD, "five pods", || {
        let pods = server.list_json(&ns, "pods").len();
        let done = rollout_complete(server, &ns, "web");
        if pods == 5 && done.is_ok() {
            Ok(())
        } else {
            Err(format!("{pods} pods; {done:?}"))
        }
    });
    server
        .kubectl(&["scale", "deployment/web", "-n", &ns, "--replicas=1"])
        .ok();
    eventually("one pod", || {
        let pods = server.list_json(&ns, "pods").len();
        let done = rollout_complete(server, &ns, "web");
        if pods == 1 && done.is_ok() {
            Ok(())
        } else {
            Err(format!("{pods} pods; {done:?}"))
        }
    });
    let sets = replica_sets(server, &ns);
    assert_eq!(sets.values().map(|(r, _)| *r).collect::<Vec<_>>(), [1]);
}

#[test]
fn set_image_rolls_out_a_new_revision_and_undo_brings_the_old_template_back() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-rollout");
    server.apply_json(&ns, &deployment("web", 3, HTTPD, json!({})));
    annotate_cause(server, &ns, "web", "first version");
    run_kubelet_until(server, &ns, HTTPD, "revision 1 rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    let first = replica_sets(server, &ns).into_keys().next().unwrap();

    set_image(server, &ns, "web", BUSYBOX);
    annotate_cause(server, &ns, "web", "busybox now");
    run_kubelet_until(server, &ns, BUSYBOX, "revision 2 rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    let sets = replica_sets(server, &ns);
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert_eq!(sets[&first], (0, "1".to_owned()));
    let second = sets.keys().find(|n| **n != first).unwrap().clone();
    assert_eq!(sets[&second], (3, "2".to_owned()));
    assert_ne!(first, second);
    let images: Vec<Value> = server
        .list_json(&ns, "pods")
        .iter()
        .map(|p| p["spec"]["containers"][0]["image"].clone())
        .collect();
    assert_eq!(images, [BUSYBOX; 3]);

    let history = server
        .kubectl(&["rollout", "history", "deployment/web", "-n", &ns])
        .ok();
    let rows = common::table(&history);
    assert!(
        rows.iter()
            .any(|r| r.len() >= 3 && r[0] == "1" && r[1..].join(" ") == "first version"),
        "{history}"
    );
    assert!(
        rows.iter()
            .any(|r| r.len() >= 3 && r[0] == "2" && r[1..].join(" ") == "busybox now"),
        "{history}"
    );
    let revision_one = server
        .kubectl(&[
            "rollout",
            "history",
            "deployment/web",
            "-n",
            &ns,
            "--revision=1",
        ])
        .ok();
    assert!(revision_one.contains(HTTPD), "{revision_one}");

    let undo = server
        .kubectl(&["rollout", "undo", "deployment/web", "-n", &ns])
        .ok();
    assert!(undo.contains("rolled back"), "{undo}");
    run_kubelet_until(server, &ns, HTTPD, "rolled back", || {
        rollout_complete(server, &ns, "web")
    });
    let sets = replica_sets(server, &ns);
    assert_eq!(
        sets[&first],
        (3, "3".to_owned()),
        "the first ReplicaSet is revision 3 now"
    );
    assert_eq!(sets[&second], (0, "2".to_owned()));
    let rs = server.get_json(&ns, "rs", &first);
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "1"
    );
    let web = server.get_json(&ns, "deployment", "web");
    assert_eq!(
        web["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    server
        .kubectl(&[
            "rollout",
            "undo",
            "deployment/web",
            "-n",
            &ns,
            "--to-revision=2",
        ])
        .ok();
    run_kubelet_until(server, &ns, BUSYBOX, "back to busybox", || {
        rollout_complete(server, &ns, "web")
    });
    assert_eq!(replica_sets(server, &ns)[&second], (3, "4".to_owned()));
}

#[test]
fn a_rolling_update_keeps_within_max_surge_and_max_unavailable() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-fenceposts");
    let strategy = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}});
    server.apply_json(&ns, &deployment("web", 10, HTTPD, strategy));
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    let first = replica_sets(server, &ns).into_keys().next().unwrap();
    set_image(server, &ns, "web", BUSYBOX);
    // No busybox pod becomes ready: the rollout goes as far as the
    // fenceposts let it. 25% of 10 is 3 pods of surge (rounded up) and 2
    // unavailable (rounded down): 13 pods at most, 8 old ones kept.
    eventually("the rollout at its limits", || {
        let sets = replica_sets(server, &ns);
        let new: i64 = sets
            .iter()
            .filter(|(n, _)| **n != first)
            .map(|(_, (r, _))| r)
            .sum();
        let old = sets.get(&first).map_or(0, |(r, _)| *r);
        if (new, old) == (5, 8) {
            Ok(())
        } else {
            Err(format!("{sets:?}"))
        }
    });
    // The ReplicaSets' pods follow their counts.
    eventually("13 pods, 8 of them ready", || {
        let pods = server.list_json(&ns, "pods");
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        if (pods.len(), ready) == (13, 8) {
            Ok(())
        } else {
            Err(format!("{} pods, {ready} ready", pods.len()))
        }
    });
    let status = server
        .kubectl(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            &ns,
            "--watch=false",
        ])
        .ok();
    assert!(
        status.contains("5 out of 10 new replicas have been updated"),
        "{status}"
    );

    // As new pods become ready, old ones go, never below 8 ready.
    let mut fewest = usize::MAX;
    run_kubelet_until(server, &ns, BUSYBOX, "rolled out", || {
        let ready = server
            .list_json(&ns, "pods")
            .iter()
            .filter(|p| is_ready(p))
            .count();
        fewest = fewest.min(ready);
        rollout_complete(server, &ns, "web")
    });
    assert!(fewest >= 8, "only {fewest} pods were ready at one moment");
}

#[test]
fn scaling_in_the_middle_of_a_rollout_scales_each_replicaset_in_proportion() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-proportional");
    server.apply_json(&ns, &deployment("web", 10, HTTPD, json!({})));
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    let first = replica_sets(server, &ns).into_keys().next().unwrap();
    set_image(server, &ns, "web", BUSYBOX);
    let sizes = |new: i64, old: i64| -> Result<(), String> {
        let sets = replica_sets(server, &ns);
        let new_size: i64 = sets
            .iter()
            .filter(|(n, _)| **n != first)
            .map(|(_, (r, _))| r)
            .sum();
        let old_size = sets.get(&first).map_or(0, |(r, _)| *r);
        if (new_size, old_size) == (new, old) {
            Ok(())
        } else {
            Err(format!("{sets:?}"))
        }
    };
    // Stalled at 13 pods (10 + 3 surge) with 8 old ones, as above.
    eventually("the rollout at its limits", || sizes(5, 8));
    server
        .kubectl(&["scale", "deployment/web", "-n", &ns, "--replicas=20"])
        .ok();
    // 20 + 5 surge = 25 pods now, shared as the ReplicaSets were: the old
    // one had 8 of 13 and gets 15, the new one 5 of 13 and gets 10.
    eventually("both scaled in proportion", || sizes(10, 15));
    run_kubelet_until(server, &ns, BUSYBOX, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    assert_eq!(server.list_json(&ns, "pods").len(), 20);
}

#[test]
fn recreate_removes_the_old_pods_before_making_new_ones() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-recreate");
    server.apply_json(
        &ns,
        &deployment("web", 3, HTTPD, json!({"strategy": {"type": "Recreate"}})),
    );
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    set_image(server, &ns, "web", BUSYBOX);
    let mut mixed = Vec::new();
    run_kubelet_until(server, &ns, BUSYBOX, "recreated", || {
        let images: Vec<String> = server
            .list_json(&ns, "pods")
            .iter()
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        if images.contains(&HTTPD.to_owned()) && images.contains(&BUSYBOX.to_owned()) {
            mixed = images.clone();
        }
        rollout_complete(server, &ns, "web")
    });
    assert!(mixed.is_empty(), "old and new pods at once: {mixed:?}");
    assert_eq!(server.list_json(&ns, "pods").len(), 3);
}

#[test]
fn a_paused_deployment_waits_and_resumes() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-pause");
    server.apply_json(&ns, &deployment("web", 2, HTTPD, json!({})));
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    server
        .kubectl(&["rollout", "pause", "deployment/web", "-n", &ns])
        .ok();
    set_image(server, &ns, "web", BUSYBOX);
    eventually("paused", || {
        let web = server.get_json(&ns, "deployment", "web");
        let progressing = condition(&web, "Progressing");
        if progressing["reason"] == "DeploymentPaused" && progressing["status"] == "Unknown" {
            Ok(())
        } else {
            Err(progressing.to_string())
        }
    });
    assert_eq!(
        replica_sets(server, &ns).len(),
        1,
        "no new ReplicaSet while paused"
    );
    // Scaling still works while paused.
    server
        .kubectl(&["scale", "deployment/web", "-n", &ns, "--replicas=3"])
        .ok();
    eventually("three old pods", || {
        let sets = replica_sets(server, &ns);
        if sets.len() == 1 && sets.values().all(|(r, _)| *r == 3) {
            Ok(())
        } else {
            Err(format!("{sets:?}"))
        }
    });

    server
        .kubectl(&["rollout", "resume", "deployment/web", "-n", &ns])
        .ok();
    run_kubelet_until(server, &ns, BUSYBOX, "rolled out after resuming", || {
        rollout_complete(server, &ns, "web")
    });
    assert_eq!(replica_sets(server, &ns).len(), 2);
}

#[test]
fn rollout_restart_makes_new_pods_from_the_same_template() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-restart");
    server.apply_json(&ns, &deployment("web", 2, HTTPD, json!({})));
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    let before: Vec<String> = server.list_json(&ns, "pods").iter().map(name).collect();
    server
        .kubectl(&["rollout", "restart", "deployment/web", "-n", &ns])
        .ok();
    run_kubelet_until(server, &ns, HTTPD, "restarted", || {
        let now: Vec<String> = server.list_json(&ns, "pods").iter().map(name).collect();
        let done = rollout_complete(server, &ns, "web");
        if now.len() == 2 && now.iter().all(|n| !before.contains(n)) && done.is_ok() {
            Ok(())
        } else {
            Err(format!("{now:?} {done:?}"))
        }
    });
    assert_eq!(replica_sets(server, &ns).len(), 2);
}

#[test]
fn old_revisions_beyond_the_history_limit_are_deleted() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-history");
    server.apply_json(
        &ns,
        &deployment("web", 1, HTTPD, json!({"revisionHistoryLimit": 1})),
    );
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    for image in [BUSYBOX, "tugboat.test/third:latest"] {
        set_image(server, &ns, "web", image);
        run_kubelet_until(server, &ns, image, "rolled out", || {
            rollout_complete(server, &ns, "web")
        });
    }
    eventually("two ReplicaSets left", || {
        let sets = replica_sets(server, &ns);
        let revisions: Vec<&str> = sets.values().map(|(_, r)| r.as_str()).collect();
        let mut sorted = revisions.clone();
        sorted.sort();
        if sorted == ["2", "3"] {
            Ok(())
        } else {
            Err(format!("{sets:?}"))
        }
    });
}

#[test]
fn a_stalled_rollout_exceeds_its_deadline_and_undo_recovers() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-deadline");
    server.apply_json(
        &ns,
        &deployment("web", 2, HTTPD, json!({"progressDeadlineSeconds": 3})),
    );
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    // An image no node can pull: its pods never become ready.
    set_image(server, &ns, "web", "tugboat.test/missing:latest");
    eventually("the deadline exceeded", || {
        let web = server.get_json(&ns, "deployment", "web");
        let progressing = condition(&web, "Progressing");
        if progressing["reason"] == "ProgressDeadlineExceeded" && progressing["status"] == "False" {
            Ok(progressing)
        } else {
            Err(progressing.to_string())
        }
    });
    let stalled = server
        .kubectl(&["rollout", "status", "deployment/web", "-n", &ns])
        .fails();
    assert!(
        stalled.contains("deployment \"web\" exceeded its progress deadline"),
        "{stalled}"
    );
    let web = server.get_json(&ns, "deployment", "web");
    let progressing = condition(&web, "Progressing");
    let new = server
        .list_json(&ns, "rs")
        .into_iter()
        .find(|rs| {
            rs["spec"]["template"]["spec"]["containers"][0]["image"]
                == "tugboat.test/missing:latest"
        })
        .unwrap();
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"{}\" has timed out progressing.", name(&new))
    );
    assert_eq!(condition(&web, "Available")["status"], "True");

    server
        .kubectl(&["rollout", "undo", "deployment/web", "-n", &ns])
        .ok();
    run_kubelet_until(server, &ns, HTTPD, "recovered", || {
        rollout_complete(server, &ns, "web")
    });
    let images: Vec<Value> = server
        .list_json(&ns, "pods")
        .iter()
        .map(|p| p["spec"]["containers"][0]["image"].clone())
        .collect();
    assert_eq!(images, [HTTPD; 2]);
}

#[test]
fn blue_green_switches_a_services_selector_between_two_replicasets() {
    let server = nodeless_server();
    let ns = server.namespace("blue-green");
    for (colour, image) in [("blue", HTTPD), ("green", BUSYBOX)] {
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("web-{colour}")},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web", "colour": colour}},
                "template": {
                    "metadata": {"labels": {"app": "web", "colour": colour}},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
            },
        });
        server.apply_json(&ns, &rs);
    }
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web", "colour": "blue"}, "ports": [{"port": 80}]},
    });
    server.apply_json(&ns, &service);
    run_kubelet_until(server, &ns, BUSYBOX, "both colours ready", || {
        make_ready(server, &ns, HTTPD);
        let ready = server
            .list_json(&ns, "pods")
            .iter()
            .filter(|p| is_ready(p))
            .count();
        if ready == 4 {
            Ok(())
        } else {
            Err(format!("{ready} ready"))
        }
    });
    let selected = |colour: &str| {
        server.names(&[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            &format!("app=web,colour={colour}"),
        ])
    };
    server
        .kubectl(&[
            "patch",
            "service",
            "web",
            "-n",
            &ns,
            "-p",
            r#"{"spec":{"selector":{"colour":"green"}}}"#,
        ])
        .ok();
    let svc = server.get_json(&ns, "service", "web");
    assert_eq!(
        svc["spec"]["selector"],
        json!({"app": "web", "colour": "green"})
    );
    assert_eq!(selected("green").len(), 2);
    // Blue stays up for a switch back until it is scaled away.
    server
        .kubectl(&["scale", "rs/web-blue", "-n", &ns, "--replicas=0"])
        .ok();
    eventually("blue scaled away", || {
        let blue = selected("blue");
        if blue.is_empty() {
            Ok(())
        } else {
            Err(format!("{blue:?}"))
        }
    });
    assert_eq!(selected("green").len(), 2);
}

#[test]
fn a_deployment_made_again_adopts_the_replicaset_its_predecessor_orphaned() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-adopt");
    server.apply_json(&ns, &deployment("web", 2, HTTPD, json!({})));
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    let rs_name = replica_sets(server, &ns).into_keys().next().unwrap();
    let pods_before: Vec<String> = server.list_json(&ns, "pods").iter().map(name).collect();
    server
        .kubectl(&["delete", "deployment", "web", "-n", &ns, "--cascade=orphan"])
        .ok();
    eventually("the ReplicaSet orphaned", || {
        let rs = server.get_json(&ns, "rs", &rs_name);
        match rs["metadata"].get("ownerReferences") {
            Some(refs) if refs.as_array().is_some_and(|r| !r.is_empty()) => Err(refs.to_string()),
            _ => Ok(()),
        }
    });

    server.apply_json(&ns, &deployment("web", 2, HTTPD, json!({})));
    let uid = server.get_json(&ns, "deployment", "web")["metadata"]["uid"].clone();
    eventually("the ReplicaSet adopted", || {
        let rs = server.get_json(&ns, "rs", &rs_name);
        let owner = &rs["metadata"]["ownerReferences"][0];
        if owner["uid"] == uid && owner["controller"] == true {
            Ok(())
        } else {
            Err(rs["metadata"].to_string())
        }
    });
    eventually("rolled out again", || rollout_complete(server, &ns, "web"));
    let pods_after: Vec<String> = server.list_json(&ns, "pods").iter().map(name).collect();
    assert_eq!(pods_after, pods_before, "the same pods, none made anew");
    assert_eq!(replica_sets(server, &ns).len(), 1);
}

#[test]
fn a_replicaset_that_cannot_make_its_pods_shows_on_the_deployment() {
    let server = nodeless_server();
    let ns = server.namespace("deploy-quota");
    let quota = json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "one-pod"},
        "spec": {"hard": {"pods": "1"}},
    });
    server.apply_json(&ns, &quota);
    server.apply_json(&ns, &deployment("web", 2, HTTPD, json!({})));
    let failure = eventually("a ReplicaFailure condition", || {
        let web = server.get_json(&ns, "deployment", "web");
        let failure = condition(&web, "ReplicaFailure");
        if failure.is_null() {
            Err(web["status"].to_string())
        } else {
            Ok(failure)
        }
    });
    assert_eq!(failure["reason"], "FailedCreate");
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.contains("exceeded quota: one-pod")),
        "{failure}"
    );
    server
        .kubectl(&["delete", "resourcequota", "one-pod", "-n", &ns])
        .ok();
    run_kubelet_until(server, &ns, HTTPD, "rolled out", || {
        rollout_complete(server, &ns, "web")
    });
    eventually("the condition gone", || {
        let web = server.get_json(&ns, "deployment", "web");
        let failure = condition(&web, "ReplicaFailure");
        if failure.is_null() {
            Ok(())
        } else {
            Err(failure.to_string())
        }
    });
}
