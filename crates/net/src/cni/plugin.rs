//! Running one plugin as the CNI spec says: the request in `CNI_*`
//! environment variables, the plugin's configuration on stdin, the result
//! (or the error result) on stdout.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Context, Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Add,
    Del,
    Check,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
        }
    }
}

/// What every plugin of one attachment is told besides its configuration.
pub(crate) struct Request<'a> {
    pub operation: Operation,
    pub container_id: &'a str,
    /// Empty when the namespace is gone (DEL only).
    pub netns: OsString,
    pub ifname: &'a str,
    /// `CNI_ARGS`: `KEY=VALUE` pairs joined by `;`.
    pub args: String,
    pub bin_dirs: &'a [PathBuf],
    /// `bin_dirs` joined by `:`.
    pub cni_path: &'a OsStr,
}

/// The spec's error result; `msg` is what a person reads.
#[derive(Deserialize)]
struct ErrorResult {
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

/// Runs the plugin `kind` with `config` on stdin and gives ADD's result;
/// DEL and CHECK print nothing when they succeed (`Null`).
pub(crate) fn run(request: &Request<'_>, kind: &str, config: &Value) -> Result<Value> {
    let binary = find(kind, request)?;
    let command = request.operation.as_str();
    tracing::debug!(
        plugin = kind,
        command,
        container_id = request.container_id,
        "running CNI plugin"
    );
    let mut child = Command::new(&binary)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", request.container_id)
        .env("CNI_NETNS", &request.netns)
        .env("CNI_IFNAME", request.ifname)
        .env("CNI_ARGS", &request.args)
        .env("CNI_PATH", request.cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(|| format!("starting {}", binary.display()))?;
    let stdin = serde_json::to_vec(config).expect("a JSON value serializes");
    // A write that fails means the plugin ended without reading its
    // configuration: its exit status and output say why.
    let _ = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&stdin);
    let output = child
        .wait_with_output()
        .context(|| format!("waiting for {}", binary.display()))?;
    if !output.status.success() {
        let (code, msg, details) = match serde_json::from_slice::<ErrorResult>(&output.stdout) {
            Ok(error) => (error.code, error.msg, error.details),
            Err(_) => (
                0,
                format!("{} with no error result", output.status),
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ),
        };
        return Err(Error::Plugin {
            plugin: kind.to_owned(),
            command,
            code,
            msg,
            details,
        });
    }
    if request.operation != Operation::Add {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&output.stdout).map_err(|err| Error::InvalidResult {
        plugin: kind.to_owned(),
        command,
        reason: err.to_string(),
    })
}

/// The first executable named `kind` in the plugin dirs, in order.
fn find(kind: &str, request: &Request<'_>) -> Result<PathBuf> {
    request
        .bin_dirs
        .iter()
        .map(|dir| dir.join(kind))
        .find(|path| is_executable(path))
        .ok_or_else(|| Error::PluginNotFound {
            plugin: kind.to_owned(),
            dirs: request.cni_path.to_string_lossy().into_owned(),
        })
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
