//! Attachments: what each ADD did, kept on disk as libcni keeps its cache,
//! so that DEL and CHECK run the very list ADD ran, with its result as
//! prevResult, even after the config dir changed or the agent restarted;
//! and so that adding a pod again answers from it.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::netns::NetnsId;
use crate::error::{Context, Result};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attachment {
    pub container_id: String,
    pub if_name: String,
    /// The namespace the pod was attached in.
    pub netns: NetnsId,
    /// What the runtime gave the plugins that asked (`runtimeConfig`).
    pub capability_args: Map<String, Value>,
    /// The network list, as a `.conflist` document.
    pub config: Value,
    pub result: Value,
}

/// The attachment files, one per pod interface, under `<cache dir>/results`.
#[derive(Clone, Debug)]
pub(crate) struct Attachments {
    dir: PathBuf,
}

impl Attachments {
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            dir: cache_dir.join("results"),
        }
    }

    pub fn path(&self, container_id: &str, if_name: &str) -> PathBuf {
        self.dir.join(format!("{container_id}-{if_name}.json"))
    }

    pub fn load(&self, container_id: &str, if_name: &str) -> Result<Option<Attachment>> {
        let path = self.path(container_id, if_name);
        let bytes = match std::fs::read(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            read => read.context(|| format!("reading {}", path.display()))?,
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(io::Error::other)
            .context(|| format!("reading {}", path.display()))
    }

    pub fn save(&self, attachment: &Attachment) -> Result<()> {
        let path = self.path(&attachment.container_id, &attachment.if_name);
        // Renamed into place: a crash leaves the old file or the new one.
        let partial = path.with_extension("partial");
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| serde_json::to_vec(attachment).map_err(io::Error::other))
            .and_then(|bytes| std::fs::write(&partial, bytes))
            .and_then(|()| std::fs::rename(&partial, &path))
            .context(|| format!("writing {}", path.display()))
    }

    pub fn remove(&self, container_id: &str, if_name: &str) -> Result<()> {
        let path = self.path(container_id, if_name);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            removed => removed.context(|| format!("removing {}", path.display())),
        }
    }
}
