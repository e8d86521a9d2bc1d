//! Pod sandboxes: the namespaces a pod's containers share, kept as
//! bind-mounted namespace files (as `ip netns add` does) so that they live
//! on while containers come and go, without a pause process.
//!
//! A shared PID namespace is the exception: it dies with its init, so the
//! sandbox starts a tiny one (`tug shim pause`) to hold it.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::statfs::NSFS_MAGIC;
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::spec::{Sandbox, SandboxSpec};
use crate::{cgroup, rootfs};

const SANDBOX_FILE: &str = "sandbox.json";
const PAUSE_PID_FILE: &str = "pause.pid";
const NAMESPACES: [&str; 4] = ["net", "ipc", "uts", "pid"];

/// Makes the pod's namespaces under `dir`; a sandbox that already exists
/// there is returned as it is.
pub(crate) fn create(dir: &Path, spec: &SandboxSpec, shim: &mut Command) -> Result<Sandbox> {
    if let Ok(existing) = load(dir) {
        return Ok(existing);
    }
    if dir.exists() {
        // What a reboot (namespace files naming nothing) or a failed
        // create left behind.
        remove(dir, &spec.pod_uid)?;
    }
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let own_network = !spec.host_network;
    let result = hold_namespaces(dir, own_network, &spec.hostname)
        .context(|| format!("making the namespaces of pod {}", spec.pod_uid))
        .and_then(|()| {
            if spec.share_process_namespace {
                hold_pid_namespace(dir, shim)?;
            }
            Ok(())
        });
    if let Err(err) = result {
        // Leave nothing half made behind.
        let _ = remove(dir, &spec.pod_uid);
        return Err(err);
    }
    let sandbox = Sandbox {
        pod_uid: spec.pod_uid.clone(),
        hostname: spec.hostname.clone(),
        netns_path: own_network.then(|| dir.join("net")),
        ipcns_path: dir.join("ipc"),
        utsns_path: own_network.then(|| dir.join("uts")),
        pidns_path: spec.share_process_namespace.then(|| dir.join("pid")),
    };
    let json = serde_json::to_vec(&sandbox).map_err(io::Error::other);
    json.and_then(|json| std::fs::write(dir.join(SANDBOX_FILE), json))
        .context(|| format!("recording sandbox {}", dir.display()))?;
    Ok(sandbox)
}

/// The sandbox recorded in `dir`, if its namespaces still exist (after a
/// reboot its files are there but name nothing).
pub(crate) fn load(dir: &Path) -> Result<Sandbox> {
    let not_found = || Error::SandboxNotFound(dir.display().to_string());
    let bytes = std::fs::read(dir.join(SANDBOX_FILE)).map_err(|_| not_found())?;
    let sandbox: Sandbox = serde_json::from_slice(&bytes)
        .map_err(io::Error::other)
        .context(|| format!("reading {}", dir.display()))?;
    if !names_namespace(&sandbox.ipcns_path) {
        return Err(not_found());
    }
    Ok(sandbox)
}

fn names_namespace(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

/// The PID namespace's init, if the recorded pid still is it (a pid read
/// after a reboot may be anybody's).
fn pid_holder(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join(PAUSE_PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let named = std::fs::metadata(dir.join("pid")).ok()?;
    let its = std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?;
    (names_namespace(&dir.join("pid")) && named.ino() == its.ino()).then_some(pid)
}

/// Ends the PID namespace's init, detaches the namespace files and removes
/// the pod's cgroup and directory. Whatever is already gone is skipped.
pub(crate) fn remove(dir: &Path, pod_uid: &str) -> Result<()> {
    if let Some(pid) = pid_holder(dir) {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => return Err(err).context(|| format!("ending the PID holder {pid}")),
        }
    }
    for name in NAMESPACES {
        let path = dir.join(name);
        rootfs::unmount(&path).context(|| format!("unmounting {}", path.display()))?;
    }
    cgroup::remove(&cgroup::pod_path(pod_uid)).map_err(|message| Error::Io {
        context: format!("removing the cgroup of pod {pod_uid}"),
        source: io::Error::other(message),
    })?;
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Unshares the namespaces on a thread of its own (namespaces other than
/// the mount namespace are per thread), names them with bind mounts, and
/// lets the thread end: the agent's own threads never move.
fn hold_namespaces(dir: &Path, own_network: bool, hostname: &str) -> io::Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut flags = CloneFlags::CLONE_NEWIPC;
                if own_network {
                    flags |= CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWUTS;
                }
                nix::sched::unshare(flags)?;
                let mut kinds = vec!["ipc"];
                if own_network {
                    nix::unistd::sethostname(hostname)?;
                    loopback_up()?;
                    kinds.extend(["net", "uts"]);
                }
                for kind in kinds {
                    bind(
                        Path::new(&format!("/proc/thread-self/ns/{kind}")),
                        &dir.join(kind),
                    )?;
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")))
    })
}

fn bind(namespace: &Path, target: &Path) -> io::Result<()> {
    File::create(target)?;
    nix::mount::mount(
        Some(namespace),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    Ok(())
}

/// Brings up `lo` in the calling thread's network namespace, so that a
/// pod's containers reach each other on 127.0.0.1 even before CNI runs.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket(2); the descriptor is owned right away.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `socket` is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(socket) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write `request`, which
    // outlives both calls.
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts the PID namespace's init (`tug shim pause`) and names its
/// namespace `<dir>/pid`.
fn hold_pid_namespace(dir: &Path, shim: &mut Command) -> Result<()> {
    let mut child = shim
        .arg("pause")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context(|| "starting the PID namespace holder".to_owned())?;
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    BufReader::new(stdout)
        .read_line(&mut line)
        .context(|| "reading the PID namespace holder's pid".to_owned())?;
    child
        .wait()
        .context(|| "waiting for the PID namespace holder".to_owned())?;
    let pid: i32 = line.trim().parse().map_err(|_| Error::Io {
        context: "starting the PID namespace holder".to_owned(),
        source: io::Error::other(format!("it answered {line:?}")),
    })?;
    std::fs::write(dir.join(PAUSE_PID_FILE), pid.to_string())
        .context(|| format!("recording the PID holder in {}", dir.display()))?;
    bind(
        &PathBuf::from(format!("/proc/{pid}/ns/pid")),
        &dir.join("pid"),
    )
    .context(|| format!("naming the PID namespace of {pid}"))
}
