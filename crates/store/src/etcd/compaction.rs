//! Finding this store's compaction point on etcd, which does not report its
//! own: the oldest revision etcd still reads is its compaction point, and this
//! store's is one more (see the module docs of [`super`]).

use std::sync::atomic::Ordering;

use etcd_client::GetOptions;

use super::EtcdStore;
use super::convert::{Failure, classify};
use crate::{Revision, Store, StoreError};

/// The store's compaction point. One read when nobody else compacted etcd
/// since this store last looked; a binary search over the revisions when
/// someone did.
pub async fn compacted_revision(store: &EtcdStore) -> Result<Revision, StoreError> {
    let known = store.compacted.load(Ordering::Relaxed);
    // Revision 1 is readable even when etcd was compacted at 1; only this
    // store's own compact(2) does that, and then `known` already says 2.
    let probe = (known - 1).max(1);
    if readable(store, probe).await? {
        return Ok(known);
    }
    let current = store.current_revision().await?;
    let (mut low, mut high) = (probe + 1, current);
    while low < high {
        let mid = low + (high - low) / 2;
        if readable(store, mid).await? {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    let found = (low + 1).min(current);
    Ok(store
        .compacted
        .fetch_max(found, Ordering::Relaxed)
        .max(found))
}

/// Whether etcd still serves reads at `revision`.
async fn readable(store: &EtcdStore, revision: Revision) -> Result<bool, StoreError> {
    let options = GetOptions::new().with_count_only().with_revision(revision);
    match store.kv().get(vec![0], Some(options)).await {
        Ok(_) => Ok(true),
        Err(e) => match classify(e) {
            Failure::Compacted => Ok(false),
            other => Err(other.into_store_error()),
        },
    }
}
