//! Puts, deletes and the per-key bookkeeping.

use std::sync::Arc;

use super::{delete_op, get, list, put, put_op, write};
use crate::{Op, OpResponse, RangeOptions, Store};

pub async fn an_empty_store_has_no_keys(store: Arc<dyn Store>) {
    let all = list(&*store, "", RangeOptions::default()).await;
    assert!(all.kvs.is_empty());
    assert_eq!(all.count, 0);
    assert!(store.current_revision().await.unwrap() >= 1);
}

pub async fn put_assigns_revisions_and_versions(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let created = put(&*store, "/a", "one").await;
    assert_eq!(created, start + 1);
    let kv = get(&*store, "/a").await.unwrap();
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease
        ),
        (&b"one"[..], created, created, 1, 0)
    );

    let resp = write(&*store, vec![put_op("/a", "two")]).await;
    assert_eq!(resp.revision, created + 1);
    assert_eq!(resp.responses, vec![OpResponse::Put { prev: Some(kv) }]);
    let kv = get(&*store, "/a").await.unwrap();
    assert_eq!(
        (
            kv.value.as_slice(),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        (&b"two"[..], created, created + 1, 2)
    );
    assert_eq!(store.current_revision().await.unwrap(), created + 1);
}

pub async fn delete_returns_the_old_value_and_bumps_the_revision(store: Arc<dyn Store>) {
    put(&*store, "/a", "one").await;
    let before = get(&*store, "/a").await;
    let resp = write(&*store, vec![delete_op("/a")]).await;
    assert_eq!(resp.revision, before.as_ref().unwrap().mod_revision + 1);
    assert_eq!(resp.responses, vec![OpResponse::Delete { prev: before }]);
    assert_eq!(get(&*store, "/a").await, None);
    assert_eq!(store.current_revision().await.unwrap(), resp.revision);
}

pub async fn deleting_a_missing_key_changes_nothing(store: Arc<dyn Store>) {
    let rev = put(&*store, "/other", "x").await;
    let resp = write(&*store, vec![delete_op("/missing")]).await;
    assert_eq!(resp.revision, rev);
    assert_eq!(resp.responses, vec![OpResponse::Delete { prev: None }]);
    assert_eq!(store.current_revision().await.unwrap(), rev);
}

pub async fn a_recreated_key_starts_over(store: Arc<dyn Store>) {
    put(&*store, "/a", "one").await;
    put(&*store, "/a", "two").await;
    write(&*store, vec![delete_op("/a")]).await;
    let rev = put(&*store, "/a", "three").await;
    let kv = get(&*store, "/a").await.unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, kv.version),
        (rev, rev, 1)
    );
}

pub async fn one_txn_is_one_revision(store: Arc<dyn Store>) {
    put(&*store, "/c", "old").await;
    let resp = write(
        &*store,
        vec![put_op("/a", "1"), put_op("/b", "2"), delete_op("/c")],
    )
    .await;
    let a = get(&*store, "/a").await.unwrap();
    let b = get(&*store, "/b").await.unwrap();
    assert_eq!(a.mod_revision, resp.revision);
    assert_eq!(b.mod_revision, resp.revision);
    assert_eq!(get(&*store, "/c").await, None);
    assert_eq!(store.current_revision().await.unwrap(), resp.revision);
}

pub async fn a_read_only_txn_keeps_the_revision(store: Arc<dyn Store>) {
    let rev = put(&*store, "/a", "one").await;
    let kv = get(&*store, "/a").await;
    let resp = write(
        &*store,
        vec![
            Op::Get { key: "/a".into() },
            Op::Get {
                key: "/missing".into(),
            },
        ],
    )
    .await;
    assert_eq!(resp.revision, rev);
    assert_eq!(
        resp.responses,
        vec![OpResponse::Get { kv }, OpResponse::Get { kv: None }]
    );
    assert_eq!(store.current_revision().await.unwrap(), rev);
}
