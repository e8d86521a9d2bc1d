//! Watching processes the runtime did not fork and cannot `wait` for (shims
//! and container inits belong to init once they are running).

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// This boot's id: pids mean nothing across boots.
pub(crate) fn boot_id() -> std::io::Result<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|id| id.trim().to_owned())
}

pub(crate) fn alive(pid: i32) -> bool {
    pid > 0 && kill(Pid::from_raw(pid), None).is_ok()
}

pub(crate) fn signal(pid: i32, signal: Signal) {
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Waits up to `timeout` for `pid` to end, through a pidfd so that no
/// polling loop or child relationship is needed. True once it is gone.
pub(crate) fn wait_gone(pid: i32, timeout: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Errno::last() == Errno::ESRCH;
    }
    // SAFETY: the descriptor was just made and is owned here only.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    loop {
        match nix::poll::poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        ) {
            Err(Errno::EINTR) => continue,
            Ok(n) => return n > 0,
            Err(_) => return !alive(pid),
        }
    }
}
