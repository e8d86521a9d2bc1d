//! A revisioned key-value store with watch, with etcd's semantics.
//!
//! Every write bumps one global revision. Each key remembers the revision that
//! created it, the revision that last changed it and how many times it has
//! changed since creation. Reads can be served at any revision that has not
//! been compacted away; watches replay history from a revision and then follow
//! live changes, in order, with no gap and no duplicate.
//!
//! The API server only ever talks to [`Store`]; the embedded backend
//! ([`embedded::EmbeddedStore`]) and the etcd backend (`etcd::EtcdStore`, with
//! the `etcd` feature) sit behind it and pass the same [`conformance`] suite.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub mod conformance;
pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;

/// A revision of the whole store. Revisions start at 1 and only grow.
pub type Revision = i64;

/// A lease identifier; 0 means "no lease".
pub type LeaseId = i64;

/// One key with its value and its bookkeeping, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of the write that created this key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of the last write to this key.
    pub mod_revision: Revision,
    /// Number of writes since creation; 1 right after creation.
    pub version: i64,
    pub lease: LeaseId,
}

/// Which keys a range read covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly one key.
    Key(String),
    /// Every key starting with this prefix.
    Prefix(String),
    /// Keys `>= start` that also start with `prefix`: how a paginated list resumes.
    PrefixFrom { prefix: String, start: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// At most this many keys; 0 means no limit.
    pub limit: usize,
    /// Read as of this revision; 0 means the current one.
    pub revision: Revision,
    /// Only count the keys, return none.
    pub count_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the result short.
    pub more: bool,
    /// How many keys the whole range holds (ignoring `limit`).
    pub count: usize,
    /// The revision the read was served at.
    pub revision: Revision,
}

/// What a transaction compares before choosing its branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// 0 when the key does not exist.
    ModRevision(Revision),
    /// 0 when the key does not exist.
    CreateRevision(Revision),
    /// 0 when the key does not exist.
    Version(i64),
    Value(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    /// The compare-and-swap the API server uses for updates: the key was last
    /// written at `revision` (0: the key must not exist).
    pub fn mod_revision_is(key: impl Into<String>, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            op: CompareOp::Equal,
            target: CompareTarget::ModRevision(revision),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
    Delete {
        key: String,
    },
    Get {
        key: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// The key as it was before the put, if it existed.
    Put {
        prev: Option<KeyValue>,
    },
    /// The key as it was before the delete, if it existed.
    Delete {
        prev: Option<KeyValue>,
    },
    Get {
        kv: Option<KeyValue>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    pub succeeded: bool,
    /// The store's revision after the transaction (unchanged if it wrote nothing).
    pub revision: Revision,
    /// One response per op of the branch taken, in order.
    pub responses: Vec<OpResponse>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a put, the new key-value. For a delete, the key with `mod_revision`
    /// set to the deleting revision and an empty value.
    pub kv: KeyValue,
    /// The key-value before this change, if the key existed. Always filled in,
    /// because the API server needs the old object for DELETED events and for
    /// selector-filtered watches.
    pub prev_kv: Option<KeyValue>,
}

/// A watch: events in revision order, then (when the store drops the watcher)
/// an error or the end of the stream.
pub type WatchStream = BoxStream<'static, Result<Event, StoreError>>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The requested revision is older than the last compaction.
    #[error("required revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is newer than the store's current one.
    #[error("required revision {0} is a future revision")]
    FutureRevision(Revision),
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// A watcher fell too far behind the live stream and was dropped; it must
    /// re-list (or re-watch from its last revision).
    #[error("watcher fell behind and was dropped")]
    WatcherLagged,
    #[error("store i/o error: {0}")]
    Io(String),
}

/// The store every backend provides.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The current revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    async fn range(&self, range: KeyRange, opts: RangeOptions)
    -> Result<RangeResponse, StoreError>;

    /// Applies the ops of one branch atomically; all writes share one new revision.
    /// Acknowledged only once durable.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError>;

    /// Events for keys under `prefix` with revision `> after`. `after` may be
    /// any revision not yet compacted; `after` equal to the current revision
    /// means "only new changes".
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError>;

    /// Forgets history before `revision`: reads and watches at older
    /// revisions fail with [`StoreError::Compacted`]. The latest value of
    /// every live key is kept.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The oldest revision still readable (the last compaction point, or 1).
    async fn compacted_revision(&self) -> Result<Revision, StoreError>;

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError>;
    /// Deletes every key attached to the lease, in one revision.
    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError>;
    /// Restarts the lease's countdown; returns its TTL.
    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError>;
}

/// Convenience reads and writes on top of [`Store`].
impl dyn Store {
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let mut resp = self
            .range(KeyRange::Key(key.to_owned()), RangeOptions::default())
            .await?;
        Ok(resp.kvs.pop())
    }
}
