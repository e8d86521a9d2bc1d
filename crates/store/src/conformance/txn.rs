//! Compare-and-swap transactions.

use std::sync::Arc;

use super::{get, put, put_op};
use crate::{Compare, CompareOp, CompareTarget, Op, OpResponse, Store, StoreError, Txn};

fn get_op(key: &str) -> Op {
    Op::Get { key: key.into() }
}

pub async fn create_only_if_absent(store: Arc<dyn Store>) {
    let create = |value: &str| Txn {
        compares: vec![Compare::mod_revision_is("/a", 0)],
        success: vec![put_op("/a", value)],
        failure: vec![get_op("/a")],
    };
    let first = store.txn(create("first")).await.unwrap();
    assert!(first.succeeded);
    assert_eq!(first.responses, vec![OpResponse::Put { prev: None }]);

    let second = store.txn(create("second")).await.unwrap();
    assert!(!second.succeeded);
    assert_eq!(second.revision, first.revision);
    let kv = get(&*store, "/a").await;
    assert_eq!(kv.as_ref().unwrap().value, b"first");
    assert_eq!(second.responses, vec![OpResponse::Get { kv }]);
}

pub async fn update_only_if_unchanged(store: Arc<dyn Store>) {
    let rev = put(&*store, "/a", "one").await;
    let update = |expected, value: &str| Txn {
        compares: vec![Compare::mod_revision_is("/a", expected)],
        success: vec![put_op("/a", value)],
        failure: vec![],
    };
    let ok = store.txn(update(rev, "two")).await.unwrap();
    assert!(ok.succeeded);
    assert_eq!(ok.revision, rev + 1);

    let stale = store.txn(update(rev, "three")).await.unwrap();
    assert!(!stale.succeeded);
    assert_eq!(stale.revision, rev + 1);
    assert!(stale.responses.is_empty());
    assert_eq!(get(&*store, "/a").await.unwrap().value, b"two");
}

pub async fn every_compare_target_and_op(store: Arc<dyn Store>) {
    let created = put(&*store, "/a", "m").await;
    let modified = put(&*store, "/a", "n").await;
    // "/a" now has create_revision `created`, mod_revision `modified`,
    // version 2 and value "n".
    let targets = [
        (
            CompareTarget::CreateRevision(created),
            [true, false, false, false],
        ),
        (
            CompareTarget::CreateRevision(created - 1),
            [false, true, true, false],
        ),
        (
            CompareTarget::ModRevision(modified),
            [true, false, false, false],
        ),
        (
            CompareTarget::ModRevision(modified + 1),
            [false, true, false, true],
        ),
        (CompareTarget::Version(2), [true, false, false, false]),
        (CompareTarget::Version(1), [false, true, true, false]),
        (
            CompareTarget::Value(b"n".to_vec()),
            [true, false, false, false],
        ),
        (
            CompareTarget::Value(b"m".to_vec()),
            [false, true, true, false],
        ),
        (
            CompareTarget::Value(b"o".to_vec()),
            [false, true, false, true],
        ),
    ];
    let ops = [
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Greater,
        CompareOp::Less,
    ];
    for (target, expected) in targets {
        for (op, expected) in ops.into_iter().zip(expected) {
            let resp = store
                .txn(Txn {
                    compares: vec![Compare {
                        key: "/a".into(),
                        op,
                        target: target.clone(),
                    }],
                    ..Txn::default()
                })
                .await
                .unwrap();
            assert_eq!(resp.succeeded, expected, "{op:?} {target:?}");
        }
    }

    // Several compares must all hold.
    let both = |version| Txn {
        compares: vec![
            Compare::mod_revision_is("/a", modified),
            Compare {
                key: "/a".into(),
                op: CompareOp::Equal,
                target: CompareTarget::Version(version),
            },
        ],
        ..Txn::default()
    };
    assert!(store.txn(both(2)).await.unwrap().succeeded);
    assert!(!store.txn(both(3)).await.unwrap().succeeded);

    // A missing key has revisions and version 0.
    for target in [
        CompareTarget::CreateRevision(0),
        CompareTarget::ModRevision(0),
        CompareTarget::Version(0),
    ] {
        let resp = store
            .txn(Txn {
                compares: vec![Compare {
                    key: "/missing".into(),
                    op: CompareOp::Equal,
                    target,
                }],
                ..Txn::default()
            })
            .await
            .unwrap();
        assert!(resp.succeeded);
    }
}

pub async fn a_value_compare_on_a_missing_key_fails(store: Arc<dyn Store>) {
    for op in [CompareOp::Equal, CompareOp::NotEqual] {
        let resp = store
            .txn(Txn {
                compares: vec![Compare {
                    key: "/missing".into(),
                    op,
                    target: CompareTarget::Value(b"x".to_vec()),
                }],
                ..Txn::default()
            })
            .await
            .unwrap();
        assert!(!resp.succeeded, "{op:?}");
    }
}

pub async fn a_put_with_an_unknown_lease_writes_nothing(store: Arc<dyn Store>) {
    let rev = store.current_revision().await.unwrap();
    let err = store
        .txn(Txn {
            success: vec![
                put_op("/a", "1"),
                Op::Put {
                    key: "/b".into(),
                    value: b"2".to_vec(),
                    lease: 987_654_321,
                },
            ],
            ..Txn::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::LeaseNotFound(987_654_321));
    assert_eq!(get(&*store, "/a").await, None);
    assert_eq!(store.current_revision().await.unwrap(), rev);
}
