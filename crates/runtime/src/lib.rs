//! Tugboat's container runtime: pod sandboxes and the containers in them,
//! behind a CRI-shaped interface the node agent drives.
//!
//! ```text
//! let runtime = Runtime::open(data_dir.join("runtime"))?;
//! let sandbox = runtime.create_sandbox(&SandboxSpec { pod_uid, hostname, .. })?;
//! // CNI sets up sandbox.netns_path here (host-network pods have none).
//! let id = runtime.create_container(&sandbox, &ContainerSpec { rootfs_lowers, args, .. })?;
//! runtime.start_container(&id)?;
//! runtime.container_status(&id)?.state     // Created | Running | Exited
//! runtime.exec(&id, vec!["hostname".into()], false)?.wait()?;
//! runtime.attach_stdin(&id)?               // when the spec asked for stdin
//! runtime.container_stats(&id)?            // CPU, memory, processes
//! runtime.stop_container(&id, grace)?;     // SIGTERM, grace, SIGKILL
//! runtime.remove_container(&id)?;
//! runtime.remove_sandbox(&pod_uid)?;        // also removes the pod's containers
//! runtime.list_containers()?               // what a restarted agent adopts
//! ```
//!
//! Every call is synchronous and quick except `stop_container` (up to the
//! grace period); an async caller runs them on a blocking thread.
//!
//! ## How it works
//!
//! - A sandbox (module `sandbox`) is the pod's network, IPC and UTS namespaces as
//!   bind-mounted namespace files under `<root>/sandboxes/<pod uid>/`, made
//!   on a throwaway thread, and, for `shareProcessNamespace`, a PID namespace
//!   held by a tiny init (`tug shim pause`).
//! - A container lives in `<root>/containers/<id>/`: `container.json` (its
//!   [`ContainerSpec`]), `config.json` (the OCI bundle, see `oci`), its
//!   overlay root under `rootfs/`, libcontainer's state under `state/`, and
//!   `status.json` (`status`).
//! - Starting a container runs `tug shim run <dir>` ([`shim`]): the same
//!   binary, re-executed, single-threaded, detached from the agent. It creates
//!   and starts the container with youki's libcontainer, copies its output
//!   into the CRI log (`log`), waits for it and records its end. The agent
//!   itself never forks, and containers outlive it: a new [`Runtime`] on the
//!   same root finds them all again.
//! - `exec` runs `tug shim exec`, which adds a process to the container with
//!   the container's own user, working directory and capabilities; with a
//!   terminal, the process gets one of its own in the container and the
//!   shim relays it to a raw pseudo-terminal of the agent's ([`ExecSession`]).
//!   `tty: true` containers get their terminal the same way, from their init.
//! - Cgroups (`cgroup`) are `/tugboat/pod<uid>/<id>`, managed by
//!   libcgroups, which uses cgroup v1 on hybrid hosts (v2 without
//!   controllers) and v2 on unified ones; an OOM kill is read from the
//!   memory controller when the container ends.
//!
//! Privileged containers get every capability, the host's devices (all
//! allowed by their device cgroup), a writable `/sys` and no masked paths.
//!
//! Not done here: seccomp (libcontainer's `libseccomp` feature is off, so
//! a `RuntimeDefault` profile is not applied), user namespaces and cgroup
//! namespaces.

mod cgroup;
mod error;
mod exec;
mod log;
mod oci;
mod process;
mod rootfs;
mod sandbox;
pub mod shim;
mod spec;
mod status;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use exec::ExecSession;
pub use spec::{ContainerSpec, LogRotation, Mount, Resources, Sandbox, SandboxSpec, Security};
pub use status::{ContainerState, ExitReason};

use error::Context;

const CONTAINER_FILE: &str = "container.json";
const SHIM_PID_FILE: &str = "shim.pid";
/// The boot a container was started in (`/proc/sys/kernel/random/boot_id`).
const BOOT_FILE: &str = "boot_id";
/// libcontainer's own state directory, inside the container's.
const STATE_DIR: &str = "state";
const STDIN_FIFO: &str = "stdin";

