//! The end-to-end harness: starts the real `tug server` on a temporary data
//! dir and a free port, and drives it with the real `kubectl`.
//!
//! Every test binary compiles this module but uses only part of it.
#![allow(dead_code)]

pub mod nodes;
pub mod pods;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
pub const KUBECTL_1_27: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";

/// How long a server may take to become ready, and a watch to show a line.
/// Generous because debug builds on two shared cores are slow; a healthy
/// run never waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// The free disk share below which a test server's node reports
/// DiskPressure. The kubelet's 10 % would make the test's outcome hang on how
/// full the machine's disk is (statvfs counts the whole disk, others' files
/// too): under pressure the node is tainted and every pod stays Pending.
pub const DISK_FREE_MIN_PERCENT: u64 = 1;

/// The checked-in manifests under `tests/manifests` at the repository root.
pub fn manifest(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/manifests")
        .join(relative);
    assert!(path.exists(), "missing test manifest {}", path.display());
    path
}

/// A running `tug server`; killed (SIGKILL) when dropped.
pub struct Server {
    /// Holds the data dir, the server log and kubectl's discovery cache.
    root: TempDir,
    port: u16,
    /// Flags added to `tug server` on every start.
    extra_args: Vec<String>,
    running: Option<Running>,
}

/// One run of the server process, with its watchdog.
///
/// The watchdog is a small `sh` that waits for a line on its stdin. The test
/// process holds the other end; when the test binary exits without dropping
/// the server (a server kept in a `static`, which Rust never drops) the pipe
/// closes and the watchdog kills the server and removes the temp dir.
struct Running {
    server: Child,
    watchdog: Child,
    orders: ChildStdin,
}

/// What the watchdog does when told the test has reaped the server itself.
/// Before the data dir goes, `tug killall` ($2) stops the containers of the
/// server's node and unmounts what its pods had.
const WATCHDOG: &str = r#"read order
case "$order" in
  keep) ;;
  reaped) "$2" killall --agent-dir "$1/data/agent" >/dev/null 2>&1; rm -rf "$1" ;;
  *) kill -9 "$0"; "$2" killall --agent-dir "$1/data/agent" >/dev/null 2>&1; rm -rf "$1" ;;
esac"#;

impl Server {
    /// Starts a server on a fresh data dir and waits until it is ready.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra `tug server` flags.
    pub fn start_with(extra_args: &[&str]) -> Server {
        let root = tempfile::Builder::new()
            .prefix("tug-e2e-")
            .tempdir()
            .expect("temp dir");
        let mut server = Server {
            root,
            port: free_port(),
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            running: None,
        };
        server.spawn();
        let line = format!("kubeconfig: {}", server.kubeconfig().display());
        assert!(
            server.log().contains(&line),
            "the server did not print `{line}`; log:\n{}",
            server.log()
        );
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("admin.kubeconfig")
    }

    /// A `kube` client with the admin credentials, made on the calling
    /// test's runtime.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("read kubeconfig");
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("kubeconfig to config");
        kube::Client::try_from(config).expect("client")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the server printed so far (all its runs).
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// Kills the server with SIGKILL, as a crash would, keeping its data dir.
    pub fn kill(&mut self) {
        self.stop(b"keep\n");
    }

