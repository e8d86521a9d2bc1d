//! Watches: history replayed out of the file, then live events.
//!
//! A watcher subscribes to the live broadcast *before* it opens the read
//! snapshot it replays from. Every revision committed after that snapshot is
//! therefore broadcast to it, and every revision the snapshot holds is skipped
//! in the live part: no gap, no duplicate.

use std::sync::Arc;

use futures::{StreamExt, stream};
use redb::ReadTransaction;
use tokio::sync::broadcast::{self, error::RecvError};

use super::codec;
use super::tables::{self, Meta, io};
use crate::{Event, Revision, StoreError, WatchStream};

/// How many committed revisions a watcher may fall behind before it is
/// dropped with [`StoreError::WatcherLagged`].
pub const LIVE_BACKLOG: usize = 4096;

/// The events of one committed revision.
#[derive(Debug)]
pub struct CommittedRevision {
    pub revision: Revision,
    pub events: Vec<Event>,
}

#[derive(Clone)]
pub struct WatchHub {
    live: broadcast::Sender<Arc<CommittedRevision>>,
}

impl WatchHub {
    pub fn new() -> WatchHub {
        WatchHub {
            live: broadcast::channel(LIVE_BACKLOG).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedRevision>> {
        self.live.subscribe()
    }

    pub fn publish(&self, committed: CommittedRevision) {
        // No receiver is fine: nobody is watching.
        let _ = self.live.send(Arc::new(committed));
    }
}

/// The watch of `prefix` after `after`: history from `read`, then `live`.
pub fn stream(
    read: ReadTransaction,
    live: broadcast::Receiver<Arc<CommittedRevision>>,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream, StoreError> {
    let meta = read.open_table(tables::META).map_err(io)?;
    let current = Meta::Revision.get(&meta)?;
    let compacted = Meta::Compacted.get(&meta)?;
    if after + 1 < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let events = read.open_table(tables::EVENTS).map_err(io)?;
    let rows = if after < current {
        Some(events.range(after + 1..=current).map_err(io)?)
    } else {
        None
    };
    let history = {
        let prefix = prefix.to_owned();
        rows.into_iter().flatten().flat_map(move |row| {
            let events = row
                .map_err(io)
                .and_then(|(_, bytes)| codec::decode_events(bytes.value()));
            matching(events, &prefix)
        })
    };
    let live = live_events(live, prefix.to_owned(), after.max(current));
    Ok(end_after_error(stream::iter(history).chain(live)))
}

/// The events of one revision under `prefix`, or its read error.
fn matching(
    events: Result<Vec<Event>, StoreError>,
    prefix: &str,
) -> Vec<Result<Event, StoreError>> {
    match events {
        Ok(events) => events
            .into_iter()
            .filter(|event| event.kv.key.starts_with(prefix))
            .map(Ok)
            .collect(),
        Err(err) => vec![Err(err)],
    }
}

/// Live events under `prefix` of revisions after `seen`.
fn live_events(
    live: broadcast::Receiver<Arc<CommittedRevision>>,
    prefix: String,
    seen: Revision,
) -> impl futures::Stream<Item = Result<Event, StoreError>> {
    stream::unfold(live, |mut live| async move {
        let batch = match live.recv().await {
            Ok(committed) => Ok(committed),
            Err(RecvError::Lagged(_)) => Err(StoreError::WatcherLagged),
            Err(RecvError::Closed) => return None,
        };
        Some((batch, live))
    })
    .flat_map(move |batch| {
        let events = batch.map(|committed| {
            if committed.revision <= seen {
                Vec::new()
            } else {
                committed.events.clone()
            }
        });
        stream::iter(matching(events, &prefix))
    })
}

/// Ends the stream right after its first error.
fn end_after_error(
    events: impl futures::Stream<Item = Result<Event, StoreError>> + Send + 'static,
) -> WatchStream {
    events
        .scan(false, |failed, item| {
            let next = if *failed { None } else { Some(item) };
            if let Some(Err(_)) = &next {
                *failed = true;
            }
            futures::future::ready(next)
        })
        .boxed()
}
