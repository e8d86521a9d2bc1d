//! How API objects are kept in the store.
//!
//! Each object is one key (`/registry/{group}/{plural}/{namespace}/{name}`)
//! holding its JSON without `metadata.resourceVersion`: the resourceVersion a
//! client sees is the key's mod revision, filled in on every read. Writes are
//! compare-and-swap on that revision, which is what optimistic concurrency
//! (409 Conflict on a stale resourceVersion) rests on. Services are written
//! through `service_allocation`, which takes and releases the addresses and
//! ports they hold in the same transactions.

use std::sync::Arc;

use serde_json::Value;
use tugboat_api::registry::Registry;
use tugboat_api::{ApiError, ApiResult, Kind, meta};
use tugboat_store::{
    Compare, KeyRange, KeyValue, Op, OpResponse, RangeOptions, Revision, Store, StoreError, Txn,
};

use crate::service_allocation::{self, ServiceRanges};
use crate::watch_cache::WatchCache;

/// Kubernetes refuses objects larger than etcd's default request limit.
const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024 / 2;

/// The store and its watch cache: what every request handler works with.
pub struct Objects {
    pub store: Arc<dyn Store>,
    pub cache: WatchCache,
    /// Where Services' cluster IPs and node ports come from.
    pub service_ranges: ServiceRanges,
    /// The kinds served: the built-in ones and those of the CRDs in the
    /// store (kept by `custom_resources`).
    pub kinds: Registry,
}

/// Keys a write takes (each must be free), releases and rewrites in the
/// same transaction as the object: what a Service holds of the service
/// ranges, and the quotas a new object is charged to.
#[derive(Debug, Default)]
pub struct Holds {
    /// Keys with the value they get.
    pub take: Vec<(String, Vec<u8>)>,
    pub release: Vec<String>,
    /// Keys rewritten with these objects, each on condition that it is still
    /// at the revision the object was read at (its resourceVersion).
    pub rewrite: Vec<(String, Value)>,
}

/// How [`Objects::write_holding`] went.
pub enum Holding {
    /// The object as written (or deleted), with its new resourceVersion.
    Written(Value),
    /// The object was not at the expected revision.
    Raced,
    /// This key was taken already.
    Taken(String),
    /// A rewritten key changed since it was read: read and decide again.
    Changed,
}

impl Objects {
    pub fn new(store: Arc<dyn Store>, service_ranges: ServiceRanges) -> Arc<Objects> {
        let cache = WatchCache::start(store.clone());
        Arc::new(Objects {
            store,
            cache,
            service_ranges,
            kinds: Registry::default(),
        })
    }

    /// The object, or 404 naming it as Kubernetes does.
    pub async fn get(&self, kind: &Kind, namespace: &str, name: &str) -> ApiResult<Value> {
        self.try_get(&kind.key(namespace, name))
            .await?
            .map(|obj| kind.served(obj))
            .ok_or_else(|| ApiError::not_found(kind.group, kind.plural, name))
    }

    pub async fn try_get(&self, key: &str) -> ApiResult<Option<Value>> {
        let kv = self.store.get(key).await.map_err(store_error)?;
        kv.as_ref().map(decode).transpose()
    }

    /// Every object of `kind` in `namespace` (in all namespaces when it is
    /// empty or the kind is cluster-scoped), read from the store.
    pub async fn list(&self, kind: &Kind, namespace: &str) -> ApiResult<Vec<Value>> {
        let found = self
            .store
            .range(
                KeyRange::Prefix(kind.namespace_prefix(namespace)),
                RangeOptions::default(),
            )
            .await
            .map_err(store_error)?;
        found
            .kvs
            .iter()
            .map(|kv| decode(kv).map(|obj| kind.served(obj)))
            .collect()
    }

    /// Writes a new object; 409 AlreadyExists if its key is taken.
    pub async fn create(&self, kind: &Kind, obj: &Value) -> ApiResult<Value> {
        self.create_charged(kind, obj, Vec::new())
            .await?
            .ok_or_else(|| ApiError::internal("nothing was charged, yet a charge changed"))
    }

    /// Writes a new object and, in the same transaction, the quotas it is
    /// charged to (`charges`: key and quota with its use added); `None`
    /// when one of those quotas changed since it was read, so that two
    /// objects never both take a quota's last room.
    pub async fn create_charged(
        &self,
        kind: &Kind,
        obj: &Value,
        charges: Vec<(String, Value)>,
    ) -> ApiResult<Option<Value>> {
        if service_allocation::allocates(kind) {
            return service_allocation::create(self, kind, obj, charges).await;
        }
        let holds = Holds {
            rewrite: charges,
            ..Holds::default()
        };
        match self.write_holding(kind, obj, false, 0, &holds).await? {
            Holding::Written(created) => Ok(Some(created)),
            Holding::Changed => Ok(None),
            Holding::Raced | Holding::Taken(_) => Err(ApiError::already_exists(
                kind.group,
                kind.plural,
                meta::name(obj),
            )),
        }
    }

    /// Replaces an object last written at `expected`; `None` when someone
    /// else wrote it in between (the caller re-reads and retries or reports 409).
    pub async fn replace(
        &self,
        kind: &Kind,
        obj: &Value,
        expected: Revision,
    ) -> ApiResult<Option<Value>> {
        if service_allocation::allocates(kind) {
            return service_allocation::replace(self, kind, obj, expected).await;
        }
        let key = kind.key(meta::namespace(obj), meta::name(obj));
        let value = encode_as(kind, obj)?;
        Ok(self
            .write(&key, value, expected)
            .await?
            .map(|revision| with_revision(obj.clone(), revision)))
    }

