//! The node agent's Node and Lease: `tug server` registers its own node,
//! `tug agent` joins another, and both keep their lease fresh.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, arg, node_name, shared_server};
use serde_json::Value;

fn node_json(server: &Server, name: &str) -> Value {
    let out = server.kubectl(&["get", "node", name, "-o", "json"]).ok();
    serde_json::from_str(&out).expect("kubectl -o json prints JSON")
}

/// Waits, as a user would, for the node to say it is Ready.
fn wait_ready(server: &Server, name: &str) {
    let node = format!("node/{name}");
    server
        .kubectl(&["wait", "--for=condition=Ready", &node, "--timeout=60s"])
        .ok();
}

fn condition<'a>(node: &'a Value, kind: &str) -> &'a Value {
    node["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {node}"))
}

#[test]
fn the_server_registers_its_own_node_ready_with_the_machines_capacity() {
    let server = shared_server();
    let name = node_name();
    wait_ready(server, &name);
    let node = node_json(server, &name);
    for (kind, status) in [
        ("Ready", "True"),
        ("MemoryPressure", "False"),
        ("PIDPressure", "False"),
    ] {
        assert_eq!(condition(&node, kind)["status"], status, "{kind}");
    }
    // Disk pressure is `nodefs.available<1%`, the threshold the harness
    // gives: whatever df says of the file system holding the node's state.
    let df = Command::new("df")
        .args(["--output=size,avail", "-B1"])
        .arg(server.data_dir())
        .output()
        .expect("df");
    let df = String::from_utf8_lossy(&df.stdout).into_owned();
    let sizes: Vec<u64> = df
        .lines()
        .nth(1)
        .expect("df's figures")
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect();
    let pressed = if sizes[1] * 100 < sizes[0] * common::DISK_FREE_MIN_PERCENT {
        "True"
    } else {
        "False"
    };
    assert_eq!(condition(&node, "DiskPressure")["status"], pressed, "{df}");
    // What the threshold names is kept from pods.
    let kept = sizes[0] * common::DISK_FREE_MIN_PERCENT / 100;
    assert_eq!(
        node["status"]["allocatable"]["ephemeral-storage"],
        (sizes[0] - kept).to_string(),
        "{df}"
    );
    let nproc = Command::new("nproc").arg("--all").output().expect("nproc");
    let cpus = String::from_utf8_lossy(&nproc.stdout).trim().to_owned();
    assert_eq!(node["status"]["capacity"]["cpu"], cpus.as_str());
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let total_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| v.trim().trim_end_matches(" kB").to_owned())
        .expect("MemTotal");
    assert_eq!(
        node["status"]["capacity"]["memory"],
        format!("{total_kib}Ki")
    );
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        name.as_str()
    );
    assert_eq!(node["status"]["nodeInfo"]["operatingSystem"], "linux");

    let wide = server.kubectl(&["get", "nodes", "-o", "wide"]).ok();
    let line = wide
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .expect("our node in `get nodes`");
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns[1], "Ready", "{wide}");
    assert_eq!(columns[2], "control-plane", "{wide}");
    let uname = Command::new("uname").arg("-r").output().expect("uname -r");
    assert!(
        line.contains(String::from_utf8_lossy(&uname.stdout).trim()),
        "kernel version in {wide}"
    );
}

#[test]
fn eviction_thresholds_decide_pressure_and_what_pods_may_have() {
    // More memory than any machine has must be free: memory pressure at
    // once, and no memory left for pods. The disk and PID signals, left
    // out, have no threshold, as with the kubelet's flag.
    let server = Server::start_with(&[
        "--disable-scheduler",
        "--disable-proxy",
        "--eviction-hard",
        "memory.available<1Pi",
    ]);
    let name = node_name();
    wait_ready(&server, &name);
    let node = node_json(&server, &name);
    let pressure = condition(&node, "MemoryPressure");
    assert_eq!(pressure["status"], "True", "{pressure}");
    assert_eq!(pressure["reason"], "KubeletHasInsufficientMemory");
    assert_eq!(condition(&node, "DiskPressure")["status"], "False");
    assert_eq!(condition(&node, "PIDPressure")["status"], "False");
    assert_eq!(node["status"]["allocatable"]["memory"], "0Ki");
    assert_eq!(
        node["status"]["allocatable"]["ephemeral-storage"],
        node["status"]["capacity"]["ephemeral-storage"]
            .as_str()
            .and_then(|ki| ki.strip_suffix("Ki")?.parse::<u64>().ok())
            .map(|ki| (ki * 1024).to_string())
            .expect("capacity in Ki")
    );
    common::eventually("the memory-pressure taint", || {
        let taints = node_json(&server, &name)["spec"]["taints"].clone();
        taints
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["key"] == "node.kubernetes.io/memory-pressure" && t["effect"] == "NoSchedule"
            })
            .then_some(())
            .ok_or(taints.to_string())
    });
}

