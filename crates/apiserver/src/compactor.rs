//! Forgets store history older than about five minutes, as the Kubernetes API
//! server asks etcd to. Without it every revision of every object is kept for
//! ever; with it, a watch or continue token older than that gets 410 Expired
//! and the client re-lists.

use std::sync::Arc;
use std::time::Duration;

use tugboat_store::Store;

const EVERY: Duration = Duration::from_secs(300);

pub fn start(store: Arc<dyn Store>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        // The revision seen at the previous tick: everything before it is at
        // least one period old.
        let mut previous = None;
        loop {
            ticks.tick().await;
            if let Some(revision) = previous
                && let Err(e) = store.compact(revision).await
            {
                tracing::warn!("compacting the store at revision {revision}: {e}");
            }
            previous = store.current_revision().await.ok();
        }
    });
}