    /// Deletes an object last written at `expected`; `None` on a lost race.
    /// Returns the object as deleted, with the deleting revision as its
    /// resourceVersion (what the DELETED watch event carries too).
    pub async fn remove(
        &self,
        kind: &Kind,
        obj: &Value,
        expected: Revision,
    ) -> ApiResult<Option<Value>> {
        if service_allocation::allocates(kind) {
            return service_allocation::remove(self, kind, obj, expected).await;
        }
        let key = kind.key(meta::namespace(obj), meta::name(obj));
        let txn = Txn {
            compares: vec![Compare::mod_revision_is(key.clone(), expected)],
            success: vec![Op::Delete { key }],
            failure: vec![],
        };
        let resp = self.store.txn(txn).await.map_err(store_error)?;
        Ok(resp
            .succeeded
            .then(|| with_revision(obj.clone(), resp.revision)))
    }

    /// Writes (or deletes) an object last written at `expected` (0: new) in
    /// one transaction with the keys it takes and releases.
    pub async fn write_holding(
        &self,
        kind: &Kind,
        obj: &Value,
        delete: bool,
        expected: Revision,
        holds: &Holds,
    ) -> ApiResult<Holding> {
        let key = kind.key(meta::namespace(obj), meta::name(obj));
        let mut compares = vec![Compare::mod_revision_is(key.clone(), expected)];
        let mut success = vec![if delete {
            Op::Delete { key: key.clone() }
        } else {
            Op::Put {
                key: key.clone(),
                value: encode_as(kind, obj)?,
                lease: 0,
            }
        }];
        // On failure, what the object and each taken key are tell why.
        let mut failure = vec![Op::Get { key }];
        for (key, value) in &holds.take {
            compares.push(Compare::mod_revision_is(key.clone(), 0));
            success.push(Op::Put {
                key: key.clone(),
                value: value.clone(),
                lease: 0,
            });
            failure.push(Op::Get { key: key.clone() });
        }
        success.extend(
            holds
                .release
                .iter()
                .map(|key| Op::Delete { key: key.clone() }),
        );
        for (key, rewritten) in &holds.rewrite {
            compares.push(Compare::mod_revision_is(
                key.clone(),
                revision_of(rewritten),
            ));
            success.push(Op::Put {
                key: key.clone(),
                value: encode(rewritten)?,
                lease: 0,
            });
        }
        let txn = Txn {
            compares,
            success,
            failure,
        };
        let resp = self.store.txn(txn).await.map_err(store_error)?;
        if resp.succeeded {
            return Ok(Holding::Written(with_revision(obj.clone(), resp.revision)));
        }
        let found = |response: &OpResponse| match response {
            OpResponse::Get { kv } => kv.as_ref().map_or(0, |kv| kv.mod_revision),
            _ => 0,
        };
        let mut responses = resp.responses.iter();
        if responses.next().map(found) != Some(expected) {
            return Ok(Holding::Raced);
        }
        Ok(holds
            .take
            .iter()
            .zip(responses)
            .find(|(_, response)| found(response) != 0)
            .map_or(Holding::Changed, |((key, _), _)| {
                Holding::Taken(key.clone())
            }))
    }

    async fn write(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> ApiResult<Option<Revision>> {
        let txn = Txn {
            compares: vec![Compare::mod_revision_is(key, expected)],
            success: vec![Op::Put {
                key: key.to_owned(),
                value,
                lease: 0,
            }],
            failure: vec![],
        };
        let resp = self.store.txn(txn).await.map_err(store_error)?;
        Ok(match resp.responses.first() {
            Some(OpResponse::Put { .. }) if resp.succeeded => Some(resp.revision),
            _ => None,
        })
    }
}

/// The object a key holds, with its resourceVersion.
pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    let obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    Ok(with_revision(obj, kv.mod_revision))
}

/// An object of `kind` as stored: without resourceVersion, in its storage version.
fn encode_as(kind: &Kind, obj: &Value) -> ApiResult<Vec<u8>> {
    if kind.custom.is_none() {
        return encode(obj);
    }
    let mut obj = obj.clone();
    obj["apiVersion"] = kind.stored_api_version().into();
    encode(&obj)
}

fn encode(obj: &Value) -> ApiResult<Vec<u8>> {
    let mut obj = obj.clone();
    meta::set(&mut obj, "resourceVersion", Value::Null);
    let bytes = serde_json::to_vec(&obj).expect("JSON values serialize");
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::too_large(format!(
            "Request entity too large: the object is {} bytes, the limit is {MAX_OBJECT_BYTES}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

pub fn with_revision(mut obj: Value, revision: Revision) -> Value {
    meta::set(&mut obj, "resourceVersion", revision.to_string().into());
    obj
}

/// The revision an object read from the store was last written at.
pub fn revision_of(obj: &Value) -> Revision {
    meta::resource_version(obj).parse().unwrap_or(0)
}

/// Store failures as API errors: compaction is 410 Expired, the rest 500.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StoreError::FutureRevision(rev) => {
            ApiError::timeout(format!("Too large resource version: {rev}"))
        }
        other => ApiError::internal(other.to_string()),
    }
}
