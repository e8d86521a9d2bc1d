//! The crate's one error type: what failed, on what, and why.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("network configuration {path}: {reason}")]
    InvalidConfig { path: PathBuf, reason: String },
    #[error("CNI plugin {plugin} not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },
    /// A plugin failed: its error result's message and details (CNI error
    /// codes 1 to 99 are the spec's, above that the plugin's own).
    #[error("CNI plugin {plugin} {command} failed: {msg}{}", details_suffix(.details))]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u32,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command} gave an unreadable result: {reason}")]
    InvalidResult {
        plugin: String,
        command: &'static str,
        reason: String,
    },
    #[error("network {network} gave pod {container_id} no IP address")]
    NoAddress {
        network: String,
        container_id: String,
    },
    /// The CNI spec's rule for container IDs, which also name cache files.
    #[error(
        "invalid container ID {0:?}: letters, digits, '_', '.' and '-', starting with a letter or digit"
    )]
    InvalidContainerId(String),
    #[error("{0} is not a network namespace")]
    NotANamespace(PathBuf),
    #[error(
        "pod {0} is attached in a network namespace that is gone: detach it, and attach the new one under a new container ID"
    )]
    AttachedElsewhere(String),
    #[error("pod {0} is not attached to a network")]
    NotAttached(String),
    #[error("network {network} has cniVersion {version}, which has no CHECK")]
    CheckUnsupported { network: String, version: String },
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Names what was being done when an I/O call failed.
pub(crate) trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<io::Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source: source.into(),
        })
    }
}
