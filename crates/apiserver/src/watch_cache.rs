//! One store watch shared by every API watcher.
//!
//! Kubernetes clients keep many watches open (every `kubectl get -w`, every
//! controller informer). Instead of one store watch each, a single task
//! follows everything under `/registry/`, keeps the most recent events in a
//! ring and broadcasts new ones. A watcher asking to start from a revision the
//! ring still covers is served from it; an older one goes to the store.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tugboat_store::{Event, Revision, Store, StoreError};

/// How many recent events the ring keeps for watchers that start a little behind.
const RING: usize = 8192;
/// How far a live watcher may fall behind before it is dropped (and re-watches).
const LAG: usize = 4096;

pub type EventStream = BoxStream<'static, Result<Arc<Event>, StoreError>>;

#[derive(Clone)]
pub struct WatchCache {
    store: Arc<dyn Store>,
    ring: Arc<Mutex<Ring>>,
}

struct Ring {
    /// Every event with a revision above `after` is in `events` (None until
    /// the cache's own store watch is established).
    after: Option<Revision>,
    /// The newest revision the cache has seen.
    latest: Revision,
    events: VecDeque<Arc<Event>>,
    live: broadcast::Sender<Arc<Event>>,
}

impl WatchCache {
    pub fn start(store: Arc<dyn Store>) -> WatchCache {
        let ring = Arc::new(Mutex::new(Ring {
            after: None,
            latest: 0,
            events: VecDeque::with_capacity(RING),
            live: broadcast::channel(LAG).0,
        }));
        let cache = WatchCache { store, ring };
        tokio::spawn(cache.clone().follow());
        cache
    }

    /// Events under `prefix` with a revision above `after`, in order, then live ones.
    pub async fn watch(&self, prefix: &str, after: Revision) -> Result<EventStream, StoreError> {
        let prefix = prefix.to_owned();
        let stream = match self.subscribe(after) {
            Some(stream) => stream,
            None => self
                .store
                .watch(&prefix, after)
                .await?
                .map(|r| r.map(Arc::new))
                .boxed(),
        };
        Ok(stream
            .filter(move |r| {
                let keep = r.as_ref().map_or(true, |e| e.kv.key.starts_with(&prefix));
                std::future::ready(keep)
            })
            .boxed())
    }

    /// The backlog after `after` and the live feed, if the ring reaches back that far.
    fn subscribe(&self, after: Revision) -> Option<EventStream> {
        let ring = self.ring.lock().expect("watch cache lock");
        if ring.after.is_none_or(|oldest| after < oldest) {
            return None;
        }
        // Subscribing under the lock that the follower holds while it appends
        // and sends: every event is either in the backlog or on the feed, never both.
        let live = BroadcastStream::new(ring.live.subscribe())
            .map(|r| r.map_err(|_| StoreError::WatcherLagged));
        let backlog: Vec<_> = ring
            .events
            .iter()
            .filter(|e| e.kv.mod_revision > after)
            .cloned()
            .map(Ok)
            .collect();
        Some(stream::iter(backlog).chain(live).boxed())
    }

    /// Drops events before `revision` once the store has compacted them, so
    /// that a watch from there gets 410 Expired as it would from the store.
    pub fn forget_before(&self, revision: Revision) {
        let mut ring = self.ring.lock().expect("watch cache lock");
        while ring
            .events
            .front()
            .is_some_and(|e| e.kv.mod_revision < revision)
        {
            ring.events.pop_front();
        }
        if let Some(after) = ring.after {
            ring.after = Some(after.max(revision - 1));
        }
    }

    /// Follows the store for ever, re-watching from the last revision seen if
    /// the store drops the watch.
    async fn follow(self) {
        loop {
            if let Err(e) = self.follow_once().await {
                tracing::warn!("watch cache: store watch ended: {e}; re-watching");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn follow_once(&self) -> Result<(), StoreError> {
        let start = {
            let ring = self.ring.lock().expect("watch cache lock");
            ring.after.map(|_| ring.latest)
        };
        let start = match start {
            Some(rev) => rev,
            None => self.store.current_revision().await?,
        };
        let mut events = self.store.watch("/registry/", start).await?;
        {
            let mut ring = self.ring.lock().expect("watch cache lock");
            if ring.after.is_none() {
                ring.after = Some(start);
                ring.latest = start;
            }
        }
        while let Some(event) = events.next().await {
            let event = Arc::new(event?);
            let mut ring = self.ring.lock().expect("watch cache lock");
            ring.latest = ring.latest.max(event.kv.mod_revision);
            if ring.events.len() == RING
                && let Some(oldest) = ring.events.pop_front()
            {
                ring.after = Some(oldest.kv.mod_revision);
            }
            ring.events.push_back(event.clone());
            // No receivers is fine: nobody is watching right now.
            let _ = ring.live.send(event);
        }
        Ok(())
    }
}
