//! Leases: keys that go away with their lease.

use std::sync::Arc;
use std::time::Duration;

use super::{get, next_events, put};
use crate::{EventKind, Op, Store, StoreError, Txn};

/// Puts `key` attached to `lease`; returns the revision of the write.
async fn put_with_lease(store: &dyn Store, key: &str, lease: i64) -> i64 {
    store
        .txn(Txn {
            success: vec![Op::Put {
                key: key.into(),
                value: b"leased".to_vec(),
                lease,
            }],
            ..Txn::default()
        })
        .await
        .unwrap()
        .revision
}

pub async fn revoking_a_lease_deletes_its_keys_in_one_revision(store: Arc<dyn Store>) {
    let lease = store.lease_grant(Duration::from_secs(60)).await.unwrap();
    put_with_lease(&*store, "/l/a", lease).await;
    put_with_lease(&*store, "/l/b", lease).await;
    put(&*store, "/l/c", "no lease").await;
    assert_eq!(get(&*store, "/l/a").await.unwrap().lease, lease);

    let now = store.current_revision().await.unwrap();
    let mut watch = store.watch("/l/", now).await.unwrap();
    store.lease_revoke(lease).await.unwrap();
    let events = next_events(&mut watch, 2).await;
    assert!(events.iter().all(|e| e.kind == EventKind::Delete));
    assert!(events.iter().all(|e| e.kv.mod_revision == now + 1));
    let mut deleted: Vec<_> = events.iter().map(|e| e.kv.key.as_str()).collect();
    deleted.sort();
    assert_eq!(deleted, ["/l/a", "/l/b"]);

    assert_eq!(get(&*store, "/l/a").await, None);
    assert!(get(&*store, "/l/c").await.is_some());
    assert_eq!(store.current_revision().await.unwrap(), now + 1);
    assert_eq!(
        store.lease_revoke(lease).await.unwrap_err(),
        StoreError::LeaseNotFound(lease)
    );
}

pub async fn an_expired_lease_deletes_its_keys(store: Arc<dyn Store>) {
    put(&*store, "/l/b", "no lease").await;
    let lease = store.lease_grant(Duration::from_secs(2)).await.unwrap();
    let written = put_with_lease(&*store, "/l/a", lease).await;
    let mut watch = store.watch("/l/", written).await.unwrap();
    let events = next_events(&mut watch, 1).await;
    assert_eq!(
        (events[0].kind, events[0].kv.key.as_str()),
        (EventKind::Delete, "/l/a")
    );
    assert_eq!(get(&*store, "/l/a").await, None);
    assert!(get(&*store, "/l/b").await.is_some());
    assert_eq!(
        store.lease_keep_alive(lease).await.unwrap_err(),
        StoreError::LeaseNotFound(lease)
    );
}

pub async fn keep_alive_keeps_a_lease_alive(store: Arc<dyn Store>) {
    let ttl = Duration::from_secs(2);
    let lease = store.lease_grant(ttl).await.unwrap();
    put_with_lease(&*store, "/l/a", lease).await;
    // Refresh well within the TTL for twice the TTL.
    for _ in 0..20 {
        assert_eq!(store.lease_keep_alive(lease).await.unwrap(), ttl);
        tokio::time::sleep(ttl / 10).await;
    }
    assert!(get(&*store, "/l/a").await.is_some());
}

pub async fn keep_alive_of_an_unknown_lease_fails(store: Arc<dyn Store>) {
    assert_eq!(
        store.lease_keep_alive(424_242).await.unwrap_err(),
        StoreError::LeaseNotFound(424_242)
    );
}

pub async fn overwriting_a_key_without_lease_detaches_it(store: Arc<dyn Store>) {
    let lease = store.lease_grant(Duration::from_secs(60)).await.unwrap();
    put_with_lease(&*store, "/l/a", lease).await;
    put(&*store, "/l/a", "now permanent").await;
    assert_eq!(get(&*store, "/l/a").await.unwrap().lease, 0);
    store.lease_revoke(lease).await.unwrap();
    assert_eq!(get(&*store, "/l/a").await.unwrap().value, b"now permanent");
}
