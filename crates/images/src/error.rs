use std::path::PathBuf;

/// What went wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    #[error("content of {path} is {actual}, expected {expected}")]
    DigestMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    /// The registry refused or failed a pull; `message` is the registry's own
    /// words, which the agent reports as the ErrImagePull message.
    #[error("pulling {reference}: {message}")]
    Pull { reference: String, message: String },
    #[error("importing {path}: {message}")]
    Import { path: PathBuf, message: String },
    #[error("unpacking layer {digest}: {source}")]
    Unpack {
        digest: String,
        source: std::io::Error,
    },
    #[error("the docker config's auth for {0} is not base64 of user:password")]
    InvalidCredentials(String),
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("malformed {what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what was being done to an I/O error.
pub(crate) trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|errno| Error::Io {
            context: context(),
            source: errno.into(),
        })
    }
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: what.to_string(),
        source,
    })
}
