//! `shim pause`: the init that holds a pod's shared PID namespace.

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::ForkResult;

use super::silence_stdout;

pub(super) fn pause() -> i32 {
    let _ = nix::unistd::setsid();
    if let Err(err) = nix::sched::unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("pause: unsharing the PID namespace: {err}");
        return 1;
    }
    // SAFETY: the shim is single-threaded (see `run::run`).
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
