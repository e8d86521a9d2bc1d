//! The etcd backend: the [`Store`] trait on a real etcd (v3 API, 3.4 or
//! later) through the `etcd-client` crate.
//!
//! Most of the trait is etcd's own API, one call each. Two places differ:
//!
//! - **Compaction is one revision behind.** The trait's `compact(r)` keeps
//!   revision `r` fully replayable: a watch from `r - 1` sees every event at
//!   `r`, each with its previous value. etcd's compaction at `r` drops the
//!   tombstones at `r` and the values before it (so events at `r` lose their
//!   `prev_kv`). So `compact(r)` compacts etcd at `r - 1`, and the backend
//!   refuses reads and watches below `r` itself: etcd's compaction point plus
//!   one is this store's. etcd does not report its compaction point, so it is
//!   found with a few reads at old revisions and then cached ([`compaction`]).
//! - **Errors come as gRPC statuses** and are mapped back to [`StoreError`]
//!   ([`convert`]); a txn refused for an unknown lease is asked which one.
//!
//! [`LocalEtcd`] runs an `etcd` process on free loopback ports, for the
//! conformance tests and the benchmark.

mod compaction;
mod convert;
mod local;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, DeleteOptions, GetOptions, KvClient, LeaseClient, PutOptions, TxnOp, WatchClient,
    WatchOptions,
};
use futures::StreamExt;

use crate::{
    KeyRange, LeaseId, OpResponse, RangeOptions, RangeResponse, Revision, Store, StoreError, Txn,
    TxnResponse, WatchStream,
};
use convert::{Failure, classify, compare, event, key_value, prefix_end};

pub use local::LocalEtcd;

/// Large enough for any range the API server asks for (a LIST of every
/// object of a kind); gRPC's default of 4 MiB is not.
const MAX_MESSAGE: usize = 1 << 30;

/// The [`Store`] on an etcd cluster.
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    /// This store's compaction point as last seen (a lower bound of the
    /// true one): etcd's compaction revision plus one, or 1.
    compacted: AtomicI64,
    /// An etcd process this store started and stops when dropped.
    _server: Option<LocalEtcd>,
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`http://host:port`) and
    /// checks that it answers.
    pub async fn connect(endpoints: &[String]) -> Result<Arc<EtcdStore>, StoreError> {
        EtcdStore::connect_owning(endpoints, None).await
    }

    async fn connect_owning(
        endpoints: &[String],
        server: Option<LocalEtcd>,
    ) -> Result<Arc<EtcdStore>, StoreError> {
        let client = Client::connect(endpoints, None)
            .await
            .map_err(|e| StoreError::Io(format!("connecting to etcd at {endpoints:?}: {e}")))?;
        let store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            lease: client.lease_client(),
            compacted: AtomicI64::new(1),
            _server: server,
        };
        store.current_revision().await?;
        Ok(Arc::new(store))
    }

    fn kv(&self) -> KvClient {
        self.kv.clone()
    }

    /// The error for a read or watch at `requested`, refused as compacted.
    async fn compacted_error(&self, requested: Revision) -> StoreError {
        match self.compacted_revision().await {
            Ok(compacted) => StoreError::Compacted {
                requested,
                compacted,
            },
            Err(e) => e,
        }
    }

    /// Maps an etcd error from a read at `revision` (0: the current one).
    async fn read_error(&self, error: etcd_client::Error, revision: Revision) -> StoreError {
        match classify(error) {
            Failure::Compacted => self.compacted_error(revision).await,
            Failure::FutureRevision => StoreError::FutureRevision(revision),
            other => other.into_store_error(),
        }
    }

    /// Which lease made etcd refuse a txn: the first one that no longer exists.
    async fn missing_lease(&self, txn: &Txn) -> StoreError {
        let mut leases = Vec::new();
        for op in txn.success.iter().chain(&txn.failure) {
            if let crate::Op::Put { lease, .. } = op
                && *lease != 0
                && !leases.contains(lease)
            {
                leases.push(*lease);
            }
        }
        for &id in &leases {
            match self.lease.clone().time_to_live(id, None).await {
                Ok(resp) if resp.ttl() >= 0 => continue,
                Ok(_) => return StoreError::LeaseNotFound(id),
                Err(e) => match classify(e) {
                    Failure::LeaseNotFound => return StoreError::LeaseNotFound(id),
                    other => return other.into_store_error(),
                },
            }
        }
        StoreError::LeaseNotFound(leases.first().copied().unwrap_or(0))
    }
}

