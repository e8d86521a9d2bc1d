//! The runtime against the real kernel: namespaces, cgroups, overlayfs and
//! libcontainer, as root, with a busybox root filesystem.
//!
//! This binary is its own shim, as `tug` is: the runtime re-executes
//! `/proc/self/exe shim ...`, and `main` hands those calls to
//! `tugboat_runtime::shim::main` before anything else. So it has no libtest
//! harness; `main` runs the tests in order (an argument filters them by name).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tugboat_runtime::{
    ContainerId, ContainerSpec, ContainerState, ExitReason, Resources, Runtime, Sandbox,
    SandboxSpec, Security,
};

type Test = (&'static str, fn(&Fixture));

/// Each test by its name.
macro_rules! tests {
    ($($test:ident),* $(,)?) => {
        &[$((stringify!($test), $test as fn(&Fixture))),*]
    };
}

const TESTS: &[Test] = tests![
    stdout_and_stderr_land_in_the_cri_log,
    exit_codes_and_reasons,
    env_args_working_dir_and_user,
    a_bad_command_is_a_start_error,
    containers_of_a_pod_share_hostname_and_loopback,
    host_network_pods_use_the_host_network,
    shared_process_namespace,
    memory_limit_is_oom_killed,
    limits_and_security_apply,
    stop_sends_sigterm_then_sigkill,
    exec_runs_in_the_container,
    stdin_and_terminal,
    a_new_runtime_adopts_running_containers,
    a_sandbox_lost_in_a_reboot_is_made_again,
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("shim") {
        std::process::exit(tugboat_runtime::shim::main(&args[2..]));
    }
    let filter = args.iter().skip(1).find(|arg| !arg.starts_with('-'));
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests make namespaces, cgroups and mounts: run them as root"
    );
    let fixture = Fixture::new();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in TESTS {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        match std::panic::catch_unwind(|| test(&fixture)) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    println!("\n{} passed, {} failed", ran - failed.len(), failed.len());
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
    root: PathBuf,
    logs: PathBuf,
    runtime: Runtime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("busybox");
        busybox_rootfs(&rootfs);
        let root = dir.path().join("runtime");
        let runtime = Runtime::open(root.clone()).unwrap();
        Self {
            rootfs,
            logs: dir.path().join("logs"),
            root,
            runtime,
            _dir: dir,
        }
    }

    fn sandbox(&self, spec: SandboxSpec) -> Pod<'_> {
        let sandbox = self.runtime.create_sandbox(&spec).unwrap();
        Pod {
            fixture: self,
            sandbox,
        }
    }

    fn pod(&self, hostname: &str) -> Pod<'_> {
        self.sandbox(SandboxSpec {
            pod_uid: uuid(),
            namespace: "default".into(),
            name: hostname.into(),
            hostname: hostname.into(),
            ..SandboxSpec::default()
        })
    }
}

/// One sandbox; dropping it removes it and checks that nothing is left.
struct Pod<'a> {
    fixture: &'a Fixture,
    sandbox: Sandbox,
}

impl Pod<'_> {
    fn spec(&self, name: &str, args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            pod_uid: self.sandbox.pod_uid.clone(),
            name: name.into(),
            rootfs_lowers: vec![self.fixture.rootfs.clone()],
            args: args.iter().map(|s| s.to_string()).collect(),
            log_path: self
                .fixture
                .logs
                .join(&self.sandbox.pod_uid)
                .join(format!("{name}.log")),
            ..ContainerSpec::default()
        }
    }

    fn start(&self, spec: &ContainerSpec) -> ContainerId {
        let runtime = &self.fixture.runtime;
        let id = runtime.create_container(&self.sandbox, spec).unwrap();
        assert_eq!(
            runtime.container_status(&id).unwrap().state,
            ContainerState::Created
        );
        if let Err(err) = runtime.start_container(&id) {
            let dir = self.fixture.root.join("containers").join(&id.0);
            let shim_log = std::fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            panic!("{err}\nshim.log:\n{shim_log}");
        }
        id
    }

    fn run(&self, name: &str, args: &[&str]) -> (ContainerState, Vec<(String, String)>) {
        let spec = self.spec(name, args);
        let id = self.start(&spec);
        (self.wait_exited(&id), log_lines(&spec.log_path))
    }

    fn wait_exited(&self, id: &ContainerId) -> ContainerState {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self.fixture.runtime.container_status(id).unwrap().state;
            if matches!(state, ContainerState::Exited { .. }) {
                return state;
            }
            assert!(Instant::now() < deadline, "{id} still {state:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        let runtime = &self.fixture.runtime;
        let uid = &self.sandbox.pod_uid;
        runtime.remove_sandbox(uid).unwrap();
        runtime.remove_sandbox(uid).unwrap();
        if !std::thread::panicking() {
            assert_nothing_left(&self.fixture.root, uid);
        }
    }
}

