//! Watch: a stream of ADDED, MODIFIED, DELETED, BOOKMARK and ERROR events,
//! one JSON object per line, as Kubernetes streams them.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use rand::RngExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tugboat_api::{ApiResult, Kind, table};
use tugboat_store::{Event, EventKind, Revision};

use super::read::{Filter, read_page};
use super::{Ctx, Output, stream};
use crate::objects::{decode, store_error, with_revision};
use crate::watch_cache::EventStream;

/// How often a watcher that allows bookmarks is told the current revision.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

pub async fn watch(ctx: &Ctx) -> ApiResult<Response> {
    let kind = ctx.target.kind;
    let filter = Filter::from_request(ctx)?;
    let output = ctx.output()?;
    let timeout = match ctx.params.timeout_seconds()? {
        Some(seconds) => Duration::from_secs(seconds.max(0) as u64),
        // Kubernetes spreads long watches over 30 to 60 minutes so that
        // clients do not all reconnect at once.
        None => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let send_initial = ctx.params.send_initial_events();
    let (initial, after) = match ctx.params.revision()? {
        Some(rv) if !send_initial => (Vec::new(), rv),
        _ => {
            let page = read_page(ctx, &filter).await?;
            (page.items, page.revision)
        }
    };
    let prefix = kind.namespace_prefix(&ctx.target.namespace);
    let watcher = Watcher {
        kind,
        filter,
        output,
        bookmarks: ctx.params.allow_bookmarks(),
        last_revision: after,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    match ctx.objects.cache.watch(&prefix, after).await {
        Ok(events) => {
            tokio::spawn(watcher.run(initial, send_initial, events, timeout, tx));
        }
        Err(e) => {
            // A watch from a compacted revision is not an HTTP error: the
            // stream carries one ERROR event, which clients handle by re-listing.
            let status = store_error(e).to_json();
            let _ = tx.try_send(Ok(line("ERROR", &status)));
        }
    }
    Ok(stream(Body::from_stream(ReceiverStream::new(rx))))
}

struct Watcher {
    kind: &'static Kind,
    filter: Filter,
    output: Output,
    bookmarks: bool,
    /// The newest revision this watcher has passed, shown or not.
    last_revision: Revision,
}

type Sink = mpsc::Sender<Result<Bytes, std::io::Error>>;

impl Watcher {
    async fn run(
        mut self,
        initial: Vec<Value>,
        send_initial: bool,
        mut events: EventStream,
        timeout: Duration,
        tx: Sink,
    ) {
        for obj in initial {
            if !self.send(&tx, "ADDED", obj).await {
                return;
            }
        }
        if send_initial && self.bookmarks {
            let mut mark = self.bookmark();
            mark["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            if tx.send(Ok(line("BOOKMARK", &mark))).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = ticks.tick(), if self.bookmarks => {
                    if tx.send(Ok(line("BOOKMARK", &self.bookmark()))).await.is_err() {
                        return;
                    }
                }
                next = events.next() => match next {
                    None | Some(Err(_)) => return,
                    Some(Ok(event)) => {
                        self.last_revision = event.kv.mod_revision;
                        match self.translate(&event) {
                            Ok(Some((kind, obj))) => {
                                if !self.send(&tx, kind, obj).await {
                                    return;
                                }
                            }
                            Ok(None) => {}
                            Err(e) => {
                                let _ = tx.send(Ok(line("ERROR", &e.to_json()))).await;
                                return;
                            }
                        }
                    }
                },
            }
        }
    }

    async fn send(&self, tx: &Sink, event_type: &str, obj: Value) -> bool {
        let obj = match self.output {
            Output::Object => obj,
            Output::Table(include) => table::table(self.kind, &[obj], include),
        };
        tx.send(Ok(line(event_type, &obj))).await.is_ok()
    }

    /// What a store event means to this watcher: objects entering its
    /// selection are ADDED, leaving it DELETED.
    fn translate(&self, event: &Arc<Event>) -> ApiResult<Option<(&'static str, Value)>> {
        let served = |kv| decode(kv).map(|obj| self.kind.served(obj));
        // With no selector only a deletion needs the old object: every
        // object ever written was in the selection.
        if self.filter.is_empty() && event.kind == EventKind::Put {
            let kind = if event.prev_kv.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            };
            return Ok(Some((kind, served(&event.kv)?)));
        }
        let old = event.prev_kv.as_ref().map(served).transpose()?;
        let was_in = old.as_ref().is_some_and(|o| self.filter.matches(o));
        match event.kind {
            EventKind::Delete => Ok(old
                .filter(|_| was_in)
                .map(|o| ("DELETED", with_revision(o, event.kv.mod_revision)))),
            EventKind::Put => {
                let new = served(&event.kv)?;
                let is_in = self.filter.matches(&new);
                Ok(match (was_in, is_in) {
                    (false, true) => Some(("ADDED", new)),
                    (true, true) => Some(("MODIFIED", new)),
                    (true, false) => Some(("DELETED", new)),
                    (false, false) => None,
                })
            }
        }
    }

    fn bookmark(&self) -> Value {
        json!({
            "kind": self.kind.kind,
            "apiVersion": self.kind.api_version(),
            "metadata": {"resourceVersion": self.last_revision.to_string()},
        })
    }
}

/// `{"type":...,"object":...}` and a newline, written straight from `obj`
/// rather than from a copy of it wrapped in a new object.
fn line(event_type: &str, obj: &Value) -> Bytes {
    let mut bytes = format!(r#"{{"type":"{event_type}","object":"#).into_bytes();
    serde_json::to_writer(&mut bytes, obj).expect("JSON values serialize");
    bytes.extend_from_slice(b"}\n");
    Bytes::from(bytes)
}
