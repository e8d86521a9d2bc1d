//! Range reads: prefixes, limits, counts, pagination and old revisions.

use std::sync::Arc;

use super::{delete_op, keys, list, put, write};
use crate::{KeyRange, RangeOptions, Store, StoreError};

pub async fn prefix_ranges_are_sorted_and_bounded(store: Arc<dyn Store>) {
    for key in ["/p/b", "/q/a", "/p/a", "/pa", "/p/c", "/p"] {
        put(&*store, key, key).await;
    }
    let resp = list(&*store, "/p/", RangeOptions::default()).await;
    assert_eq!(keys(&resp.kvs), ["/p/a", "/p/b", "/p/c"]);
    assert_eq!(resp.kvs[1].value, b"/p/b");
    assert_eq!((resp.count, resp.more), (3, false));
    assert_eq!(resp.revision, store.current_revision().await.unwrap());

    let all = list(&*store, "", RangeOptions::default()).await;
    assert_eq!(
        keys(&all.kvs),
        ["/p", "/p/a", "/p/b", "/p/c", "/pa", "/q/a"]
    );
}

pub async fn a_key_range_is_exactly_one_key(store: Arc<dyn Store>) {
    put(&*store, "/a", "1").await;
    put(&*store, "/ab", "2").await;
    let resp = store
        .range(KeyRange::Key("/a".into()), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(keys(&resp.kvs), ["/a"]);
    assert_eq!(resp.count, 1);
    let missing = store
        .range(KeyRange::Key("/".into()), RangeOptions::default())
        .await
        .unwrap();
    assert!(missing.kvs.is_empty());
    assert_eq!(missing.count, 0);
}

pub async fn limit_sets_more_and_count(store: Arc<dyn Store>) {
    for i in 0..5 {
        put(&*store, &format!("/k/{i}"), "v").await;
    }
    let page = list(
        &*store,
        "/k/",
        RangeOptions {
            limit: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(keys(&page.kvs), ["/k/0", "/k/1"]);
    assert_eq!((page.count, page.more), (5, true));

    let exact = list(
        &*store,
        "/k/",
        RangeOptions {
            limit: 5,
            ..Default::default()
        },
    )
    .await;
    assert_eq!((exact.kvs.len(), exact.count, exact.more), (5, 5, false));
}

pub async fn count_only_returns_no_keys(store: Arc<dyn Store>) {
    for i in 0..3 {
        put(&*store, &format!("/k/{i}"), "v").await;
    }
    put(&*store, "/other", "v").await;
    let resp = list(
        &*store,
        "/k/",
        RangeOptions {
            count_only: true,
            ..Default::default()
        },
    )
    .await;
    assert!(resp.kvs.is_empty());
    assert_eq!(resp.count, 3);
}

/// How the API server pages a list: the first page fixes the revision, each
/// next page resumes after the last key at that revision.
pub async fn paginating_at_one_revision_sees_one_snapshot(store: Arc<dyn Store>) {
    let expected: Vec<String> = (0..10).map(|i| format!("/k/{i:02}")).collect();
    for key in &expected {
        put(&*store, key, "original").await;
    }
    let first = list(
        &*store,
        "/k/",
        RangeOptions {
            limit: 3,
            ..Default::default()
        },
    )
    .await;
    let at = first.revision;
    let mut seen = first.kvs;
    let mut more = first.more;
    let mut remaining = first.count;
    while more {
        // Changes after the first page must not show in later pages.
        write(
            &*store,
            vec![delete_op(&expected[9]), super::put_op("/k/05x", "new")],
        )
        .await;
        put(&*store, &expected[8], "changed").await;

        remaining -= 3;
        let start = format!("{}\0", seen.last().unwrap().key);
        let page = store
            .range(
                KeyRange::PrefixFrom {
                    prefix: "/k/".into(),
                    start,
                },
                RangeOptions {
                    limit: 3,
                    revision: at,
                    count_only: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, at);
        assert_eq!(page.count, remaining);
        more = page.more;
        seen.extend(page.kvs);
    }
    assert_eq!(keys(&seen), expected);
    assert!(seen.iter().all(|kv| kv.value == b"original"));
}

pub async fn reads_at_old_revisions_see_old_values(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let r1 = put(&*store, "/a", "a1").await;
    let r2 = put(&*store, "/b", "b1").await;
    let r3 = put(&*store, "/a", "a2").await;
    let r4 = write(&*store, vec![delete_op("/b")]).await.revision;
    let r5 = put(&*store, "/c", "c1").await;

    let at = |revision| {
        let store = store.clone();
        async move {
            let resp = list(
                &*store,
                "/",
                RangeOptions {
                    revision,
                    ..Default::default()
                },
            )
            .await;
            assert_eq!(resp.revision, revision);
            assert_eq!(resp.count, resp.kvs.len());
            resp.kvs
                .into_iter()
                .map(|kv| {
                    (
                        kv.key,
                        String::from_utf8(kv.value).unwrap(),
                        kv.mod_revision,
                        kv.version,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let kv = |k: &str, v: &str, rev, version| (k.to_owned(), v.to_owned(), rev, version);
    assert_eq!(at(start).await, vec![]);
    assert_eq!(at(r1).await, vec![kv("/a", "a1", r1, 1)]);
    assert_eq!(
        at(r2).await,
        vec![kv("/a", "a1", r1, 1), kv("/b", "b1", r2, 1)]
    );
    assert_eq!(
        at(r3).await,
        vec![kv("/a", "a2", r3, 2), kv("/b", "b1", r2, 1)]
    );
    assert_eq!(at(r4).await, vec![kv("/a", "a2", r3, 2)]);
    assert_eq!(
        at(r5).await,
        vec![kv("/a", "a2", r3, 2), kv("/c", "c1", r5, 1)]
    );

    let old_b = store
        .range(
            KeyRange::Key("/b".into()),
            RangeOptions {
                revision: r3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(old_b.kvs[0].value, b"b1");
}

pub async fn a_future_revision_is_rejected(store: Arc<dyn Store>) {
    let rev = put(&*store, "/a", "1").await;
    let err = store
        .range(
            KeyRange::Prefix("/".into()),
            RangeOptions {
                revision: rev + 1,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::FutureRevision(rev + 1));
}