/// How long to wait for a container that got SIGKILL to be reaped and recorded.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// A container's id: 32 hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container as `list_containers` and `container_status` report it.
#[derive(Clone, Debug)]
pub struct ContainerStatus {
    pub id: ContainerId,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub log_path: PathBuf,
    pub state: ContainerState,
}

/// What a running container uses, from its cgroup (for `/stats/summary`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// CPU time used since the container started, in nanoseconds.
    pub cpu_usage_nanos: u64,
    pub memory_usage_bytes: u64,
    pub memory_working_set_bytes: u64,
    pub processes: u64,
}

/// The runtime of one node, rooted in a directory of its own.
pub struct Runtime {
    root: PathBuf,
    /// The binary that runs shims: this one, as the kernel knows it, so that
    /// an upgrade on disk does not change what a running agent starts.
    shim_binary: PathBuf,
}

impl Runtime {
    pub fn open(root: PathBuf) -> Result<Self> {
        for dir in ["containers", "sandboxes"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).context(|| format!("creating {}", path.display()))?;
        }
        // Shims work from their container's directory: paths must not
        // depend on the agent's.
        let root = root
            .canonicalize()
            .context(|| format!("resolving {}", root.display()))?;
        Ok(Self {
            root,
            shim_binary: PathBuf::from("/proc/self/exe"),
        })
    }

    fn sandbox_dir(&self, pod_uid: &str) -> PathBuf {
        self.root.join("sandboxes").join(pod_uid)
    }

    fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join("containers").join(&id.0)
    }

    pub fn create_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox> {
        sandbox::create(
            &self.sandbox_dir(&spec.pod_uid),
            spec,
            &mut shim::command(&self.shim_binary),
        )
    }

    /// The sandbox of a pod, as made by an earlier `create_sandbox` (possibly
    /// by an agent that has restarted since).
    pub fn sandbox(&self, pod_uid: &str) -> Result<Sandbox> {
        sandbox::load(&self.sandbox_dir(pod_uid))
    }

    /// Removes the pod's containers (killing those still running), its
    /// namespaces, cgroup and files. Removing it again does nothing.
    pub fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        for container in self.list_containers()? {
            if container.pod_uid == pod_uid {
                self.remove_container(&container.id)?;
            }
        }
        sandbox::remove(&self.sandbox_dir(pod_uid), pod_uid)
    }

    /// Prepares a container: its overlay root and OCI bundle. Nothing runs
    /// until [`Runtime::start_container`].
    pub fn create_container(&self, sandbox: &Sandbox, spec: &ContainerSpec) -> Result<ContainerId> {
        let id = ContainerId(uuid::Uuid::new_v4().simple().to_string());
        let dir = self.container_dir(&id);
        let prepared = self.prepare(&id, &dir, sandbox, spec);
        if prepared.is_err() {
            let _ = self.remove_container(&id);
        }
        prepared.map(|()| id)
    }

    fn prepare(
        &self,
        id: &ContainerId,
        dir: &Path,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<()> {
        std::fs::create_dir_all(dir.join(STATE_DIR))
            .context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_vec_pretty(spec).map_err(io::Error::other);
        json.and_then(|json| std::fs::write(dir.join(CONTAINER_FILE), json))
            .context(|| format!("writing {}", dir.join(CONTAINER_FILE).display()))?;
        let rootfs = rootfs::mount_overlay(&spec.rootfs_lowers, &dir.join("rootfs"))
            .context(|| format!("mounting the root filesystem of {}", spec.name))?;
        let cgroups_path = cgroup::container_path(&spec.pod_uid, &id.0);
        oci::runtime_spec(sandbox, spec, &rootfs, &cgroups_path)?.save(dir.join("config.json"))?;
        Ok(())
    }

    /// Starts the container's shim and returns once the container's process
    /// runs (or could not be started: bad command, bad image...).
    pub fn start_container(&self, id: &ContainerId) -> Result<()> {
        let dir = self.container_dir(id);
        match status::read(&dir) {
            Ok(ContainerState::Created) => {}
            Ok(state) => return Err(wrong_state(id, &state)),
            Err(_) => return Err(Error::ContainerNotFound(id.0.clone())),
        }
        let boot = process::boot_id().context(|| "reading the boot id".to_owned())?;
        std::fs::write(dir.join(BOOT_FILE), boot)
            .context(|| format!("writing {}", dir.join(BOOT_FILE).display()))?;
        let shim_log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(shim::log_file(&dir))
            .context(|| format!("opening {}", shim::log_file(&dir).display()))?;
        let mut shim = shim::command(&self.shim_binary)
            .arg("run")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .spawn()
            .context(|| "starting the shim".to_owned())?;
        let mut answer = String::new();
        let stdout = shim.stdout.take().expect("stdout is piped");
        BufReader::new(stdout)
            .read_line(&mut answer)
            .context(|| "reading the shim's answer".to_owned())?;
        shim.wait().context(|| "waiting for the shim".to_owned())?;
        if answer.starts_with("started ") {
            return Ok(());
        }
        let message = match answer.trim().strip_prefix("error: ") {
            Some(message) => message.to_owned(),
            None => format!(
                "the shim ended without an answer; see {}",
                shim::log_file(&dir).display()
            ),
        };
        Err(Error::Start {
            id: id.0.clone(),
            message,
        })
    }

    /// Sends SIGTERM to the container's init, and SIGKILL to all of its
    /// processes if it has not ended after `grace`; returns once its end is
    /// recorded. Stopping a container that is not running does nothing.
    pub fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let dir = self.container_dir(id);
        let status = self.container_status(id)?;
        let ContainerState::Running { pid, .. } = status.state else {
            return Ok(());
        };
        let watched = Self::shim_pid(&dir).filter(|&shim| process::alive(shim));
        let watched = watched.unwrap_or(pid);
        if !grace.is_zero() {
            process::signal(pid, Signal::SIGTERM);
            if process::wait_gone(watched, grace) {
                return Ok(());
            }
        }
        let cgroup = cgroup::container_path(&status.pod_uid, &id.0);
        for process in cgroup::pids(&cgroup).into_iter().chain([pid]) {
            process::signal(process, Signal::SIGKILL);
        }
        process::wait_gone(watched, KILL_TIMEOUT);
        Ok(())
    }

    /// Removes a container, killing it first if it still runs. Removing it
    /// again does nothing. Its log file stays: logs belong to the agent.
    pub fn remove_container(&self, id: &ContainerId) -> Result<()> {
        let dir = self.container_dir(id);
        if !dir.exists() {
            return Ok(());
        }
        if let Ok(status) = self.container_status(id) {
            self.stop_container(id, Duration::ZERO)?;
            // A shim that was killed leaves its cgroup behind.
            cgroup::remove(&cgroup::container_path(&status.pod_uid, &id.0)).map_err(|message| {
                Error::Io {
                    context: format!("removing the cgroup of {id}"),
                    source: io::Error::other(message),
                }
            })?;
        }
        let merged = dir.join("rootfs").join("merged");
        rootfs::unmount(&merged).context(|| format!("unmounting {}", merged.display()))?;
        match std::fs::remove_dir_all(&dir) {
            // Removed meanwhile by another caller: removal is idempotent.
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            result => result.context(|| format!("removing {}", dir.display())),
        }
    }

    pub fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        let dir = self.container_dir(id);
        let spec: ContainerSpec = std::fs::read(dir.join(CONTAINER_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| Error::ContainerNotFound(id.0.clone()))?;
        let mut state = status::read(&dir).context(|| format!("reading the status of {id}"))?;
        if let ContainerState::Running { pid, started_at } = state {
            // Pids recorded before a reboot may be anybody's now.
            let same_boot = std::fs::read_to_string(dir.join(BOOT_FILE))
                .is_ok_and(|boot| process::boot_id().is_ok_and(|now| now == boot));
            let shim_alive = Self::shim_pid(&dir).is_some_and(process::alive);
            let ended = if !same_boot {
                Some("the node restarted while it ran")
            } else if !shim_alive && !process::alive(pid) {
                Some("its shim ended without recording the exit")
            } else {
                None
            };
            if let Some(message) = ended {
                state = ContainerState::Exited {
                    exit_code: 255,
                    reason: ExitReason::Error,
                    message: Some(message.to_owned()),
                    started_at: Some(started_at),
                    finished_at: jiff::Timestamp::now(),
                };
            }
        }
        Ok(ContainerStatus {
            id: id.clone(),
            pod_uid: spec.pod_uid,
            name: spec.name,
            attempt: spec.attempt,
            log_path: spec.log_path,
            state,
        })
    }

    /// The resource use of a running container.
    pub fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        let status = self.container_status(id)?;
        if !matches!(status.state, ContainerState::Running { .. }) {
            return Err(wrong_state(id, &status.state));
        }
        cgroup::stats(&cgroup::container_path(&status.pod_uid, &id.0)).map_err(|message| {
            Error::Io {
                context: format!("reading the cgroup of {id}"),
                source: io::Error::other(message),
            }
        })
    }

    /// Every container under the root, whatever its state: after a restart,
    /// the agent adopts the ones of its pods and removes the others.
    pub fn list_containers(&self) -> Result<Vec<ContainerStatus>> {
        let dir = self.root.join("containers");
        let entries = std::fs::read_dir(&dir).context(|| format!("listing {}", dir.display()))?;
        let mut containers = Vec::new();
        for entry in entries {
            let entry = entry.context(|| format!("listing {}", dir.display()))?;
            let id = ContainerId(entry.file_name().to_string_lossy().into_owned());
            match self.container_status(&id) {
                Ok(status) => containers.push(status),
                // Half made by a create that failed mid-way: nothing to adopt.
                Err(Error::ContainerNotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(containers)
    }

    /// Runs `command` in the running container, with a pseudo-terminal when
    /// `tty` is set (its output then comes on stdout only).
    pub fn exec(&self, id: &ContainerId, command: Vec<String>, tty: bool) -> Result<ExecSession> {
        let status = self.container_status(id)?;
        if !matches!(status.state, ContainerState::Running { .. }) {
            return Err(wrong_state(id, &status.state));
        }
        let mut shim = shim::command(&self.shim_binary);
        shim.arg("exec")
            .arg(self.container_dir(id))
            .arg("--")
            .args(command);
        ExecSession::spawn(shim, tty)
    }

    /// The running container's stdin, for writing, when its spec asked
    /// for one (`stdin: true`); what is written reaches its terminal when it
    /// has one.
    pub fn attach_stdin(&self, id: &ContainerId) -> Result<File> {
        let fifo = self.container_dir(id).join(STDIN_FIFO);
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .context(|| format!("opening {}", fifo.display()))
            .and_then(|file| {
                // Non-blocking only to fail at once when no shim reads.
                let blocking = nix::fcntl::fcntl(
                    file.as_raw_fd(),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
                );
                blocking
                    .map(|_| file)
                    .context(|| format!("opening {}", fifo.display()))
            })
    }

    fn shim_pid(dir: &Path) -> Option<i32> {
        std::fs::read_to_string(dir.join(SHIM_PID_FILE))
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }
}

fn wrong_state(id: &ContainerId, state: &ContainerState) -> Error {
    Error::WrongState {
        id: id.0.clone(),
        state: match state {
            ContainerState::Created => "created",
            ContainerState::Running { .. } => "running",
            ContainerState::Exited { .. } => "exited",
        },
    }
}
