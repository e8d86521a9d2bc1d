//! What each write request does to the tables, inside the writer's redb write
//! transaction. Requests are checked before they change anything, so a
//! rejected request leaves the transaction as it found it and the rest of its
//! batch commits normally.

use std::time::Duration;

use redb::{MultimapTable, ReadableTable, Table, WriteTransaction};

use super::codec;
use super::tables::{self, Meta, io};
use super::watch::CommittedRevision;
use crate::{
    Compare, CompareOp, CompareTarget, Event, EventKind, KeyValue, LeaseId, Op, OpResponse,
    Revision, StoreError, Txn, TxnResponse,
};

pub enum Request {
    Txn(Txn),
    Compact(Revision),
    LeaseGrant(Duration),
    LeaseRevoke(LeaseId),
}

pub enum Answer {
    Txn(TxnResponse),
    Done,
    Lease(LeaseId),
}

/// A lease change to mirror in memory once the batch has committed.
pub enum LeaseChange {
    Granted(LeaseId, Duration),
    Revoked(LeaseId),
}

/// The result of one request, to be published and answered after commit.
pub struct Applied {
    pub answer: Result<Answer, StoreError>,
    pub committed: Option<CommittedRevision>,
    pub lease: Option<LeaseChange>,
}

impl Applied {
    fn rejected(err: StoreError) -> Applied {
        Applied {
            answer: Err(err),
            committed: None,
            lease: None,
        }
    }
}

/// The open tables of one write transaction and the revision being built.
pub struct Tables<'t> {
    keys: Table<'t, &'static str, &'static [u8]>,
    events: Table<'t, i64, &'static [u8]>,
    leases: Table<'t, i64, u64>,
    lease_keys: MultimapTable<'t, i64, &'static str>,
    meta: Table<'t, &'static str, i64>,
    revision: Revision,
    pending: Vec<Event>,
}

impl<'t> Tables<'t> {
    pub fn open(write: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        let meta = write.open_table(tables::META).map_err(io)?;
        Ok(Tables {
            keys: write.open_table(tables::KEYS).map_err(io)?,
            events: write.open_table(tables::EVENTS).map_err(io)?,
            leases: write.open_table(tables::LEASES).map_err(io)?,
            lease_keys: write.open_multimap_table(tables::LEASE_KEYS).map_err(io)?,
            revision: Meta::Revision.get(&meta)?,
            meta,
            pending: Vec::new(),
        })
    }

    /// Applies one request. `Err` is a storage failure that dooms the batch.
    pub fn apply(&mut self, request: Request) -> Result<Applied, StoreError> {
        match request {
            Request::Txn(txn) => self.txn(txn),
            Request::Compact(revision) => self.compact(revision),
            Request::LeaseGrant(ttl) => self.lease_grant(ttl),
            Request::LeaseRevoke(id) => self.lease_revoke(id),
        }
    }

