//! The runtime's one error type: what failed, on what, and why.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("sandbox of pod {0} not found")]
    SandboxNotFound(String),
    /// The shim could not create or start the container (bad command, bad
    /// rootfs, cgroup refused...), in libcontainer's words.
    #[error("starting container {id}: {message}")]
    Start { id: String, message: String },
    #[error("container {id} is {state}")]
    WrongState { id: String, state: &'static str },
    #[error("runtime spec: {0}")]
    Spec(#[from] libcontainer::oci_spec::OciSpecError),
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
