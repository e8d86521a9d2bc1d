//! The embedded backend: the conformance suite, plus what only a file-backed
//! store promises (everything survives a reopen).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tugboat_store::embedded::EmbeddedStore;
use tugboat_store::{KeyRange, Op, RangeOptions, Store, StoreError, Txn, conformance};

/// A fresh store in a temporary directory. The directory is removed as soon
/// as the file is open; the open file lives on until the store is dropped.
async fn fresh_store() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap();
    EmbeddedStore::open(&dir.path().join("store.redb")).unwrap()
}

tugboat_store::store_conformance_tests!(fresh_store);

fn open(path: &Path) -> Arc<dyn Store> {
    EmbeddedStore::open(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = open(&path);
    let first = conformance::put(&*store, "/a", "1").await;
    conformance::put(&*store, "/a", "2").await;
    let kept = conformance::put(&*store, "/b", "1").await;
    let lease = store.lease_grant(Duration::from_secs(60)).await.unwrap();
    let last = conformance::write(
        &*store,
        vec![Op::Put {
            key: "/leased".into(),
            value: b"x".to_vec(),
            lease,
        }],
    )
    .await
    .revision;
    store.compact(kept).await.unwrap();
    let before = conformance::list(&*store, "/", RangeOptions::default()).await;
    drop(store);

    let store = open(&path);
    assert_eq!(store.current_revision().await.unwrap(), last);
    assert_eq!(store.compacted_revision().await.unwrap(), kept);
    assert_eq!(
        conformance::list(&*store, "/", RangeOptions::default()).await,
        before
    );
    let err = store
        .range(
            KeyRange::Prefix("/".into()),
            RangeOptions {
                revision: first,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }));

    // History after the compaction point is still there to replay.
    let mut watch = store.watch("/", kept).await.unwrap();
    let replayed = conformance::next_events(&mut watch, 1).await;
    assert_eq!(replayed[0].kv.key, "/leased");

    // The lease is back, still holding its key, and new leases do not reuse its id.
    assert_eq!(
        store.lease_keep_alive(lease).await.unwrap(),
        Duration::from_secs(60)
    );
    assert_ne!(
        store.lease_grant(Duration::from_secs(60)).await.unwrap(),
        lease
    );
    store.lease_revoke(lease).await.unwrap();
    assert_eq!(conformance::get(&*store, "/leased").await, None);
    assert_eq!(store.current_revision().await.unwrap(), last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_still_expires_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = open(&path);
    let lease = store.lease_grant(Duration::from_secs(2)).await.unwrap();
    let written = store
        .txn(Txn {
            success: vec![Op::Put {
                key: "/leased".into(),
                value: b"x".to_vec(),
                lease,
            }],
            ..Txn::default()
        })
        .await
        .unwrap()
        .revision;
    drop(store);

    let store = open(&path);
    let mut watch = store.watch("/", written).await.unwrap();
    let events = conformance::next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv.key, "/leased");
    assert_eq!(conformance::get(&*store, "/leased").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_is_dropped() {
    let store = fresh_store().await;
    let now = store.current_revision().await.unwrap();
    let mut watch = store.watch("/", now).await.unwrap();
    let writers = 50;
    let per_writer = tugboat_store::embedded::LIVE_BACKLOG / writers + 10;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    conformance::put(&*store, &format!("/k/{w}"), &i.to_string()).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let mut delivered = 0;
    let ending = loop {
        match watch.next().await {
            Some(Ok(_)) => delivered += 1,
            other => break other,
        }
    };
    assert_eq!(ending, Some(Err(StoreError::WatcherLagged)));
    assert!(delivered < writers * per_writer);
    assert!(
        watch.next().await.is_none(),
        "the stream ends after the error"
    );
}
