//! The kubelet API behind the API server, driven by the real kubectl:
//! `kubectl logs` (tail, timestamps, containers, previous runs, follow),
//! `kubectl exec` (output, exit codes, stdin, a real terminal) and node
//! stats through `nodes/proxy`, on pods that really run on the server's own
//! node.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::pods::{BUSYBOX, HTTPD};
use common::{KUBECTL, KUBECTL_1_27, Server, eventually, node_name, node_server};
use serde_json::{Value, json};

/// A container running `script` in busybox's sh.
fn sh(name: &str, script: &str) -> Value {
    json!({
        "name": name,
        "image": BUSYBOX,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
    })
}

/// Creates a pod on this node with `containers` and waits until all of them
/// have started once.
fn run_pod(server: &Server, namespace: &str, name: &str, containers: Vec<Value>) {
    let count = containers.len();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node_name(),
            "terminationGracePeriodSeconds": 1,
            "containers": containers,
        },
    });
    server
        .kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], &pod.to_string())
        .ok();
    eventually(&format!("pod {namespace}/{name} running"), || {
        let pod = server.get_json(namespace, "pod", name);
        let statuses = pod["status"]["containerStatuses"].as_array().cloned();
        let started = statuses.as_ref().is_some_and(|all| {
            all.len() == count
                && all.iter().all(|c| {
                    c["state"]["running"].is_object() || c["state"]["terminated"].is_object()
                })
        });
        if started {
            Ok(())
        } else {
            Err(pod["status"].to_string())
        }
    });
}

/// `kubectl logs ARGS` once its output has `wanted` (containers print
/// after they start).
fn logs_once(server: &Server, args: &[&str], wanted: &str) -> String {
    let mut full = vec!["logs"];
    full.extend_from_slice(args);
    eventually(
        &format!("kubectl logs {} shows {wanted:?}", args.join(" ")),
        || {
            let out = server.kubectl(&full).ok();
            if out.contains(wanted) {
                Ok(out)
            } else {
                Err(out)
            }
        },
    )
}

#[test]
fn logs_show_what_the_container_printed_with_tail_and_timestamps() {
    let server = node_server();
    let ns = server.namespace("logs");
    run_pod(
        server,
        &ns,
        "printer",
        vec![sh(
            "main",
            "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; echo done; sleep 3600",
        )],
    );
    let all = logs_once(server, &["printer", "-n", &ns], "done");
    let lines: Vec<&str> = all.lines().collect();
    // Each stream keeps its order; the two streams are copied apart.
    assert_eq!(
        lines
            .iter()
            .copied()
            .filter(|l| *l != "oops")
            .collect::<Vec<_>>(),
        ["line 1", "line 2", "line 3", "line 4", "line 5", "done"]
    );
    assert!(lines.contains(&"oops"), "stderr is in the logs too: {all}");

    let tail = server
        .kubectl(&["logs", "printer", "-n", &ns, "--tail", "2"])
        .ok();
    assert_eq!(tail.lines().collect::<Vec<_>>(), lines[lines.len() - 2..]);

    let stamped = server
        .kubectl(&["logs", "printer", "-n", &ns, "--timestamps", "--tail", "2"])
        .ok();
    let mut texts = Vec::new();
    for line in stamped.lines() {
        let (time, text) = line.split_once(' ').expect("a timestamp, then the line");
        // RFC 3339 in UTC with nanoseconds: 2026-01-02T03:04:05.123456789Z
        let rfc3339 = time.len() > 20
            && time.as_bytes()[10] == b'T'
            && time.ends_with('Z')
            && time[..4].parse::<u32>().is_ok();
        assert!(rfc3339, "{line}");
        texts.push(text);
    }
    assert_eq!(texts, lines[lines.len() - 2..]);

    let since = server
        .kubectl(&["logs", "printer", "-n", &ns, "--since", "1h"])
        .ok();
    assert_eq!(since, all);
}

