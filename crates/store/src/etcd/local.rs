//! An `etcd` process of our own on free loopback ports, for the conformance
//! tests and the benchmark.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::EtcdStore;
use crate::{Store, StoreError};

/// A single-member etcd cluster in `data_dir`, listening on 127.0.0.1.
/// Dropping it kills the process and removes the data dir.
pub struct LocalEtcd {
    child: Child,
    data_dir: PathBuf,
    endpoint: String,
}

/// How long etcd may take to answer after it starts.
const PATIENCE: Duration = Duration::from_secs(30);

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalEtcd {
    /// Starts `binary` (`etcd` from the PATH when `None`) on a fresh
    /// `data_dir` (which it owns from now on) and waits until it serves.
    pub async fn start(binary: Option<&Path>, data_dir: PathBuf) -> Result<LocalEtcd, StoreError> {
        let mut last = None;
        // A free port can be taken by someone else before etcd binds it.
        for _ in 0..3 {
            match LocalEtcd::try_start(binary, data_dir.clone()).await {
                Ok(etcd) => return Ok(etcd),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap())
    }

    async fn try_start(binary: Option<&Path>, data_dir: PathBuf) -> Result<LocalEtcd, StoreError> {
        let io = |what: &str, e: std::io::Error| StoreError::Io(format!("{what}: {e}"));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).map_err(|e| io("creating the etcd data dir", e))?;
        let client = free_port().map_err(|e| io("finding a free port", e))?;
        let peer = free_port().map_err(|e| io("finding a free port", e))?;
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(data_dir.join("etcd.log"))
            .map_err(|e| io("creating the etcd log", e))?;
        let child = Command::new(binary.unwrap_or(Path::new("etcd")))
            .arg("--name=tugboat")
            .arg(format!("--data-dir={}", data_dir.join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=tugboat={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| io("etcd log", e))?)
            .stderr(log)
            .spawn()
            .map_err(|e| io("starting etcd (apt-get install etcd-server)", e))?;
        let mut etcd = LocalEtcd {
            child,
            data_dir,
            endpoint,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = etcd.child.try_wait().map_err(|e| io("etcd", e))? {
                return Err(StoreError::Io(format!(
                    "etcd exited ({status}): {}",
                    etcd.log()
                )));
            }
            if let Ok(store) = EtcdStore::connect(&[etcd.endpoint.clone()]).await
                && store.current_revision().await.is_ok()
            {
                return Ok(etcd);
            }
            if started.elapsed() > PATIENCE {
                return Err(StoreError::Io(format!(
                    "etcd did not answer within {PATIENCE:?}: {}",
                    etcd.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The etcd process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("etcd.log")).unwrap_or_default()
    }

    /// A store on this etcd that owns it: the process stops when the store
    /// (and every clone of the `Arc`) is dropped.
    pub async fn into_store(self) -> Result<Arc<EtcdStore>, StoreError> {
        let endpoints = [self.endpoint.clone()];
        EtcdStore::connect_owning(&endpoints, Some(self)).await
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
