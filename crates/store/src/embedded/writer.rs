//! The single writer: group commit.
//!
//! One thread owns every write. It takes all requests waiting in its queue,
//! applies them in one redb write transaction (each request that changes
//! something gets its own revision), commits with `Durability::Immediate`,
//! and only then mirrors lease changes, publishes the events to watchers and
//! answers the callers. An acknowledged write is therefore on disk.

use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, Durability};
use tokio::sync::{mpsc, oneshot};

use super::apply::{Answer, Applied, Request, Tables};
use super::leases::Leases;
use super::tables::io;
use super::watch::WatchHub;
use crate::StoreError;

/// How many requests one commit takes at most.
const MAX_BATCH: usize = 512;
const QUEUE: usize = 4096;

struct Command {
    request: Request,
    reply: oneshot::Sender<Result<Answer, StoreError>>,
}

/// The handle to the writer thread; dropping it stops the thread and waits
/// for it, so the file is closed when the store is dropped.
pub struct Writer {
    queue: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(db: Arc<Database>, hub: WatchHub, leases: Arc<Leases>) -> Writer {
        let (queue, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&db, rx, &hub, &leases))
            .expect("spawning the store writer thread");
        Writer {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Queues a request and waits until it is committed (or rejected).
    pub async fn send(&self, request: Request) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Io("the store writer has stopped".into());
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue
            .send(Command { request, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &Database, mut rx: mpsc::Receiver<Command>, hub: &WatchHub, leases: &Leases) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        commit_batch(db, batch, hub, leases);
    }
}

fn commit_batch(db: &Database, batch: Vec<Command>, hub: &WatchHub, leases: &Leases) {
    let (requests, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|command| (command.request, command.reply))
        .unzip();
    match apply_and_commit(db, requests) {
        Ok(applied) => {
            for (applied, reply) in applied.into_iter().zip(replies) {
                if let Some(change) = applied.lease {
                    leases.apply(change);
                }
                if let Some(committed) = applied.committed {
                    hub.publish(committed);
                }
                let _ = reply.send(applied.answer);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "store commit failed");
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

fn apply_and_commit(db: &Database, requests: Vec<Request>) -> Result<Vec<Applied>, StoreError> {
    let mut write = db.begin_write().map_err(io)?;
    write.set_durability(Durability::Immediate).map_err(io)?;
    let applied = {
        let mut tables = Tables::open(&write)?;
        requests
            .into_iter()
            .map(|request| tables.apply(request))
            .collect::<Result<Vec<_>, _>>()?
    };
    write.commit().map_err(io)?;
    Ok(applied)
}