#[test]
fn a_bad_eviction_threshold_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (value, error) in [
        (
            "imagefs.available<15%",
            "unsupported eviction signal imagefs.available",
        ),
        (
            "nodefs.available<101%",
            "eviction percentage threshold nodefs.available must be <= 100%: 101%",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tug"))
            .args([
                "server",
                "--data-dir",
                arg(dir.path()),
                "--eviction-hard",
                value,
            ])
            .output()
            .expect("run tug server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(error), "{stderr}");
        assert!(stderr.contains("--eviction-hard"), "{stderr}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "nothing written"
    );
}

#[test]
fn the_node_lists_its_images_with_their_names_and_sizes() {
    let server = shared_server();
    let name = node_name();
    wait_ready(server, &name);
    server.import_image("busybox.oci.tar");
    let busybox = common::eventually("busybox in the node's status.images", || {
        let images = node_json(server, &name)["status"]["images"].clone();
        images
            .as_array()
            .into_iter()
            .flatten()
            .find(|image| {
                image["names"]
                    .as_array()
                    .is_some_and(|names| names.iter().any(|n| n == "tugboat.test/busybox:latest"))
            })
            .cloned()
            .ok_or(images.to_string())
    });
    let size = busybox["sizeBytes"].as_i64().unwrap_or_default();
    // busybox-static is about a megabyte, compressed.
    assert!((100_000..100_000_000).contains(&size), "{busybox}");
}

#[test]
fn the_node_lease_is_held_and_renewed() {
    let server = shared_server();
    let name = node_name();
    wait_ready(server, &name);
    let renew_time = || {
        let lease = server.get_json("kube-node-lease", "lease", &name);
        assert_eq!(lease["spec"]["holderIdentity"], name.as_str());
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
        lease["spec"]["renewTime"]
            .as_str()
            .expect("renewTime")
            .to_owned()
    };
    let first = renew_time();
    let deadline = Instant::now() + Duration::from_secs(60);
    while renew_time() == first {
        assert!(
            Instant::now() < deadline,
            "the lease was not renewed in 60 s"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A `tug agent`; killed when dropped.
/// A `tug agent` and its agent dir: stopped, then cleared with `tug killall`
/// (pods, mounts, the service proxy's nftables table), when dropped.
struct Agent(Child, tempfile::TempDir);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = Command::new(env!("CARGO_BIN_EXE_tug"))
            .args(["killall", "--agent-dir", arg(self.1.path())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn tug_agent_joins_a_server_that_runs_no_node_of_its_own() {
    let server = Server::start_with(&["--disable-agent"]);
    assert_eq!(server.kubectl(&["get", "nodes", "-o", "name"]).ok(), "");
    let dir = tempfile::tempdir().expect("temp dir");
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_tug"))
            .args(["agent", "--kubeconfig"])
            .arg(server.kubeconfig())
            .args(["--node-name", "edge-1", "--node-label", "tier=edge"])
            .args(["--agent-dir", arg(dir.path())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tug agent"),
        dir,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.kubectl(&["get", "node", "edge-1"]).status.success() {
        assert!(Instant::now() < deadline, "tug agent never registered");
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_ready(&server, "edge-1");
    let node = node_json(&server, "edge-1");
    assert_eq!(node["metadata"]["labels"]["tier"], "edge");
    assert!(
        node["metadata"]["labels"]
            .get("node-role.kubernetes.io/control-plane")
            .is_none()
    );
    assert_eq!(server.names(&["get", "nodes"]), ["node/edge-1"]);
}
