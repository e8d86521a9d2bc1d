//! `tug shim`: the small single-threaded process that owns one container.
//!
//! The agent is multi-threaded and must never fork itself, so everything
//! that forks runs here, in a fresh process of the same binary:
//!
//! - `shim run <container dir>` creates and starts the container with
//!   libcontainer, tells the agent on stdout (`started <pid>` or
//!   `error: ...`), then stays to copy the container's stdout and stderr
//!   into its CRI log, waits for it to end, and records how it ended in
//!   `status.json` before it exits. It leaves the agent's session first, so
//!   that it and its container outlive an agent restart.
//! - `shim exec <container dir> -- <command>...` runs a command in the
//!   running container as its own process runs (user, working directory,
//!   capabilities), with this process's stdin, stdout and stderr, or with a
//!   terminal of its own in the container when stdin is a terminal; it
//!   exits with the command's exit code.
//! - `shim pause` is the init of a pod's shared PID namespace: it prints its
//!   pid and reaps orphans until it is killed.
//!
//! The binary calls [`main`] with the arguments after `shim` before it
//! starts any thread.

mod exec;
mod pause;
mod run;

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::error::LibcontainerError;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Runs one shim command; the return value is the process's exit code.
pub fn main(args: &[String]) -> i32 {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["run", dir] => {
            log_to(Path::new(dir));
            run::run(Path::new(dir))
        }
        ["exec", dir, "--", command @ ..] if !command.is_empty() => {
            log_to(Path::new(dir));
            exec::exec(
                Path::new(dir),
                command.iter().map(|s| s.to_string()).collect(),
            )
        }
        ["pause"] => pause::pause(),
        _ => {
            eprintln!("usage: shim run DIR | shim exec DIR -- COMMAND... | shim pause");
            2
        }
    }
}

/// Sends libcontainer's `tracing` events to `shim.log` in the container's
/// directory (`RUST_LOG` filters them). Never to stderr: the container's
/// init still logs after it has made the container's stdio its own.
fn log_to(dir: &Path) {
    let Ok(file) = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file(dir))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// libcontainer's builder for the container in `dir`, with our workload.
fn builder(dir: &Path) -> Result<ContainerBuilder, LibcontainerError> {
    ContainerBuilder::new(container_id(dir), SyscallType::default())
        .with_executor(Workload)
        .with_root_path(dir.join(crate::STATE_DIR))
}

/// libcontainer's own executor, after giving every signal back its default
/// action and unblocking them all: ignored signals stay ignored across exec,
/// and the shim's (Rust ignores SIGPIPE) or the agent's are no business of
/// the container's, where `yes | head -1` must end.
#[derive(Clone)]
struct Workload;

impl Executor for Workload {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        for signal in Signal::iterator() {
            if !matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
                // SAFETY: restoring the default action installs no handler.
                let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
            }
        }
        // The real-time signals, which libc's wrappers partly refuse to
        // touch: the kernel's sigaction for SIG_DFL, no flags and an empty
        // mask is all zeroes.
        let default = [0u64; 4];
        for signal in 32..=64 {
            // SAFETY: rt_sigaction reads `default`, which outlives the call,
            // and writes nothing back (null old action).
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    default.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
        }
        SigSet::empty()
            .thread_set_mask()
            .map_err(|err| ExecutorError::Other(format!("unblocking signals: {err}")))?;
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}

/// The container's id is the name of its directory.
fn container_id(dir: &Path) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Accepts the container init's connection and takes the terminal it sends
/// (one descriptor, in SCM_RIGHTS).
fn receive_terminal(listener: &UnixListener) -> io::Result<OwnedFd> {
    let (stream, _) = listener.accept()?;
    let mut name = [0u8; 64];
    let mut iov = [io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!(RawFd);
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for control in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = control
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just gave us this descriptor; nobody else has it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(io::Error::other("no terminal in the console message"))
}

/// The agent reads our stdout until the first line only; later writes must
/// not fail or block on a pipe nobody reads.
fn silence_stdout() {
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), io::stdout().as_raw_fd());
    }
}

/// Reaps every child that has ended; the init's exit code once it is among them.
fn reap(init: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, status)) if pid == init => code = Some(status),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == init => {
                code = Some(128 + signal as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

/// Blocks until `pid` ends, reaping any other child on the way.
fn wait_for(pid: Pid) -> i32 {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return code,
            Ok(WaitStatus::Signaled(p, signal, _)) if p == pid => return 128 + signal as i32,
            Err(Errno::EINTR) | Ok(_) => {}
            Err(_) => return 255,
        }
    }
}

/// The command line that runs a shim: this same binary with `shim` first.
pub(crate) fn command(binary: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(binary);
    command.arg("shim");
    command
}

/// Where a container's shim writes what it has to say.
pub(crate) fn log_file(dir: &Path) -> PathBuf {
    dir.join("shim.log")
}
