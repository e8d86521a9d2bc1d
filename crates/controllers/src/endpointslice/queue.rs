//! A work queue of Services, as client-go's: a Service queued several
//! times before a worker takes it is handled once, and one that changes
//! while a worker handles it is handled again afterwards, never by two
//! workers at once.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::cache::Key;

#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
    ready: Notify,
}

#[derive(Default)]
struct State {
    order: VecDeque<Key>,
    queued: HashSet<Key>,
    running: HashSet<Key>,
    /// Keys added while a worker had them: queued again when it is done.
    again: HashSet<Key>,
}

impl Queue {
    pub fn add(&self, key: Key) {
        let mut state = self.state.lock().expect("queue lock");
        if state.running.contains(&key) {
            state.again.insert(key);
        } else if state.queued.insert(key.clone()) {
            state.order.push_back(key);
            self.ready.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed.
    pub fn add_after(self: &Arc<Self>, key: Key, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// The next key to handle, waiting for one; the caller owns it until
    /// it calls `done`.
    pub async fn next(&self) -> Key {
        loop {
            let notified = self.ready.notified();
            if let Some(key) = self.take() {
                return key;
            }
            notified.await;
        }
    }

    fn take(&self) -> Option<Key> {
        let mut state = self.state.lock().expect("queue lock");
        let key = state.order.pop_front()?;
        state.queued.remove(&key);
        state.running.insert(key.clone());
        // Another worker may be waiting while more keys are queued.
        if !state.order.is_empty() {
            self.ready.notify_one();
        }
        Some(key)
    }

    pub fn done(&self, key: &Key) {
        let again = {
            let mut state = self.state.lock().expect("queue lock");
            state.running.remove(key);
            state.again.remove(key)
        };
        if again {
            self.add(key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("ns".into(), name.into())
    }

    #[tokio::test]
    async fn a_key_is_handled_once_and_again_after_a_change_while_running() {
        let queue = Queue::default();
        queue.add(key("a"));
        queue.add(key("b"));
        queue.add(key("a"));
        let first = queue.next().await;
        assert_eq!(first, key("a"));
        queue.add(key("a"));
        assert_eq!(queue.next().await, key("b"));
        queue.done(&key("b"));
        assert!(queue.take().is_none(), "a is still running");
        queue.done(&first);
        assert_eq!(queue.next().await, key("a"));
    }
}
