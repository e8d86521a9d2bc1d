//! Lock files shared by every process using one store root.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::error::{IoContext, Result};

/// A held `flock`, released when dropped.
pub(crate) struct Lock {
    _file: File,
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .context(|| format!("opening lock {}", path.display()))
}

/// Waits for the lock at `path`, exclusive or shared.
pub(crate) fn acquire(path: &Path, exclusive: bool) -> Result<Lock> {
    let file = open(path)?;
    let operation = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    flock(&file, operation).context(|| format!("locking {}", path.display()))?;
    Ok(Lock { _file: file })
}

/// Takes the lock at `path` exclusively if nobody holds it.
pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Lock>> {
    let file = open(path)?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(Lock { _file: file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(errno) => Err(errno).context(|| format!("locking {}", path.display())),
    }
}