/// No mount under the runtime's root, no cgroup, no namespace file, no
/// process of the pod remains.
fn assert_nothing_left(root: &Path, pod_uid: &str) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = root.to_str().unwrap();
    let mounts: Vec<_> = mountinfo.lines().filter(|l| l.contains(root)).collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:#?}");
    let cgroup = format!("tugboat/pod{pod_uid}");
    for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
        let path = controller.unwrap().path().join(&cgroup);
        assert!(!path.exists(), "cgroup left: {}", path.display());
    }
    assert!(
        !Path::new(root).join("sandboxes").join(pod_uid).exists(),
        "sandbox directory left"
    );
    for entry in std::fs::read_dir("/proc").unwrap() {
        let path = entry.unwrap().path().join("cgroup");
        if let Ok(cgroups) = std::fs::read_to_string(&path) {
            assert!(
                !cgroups.contains(&cgroup),
                "process left: {}",
                path.display()
            );
        }
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Debian's static busybox with a link per applet, and the directories
/// a container expects.
fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for sub in ["proc", "sys", "dev", "tmp", "etc", "www"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("apt-get install busybox-static");
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}

/// (stream, content) of each CRI log line, checking the format on the way.
fn log_lines(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let time = parts.next().unwrap();
            assert!(time.parse::<jiff::Timestamp>().is_ok(), "bad time: {line}");
            let stream = parts.next().unwrap().to_owned();
            assert_eq!(parts.next(), Some("F"), "{line}");
            (stream, parts.next().unwrap_or("").to_owned())
        })
        .collect()
}

fn stdout_of(lines: &[(String, String)]) -> Vec<&str> {
    lines
        .iter()
        .filter(|(stream, _)| stream == "stdout")
        .map(|(_, line)| line.as_str())
        .collect()
}

fn exit_of(state: &ContainerState) -> (i32, ExitReason) {
    match state {
        ContainerState::Exited {
            exit_code, reason, ..
        } => (*exit_code, *reason),
        other => panic!("not exited: {other:?}"),
    }
}

fn stdout_and_stderr_land_in_the_cri_log(f: &Fixture) {
    let pod = f.pod("logs");
    let (_, lines) = pod.run(
        "talker",
        &["sh", "-c", "echo hello; echo oops >&2; printf 'no newline'"],
    );
    assert_eq!(stdout_of(&lines), ["hello", "no newline"]);
    // Only the container's own output: none of the runtime's log lines.
    let stderr: Vec<_> = lines.iter().filter(|(s, _)| s == "stderr").collect();
    assert_eq!(stderr, [&("stderr".to_owned(), "oops".to_owned())]);
}

fn exit_codes_and_reasons(f: &Fixture) {
    let pod = f.pod("exits");
    let (ok, _) = pod.run("ok", &["true"]);
    assert_eq!(exit_of(&ok), (0, ExitReason::Completed));
    let (failed, _) = pod.run("failed", &["sh", "-c", "exit 3"]);
    assert_eq!(exit_of(&failed), (3, ExitReason::Error));
    let ContainerState::Exited {
        started_at: Some(started),
        finished_at,
        ..
    } = failed
    else {
        panic!("no start time: {failed:?}");
    };
    assert!(started <= finished_at);
}

