//! `shim run`: create, start and watch over one container.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use jiff::Timestamp;
use libcontainer::container::Container;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};

use super::{builder, container_id, reap, receive_terminal, silence_stdout, wait_for};
use crate::log::{LineSplitter, LogFile, Stream};
use crate::spec::ContainerSpec;
use crate::status::{self, ContainerState, ExitReason};
use crate::{CONTAINER_FILE, STDIN_FIFO, cgroup};

/// The socket a container's init sends its terminal to, in the container's directory.
const CONSOLE_SOCKET: &str = "console.sock";

pub(super) fn run(dir: &Path) -> i32 {
    // SAFETY: the shim is single-threaded (the binary dispatches to it
    // before starting any thread), so the child may do anything.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(err) => {
            answer(&format!("error: forking the shim: {err}"));
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
        answer(&format!("error: entering {}: {err}", dir.display()));
        return 1;
    }
    match start(dir) {
        Ok(started) => {
            answer(&format!("started {}", started.pid));
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
            answer(&format!("error: {message}"));
            1
        }
    }
}

/// Tells the agent how the start went, on our stdout; an agent gone
/// meanwhile (a broken pipe) does not stop us.
fn answer(line: &str) {
    let mut stdout = io::stdout();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
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

    let mut creating = builder(dir).map_err(|err| err.to_string())?;
    let mut outputs = Vec::new();
    // With a terminal, the container's init makes it in its own devpts and
    // sends us the controlling side over this socket.
    let console = if spec.tty {
        let listener = UnixListener::bind(CONSOLE_SOCKET)
            .map_err(|err| format!("binding the console socket: {err}"))?;
        creating = creating.with_console_socket(Some(dir.join(CONSOLE_SOCKET)));
        Some(listener)
    } else {
        let pipe =
            || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|err| format!("making a pipe: {err}"));
        let ((stdout, stdout_w), (stderr, stderr_w)) = (pipe()?, pipe()?);
        outputs.push(Output::new(stdout, Stream::Stdout));
        outputs.push(Output::new(stderr, Stream::Stderr));
        creating = creating
            .with_stdin(stdin.try_clone().map_err(|err| err.to_string())?)
            .with_stdout(stdout_w)
            .with_stderr(stderr_w);
        None
    };
    let mut container = creating
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
