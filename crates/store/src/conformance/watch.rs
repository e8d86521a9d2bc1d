//! Watches: replay from a revision, then live changes, in order, with no gap
//! and no duplicate.

use std::sync::Arc;

use super::{delete_op, next_events, put, put_op, write};
use crate::{EventKind, KeyValue, Store, StoreError};

pub async fn watch_replays_history_then_follows_live_changes(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    put(&*store, "/w/a", "1").await;
    put(&*store, "/other", "x").await;
    put(&*store, "/w/b", "2").await;
    let mut watch = store.watch("/w/", start).await.unwrap();
    let replayed = next_events(&mut watch, 2).await;
    assert_eq!(
        replayed
            .iter()
            .map(|e| e.kv.key.as_str())
            .collect::<Vec<_>>(),
        ["/w/a", "/w/b"]
    );

    let live_rev = put(&*store, "/w/c", "3").await;
    put(&*store, "/other", "y").await;
    let deleted_rev = write(&*store, vec![delete_op("/w/a")]).await.revision;
    let live = next_events(&mut watch, 2).await;
    assert_eq!(
        (live[0].kind, live[0].kv.mod_revision),
        (EventKind::Put, live_rev)
    );
    assert_eq!(live[0].kv.value, b"3");
    assert_eq!(
        (live[1].kind, live[1].kv.mod_revision),
        (EventKind::Delete, deleted_rev)
    );
    assert_eq!(live[1].kv.key, "/w/a");
}

pub async fn watch_from_the_current_revision_sees_only_new_changes(store: Arc<dyn Store>) {
    put(&*store, "/w/old", "1").await;
    let now = store.current_revision().await.unwrap();
    let mut watch = store.watch("/w/", now).await.unwrap();
    let rev = put(&*store, "/w/new", "2").await;
    let events = next_events(&mut watch, 1).await;
    assert_eq!(events[0].kv.key, "/w/new");
    assert_eq!(events[0].kv.mod_revision, rev);
}

pub async fn events_carry_the_previous_value(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let created = put(&*store, "/w/a", "1").await;
    let mut watch = store.watch("/w/", start).await.unwrap();
    let updated = put(&*store, "/w/a", "2").await;
    let deleted = write(&*store, vec![delete_op("/w/a")]).await.revision;
    let events = next_events(&mut watch, 3).await;

    let v1 = KeyValue {
        key: "/w/a".into(),
        value: b"1".to_vec(),
        create_revision: created,
        mod_revision: created,
        version: 1,
        lease: 0,
    };
    let v2 = KeyValue {
        value: b"2".to_vec(),
        mod_revision: updated,
        version: 2,
        ..v1.clone()
    };
    assert_eq!(
        (events[0].kind, &events[0].kv, &events[0].prev_kv),
        (EventKind::Put, &v1, &None)
    );
    assert_eq!(
        (events[1].kind, &events[1].kv, &events[1].prev_kv),
        (EventKind::Put, &v2, &Some(v1))
    );
    assert_eq!(events[2].kind, EventKind::Delete);
    assert_eq!(
        (
            events[2].kv.key.as_str(),
            events[2].kv.mod_revision,
            events[2].kv.value.as_slice()
        ),
        ("/w/a", deleted, &b""[..])
    );
    assert_eq!(events[2].prev_kv, Some(v2));
}

pub async fn events_of_one_txn_share_a_revision(store: Arc<dyn Store>) {
    let now = store.current_revision().await.unwrap();
    let mut watch = store.watch("/w/", now).await.unwrap();
    let rev = write(&*store, vec![put_op("/w/a", "1"), put_op("/w/b", "2")])
        .await
        .revision;
    let events = next_events(&mut watch, 2).await;
    assert!(events.iter().all(|e| e.kv.mod_revision == rev));
    assert_eq!(events[0].kv.key, "/w/a");
    assert_eq!(events[1].kv.key, "/w/b");
}

/// A watch started while writes stream in, from a revision in the middle of
/// them, sees every later revision exactly once and in order.
pub async fn watch_has_no_gap_and_no_duplicate_while_writes_race(store: Arc<dyn Store>) {
    const WRITES: usize = 200;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..WRITES {
                last = put(&*store, &format!("/w/{}", i % 7), &i.to_string()).await;
            }
            last
        })
    };
    let mut watches = Vec::new();
    for _ in 0..4 {
        tokio::task::yield_now().await;
        let from = store.current_revision().await.unwrap();
        watches.push((from, store.watch("/w/", from).await.unwrap()));
    }
    let last = writer.await.unwrap();
    for (from, mut watch) in watches {
        let events = next_events(&mut watch, (last - from) as usize).await;
        let revisions: Vec<_> = events.iter().map(|e| e.kv.mod_revision).collect();
        let expected: Vec<_> = (from + 1..=last).collect();
        assert_eq!(revisions, expected, "watch from {from}");
    }
}

pub async fn watch_from_a_compacted_revision_fails(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    for i in 0..5 {
        put(&*store, "/w/a", &i.to_string()).await;
    }
    let compact_at = start + 3;
    store.compact(compact_at).await.unwrap();

    let err = match store.watch("/w/", compact_at - 2).await {
        Err(err) => err,
        Ok(_) => panic!("a watch from a compacted revision started"),
    };
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");

    // The compaction point itself is still readable, so watching from just
    // before it replays it.
    let mut watch = store.watch("/w/", compact_at - 1).await.unwrap();
    let events = next_events(&mut watch, 3).await;
    let revisions: Vec<_> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, [compact_at, compact_at + 1, compact_at + 2]);
}
