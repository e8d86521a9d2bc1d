//! Deployments whose pods really run: scheduled onto `tug server`'s own
//! node, pulled from its image store and judged ready by their readiness
//! probes. What a user of the seeds does: a 3-replica web Deployment that
//! becomes available and heals, `kubectl scale`, `kubectl set image` with
//! no moment below `replicas - maxUnavailable` ready pods, and a rollout to
//! a missing image that stalls and is undone.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::pods::{BUSYBOX, HTTPD};
use common::{Server, eventually, node_server};
use serde_json::{Value, json};

/// A Deployment of `replicas` busybox httpd servers (either test image
/// runs the same command), ready when they answer on port 8080.
fn web(replicas: i32, extra: Value) -> Value {
    let answers = json!({"httpGet": {"path": "/", "port": 8080}});
    common::with_spec(common::httpd_deployment("web", replicas, answers), extra)
}

/// Ready and not on its way out: a pod that serves.
fn serving(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_none()
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Each pod's name, whether it is being deleted and its Ready condition.
fn describe(pods: &[Value]) -> String {
    pods.iter()
        .map(|p| {
            let ready = p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
                .cloned()
                .unwrap_or_default();
            format!(
                "{} phase={} deleting={} ready={}",
                p["metadata"]["name"].as_str().unwrap_or_default(),
                p["status"]["phase"],
                p["metadata"].get("deletionTimestamp").is_some(),
                ready
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `kubectl rollout status` until it says the rollout is done.
fn rolled_out(server: &Server, namespace: &str) {
    let out = server
        .kubectl(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            namespace,
            "--timeout=120s",
        ])
        .ok();
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
}

fn serving_names(server: &Server, namespace: &str) -> Vec<String> {
    let mut names: Vec<String> = server
        .list_json(namespace, "pods")
        .iter()
        .filter(|p| serving(p))
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

#[test]
fn a_web_deployment_becomes_available_scales_and_heals() {
    let server = node_server();
    let ns = server.namespace("web-heal");
    server.apply_json(&ns, &web(3, json!({})));
    rolled_out(server, &ns);
    let running = serving_names(server, &ns);
    assert_eq!(running.len(), 3, "{running:?}");
    for pod in server.list_json(&ns, "pods") {
        assert_eq!(pod["spec"]["nodeName"], common::node_name());
        assert_eq!(pod["status"]["phase"], "Running");
    }
    let web = server.get_json(&ns, "deployment", "web");
    assert_eq!(web["status"]["availableReplicas"], 3);

    server
        .kubectl(&["delete", "pod", &running[0], "-n", &ns, "--wait=false"])
        .ok();
    eventually("a replacement serving", || {
        let now = serving_names(server, &ns);
        if now.len() == 3 && !now.contains(&running[0]) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });

    server
        .kubectl(&["scale", "deployment/web", "-n", &ns, "--replicas=5"])
        .ok();
    rolled_out(server, &ns);
    assert_eq!(serving_names(server, &ns).len(), 5);
    server
        .kubectl(&["scale", "deployment/web", "-n", &ns, "--replicas=2"])
        .ok();
    eventually("two pods left", || {
        let all = server.list_json(&ns, "pods").len();
        if all == 2 {
            Ok(())
        } else {
            Err(format!("{all} pods"))
        }
    });
    rolled_out(server, &ns);
}

#[test]
fn set_image_never_drops_below_replicas_minus_max_unavailable() {
    let server = node_server();
    let ns = server.namespace("web-rollout");
    let strategy = json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}});
    server.apply_json(&ns, &web(4, strategy));
    rolled_out(server, &ns);
    let before = serving_names(server, &ns);

    // A watcher counting serving pods for as long as the rollout runs.
    let stop = Arc::new(AtomicBool::new(false));
    let fewest = Arc::new(Mutex::new((usize::MAX, String::new())));
    let watcher = {
        let (stop, fewest, ns) = (stop.clone(), fewest.clone(), ns.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let pods = node_server().list_json(&ns, "pods");
                let count = pods.iter().filter(|p| serving(p)).count();
                let mut low = fewest.lock().unwrap();
                if count < low.0 {
                    *low = (count, describe(&pods));
                }
            }
        })
    };
    server
        .kubectl(&[
            "set",
            "image",
            "deployment/web",
            &format!("app={BUSYBOX}"),
            "-n",
            &ns,
        ])
        .ok();
    rolled_out(server, &ns);
    stop.store(true, Ordering::SeqCst);
    watcher.join().expect("the watcher");
    let (fewest, pods) = fewest.lock().unwrap().clone();
    assert!(
        fewest >= 3,
        "only {fewest} pods served at one moment:\n{pods}"
    );

    // Old pods may still be stopping when the rollout is done.
    let after = eventually("four busybox pods", || {
        let all = server.list_json(&ns, "pods");
        let busybox = all
            .iter()
            .filter(|p| p["spec"]["containers"][0]["image"] == BUSYBOX)
            .count();
        if all.len() == 4 && busybox == 4 {
            Ok(all)
        } else {
            Err(format!("{} pods, {busybox} busybox", all.len()))
        }
    });
    for pod in &after {
        assert_eq!(pod["spec"]["containers"][0]["image"], BUSYBOX);
        assert!(!before.contains(&pod["metadata"]["name"].as_str().unwrap().to_owned()));
    }
    let history = server
        .kubectl(&["rollout", "history", "deployment/web", "-n", &ns])
        .ok();
    let revisions: Vec<String> = common::table(&history)
        .iter()
        .filter_map(|r| r.first().cloned())
        .filter(|c| c.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
}

#[test]
fn a_rollout_to_a_missing_image_stalls_and_undo_recovers() {
    let server = node_server();
    let ns = server.namespace("web-broken");
    server.apply_json(&ns, &web(2, json!({"progressDeadlineSeconds": 10})));
    rolled_out(server, &ns);
    let before = serving_names(server, &ns);
    server
        .kubectl(&[
            "set",
            "image",
            "deployment/web",
            "app=tugboat.test/missing:latest",
            "-n",
            &ns,
        ])
        .ok();
    let stalled = server
        .kubectl(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            &ns,
            "--timeout=120s",
        ])
        .fails();
    assert!(
        stalled.contains("deployment \"web\" exceeded its progress deadline"),
        "{stalled}"
    );
    // The old pods kept serving all along.
    assert_eq!(serving_names(server, &ns), before);
    let broken = server
        .list_json(&ns, "pods")
        .into_iter()
        .find(|p| p["spec"]["containers"][0]["image"] == "tugboat.test/missing:latest")
        .expect("a pod of the missing image");
    let waiting = &broken["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
    assert!(
        waiting == "ErrImagePull" || waiting == "ImagePullBackOff",
        "{}",
        broken["status"]
    );

    server
        .kubectl(&["rollout", "undo", "deployment/web", "-n", &ns])
        .ok();
    rolled_out(server, &ns);
    eventually("only the old template's pods", || {
        let all = server.list_json(&ns, "pods");
        let images: Vec<&Value> = all
            .iter()
            .map(|p| &p["spec"]["containers"][0]["image"])
            .collect();
        if images.len() == 2 && images.iter().all(|i| *i == HTTPD) {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    });
}

#[test]
fn recreate_starts_new_pods_only_once_the_old_ones_are_gone() {
    let server = node_server();
    let ns = server.namespace("web-recreate");
    let mut deployment = web(2, json!({"strategy": {"type": "Recreate"}}));
    // Old pods take two seconds to stop, so starting new ones early shows.
    deployment["spec"]["template"]["spec"]["containers"][0]["command"] = json!([
        "sh",
        "-c",
        "mkdir -p /www; hostname > /www/index.html; trap 'sleep 2; exit 0' TERM; httpd -f -p 8080 -h /www & wait"
    ]);
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(10);
    server.apply_json(&ns, &deployment);
    rolled_out(server, &ns);

    let stop = Arc::new(AtomicBool::new(false));
    let overlap = Arc::new(Mutex::new(None));
    let watcher = {
        let (stop, overlap, ns) = (stop.clone(), overlap.clone(), ns.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let images: Vec<Value> = node_server()
                    .list_json(&ns, "pods")
                    .iter()
                    .map(|p| p["spec"]["containers"][0]["image"].clone())
                    .collect();
                if images.contains(&json!(HTTPD)) && images.contains(&json!(BUSYBOX)) {
                    *overlap.lock().unwrap() = Some(images);
                }
            }
        })
    };
    server
        .kubectl(&[
            "set",
            "image",
            "deployment/web",
            &format!("app={BUSYBOX}"),
            "-n",
            &ns,
        ])
        .ok();
    rolled_out(server, &ns);
    stop.store(true, Ordering::SeqCst);
    watcher.join().expect("the watcher");
    let overlap = overlap.lock().unwrap().clone();
    assert!(overlap.is_none(), "old and new pods at once: {overlap:?}");
    assert_eq!(serving_names(server, &ns).len(), 2);
}
