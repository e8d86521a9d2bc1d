//! The etcd backend against a real etcd: the same conformance suite as the
//! embedded backend, each case on its own fresh etcd (started on free
//! loopback ports in a temporary dir, stopped when the case's store drops).
//!
//! Needs the `etcd` binary (Debian's `etcd-server`; `ETCD_BIN` overrides the
//! path) and the crate's `etcd` feature.

use std::path::PathBuf;
use std::sync::Arc;

use tugboat_store::etcd::LocalEtcd;
use tugboat_store::{KeyRange, RangeOptions, Store, StoreError, conformance};

fn etcd_binary() -> Option<PathBuf> {
    std::env::var_os("ETCD_BIN").map(PathBuf::from)
}

async fn fresh_etcd() -> LocalEtcd {
    let dir = tempfile::Builder::new()
        .prefix("tug-etcd-")
        .tempdir()
        .expect("temp dir")
        .keep();
    LocalEtcd::start(etcd_binary().as_deref(), dir)
        .await
        .expect("starting etcd (is etcd-server installed?)")
}

async fn fresh_store() -> Arc<dyn Store> {
    fresh_etcd()
        .await
        .into_store()
        .await
        .expect("connecting to etcd")
}

tugboat_store::store_conformance_tests!(fresh_store);

/// Another client compacting etcd behind the store's back: the store finds
/// the new compaction point and refuses what lies before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_by_another_client_is_seen() {
    let etcd = fresh_etcd().await;
    let other = tugboat_store::etcd::EtcdStore::connect(&[etcd.endpoint().to_owned()])
        .await
        .unwrap();
    let store = etcd.into_store().await.unwrap();
    let mut last = 0;
    for i in 0..10 {
        last = conformance::put(&*store, "/a", &i.to_string()).await;
    }
    assert_eq!(store.compacted_revision().await.unwrap(), 1);
    other.compact(last - 3).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), last - 3);
    let err = store
        .range(
            KeyRange::Prefix("/".into()),
            RangeOptions {
                revision: last - 5,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Compacted {
            requested: last - 5,
            compacted: last - 3
        }
    );
    assert!(matches!(
        store.watch("/", last - 5).await.err(),
        Some(StoreError::Compacted { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_fails() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let connected = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tugboat_store::etcd::EtcdStore::connect(&[format!("http://127.0.0.1:{port}")]),
    )
    .await
    .expect("connect gave up in time");
    assert!(matches!(connected, Err(StoreError::Io(_))));
}
