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
//!   running container with this process's stdin, stdout and stderr, and
//!   exits with the command's exit code.
//! - `shim pause` is the init of a pod's shared PID namespace: it prints its
//!   pid and reaps orphans until it is killed.
//!
//! The binary calls [`main`] with the arguments after `shim` before it
//! starts any thread.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::log::{LineSplitter, LogFile, Stream};
use crate::spec::ContainerSpec;
use crate::status::{self, ContainerState, ExitReason};
use crate::{CONTAINER_FILE, STATE_DIR, STDIN_FIFO, cgroup};

/// The socket a container's init sends its terminal to, in the container's directory.
const CONSOLE_SOCKET: &str = "console.sock";

/// Runs one shim command; the return value is the process's exit code.
pub fn main(args: &[String]) -> i32 {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["run", dir] => {
            log_to(Path::new(dir));
            run(Path::new(dir))
        }
        ["exec", dir, "--", command @ ..] if !command.is_empty() => {
            log_to(Path::new(dir));
            exec(
                Path::new(dir),
                command.iter().map(|s| s.to_string()).collect(),
            )
        }
        ["pause"] => pause(),
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

/// The container's id is the name of its directory.
fn container_id(dir: &Path) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn run(dir: &Path) -> i32 {
    // SAFETY: the shim is single-threaded (the binary dispatches to it
    // before starting any thread), so the child may do anything.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(err) => {
            println!("error: forking the shim: {err}");
            return 1;
        }
    }
    // The agent waits for the parent above; this child now belongs to init
    // and, in a session of its own, to no terminal or process group of the
    // agent's.
    let _ = nix::unistd::setsid();
    // Sockets are bound by names relative to the container's directory
    // (socket paths are short), and the agent's working directory is none of
    // our business.
    if let Err(err) = std::env::set_current_dir(dir) {
        println!("error: entering {}: {err}", dir.display());
        return 1;
    }
    match start(dir) {
        Ok(started) => {
            println!("started {}", started.pid);
            let _ = io::stdout().flush();
            silence_stdout();
            supervise(dir, started);
            0
        }
        Err(message) => {
            let _ = status::write(
                dir,
                &ContainerState::Exited {
                    exit_code: 128,
                    reason: ExitReason::StartError,
                    message: Some(message.clone()),
                    started_at: None,
                    finished_at: Timestamp::now(),
                },
            );
            println!("error: {message}");
            1
        }
    }
}

/// What `start` leaves for `supervise`.
struct Started {
    container: Container,
    pid: Pid,
    started_at: Timestamp,
    spec: ContainerSpec,
    log: LogFile,
    outputs: Vec<Output>,
    /// With a terminal, the stdin FIFO is copied to it by the shim.
    input: Option<Input>,
}

/// The stdin FIFO and the terminal it feeds.
struct Input {
    fifo: File,
    terminal: File,
}