fn env_args_working_dir_and_user(f: &Fixture) {
    let pod = f.pod("env");
    let mut spec = pod.spec(
        "env",
        &[
            "sh",
            "-c",
            "echo \"$GREETING $1\"; pwd; id -u; id -g",
            "sh",
            "world",
        ],
    );
    spec.env = vec![("GREETING".into(), "hello".into())];
    spec.working_dir = Some("/tmp".into());
    spec.user = Some((1000, 2000));
    let id = pod.start(&spec);
    assert_eq!(exit_of(&pod.wait_exited(&id)).0, 0);
    let lines = log_lines(&spec.log_path);
    assert_eq!(stdout_of(&lines), ["hello world", "/tmp", "1000", "2000"]);

    // No signal the shim (or the agent) ignores stays ignored in the
    // container: SIGPIPE above all, which Rust programs ignore.
    let (_, lines) = pod.run("signals", &["grep", "SigIgn", "/proc/self/status"]);
    assert_eq!(stdout_of(&lines), ["SigIgn:\t0000000000000000"]);
}

fn a_bad_command_is_a_start_error(f: &Fixture) {
    let pod = f.pod("bad");
    let spec = pod.spec("bad", &["/no/such/command"]);
    let id = f.runtime.create_container(&pod.sandbox, &spec).unwrap();
    let err = f.runtime.start_container(&id).unwrap_err();
    assert!(matches!(err, tugboat_runtime::Error::Start { .. }), "{err}");
    let state = f.runtime.container_status(&id).unwrap().state;
    assert_eq!(exit_of(&state).1, ExitReason::StartError);
}

fn containers_of_a_pod_share_hostname_and_loopback(f: &Fixture) {
    let pod = f.pod("chatty-pod");
    let server = pod.spec("server", &["nc", "-l", "-p", "8080", "-e", "hostname"]);
    let server_id = pod.start(&server);
    let (client, lines) = pod.run(
        "client",
        &[
            "sh",
            "-c",
            "hostname; until nc 127.0.0.1 8080; do sleep 0.1; done",
        ],
    );
    assert_eq!(exit_of(&client).0, 0);
    assert_eq!(stdout_of(&lines), ["chatty-pod", "chatty-pod"]);
    assert_eq!(exit_of(&pod.wait_exited(&server_id)).0, 0);
}

fn host_network_pods_use_the_host_network(f: &Fixture) {
    let pod = f.sandbox(SandboxSpec {
        pod_uid: uuid(),
        hostname: "ignored".into(),
        host_network: true,
        ..SandboxSpec::default()
    });
    assert!(pod.sandbox.netns_path.is_none());
    let (_, lines) = pod.run(
        "host",
        &["sh", "-c", "hostname; readlink /proc/self/ns/net"],
    );
    let host_name = nix::unistd::gethostname().unwrap();
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(
        stdout_of(&lines),
        [host_name.to_str().unwrap(), host_net.to_str().unwrap()]
    );
}

fn shared_process_namespace(f: &Fixture) {
    let pod = f.sandbox(SandboxSpec {
        pod_uid: uuid(),
        hostname: "shared".into(),
        share_process_namespace: true,
        ..SandboxSpec::default()
    });
    let mut sleeper = pod.spec("sleeper", &["sleep", "1000"]);
    sleeper.share_pid_with_sandbox = true;
    pod.start(&sleeper);
    let mut looker = pod.spec("looker", &["ps", "-o", "args"]);
    looker.share_pid_with_sandbox = true;
    let id = pod.start(&looker);
    pod.wait_exited(&id);
    let lines = log_lines(&looker.log_path);
    assert!(stdout_of(&lines).contains(&"sleep 1000"), "{lines:?}");
}

fn memory_limit_is_oom_killed(f: &Fixture) {
    let pod = f.pod("hungry");
    let mut spec = pod.spec("hungry", &["tail", "/dev/zero"]);
    spec.resources.memory_limit_bytes = Some(32 << 20);
    let id = pod.start(&spec);
    let state = pod.wait_exited(&id);
    assert_eq!(exit_of(&state), (137, ExitReason::OOMKilled));
}

