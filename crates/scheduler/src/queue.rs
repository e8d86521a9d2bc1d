//! The scheduling queue, as kube-scheduler's: pods wait in an active heap
//! (higher priority first, then first come), in back-off after a failed
//! attempt (1 s doubling to 10 s), or among the unschedulable until the
//! cluster changes (a node added or changed, a pod gone) in a way that might
//! let them fit, or five minutes pass.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::pod::PodInfo;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long an unschedulable pod waits at most before it is tried again
/// without any cluster change (kube-scheduler's podMaxInUnschedulablePodsDuration).
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled.
    InFlight,
}

struct Entry {
    pod: Arc<PodInfo>,
    state: State,
    attempts: u32,
    /// Tells current heap items from stale ones.
    generation: u64,
    /// When the last attempt failed.
    failed_at: Instant,
    /// The cluster-change count when the pod was popped: a change during its
    /// attempt sends an unschedulable pod to back-off rather than waiting.
    popped_at_change: u64,
}

impl Entry {
    fn backoff_until(&self) -> Instant {
        let exponent = self.attempts.saturating_sub(1).min(16);
        self.failed_at + (INITIAL_BACKOFF * 2u32.pow(exponent)).min(MAX_BACKOFF)
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    /// The keys of the entries in state Unschedulable, so that a cluster
    /// change or a pop looks at those alone, not at every pod waiting.
    unschedulable: HashSet<String>,
    generation: u64,
    changes: u64,
}

impl Inner {
    fn activate(&mut self, key: &str) {
        self.unschedulable.remove(key);
        self.generation += 1;
        let generation = self.generation;
        if let Some(entry) = self.entries.get_mut(key) {
            entry.state = State::Active;
            entry.generation = generation;
            self.active
                .push((entry.pod.priority, Reverse(generation), key.to_owned()));
        }
    }

    /// Back-off if the pod's back-off has not run out, else active.
    fn retry(&mut self, key: &str) {
        self.unschedulable.remove(key);
        let Some(entry) = self.entries.get(key) else {
            return;
        };
        let until = entry.backoff_until();
        if until <= Instant::now() {
            return self.activate(key);
        }
        self.generation += 1;
        let generation = self.generation;
        let entry = self.entries.get_mut(key).expect("looked up above");
        entry.state = State::Backoff;
        entry.generation = generation;
        self.backoff
            .push(Reverse((until, generation, key.to_owned())));
    }

    fn is_current(&self, key: &str, generation: u64, state: State) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.generation == generation && e.state == state)
    }

    /// Moves pods whose back-off ran out, and pods unschedulable for too
    /// long, to the active heap; returns when to look again.
    fn flush(&mut self, now: Instant) -> Instant {
        while let Some(Reverse((until, generation, key))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            if self.is_current(&key, generation, State::Backoff) {
                self.activate(&key);
            }
        }
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| {
                self.entries
                    .get(*k)
                    .is_some_and(|e| e.failed_at + MAX_UNSCHEDULABLE <= now)
            })
            .cloned()
            .collect();
        for key in stale {
            self.activate(&key);
        }
        let next_backoff = self.backoff.peek().map(|Reverse((until, ..))| *until);
        let recheck = now + Duration::from_secs(30);
        next_backoff.map_or(recheck, |t| t.min(recheck))
    }
}

/// Shared by the watches (which add and remove pods) and the scheduling
/// loop (which pops them and reports how each attempt went).
#[derive(Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    wake: Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("queue lock")
    }

    /// A pod waiting for a node, new or updated. An unschedulable pod whose
    /// spec, labels or annotations changed is tried again; a change of its
    /// status alone (our own PodScheduled=False) is not a reason to.
    pub fn add_or_update(&self, pod: PodInfo) {
        let mut inner = self.lock();
        let key = pod.key.clone();
        match inner.entries.get_mut(&key) {
            Some(entry) => {
                let changed = meaningful_change(&entry.pod.pod, &pod.pod);
                entry.pod = Arc::new(pod);
                if changed && entry.state == State::Unschedulable {
                    inner.retry(&key);
                }
            }
            None => {
                inner.entries.insert(
                    key.clone(),
                    Entry {
                        pod: Arc::new(pod),
                        state: State::Active,
                        attempts: 0,
                        generation: 0,
                        failed_at: Instant::now(),
                        popped_at_change: 0,
                    },
                );
                inner.activate(&key);
            }
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// A pod bound, deleted or no longer ours.
    pub fn remove(&self, key: &str) {
        let mut inner = self.lock();
        inner.entries.remove(key);
        inner.unschedulable.remove(key);
    }

    /// Something changed that may let unschedulable pods fit.
    pub fn cluster_changed(&self) {
        let mut inner = self.lock();
        inner.changes += 1;
        let waiting = std::mem::take(&mut inner.unschedulable);
        for key in waiting {
            inner.retry(&key);
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// The next pod to schedule, waiting for one if need be.
    pub async fn pop(&self) -> Arc<PodInfo> {
        loop {
            let next_look = {
                let mut inner = self.lock();
                let next_look = inner.flush(Instant::now());
                while let Some((_, Reverse(generation), key)) = inner.active.pop() {
                    if inner.is_current(&key, generation, State::Active) {
                        let changes = inner.changes;
                        let entry = inner.entries.get_mut(&key).expect("current entry");
                        entry.state = State::InFlight;
                        entry.popped_at_change = changes;
                        return entry.pod.clone();
                    }
                }
                next_look
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(next_look) => {}
            }
        }
    }

    /// The pod fits nowhere: it waits for a cluster change (or, if one came
    /// during the attempt, goes to back-off).
    pub fn unschedulable(&self, key: &str) {
        let mut inner = self.lock();
        let changes = inner.changes;
        let Some(entry) = inner.entries.get_mut(key) else {
            return;
        };
        if entry.state != State::InFlight {
            return;
        }
        entry.attempts += 1;
        entry.failed_at = Instant::now();
        if entry.popped_at_change != changes {
            inner.retry(key);
        } else {
            entry.state = State::Unschedulable;
            inner.unschedulable.insert(key.to_owned());
        }
        drop(inner);
        self.wake.notify_one();
    }

    /// The attempt failed for another reason (a binding refused): back-off.
    pub fn failed(&self, pod: Arc<PodInfo>) {
        let mut inner = self.lock();
        let key = pod.key.clone();
        let entry = inner.entries.entry(key.clone()).or_insert(Entry {
            pod,
            state: State::InFlight,
            attempts: 0,
            generation: 0,
            failed_at: Instant::now(),
            popped_at_change: 0,
        });
        entry.attempts += 1;
        entry.failed_at = Instant::now();
        inner.retry(&key);
        drop(inner);
        self.wake.notify_one();
    }

    /// The pod was given a node: it leaves the queue.
    pub fn scheduled(&self, key: &str) {
        self.remove(key);
    }
}

/// A change to what scheduling reads (spec, labels, annotations), not just
/// to status or bookkeeping.
fn meaningful_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}
