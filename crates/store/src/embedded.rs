//! The embedded backend: one redb file in the data dir.
//!
//! Reads open a redb read transaction and see a consistent snapshot. Every
//! write goes through one writer thread ([`writer`]) that commits concurrent
//! requests together and answers only once the commit is durable, then
//! publishes the committed events to the [`watch`] hub. Leases count down in
//! memory ([`leases`]); their TTLs are stored, so after a restart each lease
//! gets its full TTL again, as in etcd.

mod apply;
mod codec;
mod leases;
mod mvcc;
mod tables;
mod watch;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase};

use crate::{
    KeyRange, LeaseId, RangeOptions, RangeResponse, Revision, Store, StoreError, Txn, TxnResponse,
    WatchStream,
};
use apply::{Answer, Request};
use leases::Leases;
use tables::{Meta, io};
use watch::WatchHub;
use writer::Writer;

pub use watch::LIVE_BACKLOG;

/// The embedded [`Store`]. Dropping the last `Arc` stops the writer thread
/// (after its current commit) and closes the file, so the same path can be
/// opened again.
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Writer,
    hub: WatchHub,
    leases: Arc<Leases>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`. Must be called inside a
    /// tokio runtime: it starts the lease expiry task there.
    pub fn open(path: &Path) -> Result<Arc<EmbeddedStore>, StoreError> {
        let db = Arc::new(Database::create(path).map_err(io)?);
        tables::create_all(&db)?;
        let leases = Arc::new(Leases::load(&db)?);
        let hub = WatchHub::new();
        let writer = Writer::start(db.clone(), hub.clone(), leases.clone());
        let store = Arc::new(EmbeddedStore {
            db,
            writer,
            hub,
            leases,
        });
        leases::spawn_expiry(Arc::downgrade(&store));
        Ok(store)
    }

    /// Runs `read` on a fresh snapshot, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || read(&db.begin_read().map_err(io)?))
            .await
            .map_err(|e| StoreError::Io(e.to_string()))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.read(|read| Meta::Revision.get(&read.open_table(tables::META).map_err(io)?))
            .await
    }

    async fn range(
        &self,
        range: KeyRange,
        opts: RangeOptions,
    ) -> Result<RangeResponse, StoreError> {
        self.read(move |read| mvcc::range(read, &range, &opts))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        match self.writer.send(Request::Txn(txn)).await? {
            Answer::Txn(resp) => Ok(resp),
            _ => unreachable!("a txn is answered with its response"),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let live = self.hub.subscribe();
        let read = self.db.begin_read().map_err(io)?;
        watch::stream(read, live, prefix, after)
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.writer.send(Request::Compact(revision)).await.map(drop)
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        self.read(|read| Meta::Compacted.get(&read.open_table(tables::META).map_err(io)?))
            .await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        match self.writer.send(Request::LeaseGrant(ttl)).await? {
            Answer::Lease(id) => Ok(id),
            _ => unreachable!("a grant is answered with the lease id"),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.writer.send(Request::LeaseRevoke(id)).await.map(drop)
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        self.leases.keep_alive(id)
    }
}
