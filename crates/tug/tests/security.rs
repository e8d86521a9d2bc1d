//! What a pod's security settings let its containers do, checked from inside
//! real containers on the server's own node with `kubectl exec`: a shared
//! process namespace, privileged containers (with the host's devices), a
//! read-only root filesystem, the users containers run as, capabilities
//! added and dropped, and allowPrivilegeEscalation.
//!
//! Each test also runs the same command where the setting is absent, so a
//! setting that does nothing fails the test.

mod common;

use common::pods::{container, create, pod, wait_pod, wait_ready};
use common::{Run, Server, node_server};
use serde_json::{Value, json};

/// `kubectl exec` of `script` in busybox's sh in one container of a pod.
fn exec(server: &Server, namespace: &str, pod: &str, container: &str, script: &str) -> Run {
    server.kubectl(&[
        "exec", "-n", namespace, pod, "-c", container, "--", "sh", "-c", script,
    ])
}

/// Asserts `script` succeeds in the container and returns its stdout.
fn succeeds(server: &Server, namespace: &str, pod: &str, container: &str, script: &str) -> String {
    let run = exec(server, namespace, pod, container, script);
    assert!(
        run.status.success(),
        "`{script}` in {pod}/{container} failed ({}):\n{}{}",
        run.status,
        run.stdout,
        run.stderr
    );
    run.stdout
}

/// Asserts `script` fails in the container and returns what it printed.
fn refused(server: &Server, namespace: &str, pod: &str, container: &str, script: &str) -> String {
    let run = exec(server, namespace, pod, container, script);
    assert!(
        !run.status.success(),
        "`{script}` in {pod}/{container} should have failed:\n{}{}",
        run.stdout,
        run.stderr
    );
    format!("{}{}", run.stdout, run.stderr)
}