    /// Kills the server with SIGKILL and starts it again on the same data
    /// dir and port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Kills and reaps the server, then hands `order` to its watchdog.
    fn stop(&mut self, order: &[u8]) {
        if let Some(mut running) = self.running.take() {
            let _ = running.server.kill();
            let _ = running.server.wait();
            let _ = running.orders.write_all(order);
            drop(running.orders);
            let _ = running.watchdog.wait();
        }
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.root.path().join("server.log"))
            .expect("server log");
        let server = Command::new(env!("CARGO_BIN_EXE_tug"))
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind-address")
            .arg("127.0.0.1")
            .args(self.eviction_hard())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("server log"))
            .stderr(log)
            .spawn()
            .expect("start tug server");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(server.id().to_string())
            .arg(self.root.path())
            .arg(env!("CARGO_BIN_EXE_tug"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server watchdog");
        let orders = watchdog.stdin.take().expect("watchdog stdin");
        self.running = Some(Running {
            server,
            watchdog,
            orders,
        });
        self.wait_ready();
    }

    /// The thresholds flag, unless the test gives its own: `tug server`'s
    /// defaults but for the disk's (`DISK_FREE_MIN_PERCENT`).
    fn eviction_hard(&self) -> Vec<String> {
        if self
            .extra_args
            .iter()
            .any(|a| a.starts_with("--eviction-hard"))
        {
            return Vec::new();
        }
        let thresholds = format!(
            "memory.available<100Mi,nodefs.available<{DISK_FREE_MIN_PERCENT}%,pid.available<10%"
        );
        vec!["--eviction-hard".to_owned(), thresholds]
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(running) = &mut self.running
                && let Ok(Some(status)) = running.server.try_wait()
            {
                panic!("tug server exited ({status}); log:\n{}", self.log());
            }
            if self.kubeconfig().exists() {
                let ready = self.kubectl(&["get", "--raw", "/readyz"]);
                if ready.status.success() && ready.stdout.trim() == "ok" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "tug server on port {} not ready; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs kubectl 1.33 against this server.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        self.kubectl_with(KUBECTL, args, None)
    }

    /// Runs kubectl 1.33 with `input` on its stdin (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Run {
        self.kubectl_with(KUBECTL, args, Some(input))
    }

    /// Runs the given kubectl binary against this server.
    pub fn kubectl_with(&self, binary: &str, args: &[&str], input: Option<&str>) -> Run {
        let mut child = self
            .kubectl_command(binary, args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("kubectl stdin");
            stdin
                .write_all(input.as_bytes())
                .expect("write kubectl stdin");
        }
        let output = child.wait_with_output().expect("wait for kubectl");
        Run::new(args, output)
    }

    /// Starts a long-running kubectl (`get -w`) whose stdout lines can be awaited.
    pub fn kubectl_background(&self, args: &[&str]) -> Background {
        let mut child = self
            .kubectl_command(KUBECTL, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kubectl");
        let stdout = child.stdout.take().expect("kubectl stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Background {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn kubectl_command(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.root.path().join("kube-cache"))
            .args(args);
        command
    }

    /// Creates a namespace for one test and returns its name.
    pub fn namespace(&self, name: &str) -> String {
        let manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
        self.kubectl_stdin(&["apply", "-f", "-"], &manifest).ok();
        name.to_owned()
    }

    /// `kubectl get KIND NAME -n NS -o json`, parsed.
    pub fn get_json(&self, namespace: &str, kind: &str, name: &str) -> serde_json::Value {
        let out = self
            .kubectl(&["get", kind, name, "-n", namespace, "-o", "json"])
            .ok();
        serde_json::from_str(&out).expect("kubectl -o json prints JSON")
    }

    /// `kubectl apply -n NS -f -` of one object.
    pub fn apply_json(&self, namespace: &str, object: &serde_json::Value) {
        self.kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], &object.to_string())
            .ok();
    }

    /// The items of `kubectl get KIND -n NS -o json`.
    pub fn list_json(&self, namespace: &str, kind: &str) -> Vec<serde_json::Value> {
        let out = self
            .kubectl(&["get", kind, "-n", namespace, "-o", "json"])
            .ok();
        let list: serde_json::Value =
            serde_json::from_str(&out).expect("kubectl -o json prints JSON");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The events about `object` with `reason`.
    pub fn events_about(
        &self,
        namespace: &str,
        object: &str,
        reason: &str,
    ) -> Vec<serde_json::Value> {
        let selector = format!("involvedObject.name={object},reason={reason}");
        let out = self
            .kubectl(&[
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                &selector,
                "-o",
                "json",
            ])
            .ok();
        let events: serde_json::Value = serde_json::from_str(&out).expect("events as JSON");
        events["items"].as_array().cloned().unwrap_or_default()
    }

    /// The messages of the events about `object` with `reason`.
    pub fn event_messages(&self, namespace: &str, object: &str, reason: &str) -> Vec<String> {
        self.events_about(namespace, object, reason)
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// How many times events about `object` with `reason` were recorded:
    /// the sum of their counts, as an event recorded again is counted in
    /// the Event already written.
    pub fn event_count(&self, namespace: &str, object: &str, reason: &str) -> i64 {
        self.events_about(namespace, object, reason)
            .iter()
            .map(|e| e["count"].as_i64().unwrap_or(1))
            .sum()
    }

    /// Writes `status` (merged) into the status of `kind/name`, as the
    /// object's controller or kubelet would: `kubectl patch
    /// --subresource=status`. `namespace` is `None` for nodes.
    pub fn patch_status(
        &self,
        namespace: Option<&str>,
        kind: &str,
        name: &str,
        status: &serde_json::Value,
    ) -> Run {
        let patch = serde_json::json!({ "status": status }).to_string();
        let mut args = vec!["patch", kind, name];
        if let Some(namespace) = namespace {
            args.extend(["-n", namespace]);
        }
        args.extend(["--subresource=status", "--type=merge", "-p", &patch]);
        self.kubectl(&args)
    }

    /// The names (`kind/name`) kubectl lists for `args`, sorted.
    pub fn names(&self, args: &[&str]) -> Vec<String> {
        let mut full = args.to_vec();
        full.extend(["-o", "name"]);
        let mut names: Vec<String> = self
            .kubectl(&full)
            .ok()
            .lines()
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// Asserts that `kind/name` does not exist in `namespace`.
    pub fn assert_absent(&self, namespace: &str, kind: &str, name: &str) {
        let run = self.kubectl(&["get", kind, name, "-n", namespace]);
        let err = run.fails();
        assert!(
            err.contains("NotFound") && err.contains("not found"),
            "expected {kind} {name} to be absent in {namespace}, got: {err}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(b"reaped\n");
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// One finished kubectl invocation.
pub struct Run {
    pub command: String,
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn new(args: &[&str], output: Output) -> Run {
        Run {
            command: format!("kubectl {}", args.join(" ")),
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert!(
            self.status.success(),
            "`{}` failed ({}):\nstdout: {}\nstderr: {}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Asserts failure (exit code 1, as kubectl reports errors) and returns stderr.
    pub fn fails(self) -> String {
        assert_eq!(
            self.status.code(),
            Some(1),
            "`{}` should have failed:\nstdout: {}\nstderr: {}",
            self.command,
            self.stdout,
            self.stderr
        );
        self.stderr
    }
}

/// A long-running kubectl; killed when dropped.
pub struct Background {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    /// Waits for the next stdout line matching `wanted` and returns it.
    pub fn expect_line(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "kubectl never printed the expected line; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whitespace-separated columns of each line of a kubectl table.
pub fn table(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The row of a kubectl table whose first column is `name`.
pub fn row<'a>(table: &'a [Vec<String>], name: &str) -> &'a [String] {
    table
        .iter()
        .find(|r| r.first().is_some_and(|c| c == name))
        .unwrap_or_else(|| panic!("no row {name} in {table:?}"))
}

/// Writes `contents` to a fresh temp file named `name` and returns its dir guard and path.
pub fn temp_manifest(name: &str, contents: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    fs::write(&path, contents).expect("write manifest");
    (dir, path)
}

/// Converts a path to the `&str` kubectl takes.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// One server shared by all tests of a test binary; tests keep apart by
/// working in namespaces of their own. Its pods are API objects under test,
/// not workloads: no scheduler places them, so they stay Pending as made.
pub fn shared_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start_with(&["--disable-scheduler", "--disable-proxy"]))
}

/// One server per test binary that is also a node, with the test images
/// (busybox and httpd) on it: its pods really run.
pub fn node_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = Server::start();
        server.import_image("busybox.oci.tar");
        server.import_image("httpd.oci.tar");
        server
    })
}

/// One server per test binary with scheduler and controllers but no node
/// (`--disable-agent`): pods are placed and counted but never run.
pub fn nodeless_server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start_with(&["--disable-agent"]))
}

/// A Pod manifest with one nginx container and the given labels.
pub fn pod_manifest(name: &str, labels: &[(&str, &str)]) -> String {
    let mut yaml = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n");
    if !labels.is_empty() {
        yaml.push_str("  labels:\n");
        for (key, value) in labels {
            yaml.push_str(&format!("    {key}: \"{value}\"\n"));
        }
    }
    yaml.push_str("spec:\n  containers:\n  - name: app\n    image: nginx:1.25\n");
    yaml
}

/// Whether the whitespace-separated columns of `line` begin with `wanted`.
pub fn starts_with_columns(line: &str, wanted: &[&str]) -> bool {
    let columns: Vec<&str> = line.split_whitespace().collect();
    columns.starts_with(wanted)
}

/// The OCI archives of the test images (`scripts/build-test-images`), made
/// once per test binary: `busybox.oci.tar`, `httpd.oci.tar`.
pub fn test_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = workspace.join("target/test-images");
        let status = Command::new(workspace.join("scripts/build-test-images"))
            .arg(&dir)
            .status()
            .expect("run scripts/build-test-images");
        assert!(status.success(), "scripts/build-test-images failed");
        dir
    })
}

