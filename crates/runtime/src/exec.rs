//! A command running in a container (`kubectl exec`), through a
//! `tug shim exec` process whose standard streams are the command's.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};

use nix::pty::{OpenptyResult, Winsize, openpty};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

use crate::error::{Context, Result};

/// The streams of a running exec, for the caller to take, and its end.
pub struct ExecSession {
    /// Closing it (dropping it) is the command's end of input.
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    /// `None` with a terminal: the terminal merges both outputs.
    pub stderr: Option<File>,
    /// The terminal's controlling side, kept to resize it.
    terminal: Option<OwnedFd>,
    shim: Child,
    exit_code: Option<i32>,
}

impl ExecSession {
    pub(crate) fn spawn(mut shim: Command, tty: bool) -> Result<Self> {
        if !tty {
            let mut child = shim
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context(|| "starting the exec shim".to_owned())?;
            return Ok(Self {
                stdin: child.stdin.take().map(|s| File::from(OwnedFd::from(s))),
                stdout: child.stdout.take().map(|s| File::from(OwnedFd::from(s))),
                stderr: child.stderr.take().map(|s| File::from(OwnedFd::from(s))),
                terminal: None,
                shim: child,
                exit_code: None,
            });
        }
        let OpenptyResult { master, slave } =
            openpty(None, None).context(|| "opening a pseudo-terminal".to_owned())?;
        // The shim relays bytes to the command's own terminal in the
        // container; this one must pass them through untouched.
        let mut raw = tcgetattr(&slave).context(|| "reading the terminal's modes".to_owned())?;
        cfmakeraw(&mut raw);
        tcsetattr(&slave, SetArg::TCSANOW, &raw)
            .context(|| "making the terminal raw".to_owned())?;
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .context(|| "duplicating the terminal".to_owned())
        };
        let child = shim
            .stdin(dup(&slave)?)
            .stdout(dup(&slave)?)
            .stderr(slave)
            .spawn()
            .context(|| "starting the exec shim".to_owned())?;
        Ok(Self {
            stdin: Some(File::from(dup(&master)?)),
            stdout: Some(File::from(dup(&master)?)),
            stderr: None,
            terminal: Some(master),
            shim: child,
            exit_code: None,
        })
    }

    /// Sets the terminal's size (`kubectl exec -it` sends it on every
    /// resize); without a terminal there is nothing to resize.
    pub fn resize(&self, columns: u16, rows: u16) -> Result<()> {
        let Some(terminal) = &self.terminal else {
            return Ok(());
        };
        let size = Winsize {
            ws_row: rows,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize that outlives the call.
        let done = unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        if done < 0 {
            return Err(std::io::Error::last_os_error())
                .context(|| "resizing the terminal".to_owned());
        }
        Ok(())
    }

    /// Waits for the command to end and returns its exit code (126 when it
    /// could not be run, 128 + n when killed by signal n).
    pub fn wait(&mut self) -> Result<i32> {
        self.stdin = None;
        if let Some(code) = self.exit_code {
            return Ok(code);
        }
        let status = self
            .shim
            .wait()
            .context(|| "waiting for the exec shim".to_owned())?;
        let code = status
            .code()
            .or_else(|| status.signal().map(|signal| 128 + signal))
            .unwrap_or(255);
        self.exit_code = Some(code);
        Ok(code)
    }
}

/// A session given up before its end (the client went away) ends its shim,
/// which hangs up the command's terminal, and reaps it.
impl Drop for ExecSession {
    fn drop(&mut self) {
        if self.exit_code.is_none() {
            let _ = self.shim.kill();
            let _ = self.shim.wait();
        }
    }
}
