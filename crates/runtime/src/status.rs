//! What a container is doing, as the shim records it in `status.json` in the
//! container's directory: the one file the shim writes and the agent reads,
//! so that a restarted agent finds every container where it left it.

use std::io;
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The state of one container, as CRI's `ContainerStatus` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running {
        pid: i32,
        started_at: Timestamp,
    },
    Exited {
        exit_code: i32,
        reason: ExitReason,
        /// Set when the container never ran: why it could not start.
        message: Option<String>,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
    },
}

/// Why a container ended, in the words of `containerStatuses[].state.terminated.reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    Completed,
    Error,
    OOMKilled,
    StartError,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::OOMKilled => "OOMKilled",
            ExitReason::StartError => "StartError",
        }
    }
}

/// Reads a container's recorded state; no file means it was never started.
pub(crate) fn read(dir: &Path) -> io::Result<ContainerState> {
    match std::fs::read(dir.join(STATUS_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(ContainerState::Created),
        Err(err) => Err(err),
    }
}

/// Replaces the recorded state in one rename, so readers never see half a file.
pub(crate) fn write(dir: &Path, state: &ContainerState) -> io::Result<()> {
    let tmp = dir.join(".status.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(state).map_err(io::Error::other)?)?;
    std::fs::rename(tmp, dir.join(STATUS_FILE))
}

const STATUS_FILE: &str = "status.json";