fn limits_and_security_apply(f: &Fixture) {
    let pod = f.pod("limited");
    let mut spec = pod.spec(
        "limited",
        &[
            "sh",
            "-c",
            "touch /written && echo writable; chown 1 /tmp && echo chowned; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null; sleep 1000",
        ],
    );
    spec.resources = Resources {
        cpu_quota_millis: Some(500),
        cpu_shares: Some(512),
        memory_limit_bytes: Some(64 << 20),
        pids_limit: Some(42),
    };
    spec.security = Security {
        read_only_rootfs: true,
        capabilities_drop: vec!["CHOWN".into()],
        ..Security::default()
    };
    let id = pod.start(&spec);
    let cgroup = format!("tugboat/pod{}/{id}", pod.sandbox.pod_uid);
    let read = |file: &str| {
        std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(file))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(read(&format!("pids/{cgroup}/pids.max")), "42");
    assert_eq!(read(&format!("cpu/{cgroup}/cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&format!("cpu/{cgroup}/cpu.shares")), "512");
    assert_eq!(
        read(&format!("memory/{cgroup}/memory.limit_in_bytes")),
        (64 << 20).to_string()
    );
    let stats = f.runtime.container_stats(&id).unwrap();
    assert!(stats.memory_working_set_bytes > 0, "{stats:?}");
    assert!(stats.memory_usage_bytes >= stats.memory_working_set_bytes);
    assert!(stats.cpu_usage_nanos > 0, "{stats:?}");
    assert!(stats.processes >= 1, "{stats:?}");
    f.runtime.stop_container(&id, Duration::ZERO).unwrap();
    let lines = log_lines(&spec.log_path);
    let out = stdout_of(&lines);
    assert!(!out.contains(&"writable"), "{lines:?}");
    assert!(!out.contains(&"chowned"), "{lines:?}");
}

fn stop_sends_sigterm_then_sigkill(f: &Fixture) {
    let pod = f.pod("stopping");
    let polite = pod.spec(
        "polite",
        &[
            "sh",
            "-c",
            "trap 'echo terminated; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ],
    );
    let id = pod.start(&polite);
    wait_for_line(&polite.log_path, "ready");
    f.runtime
        .stop_container(&id, Duration::from_secs(60))
        .unwrap();
    let state = f.runtime.container_status(&id).unwrap().state;
    assert_eq!(exit_of(&state), (0, ExitReason::Completed));
    assert!(stdout_of(&log_lines(&polite.log_path)).contains(&"terminated"));

    // An init without a SIGTERM handler never sees the signal.
    let stubborn = pod.spec("stubborn", &["sleep", "1000"]);
    let id = pod.start(&stubborn);
    f.runtime
        .stop_container(&id, Duration::from_millis(300))
        .unwrap();
    let state = f.runtime.container_status(&id).unwrap().state;
    assert_eq!(exit_of(&state), (137, ExitReason::Error));
}

fn wait_for_line(path: &Path, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stdout_of(&log_lines(path)).contains(&wanted) {
        assert!(
            Instant::now() < deadline,
            "no {wanted:?} in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exec_runs_in_the_container(f: &Fixture) {
    let pod = f.pod("exec-pod");
    let mut sleeper = pod.spec("sleeper", &["sleep", "1000"]);
    sleeper.user = Some((1000, 1000));
    sleeper.working_dir = Some("/tmp".into());
    let id = pod.start(&sleeper);
    let exec = |command: &str, tty: bool| {
        let argv = vec!["sh".to_owned(), "-c".to_owned(), command.to_owned()];
        f.runtime.exec(&id, argv, tty).unwrap()
    };

    let mut session = exec("hostname; id -u; pwd", false);
    let mut out = String::new();
    let mut stdout = session.stdout.take().unwrap();
    stdout.read_to_string(&mut out).unwrap();
    assert_eq!(session.wait().unwrap(), 0);
    assert_eq!(out, "exec-pod\n1000\n/tmp\n");

    let mut session = exec("read x; echo got $x; exit 7", false);
    session.stdin.take().unwrap().write_all(b"input\n").unwrap();
    let mut out = String::new();
    let mut stdout = session.stdout.take().unwrap();
    stdout.read_to_string(&mut out).unwrap();
    assert_eq!(session.wait().unwrap(), 7);
    assert_eq!(out, "got input\n");

    // With a terminal: its own in the container, which gets the resize.
    let mut session = exec("test -t 0 && read x && stty size", true);
    session.resize(120, 40).unwrap();
    session.stdin.take().unwrap().write_all(b"go\r").unwrap();
    let mut stdout = session.stdout.take().unwrap();
    assert_eq!(session.wait().unwrap(), 0);
    let mut out = vec![0u8; 256];
    let n = stdout.read(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out[..n]);
    assert!(out.contains("40 120"), "{out:?}");

    // A session given up (the client went away) hangs up its terminal,
    // which ends the command.
    let processes = || {
        let mut session = exec("ps -o args", false);
        let mut out = String::new();
        let mut stdout = session.stdout.take().unwrap();
        stdout.read_to_string(&mut out).unwrap();
        session.wait().unwrap();
        out
    };
    let wait_until = |wanted: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = processes();
            if wanted(&out) {
                break;
            }
            assert!(Instant::now() < deadline, "{out}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let abandoned = exec("sleep 999", true);
    wait_until(&|ps| ps.contains("sleep 999"));
    drop(abandoned);
    wait_until(&|ps| !ps.contains("sleep 999"));
}

fn a_new_runtime_adopts_running_containers(f: &Fixture) {
    let pod = f.pod("adopted");
    let mut spec = pod.spec("sleeper", &["sleep", "1000"]);
    spec.attempt = 2;
    let id = pod.start(&spec);
    let ContainerState::Running { pid, .. } = f.runtime.container_status(&id).unwrap().state else {
        panic!("not running");
    };
    let reopened = Runtime::open(f.root.clone()).unwrap();
    let listed = reopened.list_containers().unwrap();
    let found = listed.iter().find(|c| c.id == id).expect("listed");
    assert_eq!(
        (found.pod_uid.as_str(), found.name.as_str(), found.attempt),
        (pod.sandbox.pod_uid.as_str(), "sleeper", 2)
    );
    assert!(matches!(found.state, ContainerState::Running { pid: p, .. } if p == pid));
    assert_eq!(
        reopened.sandbox(&pod.sandbox.pod_uid).unwrap().netns_path,
        pod.sandbox.netns_path
    );

    // Recorded in another boot, its pid is nobody's to signal: it ended
    // with that boot.
    let boot_file = f.root.join("containers").join(&id.0).join("boot_id");
    let boot = std::fs::read_to_string(&boot_file).unwrap();
    std::fs::write(&boot_file, "another boot").unwrap();
    let state = reopened.container_status(&id).unwrap().state;
    assert_eq!(exit_of(&state), (255, ExitReason::Error));
    std::fs::write(&boot_file, boot).unwrap();
}

fn stdin_and_terminal(f: &Fixture) {
    let pod = f.pod("attached");
    let script = [
        "sh",
        "-c",
        "read line; echo got $line; test -t 1 && echo terminal; true",
    ];
    for tty in [false, true] {
        let mut spec = pod.spec(&format!("reader-{tty}"), &script);
        spec.stdin = true;
        spec.tty = tty;
        let id = pod.start(&spec);
        f.runtime
            .attach_stdin(&id)
            .unwrap()
            .write_all(b"hello\n")
            .unwrap();
        assert_eq!(exit_of(&pod.wait_exited(&id)).0, 0);
        // A terminal ends lines with CR LF and echoes the input.
        let lines = log_lines(&spec.log_path);
        let out: Vec<_> = stdout_of(&lines)
            .into_iter()
            .map(|line| line.trim_end_matches('\r'))
            .collect();
        if tty {
            assert_eq!(out, ["hello", "got hello", "terminal"]);
        } else {
            assert_eq!(out, ["got hello"]);
        }
    }
}

fn a_sandbox_lost_in_a_reboot_is_made_again(f: &Fixture) {
    let mut pod = f.sandbox(SandboxSpec {
        pod_uid: uuid(),
        hostname: "reborn".into(),
        share_process_namespace: true,
        ..SandboxSpec::default()
    });
    // A reboot takes the namespaces and the PID holder; the files stay.
    let dir = f.root.join("sandboxes").join(&pod.sandbox.pod_uid);
    let holder: i32 = std::fs::read_to_string(dir.join("pause.pid"))
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    for name in ["net", "ipc", "uts", "pid"] {
        nix::mount::umount(&dir.join(name)).unwrap();
    }
    assert!(f.runtime.sandbox(&pod.sandbox.pod_uid).is_err());
    let spec = SandboxSpec {
        pod_uid: pod.sandbox.pod_uid.clone(),
        hostname: "reborn".into(),
        share_process_namespace: true,
        ..SandboxSpec::default()
    };
    pod.sandbox = f.runtime.create_sandbox(&spec).unwrap();
    let (state, lines) = pod.run("after", &["hostname"]);
    assert_eq!(exit_of(&state).0, 0);
    assert_eq!(stdout_of(&lines), ["reborn"]);
}
