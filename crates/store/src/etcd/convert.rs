//! Between etcd's types and the store's: keys, compares, events, errors.

use etcd_client::{CompareOp as EtcdOp, EventType, ResponseHeader, WatchResponse};

use crate::{Compare, CompareOp, CompareTarget, Event, EventKind, KeyValue, Revision, StoreError};

/// The first key after every key that starts with `prefix` (etcd's range
/// end for a prefix); `\0` (no end) when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

pub fn key_value(kv: etcd_client::KeyValue) -> KeyValue {
    let (create_revision, mod_revision, version, lease) = (
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
        kv.lease(),
    );
    let (key, value) = kv.into_key_value();
    KeyValue {
        key: text(key),
        value,
        create_revision,
        mod_revision,
        version,
        lease,
    }
}

pub fn event(event: &etcd_client::Event) -> Result<Event, StoreError> {
    let kv = event
        .kv()
        .cloned()
        .map(key_value)
        .ok_or_else(|| StoreError::Io("etcd sent an event without a key".into()))?;
    Ok(Event {
        kind: match event.event_type() {
            EventType::Put => EventKind::Put,
            EventType::Delete => EventKind::Delete,
        },
        kv,
        prev_kv: event.prev_kv().cloned().map(key_value),
    })
}

pub fn compare(compare: &Compare) -> etcd_client::Compare {
    let op = match compare.op {
        CompareOp::Equal => EtcdOp::Equal,
        CompareOp::NotEqual => EtcdOp::NotEqual,
        CompareOp::Greater => EtcdOp::Greater,
        CompareOp::Less => EtcdOp::Less,
    };
    let key = compare.key.as_bytes();
    match &compare.target {
        CompareTarget::ModRevision(rev) => etcd_client::Compare::mod_revision(key, op, *rev),
        CompareTarget::CreateRevision(rev) => etcd_client::Compare::create_revision(key, op, *rev),
        CompareTarget::Version(version) => etcd_client::Compare::version(key, op, *version),
        CompareTarget::Value(value) => etcd_client::Compare::value(key, op, value.as_slice()),
    }
}

pub fn revision(header: Option<&ResponseHeader>) -> Result<Revision, StoreError> {
    header
        .map(ResponseHeader::revision)
        .ok_or_else(|| StoreError::Io("etcd answered without a header".into()))
}

/// What went wrong, as far as the store cares. etcd says it in the gRPC
/// status message (its `rpctypes` errors).
#[derive(Debug)]
pub enum Failure {
    Compacted,
    FutureRevision,
    LeaseNotFound,
    Other(String),
}

pub fn classify(error: etcd_client::Error) -> Failure {
    if let etcd_client::Error::GRpcStatus(status) = &error {
        let message = status.message();
        if message.contains("required revision has been compacted") {
            return Failure::Compacted;
        }
        if message.contains("required revision is a future revision") {
            return Failure::FutureRevision;
        }
        if message.contains("requested lease not found") {
            return Failure::LeaseNotFound;
        }
    }
    Failure::Other(format!("etcd: {error}"))
}

impl Failure {
    /// For a failure whose details the caller cannot add.
    pub fn into_store_error(self) -> StoreError {
        match self {
            Failure::Compacted => {
                StoreError::Io("etcd: required revision has been compacted".into())
            }
            Failure::FutureRevision => {
                StoreError::Io("etcd: required revision is a future revision".into())
            }
            Failure::LeaseNotFound => StoreError::Io("etcd: requested lease not found".into()),
            Failure::Other(message) => StoreError::Io(message),
        }
    }
}

/// The error a watch ends with when etcd cancels it: compacted past the
/// watch's position (this store's compaction point is etcd's plus one), or
/// any other reason.
pub fn cancel_error(resp: &WatchResponse, after: Revision) -> StoreError {
    if resp.compact_revision() > 0 {
        StoreError::Compacted {
            requested: after,
            compacted: resp.compact_revision() + 1,
        }
    } else {
        StoreError::Io(format!("etcd canceled the watch: {}", resp.cancel_reason()))
    }
}
