//! `shim exec`: one more process in a running container.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use libcontainer::oci_spec::runtime::Spec;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use super::{builder, reap, receive_terminal, wait_for};

/// Exit code for "the command could not be run", as `docker exec` uses it.
const EXEC_FAILED: i32 = 126;

pub(super) fn exec(dir: &Path, command: Vec<String>) -> i32 {
    match exec_in(dir, command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("exec: {message}");
            EXEC_FAILED
        }
    }
}

/// Runs the command as the container's own process runs (user, working
/// directory, capabilities, environment), with a terminal of its own in the
/// container when our stdin is one (the agent's, for `exec -it`).
fn exec_in(dir: &Path, command: Vec<String>) -> Result<i32, String> {
    std::env::set_current_dir(dir).map_err(|err| format!("entering {}: {err}", dir.display()))?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|err| format!("becoming a subreaper: {err}"))?;
    let tty = nix::unistd::isatty(0).unwrap_or(false);
    if tty {
        // Leading the agent's terminal's session makes its resizes our SIGWINCH.
        let _ = nix::unistd::setsid();
        // SAFETY: TIOCSCTTY takes an int argument and no memory.
        unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    }
    let spec = Spec::load("config.json").map_err(|err| format!("reading config.json: {err}"))?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| "config.json has no process".to_owned())?;
    process.set_args(Some(command));
    process.set_terminal(Some(tty));
    let me = std::process::id();
    let process_file = dir.join(format!("exec-{me}.json"));
    let console = dir.join(format!("exec-{me}.sock"));
    std::fs::write(
        &process_file,
        serde_json::to_vec(&process).map_err(|err| err.to_string())?,
    )
    .map_err(|err| format!("writing {}: {err}", process_file.display()))?;
    let listener = match tty {
        true => Some(
            UnixListener::bind(console.file_name().expect("named above"))
                .map_err(|err| format!("binding the console socket: {err}"))?,
        ),
        false => None,
    };
    let built = builder(dir)
        .map(|builder| builder.with_console_socket(tty.then_some(&console)))
        .and_then(|builder| {
            builder
                .as_tenant()
                .with_process(Some(&process_file))
                .with_detach(tty)
                .build()
        });
    let _ = std::fs::remove_file(&process_file);
    let _ = std::fs::remove_file(&console);
    let pid = built.map_err(|err| err.to_string())?;
    match listener {
        None => Ok(wait_for(pid)),
        Some(listener) => {
            let terminal = receive_terminal(&listener)
                .map_err(|err| format!("receiving the terminal: {err}"))?;
            relay_terminal(pid, File::from(terminal)).map_err(|err| err.to_string())
        }
    }
}

/// Copies between our stdio and the command's terminal, passes resizes on,
/// and returns the command's exit code once it has ended and its output is
/// all out.
fn relay_terminal(command: Pid, mut terminal: File) -> io::Result<i32> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    mask.thread_block()?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    // A resize before SIGWINCH was ours, and an end before SIGCHLD was blocked.
    copy_window_size(&terminal);
    let mut exit = reap(command);
    let (mut stdin, mut stdout) = (io::stdin().lock(), io::stdout().lock());
    let mut stdin_open = true;
    let mut buf = [0u8; 16 * 1024];
    while exit.is_none() {
        let mut fds = vec![
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(terminal.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
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
        // Signals first: a resize is applied before the input that follows it.
        if ready[0] {
            while let Ok(Some(info)) = signals.read_signal() {
                if info.ssi_signo == Signal::SIGWINCH as u32 {
                    copy_window_size(&terminal);
                }
            }
            exit = reap(command);
        }
        if ready[1] {
            match terminal.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    stdout.write_all(&buf[..n])?;
                    stdout.flush()?;
                }
            }
        }
        if stdin_open && ready[2] {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => terminal.write_all(&buf[..n])?,
            }
        }
    }
    // What the command wrote just before it ended.
    let _ = nix::fcntl::fcntl(
        terminal.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
    );
    while let Ok(n) = terminal.read(&mut buf) {
        if n == 0 || stdout.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = stdout.flush();
    Ok(exit.unwrap_or_else(|| wait_for(command)))
}

/// Gives the command's terminal the size of ours (the agent's).
fn copy_window_size(terminal: &File) {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ and TIOCSWINSZ read and write a winsize that
    // outlives the calls.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(terminal.as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }
}
