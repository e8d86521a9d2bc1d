//! Compaction: old revisions go, latest values stay.

use std::sync::Arc;

use super::{delete_op, get, keys, list, put, write};
use crate::{KeyRange, RangeOptions, Store, StoreError};

pub async fn compaction_forgets_old_revisions_and_keeps_latest_values(store: Arc<dyn Store>) {
    let old = put(&*store, "/a", "untouched since").await;
    put(&*store, "/b", "1").await;
    put(&*store, "/gone", "x").await;
    let mid = put(&*store, "/b", "2").await;
    write(&*store, vec![delete_op("/gone")]).await;
    let last = put(&*store, "/c", "3").await;

    store.compact(mid).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), mid);

    let err = store
        .range(
            KeyRange::Prefix("/".into()),
            RangeOptions {
                revision: old,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::Compacted {
            requested: old,
            compacted: mid
        }
    );

    let at_mid = list(
        &*store,
        "/",
        RangeOptions {
            revision: mid,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(keys(&at_mid.kvs), ["/a", "/b", "/gone"]);
    let now = list(&*store, "/", RangeOptions::default()).await;
    assert_eq!(keys(&now.kvs), ["/a", "/b", "/c"]);
    assert_eq!(now.revision, last);
    let a = get(&*store, "/a").await.unwrap();
    assert_eq!(
        (a.value.as_slice(), a.mod_revision),
        (&b"untouched since"[..], old)
    );

    // Compacting to an earlier point than the last one is refused.
    let err = store.compact(old).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
}

pub async fn compacting_a_future_revision_is_rejected(store: Arc<dyn Store>) {
    let rev = put(&*store, "/a", "1").await;
    assert_eq!(
        store.compact(rev + 1).await.unwrap_err(),
        StoreError::FutureRevision(rev + 1)
    );
}