/// An apps/v1 Deployment `name` of `replicas` pods running `pod_spec`,
/// selected and labelled `app: <name>`.
pub fn deployment(name: &str, replicas: i32, pod_spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    })
}

/// A Deployment of `replicas` busybox httpd pods labelled `app: <name>`,
/// each serving its host name on port 8080 (named `web`) and ready as the
/// `readiness` probe (checked every second) says; `/tmp/ready` is there
/// from the start for an exec probe to test, and for a test to take away.
pub fn httpd_deployment(
    name: &str,
    replicas: i32,
    mut readiness: serde_json::Value,
) -> serde_json::Value {
    readiness["periodSeconds"] = serde_json::json!(1);
    let serve = "mkdir -p /www; hostname > /www/index.html; touch /tmp/ready; \
                 exec httpd -f -p 8080 -h /www";
    let pod = serde_json::json!({
        "terminationGracePeriodSeconds": 2,
        "containers": [{
            "name": "app",
            "image": pods::HTTPD,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", serve],
            "ports": [{"name": "web", "containerPort": 8080}],
            "readinessProbe": readiness,
        }],
    });
    deployment(name, replicas, pod)
}

/// `object` with the fields of `extra` (a JSON object) put into its spec,
/// replacing those it had.
pub fn with_spec(mut object: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(spec), serde_json::Value::Object(extra)) = (object["spec"].as_object_mut(), extra)
    {
        spec.extend(extra);
    }
    object
}

/// The node name `tug server` gives its own node: the host name.
pub fn node_name() -> String {
    let out = Command::new("uname").arg("-n").output().expect("uname -n");
    String::from_utf8_lossy(&out.stdout).trim().to_lowercase()
}

/// Polls `check` until it returns `Ok`, failing with `what` (and the last
/// thing seen) after the harness's patience.
pub fn eventually<T>(what: &str, check: impl FnMut() -> Result<T, String>) -> T {
    eventually_within(PATIENCE, what, check)
}

/// [`eventually`] with a patience of its own, for what Kubernetes itself
/// takes long to do.
pub fn eventually_within<T>(
    patience: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + patience;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if Instant::now() > deadline => panic!("{what}; last seen: {seen}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

impl Server {
    /// Puts a test image (an archive in [`test_images`]) into the image store
    /// of the server's own node, as `tug images import` does for a user.
    pub fn import_image(&self, archive: &str) {
        let output = Command::new(env!("CARGO_BIN_EXE_tug"))
            .args(["images", "import", "--root"])
            .arg(self.data_dir().join("agent/images"))
            .arg(test_images().join(archive))
            .output()
            .expect("run tug images import");
        assert!(
            output.status.success(),
            "tug images import {archive}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
