//! Pods that really run on the server's own node: containers from the test
//! images, restart policies and back-off, init containers, shared volumes,
//! OOM kills, image pull errors, graceful deletion, an agent restart that
//! adopts running containers, and nothing left behind once pods are gone.
//!
//! Pods name their node (`spec.nodeName`): scheduling is another issue's.

mod common;

use std::time::{Duration, Instant};

use common::pods::{BUSYBOX, container, create, get_pod, pod, wait_pod, wait_ready};
use common::{Server, eventually, node_name, node_server};
use serde_json::json;

fn processes_matching(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn a_pod_runs_and_is_reported_running_and_ready() {
    let server = node_server();
    let ns = server.namespace("running");
    create(
        server,
        &ns,
        &pod("web", "Always", &[("main", "sleep 3600")], json!({})),
    );
    wait_ready(server, &ns, "web");
    let pod = get_pod(server, &ns, "web");
    assert_eq!(pod["status"]["phase"], "Running");
    let main = container(&pod, "main");
    assert_eq!(main["ready"], true);
    assert_eq!(main["restartCount"], 0);
    assert!(main["state"]["running"]["startedAt"].is_string(), "{main}");
    assert!(
        main["containerID"]
            .as_str()
            .unwrap_or_default()
            .starts_with("tugboat://")
    );
    assert!(
        !main["imageID"].as_str().unwrap_or_default().is_empty(),
        "{main}"
    );
    assert!(pod["status"]["hostIP"].is_string());
    let table = server.kubectl(&["get", "pod", "web", "-n", &ns]).ok();
    assert!(
        table
            .lines()
            .any(|l| common::starts_with_columns(l, &["web", "1/1", "Running", "0"])),
        "{table}"
    );
    let described = server.kubectl(&["describe", "pod", "web", "-n", &ns]).ok();
    for event in ["Pulled", "Created", "Started"] {
        assert!(
            described.contains(event),
            "no {event} event in:\n{described}"
        );
    }
}

#[test]
fn each_restart_policy_treats_a_failing_container_as_kubernetes_does() {
    let server = node_server();
    let ns = server.namespace("restarts");
    for (name, policy) in [
        ("always", "Always"),
        ("on-failure", "OnFailure"),
        ("never", "Never"),
    ] {
        create(
            server,
            &ns,
            &pod(name, policy, &[("main", "exit 1")], json!({})),
        );
    }
    create(
        server,
        &ns,
        &pod("succeeds", "OnFailure", &[("main", "exit 0")], json!({})),
    );

    let never = wait_pod(server, &ns, "never", "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    let ended = &container(&never, "main")["state"]["terminated"];
    assert_eq!(ended["exitCode"], 1);
    assert_eq!(ended["reason"], "Error");
    assert_eq!(container(&never, "main")["restartCount"], 0);

    let done = wait_pod(server, &ns, "succeeds", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    assert_eq!(
        container(&done, "main")["state"]["terminated"]["reason"],
        "Completed"
    );

    for name in ["always", "on-failure"] {
        let backing_off = wait_pod(server, &ns, name, "restarted into CrashLoopBackOff", |p| {
            let main = container(p, "main");
            main["restartCount"].as_u64().unwrap_or(0) >= 1
                && main["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        });
        let main = container(&backing_off, "main");
        assert_eq!(main["lastState"]["terminated"]["exitCode"], 1, "{main}");
        assert_eq!(backing_off["status"]["phase"], "Running");
        let listed = server.kubectl(&["get", "pod", name, "-n", &ns]).ok();
        assert!(listed.contains("CrashLoopBackOff"), "{listed}");
    }
    let described = server
        .kubectl(&["describe", "pod", "always", "-n", &ns])
        .ok();
    assert!(
        described.contains("Back-off restarting failed container main"),
        "{described}"
    );
}

#[test]
fn init_containers_finish_in_order_before_the_app_starts() {
    let server = node_server();
    let ns = server.namespace("init");
    let volume = json!([{"name": "work", "mountPath": "/work"}]);
    let init = |name: &str, script: &str| {
        json!({"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
               "command": ["sh", "-c", script], "volumeMounts": volume})
    };
    let mut manifest = pod(
        "app",
        "Always",
        &[("main", "cat /work/order && sleep 3600")],
        json!({
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                init("first", "echo first >> /work/order"),
                init("second", "test -s /work/order && echo second >> /work/order"),
            ],
        }),
    );
    manifest["spec"]["containers"][0]["volumeMounts"] = volume.clone();
    create(server, &ns, &manifest);
    wait_ready(server, &ns, "app");
    let pod = get_pod(server, &ns, "app");
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .expect("init statuses");
    let names: Vec<&str> = inits.iter().filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    for init in inits {
        assert_eq!(init["state"]["terminated"]["reason"], "Completed", "{init}");
        assert_eq!(init["restartCount"], 0, "{init}");
    }
    // The app read what both wrote, in order, and never had to restart.
    assert_eq!(container(&pod, "main")["restartCount"], 0);
    let started_second = &inits[1]["state"]["terminated"]["startedAt"];
    let ended_first = &inits[0]["state"]["terminated"]["finishedAt"];
    assert!(started_second.as_str() >= ended_first.as_str(), "{inits:?}");
}

#[test]
fn containers_of_a_pod_share_an_empty_dir() {
    let server = node_server();
    let ns = server.namespace("shared");
    let mount = json!([{"name": "html", "mountPath": "/html"}]);
    let mut manifest = pod(
        "bulletin",
        "OnFailure",
        &[
            (
                "writer",
                "while true; do date >> /html/index.html; sleep 1; done",
            ),
            (
                "reader",
                "until [ -s /html/index.html ]; do sleep 0.2; done; exit 0",
            ),
        ],
        json!({"volumes": [{"name": "html", "emptyDir": {}}]}),
    );
    for c in manifest["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
    {
        c["volumeMounts"] = mount.clone();
    }
    create(server, &ns, &manifest);
    let pod = wait_pod(
        server,
        &ns,
        "bulletin",
        "the reader saw the writer's file",
        |p| container(p, "reader")["state"]["terminated"]["exitCode"] == 0,
    );
    assert_eq!(container(&pod, "reader")["restartCount"], 0);
    assert!(container(&pod, "writer")["state"]["running"].is_object());
}

#[test]
fn config_map_secret_and_projected_volumes_show_their_objects_and_follow_changes() {
    let server = node_server();
    let ns = server.namespace("volumes");
    server
        .kubectl(&[
            "create",
            "configmap",
            "settings",
            "-n",
            &ns,
            "--from-literal=mode=fast",
            "--from-literal=level=3",
        ])
        .ok();
    server
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            &ns,
            "--from-literal=password=s3cret",
        ])
        .ok();
    let mut manifest = pod(
        "reader",
        "Always",
        &[("c", "sleep 3600")],
        json!({"volumes": [
            {"name": "settings", "configMap": {"name": "settings", "items": [{"key": "mode", "path": "conf/mode"}]}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "all", "projected": {"sources": [
                {"configMap": {"name": "settings"}},
                {"secret": {"name": "creds"}},
                {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
            ]}},
        ]}),
    );
    manifest["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "settings", "mountPath": "/settings"},
        {"name": "creds", "mountPath": "/creds"},
        {"name": "all", "mountPath": "/all"},
    ]);
    create(server, &ns, &manifest);
    wait_ready(server, &ns, "reader");
    let sh = |script: &str| {
        server
            .kubectl(&["exec", "-n", &ns, "reader", "--", "sh", "-c", script])
            .ok()
    };
    assert_eq!(sh("cat /settings/conf/mode"), "fast");
    assert_eq!(sh("ls /settings"), "conf\n", "only the listed key");
    assert_eq!(sh("cat /creds/password"), "s3cret");
    assert_eq!(sh("stat -L -c %a /creds/password"), "400\n");
    assert_eq!(
        sh("cat /all/mode /all/level /all/password /all/name"),
        "fast3s3cretreader"
    );
    let err = server
        .kubectl(&[
            "exec",
            "-n",
            &ns,
            "reader",
            "--",
            "sh",
            "-c",
            "echo x > /settings/new",
        ])
        .fails();
    assert!(err.contains("Read-only file system"), "{err}");

    server
        .kubectl(&[
            "patch",
            "configmap",
            "settings",
            "-n",
            &ns,
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
        ])
        .ok();
    eventually("the volumes to show the changed ConfigMap", || {
        match sh("cat /settings/conf/mode; echo; cat /all/mode").as_str() {
            "slow\nslow" => Ok(()),
            other => Err(other.to_owned()),
        }
    });
}

#[test]
fn a_container_over_its_memory_limit_is_oom_killed() {
    let server = node_server();
    let ns = server.namespace("oom");
    // tail keeps a line in memory until the next newline; /dev/zero has none.
    let mut manifest = pod(
        "hog",
        "Never",
        &[("main", "head -c 256m /dev/zero | tail")],
        json!({}),
    );
    manifest["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "32Mi"}});
    create(server, &ns, &manifest);
    let pod = wait_pod(server, &ns, "hog", "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    let ended = &container(&pod, "main")["state"]["terminated"];
    assert_eq!(ended["reason"], "OOMKilled", "{ended}");
    assert_eq!(ended["exitCode"], 137);
}

#[test]
fn an_image_that_does_not_exist_backs_off() {
    let server = node_server();
    let ns = server.namespace("pull");
    let mut manifest = pod("ghost", "Always", &[("main", "true")], json!({}));
    // Port 1 on loopback: nothing listens, so the pull fails at once.
    manifest["spec"]["containers"][0]["image"] = "127.0.0.1:1/nothing/here:1.0".into();
    manifest["spec"]["containers"][0]["imagePullPolicy"] = "Always".into();
    create(server, &ns, &manifest);
    let pulled = wait_pod(server, &ns, "ghost", "ErrImagePull", |p| {
        container(p, "main")["state"]["waiting"]["reason"] == "ErrImagePull"
    });
    let message = container(&pulled, "main")["state"]["waiting"]["message"].to_string();
    assert!(
        message.contains("127.0.0.1:1/nothing/here:1.0"),
        "{message}"
    );
    wait_pod(server, &ns, "ghost", "ImagePullBackOff", |p| {
        container(p, "main")["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    assert_eq!(get_pod(server, &ns, "ghost")["status"]["phase"], "Pending");
    let described = server
        .kubectl(&["describe", "pod", "ghost", "-n", &ns])
        .ok();
    assert!(described.contains("Failed to pull image"), "{described}");
}

#[test]
fn a_deleted_pod_is_stopped_gracefully_and_its_processes_are_gone() {
    let server = node_server();
    let ns = server.namespace("graceful");
    let marker = "graceful-marker-5b1e";
    let script = format!("trap 'exit 0' TERM; while true; do sleep 0.2; done # {marker}");
    let mut manifest = pod("polite", "Always", &[("main", &script)], json!({}));
    manifest["spec"]["terminationGracePeriodSeconds"] = 60.into();
    create(server, &ns, &manifest);
    wait_ready(server, &ns, "polite");
    assert_eq!(processes_matching(marker), 1);
    let began = Instant::now();
    server
        .kubectl(&["delete", "pod", "polite", "-n", &ns, "--wait=true"])
        .ok();
    // It stopped on SIGTERM rather than sitting out its 60 s of grace.
    assert!(
        began.elapsed() < Duration::from_secs(50),
        "took {:?}",
        began.elapsed()
    );
    server.assert_absent(&ns, "pod", "polite");
    assert_eq!(processes_matching(marker), 0);
    let described = server.kubectl(&["get", "events", "-n", &ns]).ok();
    assert!(described.contains("Killing"), "{described}");
}

#[test]
fn containers_survive_an_agent_restart_and_are_adopted() {
    let mut server = Server::start();
    server.import_image("busybox.oci.tar");
    let ns = server.namespace("adopt");
    let marker = "adopt-marker-77c2";
    create(
        &server,
        &ns,
        &pod(
            "steady",
            "Always",
            &[("main", &format!("while true; do sleep 1; done # {marker}"))],
            json!({}),
        ),
    );
    wait_ready(&server, &ns, "steady");
    let before = container(&get_pod(&server, &ns, "steady"), "main").clone();
    assert_eq!(processes_matching(marker), 1);
    // kill -9 of the whole server, agent included: the shims are not its children.
    server.restart();
    assert_eq!(
        processes_matching(marker),
        1,
        "the container died with the agent"
    );
    server
        .kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("node/{}", node_name()),
            "--timeout=60s",
        ])
        .ok();
    std::thread::sleep(Duration::from_secs(3));
    let after = container(&get_pod(&server, &ns, "steady"), "main").clone();
    assert_eq!(after["containerID"], before["containerID"]);
    assert!(
        before["imageID"].as_str().is_some_and(|id| !id.is_empty()),
        "{before}"
    );
    assert_eq!(after["imageID"], before["imageID"]);
    assert_eq!(after["restartCount"], 0);
    assert_eq!(after["state"]["running"], before["state"]["running"]);
    assert_eq!(processes_matching(marker), 1);
    server
        .kubectl(&["delete", "pod", "steady", "-n", &ns, "--grace-period=1"])
        .ok();
    assert_eq!(processes_matching(marker), 0);
}

#[test]
fn nothing_is_left_on_the_node_once_its_pods_are_deleted() {
    let server = Server::start();
    server.import_image("busybox.oci.tar");
    let ns = server.namespace("leaks");
    let marker = "leak-marker-0d4f";
    let mut manifest = pod(
        "tidy",
        "Always",
        &[
            ("a", &format!("while true; do sleep 1; done # {marker}")),
            ("b", &format!("while true; do sleep 1; done # {marker}")),
        ],
        json!({"volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}]}),
    );
    manifest["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "scratch", "mountPath": "/scratch"}]);
    create(&server, &ns, &manifest);
    wait_ready(&server, &ns, "tidy");
    let pod_ip = get_pod(&server, &ns, "tidy")["status"]["podIP"]
        .as_str()
        .expect("a pod IP")
        .to_owned();
    let lease = std::path::Path::new("/var/lib/cni/networks/tugboat").join(&pod_ip);
    assert!(lease.exists(), "no address lease at {}", lease.display());
    let uid = get_pod(&server, &ns, "tidy")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent_dir = server.data_dir().join("agent");
    let agent_dir = agent_dir.to_str().unwrap();
    let ours = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(agent_dir) || l.contains(&uid))
            .count()
    };
    assert!(ours() > 0, "a running pod has mounts");
    assert_eq!(processes_matching(marker), 2);
    server
        .kubectl(&["delete", "pod", "tidy", "-n", &ns, "--grace-period=1"])
        .ok();
    assert_eq!(processes_matching(marker), 0);
    assert_eq!(ours(), 0, "mounts left behind");
    assert!(
        !lease.exists(),
        "the pod's address {pod_ip} is still leased"
    );
    for dir in ["runtime/containers", "runtime/sandboxes", "pods", "logs"] {
        let left: Vec<_> = std::fs::read_dir(server.data_dir().join("agent").join(dir))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir} still holds {left:?}");
    }
    let cgroups = std::process::Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "4",
            "-name",
            &format!("*{uid}*"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&cgroups.stdout),
        "",
        "cgroups left behind"
    );
}

#[test]
fn a_failing_liveness_probe_restarts_the_container() {
    let server = node_server();
    let ns = server.namespace("liveness");
    // Healthy for a few seconds, then /healthz is gone and httpd answers 404.
    let script = "mkdir -p /www; echo ok > /www/healthz; (sleep 4; rm /www/healthz) & \
                  exec httpd -f -p 8080 -h /www";
    let mut manifest = pod("liveness-http", "Always", &[("main", script)], json!({}));
    manifest["spec"]["containers"][0]["livenessProbe"] = json!({
        "httpGet": {"path": "/healthz", "port": 8080},
        "periodSeconds": 1, "failureThreshold": 2,
    });
    create(server, &ns, &manifest);
    let restarted = wait_pod(
        server,
        &ns,
        "liveness-http",
        "restarted by its probe",
        |p| container(p, "main")["restartCount"].as_u64().unwrap_or(0) >= 1,
    );
    assert!(container(&restarted, "main")["lastState"]["terminated"].is_object());
    let events = server.kubectl(&["get", "events", "-n", &ns]).ok();
    assert!(
        events.contains("Liveness probe failed: HTTP probe failed with statuscode: 404"),
        "{events}"
    );
    assert!(
        events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );
}

#[test]
fn readiness_and_startup_probes_gate_ready_and_started() {
    let server = node_server();
    let ns = server.namespace("readiness");
    let mut manifest = pod(
        "gated",
        "Always",
        &[
            ("late", "sleep 3; touch /tmp/ready; exec sleep 3600"),
            ("never", "exec sleep 3600"),
            (
                "slow-start",
                "sleep 2; mkdir -p /srv; exec httpd -f -p 9000 -h /srv",
            ),
        ],
        json!({}),
    );
    let containers = manifest["spec"]["containers"]
        .as_array_mut()
        .expect("containers");
    for c in containers.iter_mut().take(2) {
        c["readinessProbe"] =
            json!({"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1});
    }
    containers[2]["startupProbe"] =
        json!({"tcpSocket": {"port": 9000}, "periodSeconds": 1, "failureThreshold": 30});
    create(server, &ns, &manifest);
    let pod = wait_pod(
        server,
        &ns,
        "gated",
        "late ready and slow-start started",
        |p| container(p, "late")["ready"] == true && container(p, "slow-start")["started"] == true,
    );
    assert_eq!(container(&pod, "never")["ready"], false);
    assert_eq!(container(&pod, "never")["started"], true);
    assert_eq!(container(&pod, "never")["restartCount"], 0);
    let ready = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .expect("Ready condition");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["message"], "containers with unready status: [never]");
    let table = server.kubectl(&["get", "pod", "gated", "-n", &ns]).ok();
    assert!(
        table
            .lines()
            .any(|l| common::starts_with_columns(l, &["gated", "2/3", "Running"])),
        "{table}"
    );
}

#[test]
fn pods_reach_each_other_and_the_host_reaches_a_host_port() {
    let server = node_server();
    let ns = server.namespace("network");
    let serve = "mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 8080 -h /www";
    let mut web = pod("web", "Always", &[("main", serve)], json!({}));
    web["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 8080, "hostPort": 18481, "protocol": "TCP"}]);
    create(server, &ns, &web);
    let web = wait_ready(server, &ns, "web");
    let web_ip = web["status"]["podIP"]
        .as_str()
        .expect("web has a pod IP")
        .to_owned();
    assert!(web_ip.starts_with("10.42."), "{web_ip}");
    let fetch = format!(
        "until wget -q -O /tmp/got http://{web_ip}:8080/; do sleep 0.5; done; cat /tmp/got"
    );
    create(
        server,
        &ns,
        &pod("client", "Never", &[("main", &fetch)], json!({})),
    );
    let client = wait_pod(server, &ns, "client", "Succeeded", |p| {
        p["status"]["phase"] == "Succeeded"
    });
    assert_ne!(client["status"]["podIP"], web["status"]["podIP"]);
    let logs = server.kubectl(&["logs", "client", "-n", &ns]).ok();
    assert_eq!(logs.trim(), "web");
    let host_ip = web["status"]["hostIP"].as_str().expect("hostIP");
    let page = eventually("the host port answers", || {
        let out = std::process::Command::new("busybox")
            .args(["wget", "-q", "-O", "-", &format!("http://{host_ip}:18481/")])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    assert_eq!(page.trim(), "web");
}

#[test]
fn post_start_and_pre_stop_hooks_run_in_the_container() {
    let server = node_server();
    let ns = server.namespace("hooks");
    let out = tempfile::tempdir().expect("temp dir");
    let script = "until [ -f /tmp/post-start ]; do sleep 0.2; done; \
                  trap 'exit 0' TERM; while true; do sleep 0.2; done";
    let mut manifest = pod(
        "hooked",
        "Always",
        &[("main", script)],
        json!({"volumes": [{"name": "out", "hostPath": {"path": common::arg(out.path())}}]}),
    );
    manifest["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "out", "mountPath": "/out"}]);
    manifest["spec"]["containers"][0]["lifecycle"] = json!({
        "postStart": {"exec": {"command": ["touch", "/tmp/post-start"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /out/pre-stop"]}},
    });
    create(server, &ns, &manifest);
    wait_ready(server, &ns, "hooked");
    server.kubectl(&["delete", "pod", "hooked", "-n", &ns]).ok();
    let written = std::fs::read_to_string(out.path().join("pre-stop")).expect("preStop ran");
    assert_eq!(written.trim(), "stopping");
}