/// The etcd key and range end covering `range`.
fn span(range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    let all = || (vec![0], vec![0]);
    match range {
        KeyRange::Key(key) => (key.clone().into_bytes(), Vec::new()),
        KeyRange::Prefix(prefix) if prefix.is_empty() => all(),
        KeyRange::Prefix(prefix) => (prefix.clone().into_bytes(), prefix_end(prefix.as_bytes())),
        KeyRange::PrefixFrom { prefix, start } => {
            let from = start.max(prefix);
            let end = if prefix.is_empty() {
                vec![0]
            } else {
                prefix_end(prefix.as_bytes())
            };
            let from = if from.is_empty() {
                vec![0]
            } else {
                from.clone().into_bytes()
            };
            (from, end)
        }
    }
}

fn op(op: &crate::Op) -> TxnOp {
    match op {
        crate::Op::Put { key, value, lease } => TxnOp::put(
            key.as_bytes(),
            value.as_slice(),
            Some(PutOptions::new().with_lease(*lease).with_prev_key()),
        ),
        crate::Op::Delete { key } => {
            TxnOp::delete(key.as_bytes(), Some(DeleteOptions::new().with_prev_key()))
        }
        crate::Op::Get { key } => TxnOp::get(key.as_bytes(), None),
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let resp = self
            .kv()
            .get(vec![0], Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| classify(e).into_store_error())?;
        convert::revision(resp.header())
    }

    async fn range(
        &self,
        range: KeyRange,
        opts: RangeOptions,
    ) -> Result<RangeResponse, StoreError> {
        if opts.revision != 0 {
            let compacted = self.compacted.load(std::sync::atomic::Ordering::Relaxed);
            if opts.revision < compacted {
                return Err(StoreError::Compacted {
                    requested: opts.revision,
                    compacted,
                });
            }
        }
        let (key, end) = span(&range);
        let mut options = GetOptions::new().with_range(end);
        if opts.limit > 0 {
            options = options.with_limit(opts.limit as i64);
        }
        if opts.revision > 0 {
            options = options.with_revision(opts.revision);
        }
        if opts.count_only {
            options = options.with_count_only();
        }
        let mut resp = match self.kv().get(key, Some(options)).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.read_error(e, opts.revision).await),
        };
        let revision = if opts.revision > 0 {
            opts.revision
        } else {
            convert::revision(resp.header())?
        };
        Ok(RangeResponse {
            more: resp.more(),
            count: resp.count() as usize,
            kvs: resp.take_kvs().into_iter().map(key_value).collect(),
            revision,
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let request = etcd_client::Txn::new()
            .when(txn.compares.iter().map(compare).collect::<Vec<_>>())
            .and_then(txn.success.iter().map(op).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(op).collect::<Vec<_>>());
        let resp = match self.kv().txn(request).await {
            Ok(resp) => resp,
            Err(e) => {
                return Err(match classify(e) {
                    Failure::LeaseNotFound => self.missing_lease(&txn).await,
                    other => other.into_store_error(),
                });
            }
        };
        let succeeded = resp.succeeded();
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let answers = resp.op_responses();
        if answers.len() != branch.len() {
            return Err(StoreError::Io(format!(
                "etcd answered {} ops of {}",
                answers.len(),
                branch.len()
            )));
        }
        let responses = answers
            .into_iter()
            .map(|answer| match answer {
                etcd_client::TxnOpResponse::Put(mut put) => OpResponse::Put {
                    prev: put.take_prev_key().map(key_value),
                },
                etcd_client::TxnOpResponse::Delete(mut delete) => OpResponse::Delete {
                    prev: delete.take_prev_kvs().into_iter().next().map(key_value),
                },
                etcd_client::TxnOpResponse::Get(mut get) => OpResponse::Get {
                    kv: get.take_kvs().into_iter().next().map(key_value),
                },
                etcd_client::TxnOpResponse::Txn(_) => unreachable!("no nested txns are sent"),
            })
            .collect();
        Ok(TxnResponse {
            succeeded,
            revision: convert::revision(resp.header())?,
            responses,
        })
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let compacted = self.compacted_revision().await?;
        if after + 1 < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let (key, end) = span(&KeyRange::Prefix(prefix.to_owned()));
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(after + 1)
            .with_prev_key();
        let mut stream = self
            .watch
            .clone()
            .watch(key, Some(options))
            .await
            .map_err(|e| classify(e).into_store_error())?;
        // The first answer says whether the watch was created.
        let first = stream
            .message()
            .await
            .map_err(|e| classify(e).into_store_error())?
            .ok_or_else(|| StoreError::Io("etcd ended the watch before creating it".into()))?;
        if first.canceled() {
            return Err(convert::cancel_error(&first, after));
        }
        let pending: Vec<_> = first.events().iter().map(event).collect();
        let state = (stream, std::collections::VecDeque::from(pending), false);
        let events = futures::stream::unfold(
            state,
            move |(mut stream, mut pending, mut done)| async move {
                loop {
                    if let Some(next) = pending.pop_front() {
                        return Some((next, (stream, pending, done)));
                    }
                    if done {
                        return None;
                    }
                    done = true;
                    let failure = match stream.message().await {
                        Ok(Some(resp)) if resp.canceled() => convert::cancel_error(&resp, after),
                        Ok(Some(resp)) => {
                            done = false;
                            pending.extend(resp.events().iter().map(event));
                            continue;
                        }
                        Ok(None) => StoreError::Io("etcd ended the watch".into()),
                        Err(e) => classify(e).into_store_error(),
                    };
                    return Some((Err(failure), (stream, pending, done)));
                }
            },
        );
        Ok(events.boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let compacted = self.compacted_revision().await?;
        if revision < compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted,
            });
        }
        if revision == compacted {
            return Ok(());
        }
        if revision > self.current_revision().await? {
            return Err(StoreError::FutureRevision(revision));
        }
        match self.kv().compact(revision - 1, None).await {
            Ok(_) => {}
            // Someone else compacted etcd meanwhile.
            Err(e) => match classify(e) {
                Failure::Compacted => {}
                other => return Err(other.into_store_error()),
            },
        }
        self.compacted
            .fetch_max(revision, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        compaction::compacted_revision(self).await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let resp = self
            .lease
            .clone()
            .grant(seconds.max(1) as i64, None)
            .await
            .map_err(|e| classify(e).into_store_error())?;
        if !resp.error().is_empty() {
            return Err(StoreError::Io(format!("lease grant: {}", resp.error())));
        }
        Ok(resp.id())
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        match self.lease.clone().revoke(id).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match classify(e) {
                Failure::LeaseNotFound => StoreError::LeaseNotFound(id),
                other => other.into_store_error(),
            }),
        }
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        let mut lease = self.lease.clone();
        // The keep-alive stream renews once as it opens; an unknown or
        // expired lease answers with a TTL of 0, which the client reports.
        match lease.keep_alive(id).await {
            Ok(_) => {}
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => {
                return Err(StoreError::LeaseNotFound(id));
            }
            Err(e) => {
                return Err(match classify(e) {
                    Failure::LeaseNotFound => StoreError::LeaseNotFound(id),
                    other => other.into_store_error(),
                });
            }
        }
        let resp = lease
            .time_to_live(id, None)
            .await
            .map_err(|e| match classify(e) {
                Failure::LeaseNotFound => StoreError::LeaseNotFound(id),
                other => other.into_store_error(),
            })?;
        if resp.ttl() < 0 {
            return Err(StoreError::LeaseNotFound(id));
        }
        Ok(Duration::from_secs(resp.granted_ttl().max(0) as u64))
    }
}