/// The pod's containers, by index, get `security` as their securityContext.
fn with_security(mut manifest: Value, security: &[Value]) -> Value {
    for (c, security) in manifest["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .iter_mut()
        .zip(security)
    {
        c["securityContext"] = security.clone();
    }
    manifest
}

#[test]
fn a_shared_process_namespace_shows_each_container_the_others_processes() {
    let server = node_server();
    let ns = server.namespace("share-pid");
    let containers = [("a", "exec sleep 1111"), ("b", "exec sleep 2222")];
    create(
        server,
        &ns,
        &pod(
            "shared",
            "Always",
            &containers,
            json!({"shareProcessNamespace": true}),
        ),
    );
    create(server, &ns, &pod("apart", "Always", &containers, json!({})));
    wait_ready(server, &ns, "shared");
    wait_ready(server, &ns, "apart");

    let listed = succeeds(server, &ns, "shared", "b", "ps");
    assert!(
        listed.contains("sleep 1111") && listed.contains("sleep 2222"),
        "b does not see a's process:\n{listed}"
    );
    // PID 1 is the sandbox's init (Kubernetes' pause; here `tug shim pause`),
    // which reaps what the containers leave behind.
    let init = succeeds(server, &ns, "shared", "a", "tr '\\0' ' ' < /proc/1/cmdline");
    assert!(init.trim_end().ends_with("shim pause"), "PID 1 is {init:?}");

    let listed = succeeds(server, &ns, "apart", "b", "ps");
    assert!(listed.contains("sleep 2222"), "{listed}");
    assert!(
        !listed.contains("sleep 1111"),
        "b sees a's process without a shared namespace:\n{listed}"
    );
    for (name, command) in containers {
        let init = succeeds(server, &ns, "apart", name, "tr '\\0' ' ' < /proc/1/cmdline");
        let own = command.trim_start_matches("exec ");
        assert_eq!(init.trim_end(), own, "PID 1 of {name}");
    }
}

#[test]
fn a_privileged_container_may_change_the_network_and_mount_what_a_plain_one_may_not() {
    let server = node_server();
    let ns = server.namespace("privileged");
    let manifest = with_security(
        pod(
            "admin",
            "Always",
            &[
                ("privileged", "exec sleep 3600"),
                ("plain", "exec sleep 3600"),
            ],
            json!({}),
        ),
        &[json!({"privileged": true}), json!({})],
    );
    create(server, &ns, &manifest);
    wait_ready(server, &ns, "admin");

    // A bridge rather than a dummy link: this kernel has no dummy module.
    let link = "ip link add tug-priv type bridge && ip -o link show tug-priv";
    assert!(succeeds(server, &ns, "admin", "privileged", link).contains("tug-priv"));
    let mount =
        "mkdir -p /scratch && mount -t tmpfs tmpfs /scratch && grep ' /scratch ' /proc/mounts";
    assert!(succeeds(server, &ns, "admin", "privileged", mount).contains("tmpfs"));

    let host = host_devices();
    let listed = succeeds(server, &ns, "admin", "privileged", "ls -1 /dev");
    let missing: Vec<&String> = host
        .iter()
        .filter(|d| !listed.lines().any(|l| l == d.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the privileged container lacks {missing:?}"
    );

    let link = "ip link add tug-plain type bridge";
    let err = refused(server, &ns, "admin", "plain", link);
    assert!(err.contains("Operation not permitted"), "{err}");
    let err = refused(server, &ns, "admin", "plain", mount);
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
    let listed = succeeds(server, &ns, "admin", "plain", "ls -1 /dev");
    let shown: Vec<&String> = host
        .iter()
        .filter(|d| listed.lines().any(|l| l == d.as_str()))
        .collect();
    assert!(shown.is_empty(), "a plain container has {shown:?}");
}

/// The host's own devices at the top of /dev (its disk, `kmsg`, `fuse`...),
/// which only privileged containers get: not the few every container has.
fn host_devices() -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    const EVERY_CONTAINERS: [&str; 8] = [
        "null", "zero", "full", "random", "urandom", "tty", "console", "ptmx",
    ];
    let mut names: Vec<String> = std::fs::read_dir("/dev")
        .expect("/dev")
        .flatten()
        .filter(|e| {
            e.file_type()
                .is_ok_and(|t| t.is_block_device() || t.is_char_device())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !EVERY_CONTAINERS.contains(&name.as_str()))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "the host has devices in /dev");
    names
}

#[test]
fn a_read_only_root_filesystem_refuses_writes_but_its_volumes_take_them() {
    let server = node_server();
    let ns = server.namespace("read-only-root");
    let mut manifest = with_security(
        pod(
            "locked",
            "Always",
            &[("locked", "exec sleep 3600"), ("open", "exec sleep 3600")],
            json!({"volumes": [{"name": "scratch", "emptyDir": {}}]}),
        ),
        &[json!({"readOnlyRootFilesystem": true}), json!({})],
    );
    manifest["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "scratch", "mountPath": "/scratch"}]);
    create(server, &ns, &manifest);
    wait_ready(server, &ns, "locked");

    for path in ["/note", "/tmp/note"] {
        let err = refused(server, &ns, "locked", "locked", &format!("echo x > {path}"));
        assert!(err.contains("Read-only file system"), "{path}: {err}");
    }
    let written = succeeds(
        server,
        &ns,
        "locked",
        "locked",
        "echo kept > /scratch/note && cat /scratch/note",
    );
    assert_eq!(written, "kept\n");
    succeeds(server, &ns, "locked", "open", "echo x > /note && cat /note");
}

#[test]
fn containers_run_as_the_user_and_group_their_security_context_names() {
    let server = node_server();
    let ns = server.namespace("run-as");
    let manifest = with_security(
        pod(
            "users",
            "Always",
            &[("pod-wide", "exec sleep 3600"), ("own", "exec sleep 3600")],
            json!({"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": true}}),
        ),
        &[json!({}), json!({"runAsUser": 2000})],
    );
    create(server, &ns, &manifest);
    wait_ready(server, &ns, "users");

    let ids = "echo $(id -u) $(id -g); stat -c '%u %g' /proc/1";
    assert_eq!(
        succeeds(server, &ns, "users", "pod-wide", ids),
        "1000 3000\n1000 3000\n"
    );
    assert_eq!(
        succeeds(server, &ns, "users", "own", ids),
        "2000 3000\n2000 3000\n"
    );
    let err = refused(server, &ns, "users", "own", "echo x > /root/note");
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn run_as_non_root_refuses_a_container_that_would_run_as_root() {
    let server = node_server();
    let ns = server.namespace("non-root");
    // The busybox image names no user: it runs as root.
    let image_root = with_security(
        pod(
            "image-root",
            "Always",
            &[("main", "exec sleep 3600")],
            json!({}),
        ),
        &[json!({"runAsNonRoot": true})],
    );
    let explicit_root = with_security(
        pod(
            "explicit-root",
            "Always",
            &[("main", "exec sleep 3600")],
            json!({"securityContext": {"runAsNonRoot": true}}),
        ),
        &[json!({"runAsUser": 0})],
    );
    create(server, &ns, &image_root);
    create(server, &ns, &explicit_root);

    for (name, refusal) in [
        (
            "image-root",
            "container has runAsNonRoot and image will run as root",
        ),
        (
            "explicit-root",
            "container's runAsUser breaks non-root policy",
        ),
    ] {
        let pod = wait_pod(server, &ns, name, "CreateContainerConfigError", |p| {
            container(p, "main")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        });
        let uid = pod["metadata"]["uid"].as_str().expect("uid");
        // The kubelet's words, naming the pod as `name_namespace(uid)`.
        let expected = format!("{refusal} (pod: \"{name}_{ns}({uid})\", container: main)");
        assert_eq!(
            container(&pod, "main")["state"]["waiting"]["message"],
            expected.as_str()
        );
        assert_eq!(pod["status"]["phase"], "Pending");
        let events = server.event_messages(&ns, name, "Failed");
        assert!(events.contains(&format!("Error: {expected}")), "{events:?}");
    }
}

#[test]
fn capabilities_and_privilege_escalation_change_what_a_container_may_do() {
    let server = node_server();
    let ns = server.namespace("capabilities");
    let manifest = with_security(
        pod(
            "caps",
            "Always",
            &[
                ("default", "exec sleep 3600"),
                ("net-admin", "exec sleep 3600"),
                ("no-raw", "exec sleep 3600"),
                ("no-escalation", "exec sleep 3600"),
            ],
            json!({}),
        ),
        &[
            json!({}),
            json!({"capabilities": {"add": ["NET_ADMIN"]}}),
            json!({"capabilities": {"drop": ["NET_RAW"]}}),
            json!({"allowPrivilegeEscalation": false}),
        ],
    );
    create(server, &ns, &manifest);
    wait_ready(server, &ns, "caps");

    let link = |name: &str| format!("ip link add {name} type bridge && ip -o link show {name}");
    let err = refused(server, &ns, "caps", "default", &link("tug-default"));
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(succeeds(server, &ns, "caps", "net-admin", &link("tug-admin")).contains("tug-admin"));

    let ping = "ping -c 1 -W 2 127.0.0.1";
    assert!(succeeds(server, &ns, "caps", "default", ping).contains("1 packets received"));
    let err = refused(server, &ns, "caps", "no-raw", ping);
    assert!(err.contains("permission denied"), "{err}");

    // allowPrivilegeEscalation: false is the no_new_privs bit on the container's process.
    let no_new_privs = "grep NoNewPrivs /proc/1/status";
    assert_eq!(
        succeeds(server, &ns, "caps", "default", no_new_privs),
        "NoNewPrivs:\t0\n"
    );
    assert_eq!(
        succeeds(server, &ns, "caps", "no-escalation", no_new_privs),
        "NoNewPrivs:\t1\n"
    );
}
