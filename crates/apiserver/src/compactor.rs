//! Forgets store history older than the compaction interval (five minutes by
//! default), as the Kubernetes API server asks etcd to. Without it every revision of every object is kept for
//! ever; with it, a watch or continue token older than that gets 410 Expired
//! and the client re-lists.

use std::sync::Arc;
use std::time::Duration;

use crate::objects::Objects;

/// Every `every`, compacts at the revision seen one period earlier.
pub fn start(objects: Arc<Objects>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        // The revision seen at the previous tick: everything before it is at
        // least one period old.
        let mut previous = None;
        loop {
            ticks.tick().await;
            if let Some(revision) = previous {
                match objects.store.compact(revision).await {
                    // Watchers must see the same history the store keeps.
                    Ok(()) => objects.cache.forget_before(revision),
                    Err(e) => tracing::warn!("compacting the store at revision {revision}: {e}"),
                }
            }
            previous = objects.store.current_revision().await.ok();
        }
    });
}