#[test]
fn logs_of_one_container_among_several() {
    let server = node_server();
    let ns = server.namespace("logs-containers");
    run_pod(
        server,
        &ns,
        "pair",
        vec![
            sh("a", "echo from a; sleep 3600"),
            sh("b", "echo from b; sleep 3600"),
        ],
    );
    assert_eq!(
        logs_once(server, &["pair", "-n", &ns, "-c", "b"], "from b"),
        "from b\n"
    );
    assert_eq!(
        logs_once(server, &["pair", "-n", &ns, "-c", "a"], "from a"),
        "from a\n"
    );
    let err = server
        .kubectl(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/{ns}/pods/pair/log"),
        ])
        .fails();
    assert!(
        err.contains("a container name must be specified for pod pair, choose one of: [a b]"),
        "{err}"
    );
    let err = server
        .kubectl(&["logs", "pair", "-n", &ns, "-c", "nope"])
        .fails();
    assert!(
        err.contains("container nope is not valid for pod pair"),
        "{err}"
    );
    let err = server
        .kubectl(&["logs", "pair", "-n", &ns, "-c", "a", "--previous"])
        .fails();
    assert!(
        err.contains(r#"previous terminated container "a" in pod "pair" not found"#),
        "{err}"
    );
}

#[test]
fn logs_previous_show_the_run_before_a_restart() {
    let server = node_server();
    let ns = server.namespace("logs-previous");
    run_pod(
        server,
        &ns,
        "restarts",
        vec![sh("main", "echo run $(cat /proc/uptime); sleep 1; exit 1")],
    );
    eventually("the container restarted", || {
        let pod = server.get_json(&ns, "pod", "restarts");
        let count = pod["status"]["containerStatuses"][0]["restartCount"]
            .as_u64()
            .unwrap_or(0);
        if count >= 1 {
            Ok(())
        } else {
            Err(pod["status"].to_string())
        }
    });
    let latest = logs_once(server, &["restarts", "-n", &ns], "run ");
    let previous = logs_once(server, &["restarts", "-n", &ns, "--previous"], "run ");
    assert_eq!(previous.lines().count(), 1, "{previous}");
    assert_ne!(latest, previous, "two runs print two uptimes");
}

#[test]
fn logs_follow_streams_new_lines() {
    let server = node_server();
    let ns = server.namespace("logs-follow");
    run_pod(
        server,
        &ns,
        "ticker",
        vec![sh(
            "main",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done",
        )],
    );
    let mut follow = server.kubectl_background(&["logs", "-f", "ticker", "-n", &ns]);
    let first: u32 = follow
        .expect_line(|l| l.starts_with("tick "))
        .trim_start_matches("tick ")
        .parse()
        .expect("a tick number");
    let later = format!("tick {}", first + 3);
    follow.expect_line(|l| l == later);
}

#[test]
fn attach_shows_what_the_container_prints_from_then_on() {
    let server = node_server();
    let ns = server.namespace("attach");
    run_pod(
        server,
        &ns,
        "ticker",
        vec![sh(
            "main",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done",
        )],
    );
    let mut attached = server.kubectl_background(&["attach", "ticker", "-n", &ns]);
    let first: u32 = attached
        .expect_line(|l| l.starts_with("tick "))
        .trim_start_matches("tick ")
        .parse()
        .expect("a tick number");
    let later = format!("tick {}", first + 2);
    attached.expect_line(|l| l == later);
}