fn start(dir: &Path) -> Result<Started, String> {
    let spec: ContainerSpec = std::fs::read(dir.join(CONTAINER_FILE))
        .map_err(|err| err.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|err| err.to_string()))
        .map_err(|err| format!("reading {CONTAINER_FILE}: {err}"))?;
    std::fs::write(
        dir.join(crate::SHIM_PID_FILE),
        std::process::id().to_string(),
    )
    .map_err(|err| format!("recording the shim's pid: {err}"))?;
    // Orphans of the container (its init, once libcontainer's intermediate
    // process exits) come to us, so we can wait for them.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|err| format!("becoming a subreaper: {err}"))?;
    let log = LogFile::open(&spec.log_path, spec.log_rotation.clone())
        .map_err(|err| format!("opening the log {}: {err}", spec.log_path.display()))?;
    let stdin = open_stdin(dir, spec.stdin).map_err(|err| format!("opening stdin: {err}"))?;

    let mut builder = ContainerBuilder::new(container_id(dir), SyscallType::default())
        .with_root_path(dir.join(STATE_DIR))
        .map_err(|err| err.to_string())?;
    let mut outputs = Vec::new();
    // With a terminal, the container's init makes it in its own devpts and
    // sends us the controlling side over this socket.
    let console = if spec.tty {
        let listener = UnixListener::bind(CONSOLE_SOCKET)
            .map_err(|err| format!("binding the console socket: {err}"))?;
        builder = builder.with_console_socket(Some(dir.join(CONSOLE_SOCKET)));
        Some(listener)
    } else {
        let pipe =
            || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|err| format!("making a pipe: {err}"));
        let ((stdout, stdout_w), (stderr, stderr_w)) = (pipe()?, pipe()?);
        outputs.push(Output::new(stdout, Stream::Stdout));
        outputs.push(Output::new(stderr, Stream::Stderr));
        builder = builder
            .with_stdin(stdin.try_clone().map_err(|err| err.to_string())?)
            .with_stdout(stdout_w)
            .with_stderr(stderr_w);
        None
    };
    let mut container = builder
        .validate_id()
        .map_err(|err| err.to_string())?
        .as_init(dir)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|err| err.to_string())?;
    let mut input = None;
    if let Some(listener) = console {
        let terminal = match receive_terminal(&listener) {
            Ok(terminal) => terminal,
            Err(err) => {
                let _ = container.delete(true);
                return Err(format!("receiving the terminal: {err}"));
            }
        };
        let output = terminal.try_clone().map_err(|err| err.to_string())?;
        outputs.push(Output::new(output, Stream::Stdout));
        if spec.stdin {
            input = Some(Input {
                fifo: stdin,
                terminal: File::from(terminal),
            });
        }
    }
    if let Err(err) = container.start() {
        let _ = container.delete(true);
        return Err(err.to_string());
    }
    let pid = container
        .pid()
        .ok_or_else(|| "the container has no pid".to_owned())?;
    let started_at = Timestamp::now();
    status::write(
        dir,
        &ContainerState::Running {
            pid: pid.as_raw(),
            started_at,
        },
    )
    .map_err(|err| format!("recording the start: {err}"))?;
    Ok(Started {
        container,
        pid,
        started_at,
        spec,
        log,
        outputs,
        input,
    })
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

/// The container's stdin: a FIFO in its directory the agent writes to
/// (held open for writing here too, so the container does not see an end
/// of file between two writers), or `/dev/null`.
fn open_stdin(dir: &Path, keep_open: bool) -> io::Result<File> {
    if !keep_open {
        return File::open("/dev/null");
    }
    let fifo = dir.join(STDIN_FIFO);
    match nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(err) => return Err(err.into()),
    }
    OpenOptions::new().read(true).write(true).open(fifo)
}

/// The agent reads our stdout until the first line only; later writes must
/// not fail or block on a pipe nobody reads.
fn silence_stdout() {
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), io::stdout().as_raw_fd());
    }
}

/// Copies the container's output to its log until its init exits, then
/// records how it ended and removes what libcontainer made.
fn supervise(dir: &Path, started: Started) {
    let Started {
        mut container,
        pid,
        started_at,
        spec,
        mut log,
        mut outputs,
        mut input,
    } = started;
    let exit_code = match wait_copying(pid, &mut outputs, &mut input, &mut log) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("supervising the container: {err}");
            // Without SIGCHLD we can still wait, only without the log.
            wait_for(pid)
        }
    };
    // Processes of a shared PID namespace may outlive the init and keep the
    // pipes open: take what is there and stop.
    for output in &mut outputs {
        output.drain(&mut log);
    }
    let cgroup = cgroup::container_path(&spec.pod_uid, &container_id(dir));
    let reason = if cgroup::oom_kills(&cgroup) > 0 {
        ExitReason::OOMKilled
    } else if exit_code == 0 {
        ExitReason::Completed
    } else {
        ExitReason::Error
    };
    if let Err(err) = container.delete(true) {
        tracing::warn!("removing the container's state and cgroup: {err}");
    }
    let ended = ContainerState::Exited {
        exit_code,
        reason,
        message: None,
        started_at: Some(started_at),
        finished_at: Timestamp::now(),
    };
    if let Err(err) = status::write(dir, &ended) {
        tracing::error!("recording the exit: {err}");
    }
}

/// One of the container's output pipes and the line it is in the middle of.
struct Output {
    pipe: Option<OwnedFd>,
    lines: LineSplitter,
}

impl Output {
    fn new(pipe: OwnedFd, stream: Stream) -> Self {
        Self {
            pipe: Some(pipe),
            lines: LineSplitter::new(stream),
        }
    }

