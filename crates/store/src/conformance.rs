//! The behaviour every [`crate::Store`] backend must show, as a test suite a
//! backend runs against itself.
//!
//! ```text
//! tugboat_store::store_conformance_tests!(|| async { my_backend_fresh_and_empty().await });
//! ```
//!
//! expands to one `#[tokio::test]` per case below, grouped in modules named
//! like the files here. The calling crate needs `tokio` (with the
//! multi-threaded runtime) as a dev-dependency. Each case gets a fresh, empty
//! store from the closure.

pub mod compaction;
pub mod kv;
pub mod leases;
pub mod linearizability;
pub mod model;
pub mod range;
pub mod txn;
pub mod watch;

use std::time::Duration;

use futures::StreamExt;

use crate::{
    Event, KeyRange, KeyValue, Op, RangeOptions, RangeResponse, Revision, Store, Txn, TxnResponse,
    WatchStream,
};

#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@modules $make;
            kv {
                an_empty_store_has_no_keys,
                put_assigns_revisions_and_versions,
                delete_returns_the_old_value_and_bumps_the_revision,
                deleting_a_missing_key_changes_nothing,
                a_recreated_key_starts_over,
                one_txn_is_one_revision,
                a_read_only_txn_keeps_the_revision,
            }
            txn {
                create_only_if_absent,
                update_only_if_unchanged,
                every_compare_target_and_op,
                a_value_compare_on_a_missing_key_fails,
                a_put_with_an_unknown_lease_writes_nothing,
            }
            range {
                prefix_ranges_are_sorted_and_bounded,
                a_key_range_is_exactly_one_key,
                limit_sets_more_and_count,
                count_only_returns_no_keys,
                paginating_at_one_revision_sees_one_snapshot,
                reads_at_old_revisions_see_old_values,
                a_future_revision_is_rejected,
            }
            watch {
                watch_replays_history_then_follows_live_changes,
                watch_from_the_current_revision_sees_only_new_changes,
                events_carry_the_previous_value,
                events_of_one_txn_share_a_revision,
                watch_has_no_gap_and_no_duplicate_while_writes_race,
                watch_from_a_compacted_revision_fails,
            }
            compaction {
                compaction_forgets_old_revisions_and_keeps_latest_values,
                compacting_a_future_revision_is_rejected,
            }
            leases {
                revoking_a_lease_deletes_its_keys_in_one_revision,
                an_expired_lease_deletes_its_keys,
                keep_alive_keeps_a_lease_alive,
                keep_alive_of_an_unknown_lease_fails,
                overwriting_a_key_without_lease_detaches_it,
            }
            linearizability {
                concurrent_clients_are_linearizable,
            }
            model {
                random_operations_match_a_model,
            }
        );
    };
    (@modules $make:expr; $($module:ident { $($case:ident),* $(,)? })*) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let store: ::std::sync::Arc<dyn $crate::Store> = ($make)().await;
                        $crate::conformance::$module::$case(store).await;
                    }
                )*
            }
        )*
    };
}

/// How long a case waits for something that should happen promptly before it
/// declares the store stuck. Only a guard against hanging, never a measure.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn put_op(key: &str, value: &str) -> Op {
    Op::Put {
        key: key.into(),
        value: value.into(),
        lease: 0,
    }
}

pub fn delete_op(key: &str) -> Op {
    Op::Delete { key: key.into() }
}

/// Runs `ops` unconditionally.
pub async fn write(store: &dyn Store, ops: Vec<Op>) -> TxnResponse {
    store
        .txn(Txn {
            success: ops,
            ..Txn::default()
        })
        .await
        .expect("txn")
}

/// Puts one key and returns the revision of the write.
pub async fn put(store: &dyn Store, key: &str, value: &str) -> Revision {
    write(store, vec![put_op(key, value)]).await.revision
}

pub async fn get(store: &dyn Store, key: &str) -> Option<KeyValue> {
    store.get(key).await.expect("get")
}

pub async fn list(store: &dyn Store, prefix: &str, opts: RangeOptions) -> RangeResponse {
    store
        .range(KeyRange::Prefix(prefix.into()), opts)
        .await
        .expect("range")
}

pub fn keys(kvs: &[KeyValue]) -> Vec<&str> {
    kvs.iter().map(|kv| kv.key.as_str()).collect()
}

/// The next `n` events of a watch.
pub async fn next_events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        let event = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .expect("the watch delivered nothing")
            .expect("the watch ended")
            .expect("the watch failed");
        events.push(event);
    }
    events
}
