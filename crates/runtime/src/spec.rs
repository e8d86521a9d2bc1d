//! What the agent asks for: a pod sandbox and the containers in it, in the
//! terms of the CRI rather than of the OCI runtime spec (see `oci` for that).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The shared part of a pod: its network, IPC and UTS namespaces (and a PID
/// namespace when the pod shares one between its containers).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SandboxSpec {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    pub hostname: String,
    /// The pod uses the host's network and UTS namespaces (`hostNetwork: true`).
    pub host_network: bool,
    /// `shareProcessNamespace: true`: a PID namespace the containers that ask
    /// for it join, held by a tiny init process of the sandbox.
    pub share_process_namespace: bool,
}

/// A sandbox that exists: the namespace files containers join.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sandbox {
    pub pod_uid: String,
    pub hostname: String,
    /// The pod's network namespace for CNI; `None` for host-network pods.
    pub netns_path: Option<PathBuf>,
    pub ipcns_path: PathBuf,
    /// `None` for host-network pods, which keep the host's name.
    pub utsns_path: Option<PathBuf>,
    /// The shared PID namespace, when the pod asked for one.
    pub pidns_path: Option<PathBuf>,
}

/// One container of a pod, as the agent resolved it from the pod spec and the
/// image config.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub pod_uid: String,
    pub name: String,
    /// How many times this container was created before (the CRI attempt).
    pub attempt: u32,
    /// Unpacked image layers, bottom first: the overlay's lower directories.
    pub rootfs_lowers: Vec<PathBuf>,
    /// The whole command line: entrypoint and arguments already merged.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// uid and gid; `None` runs as root.
    pub user: Option<(u32, u32)>,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub security: Security,
    pub tty: bool,
    /// Keep stdin open: the shim holds a FIFO (`stdin` in the container's
    /// directory) the agent writes to.
    pub stdin: bool,
    /// The CRI-format log file the shim writes stdout and stderr to.
    pub log_path: PathBuf,
    pub log_rotation: LogRotation,
    pub share_pid_with_sandbox: bool,
}

/// A bind mount into the container.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// Cgroup limits; `None` leaves a resource unlimited.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Resources {
    /// CPU limit in millicores (cfs quota over a 100 ms period).
    pub cpu_quota_millis: Option<u64>,
    /// Relative CPU weight (cgroup v1 shares, 2 to 262144).
    pub cpu_shares: Option<u64>,
    pub memory_limit_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// The container's `securityContext`, already resolved.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Security {
    pub privileged: bool,
    pub read_only_rootfs: bool,
    /// Capability names without the `CAP_` prefix, as Kubernetes writes them.
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub no_new_privileges: bool,
}

/// When the shim starts a new log file: the current one is renamed to
/// `<log>.1` (older ones shift up) once it passes `max_size_bytes`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogRotation {
    pub max_size_bytes: u64,
    /// Files kept, the current one included.
    pub max_files: u32,
}

impl Default for LogRotation {
    /// The kubelet's defaults (`containerLogMaxSize`, `containerLogMaxFiles`).
    fn default() -> Self {
        Self {
            max_size_bytes: 10 << 20,
            max_files: 5,
        }
    }
}