#[test]
fn exec_runs_commands_in_the_container_with_their_exit_code() {
    let server = node_server();
    let ns = server.namespace("exec");
    run_pod(server, &ns, "shell", vec![sh("main", "sleep 3600")]);
    let hostname = server
        .kubectl(&["exec", "shell", "-n", &ns, "--", "hostname"])
        .ok();
    assert_eq!(hostname, "shell\n");

    let failed = server.kubectl(&[
        "exec",
        "shell",
        "-n",
        &ns,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(failed.status.code(), Some(3), "{}", failed.stderr);
    assert_eq!(failed.stdout, "out\n");
    assert!(failed.stderr.starts_with("err\n"), "{}", failed.stderr);

    let echoed = server
        .kubectl_stdin(
            &[
                "exec",
                "-i",
                "shell",
                "-n",
                &ns,
                "--",
                "sh",
                "-c",
                "cat; echo end",
            ],
            "hello\nworld\n",
        )
        .ok();
    assert_eq!(echoed, "hello\nworld\nend\n");

    let missing = server.kubectl(&["exec", "shell", "-n", &ns, "--", "no-such-command"]);
    assert_ne!(missing.status.code(), Some(0));
}

#[test]
fn exec_with_an_older_kubectl_over_spdy() {
    let server = node_server();
    let ns = server.namespace("exec-spdy");
    run_pod(server, &ns, "old", vec![sh("main", "sleep 3600")]);
    // kubectl 1.27 to 1.29 exec over SPDY, not WebSocket.
    let hostname = server
        .kubectl_with(
            KUBECTL_1_27,
            &["exec", "old", "-n", &ns, "--", "hostname"],
            None,
        )
        .ok();
    assert_eq!(hostname, "old\n");
    let failed = server.kubectl_with(
        KUBECTL_1_27,
        &["exec", "old", "-n", &ns, "--", "sh", "-c", "exit 3"],
        None,
    );
    assert_eq!(failed.status.code(), Some(3), "{}", failed.stderr);
    let echoed = server
        .kubectl_with(
            KUBECTL_1_27,
            &[
                "exec",
                "-i",
                "old",
                "-n",
                &ns,
                "--",
                "sh",
                "-c",
                "cat; echo end",
            ],
            Some("hello\n"),
        )
        .ok();
    assert_eq!(echoed, "hello\nend\n");
}

#[test]
fn exec_with_a_terminal() {
    let server = node_server();
    let ns = server.namespace("exec-tty");
    run_pod(server, &ns, "term", vec![sh("main", "sleep 3600")]);
    // kubectl asks for a terminal only when its own stdin is one: `script`
    // runs it on a pseudo-terminal.
    let kubectl = format!(
        "{KUBECTL} --kubeconfig {} exec -it term -n {ns} -- sh -c 'tty; echo cols=$(stty size)'",
        server.kubeconfig().display()
    );
    let output = Command::new("script")
        .args(["-qfec", &kubectl, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("/dev/pts/"),
        "a terminal in the container: {printed}"
    );
    assert!(printed.contains("cols="), "{printed}");
}

#[test]
fn node_stats_through_the_api_server() {
    let server = node_server();
    let ns = server.namespace("stats");
    run_pod(server, &ns, "busy", vec![sh("main", "sleep 3600")]);
    let discovery = server.kubectl(&["get", "--raw", "/api/v1"]).ok();
    for sub in [
        "pods/log",
        "pods/exec",
        "pods/attach",
        "pods/portforward",
        "nodes/proxy",
    ] {
        assert!(
            discovery.contains(&format!("\"{sub}\"")),
            "{sub} in discovery"
        );
    }
    let path = format!("/api/v1/nodes/{}/proxy/stats/summary", node_name());
    let summary: Value =
        serde_json::from_str(&server.kubectl(&["get", "--raw", &path]).ok()).expect("JSON");
    assert_eq!(summary["node"]["nodeName"], node_name().as_str());
    let pod = summary["pods"]
        .as_array()
        .and_then(|pods| {
            pods.iter()
                .find(|p| p["podRef"]["namespace"] == ns.as_str() && p["podRef"]["name"] == "busy")
        })
        .unwrap_or_else(|| panic!("no pod busy in {summary}"));
    let main = &pod["containers"][0];
    assert_eq!(main["name"], "main");
    assert!(
        main["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{main}"
    );
    assert!(
        main["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0),
        "{main}"
    );
}

#[test]
fn port_forward_reaches_a_server_in_the_pod() {
    let server = node_server();
    let ns = server.namespace("port-forward");
    let web = json!({"name": "web", "image": HTTPD, "imagePullPolicy": "IfNotPresent"});
    run_pod(server, &ns, "web", vec![web]);
    // kubectl 1.33 tunnels SPDY in WebSocket; 1.27 speaks SPDY itself.
    for kubectl in [KUBECTL, KUBECTL_1_27] {
        let mut forward = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .args(["port-forward", "-n", &ns, "pod/web", ":8080"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubectl port-forward");
        // Kept open: kubectl dies writing to a closed pipe.
        let mut said = BufReader::new(forward.stdout.take().expect("kubectl stdout"));
        let mut first = String::new();
        said.read_line(&mut first)
            .expect("kubectl says where it listens");
        // Forwarding from 127.0.0.1:38417 -> 8080
        let port: u16 = first
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{kubectl}: a local port in {first:?}"));
        // Two connections in turn: each gets a stream pair of its own.
        for _ in 0..2 {
            let mut connection = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            connection
                .write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
                .expect("send a request");
            let mut answer = String::new();
            connection
                .read_to_string(&mut answer)
                .expect("read the answer");
            assert!(
                answer.starts_with("HTTP/1.") && answer.contains(" 200 "),
                "{kubectl}: {answer}"
            );
            assert!(answer.contains("Hello from tugboat.test/httpd"), "{answer}");
        }
        let _ = forward.kill();
        let _ = forward.wait();
    }
}