    /// Reads what one `read` gives; at the end of the stream the pipe is
    /// closed and the last line written.
    fn read_once(&mut self, log: &mut LogFile) -> io::Result<()> {
        let Some(pipe) = &self.pipe else {
            return Ok(());
        };
        let mut buf = [0u8; 64 * 1024];
        match nix::unistd::read(pipe.as_raw_fd(), &mut buf) {
            // A terminal whose other side is gone reads EIO.
            Ok(0) | Err(Errno::EIO) => {
                self.pipe = None;
                self.lines.finish(log)
            }
            Ok(n) => self.lines.push(&buf[..n], log),
            Err(Errno::EINTR | Errno::EAGAIN) => Ok(()),
            Err(err) => {
                self.pipe = None;
                self.lines.finish(log)?;
                Err(err.into())
            }
        }
    }

    fn drain(&mut self, log: &mut LogFile) {
        if let Some(pipe) = &self.pipe {
            let _ = nix::fcntl::fcntl(
                pipe.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
            );
        }
        while let Some(pipe) = &self.pipe {
            let mut buf = [0u8; 64 * 1024];
            match nix::unistd::read(pipe.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    if self.lines.push(&buf[..n], log).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        self.pipe = None;
        let _ = self.lines.finish(log);
    }
}

/// Polls the outputs, the stdin FIFO of a terminal and SIGCHLD (through a
/// signalfd) until the init process is reaped; returns its exit code (128 +
/// signal when killed).
fn wait_copying(
    init: Pid,
    outputs: &mut [Output],
    input: &mut Option<Input>,
    log: &mut LogFile,
) -> io::Result<i32> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    // The init may have ended before SIGCHLD was blocked.
    if let Some(code) = reap(init) {
        return Ok(code);
    }
    loop {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(input) = input.as_ref() {
            fds.push(PollFd::new(input.fifo.as_fd(), PollFlags::POLLIN));
        }
        let first_output = fds.len();
        let open: Vec<usize> = (0..outputs.len())
            .filter(|&i| outputs[i].pipe.is_some())
            .collect();
        for &i in &open {
            let pipe = outputs[i].pipe.as_ref().expect("filtered on open pipes");
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if first_output == 2 && ready[1] && !forward(input) {
            *input = None;
        }
        for (slot, &i) in open.iter().enumerate() {
            if ready[first_output + slot] {
                outputs[i].read_once(log)?;
            }
        }
        if ready[0] {
            while let Ok(Some(_)) = signals.read_signal() {}
            if let Some(code) = reap(init) {
                return Ok(code);
            }
        }
    }
}

/// Copies what the stdin FIFO holds to the terminal; false once either is
/// unusable.
fn forward(input: &mut Option<Input>) -> bool {
    let Some(Input { fifo, terminal }) = input else {
        return false;
    };
    let mut buf = [0u8; 16 * 1024];
    match fifo.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => terminal.write_all(&buf[..n]).is_ok(),
        Err(err) => err.kind() == io::ErrorKind::Interrupted,
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

/// Exit code for "the command could not be run", as `docker exec` uses it.
const EXEC_FAILED: i32 = 126;

fn exec(dir: &Path, command: Vec<String>) -> i32 {
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("exec: becoming a subreaper: {err}");
        return EXEC_FAILED;
    }
    let built = ContainerBuilder::new(container_id(dir), SyscallType::default())
        .with_root_path(dir.join(STATE_DIR))
        .and_then(|builder| {
            builder
                .as_tenant()
                .with_container_args(command)
                .with_detach(false)
                .build()
        });
    match built {
        Ok(pid) => wait_for(pid),
        Err(err) => {
            eprintln!("exec: {err}");
            EXEC_FAILED
        }
    }
}

fn pause() -> i32 {
    let _ = nix::unistd::setsid();
    if let Err(err) = nix::sched::unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("pause: unsharing the PID namespace: {err}");
        return 1;
    }
    // SAFETY: single-threaded, see `run`.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => {
            println!("{child}");
            0
        }
        Ok(ForkResult::Child) => {
            silence_stdout();
            reap_forever()
        }
        Err(err) => {
            eprintln!("pause: fork: {err}");
            1
        }
    }
}

/// The PID namespace's init: every orphan of the pod comes here to be
/// reaped. Only SIGKILL from outside ends it.
fn reap_forever() -> ! {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    loop {
        let _ = mask.wait();
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                break;
            }
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