    fn txn(&mut self, txn: Txn) -> Result<Applied, StoreError> {
        let mut succeeded = true;
        for compare in &txn.compares {
            succeeded &= self.holds(compare)?;
        }
        let ops = if succeeded { txn.success } else { txn.failure };
        for op in &ops {
            if let Op::Put { lease, .. } = op
                && *lease != 0
                && self.leases.get(*lease).map_err(io)?.is_none()
            {
                return Ok(Applied::rejected(StoreError::LeaseNotFound(*lease)));
            }
        }
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                Op::Put { key, value, lease } => OpResponse::Put {
                    prev: self.put(key, value, lease)?,
                },
                Op::Delete { key } => OpResponse::Delete {
                    prev: self.delete(&key)?,
                },
                Op::Get { key } => OpResponse::Get {
                    kv: self.get(&key)?,
                },
            });
        }
        let committed = self.finish_revision()?;
        Ok(Applied {
            answer: Ok(Answer::Txn(TxnResponse {
                succeeded,
                revision: self.revision,
                responses,
            })),
            committed,
            lease: None,
        })
    }

    fn holds(&self, compare: &Compare) -> Result<bool, StoreError> {
        let kv = self.get(&compare.key)?;
        let ordering = match (&compare.target, &kv) {
            // Like etcd: a value compare on a missing key always fails.
            (CompareTarget::Value(_), None) => return Ok(false),
            (CompareTarget::Value(want), Some(kv)) => kv.value.cmp(want),
            (CompareTarget::ModRevision(want), kv) => {
                kv.as_ref().map_or(0, |kv| kv.mod_revision).cmp(want)
            }
            (CompareTarget::CreateRevision(want), kv) => {
                kv.as_ref().map_or(0, |kv| kv.create_revision).cmp(want)
            }
            (CompareTarget::Version(want), kv) => kv.as_ref().map_or(0, |kv| kv.version).cmp(want),
        };
        Ok(match compare.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Greater => ordering.is_gt(),
            CompareOp::Less => ordering.is_lt(),
        })
    }

    fn compact(&mut self, revision: Revision) -> Result<Applied, StoreError> {
        let compacted = Meta::Compacted.get(&self.meta)?;
        if revision > self.revision {
            return Ok(Applied::rejected(StoreError::FutureRevision(revision)));
        }
        if revision < compacted {
            return Ok(Applied::rejected(StoreError::Compacted {
                requested: revision,
                compacted,
            }));
        }
        // Events at `revision` itself stay: a watch from `revision - 1` needs them.
        self.events
            .retain_in(..revision, |_, _| false)
            .map_err(io)?;
        Meta::Compacted.set(&mut self.meta, revision)?;
        Ok(Applied {
            answer: Ok(Answer::Done),
            committed: None,
            lease: None,
        })
    }

    fn lease_grant(&mut self, ttl: Duration) -> Result<Applied, StoreError> {
        let id = Meta::NextLease.get(&self.meta)?;
        Meta::NextLease.set(&mut self.meta, id + 1)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.leases.insert(id, ttl_ms).map_err(io)?;
        Ok(Applied {
            answer: Ok(Answer::Lease(id)),
            committed: None,
            lease: Some(LeaseChange::Granted(id, ttl)),
        })
    }

    fn lease_revoke(&mut self, id: LeaseId) -> Result<Applied, StoreError> {
        if self.leases.remove(id).map_err(io)?.is_none() {
            return Ok(Applied::rejected(StoreError::LeaseNotFound(id)));
        }
        let mut keys = Vec::new();
        for key in self.lease_keys.remove_all(id).map_err(io)? {
            keys.push(key.map_err(io)?.value().to_owned());
        }
        for key in keys {
            self.delete(&key)?;
        }
        let committed = self.finish_revision()?;
        Ok(Applied {
            answer: Ok(Answer::Done),
            committed,
            lease: Some(LeaseChange::Revoked(id)),
        })
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        match self.keys.get(key).map_err(io)? {
            Some(bytes) => Ok(Some(codec::decode_kv(key, bytes.value())?)),
            None => Ok(None),
        }
    }

    fn put(
        &mut self,
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> Result<Option<KeyValue>, StoreError> {
        let prev = self.get(&key)?;
        let revision = self.revision + 1;
        let kv = KeyValue {
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
            value,
            key,
        };
        self.keys
            .insert(kv.key.as_str(), codec::encode_kv(&kv).as_slice())
            .map_err(io)?;
        if let Some(prev) = &prev
            && prev.lease != 0
            && prev.lease != lease
        {
            self.lease_keys
                .remove(prev.lease, kv.key.as_str())
                .map_err(io)?;
        }
        if lease != 0 {
            self.lease_keys.insert(lease, kv.key.as_str()).map_err(io)?;
        }
        self.pending.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        Ok(prev)
    }

    fn delete(&mut self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let Some(prev) = self.get(key)? else {
            return Ok(None);
        };
        self.keys.remove(key).map_err(io)?;
        if prev.lease != 0 {
            self.lease_keys.remove(prev.lease, key).map_err(io)?;
        }
        self.pending.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_owned(),
                value: Vec::new(),
                create_revision: 0,
                mod_revision: self.revision + 1,
                version: 0,
                lease: 0,
            },
            prev_kv: Some(prev.clone()),
        });
        Ok(Some(prev))
    }

    /// Stores the events of the revision being built, if it changed anything.
    fn finish_revision(&mut self) -> Result<Option<CommittedRevision>, StoreError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        self.revision += 1;
        let events = std::mem::take(&mut self.pending);
        self.events
            .insert(self.revision, codec::encode_events(&events).as_slice())
            .map_err(io)?;
        Meta::Revision.set(&mut self.meta, self.revision)?;
        Ok(Some(CommittedRevision {
            revision: self.revision,
            events,
        }))
    }
}
