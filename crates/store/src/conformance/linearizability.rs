//! A linearizability check: concurrent clients read, write and
//! compare-and-swap a few keys while their calls are timed; the history must
//! be explainable by some order of the calls, each taking effect at one
//! instant between its call and its return, on a plain sequential register.
//!
//! Linearizability is local, so each key's history is checked on its own,
//! with the Wing & Gong search (with Lowe's memo of visited states).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use super::put_op;
use crate::{Compare, CompareOp, CompareTarget, OpResponse, Store, Txn};

const CLIENTS: usize = 4;
const OPS_PER_CLIENT: usize = 30;
const KEYS: [&str; 3] = ["/lin/0", "/lin/1", "/lin/2"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Get,
    Put(String),
    /// Write `new` if the value is `expected` (`None`: if the key is missing).
    Cas {
        expected: Option<String>,
        new: String,
    },
}

/// What a call returned: the value read (for a put, the value it replaced),
/// or whether a compare-and-swap swapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Value(Option<String>),
    Swapped(bool),
}

/// One completed call on one key, with its call and return times in
/// nanoseconds since the start of the run.
#[derive(Clone, Debug)]
pub struct Call {
    pub start: u128,
    pub end: u128,
    pub action: Action,
    pub outcome: Outcome,
}

pub async fn concurrent_clients_are_linearizable(store: Arc<dyn Store>) {
    let epoch = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(run_client(store.clone(), client, epoch)))
        .collect();
    let mut per_key = vec![Vec::new(); KEYS.len()];
    for client in clients {
        for (key, call) in client.await.unwrap() {
            per_key[key].push(call);
        }
    }
    for (key, calls) in KEYS.iter().zip(per_key) {
        assert!(
            is_linearizable(&calls),
            "history of {key} is not linearizable: {calls:#?}"
        );
    }
}

async fn run_client(store: Arc<dyn Store>, client: usize, epoch: Instant) -> Vec<(usize, Call)> {
    let mut rng = fastrand::Rng::new();
    let mut last_seen: Vec<Option<String>> = vec![None; KEYS.len()];
    let mut calls = Vec::with_capacity(OPS_PER_CLIENT);
    for i in 0..OPS_PER_CLIENT {
        let key = rng.usize(..KEYS.len());
        let value = format!("c{client}-{i}");
        let action = match rng.u8(..3) {
            0 => Action::Get,
            1 => Action::Put(value),
            _ => Action::Cas {
                expected: last_seen[key].clone(),
                new: value,
            },
        };
        let start = epoch.elapsed().as_nanos();
        let outcome = perform(&*store, KEYS[key], &action).await;
        let end = epoch.elapsed().as_nanos();
        match (&action, &outcome) {
            (Action::Get, Outcome::Value(seen)) => last_seen[key] = seen.clone(),
            (Action::Put(new) | Action::Cas { new, .. }, _) => last_seen[key] = Some(new.clone()),
            _ => {}
        }
        calls.push((
            key,
            Call {
                start,
                end,
                action,
                outcome,
            },
        ));
    }
    calls
}

async fn perform(store: &dyn Store, key: &str, action: &Action) -> Outcome {
    let text = |value: Vec<u8>| String::from_utf8(value).unwrap();
    match action {
        Action::Get => Outcome::Value(store.get(key).await.unwrap().map(|kv| text(kv.value))),
        Action::Put(value) => {
            let resp = super::write(store, vec![put_op(key, value)]).await;
            match resp.responses.into_iter().next() {
                Some(OpResponse::Put { prev }) => Outcome::Value(prev.map(|kv| text(kv.value))),
                other => panic!("a put answered {other:?}"),
            }
        }
        Action::Cas { expected, new } => {
            let target = match expected {
                Some(value) => CompareTarget::Value(value.clone().into_bytes()),
                None => CompareTarget::Version(0),
            };
            let resp = store
                .txn(Txn {
                    compares: vec![Compare {
                        key: key.into(),
                        op: CompareOp::Equal,
                        target,
                    }],
                    success: vec![put_op(key, new)],
                    failure: vec![],
                })
                .await
                .unwrap();
            Outcome::Swapped(resp.succeeded)
        }
    }
}

/// The register's answer to `action` and its value afterwards.
fn step(value: &Option<String>, action: &Action) -> (Outcome, Option<String>) {
    match action {
        Action::Get => (Outcome::Value(value.clone()), value.clone()),
        Action::Put(new) => (Outcome::Value(value.clone()), Some(new.clone())),
        Action::Cas { expected, new } if expected == value => {
            (Outcome::Swapped(true), Some(new.clone()))
        }
        Action::Cas { .. } => (Outcome::Swapped(false), value.clone()),
    }
}

/// Whether the calls on one register (initially missing) are linearizable.
pub fn is_linearizable(calls: &[Call]) -> bool {
    assert!(calls.len() <= 128, "the search tracks at most 128 calls");
    let all = if calls.len() == 128 {
        u128::MAX
    } else {
        (1u128 << calls.len()) - 1
    };
    search(calls, all, 0, None, &mut HashSet::new())
}

/// Depth-first over the calls that may take effect next: those invoked before
/// every pending call has returned. `visited` holds (calls done, value) pairs
/// already known to lead nowhere.
fn search(
    calls: &[Call],
    all: u128,
    done: u128,
    value: Option<String>,
    visited: &mut HashSet<(u128, Option<String>)>,
) -> bool {
    if done == all {
        return true;
    }
    if !visited.insert((done, value.clone())) {
        return false;
    }
    let pending = || (0..calls.len()).filter(move |i| done & (1 << i) == 0);
    let first_return = pending().map(|i| calls[i].end).min().unwrap();
    pending()
        .filter(|&i| calls[i].start <= first_return)
        .any(|i| {
            let (outcome, next) = step(&value, &calls[i].action);
            outcome == calls[i].outcome && search(calls, all, done | (1 << i), next, visited)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(start: u128, end: u128, action: Action, outcome: Outcome) -> Call {
        Call {
            start,
            end,
            action,
            outcome,
        }
    }

    fn value(v: Option<&str>) -> Outcome {
        Outcome::Value(v.map(str::to_owned))
    }

    #[test]
    fn overlapping_calls_may_take_effect_in_either_order() {
        // The get overlaps the put, so it may see the old or the new value.
        for seen in [None, Some("a")] {
            let calls = [
                call(0, 10, Action::Put("a".into()), value(None)),
                call(5, 15, Action::Get, value(seen)),
            ];
            assert!(is_linearizable(&calls));
        }
    }

    #[test]
    fn a_stale_read_after_a_finished_write_is_caught() {
        let calls = [
            call(0, 10, Action::Put("a".into()), value(None)),
            call(20, 30, Action::Get, value(None)),
        ];
        assert!(!is_linearizable(&calls));
    }

    #[test]
    fn two_successful_swaps_from_the_same_value_are_caught() {
        let cas = |new: &str| Action::Cas {
            expected: None,
            new: new.into(),
        };
        let calls = [
            call(0, 10, cas("a"), Outcome::Swapped(true)),
            call(5, 15, cas("b"), Outcome::Swapped(true)),
        ];
        assert!(!is_linearizable(&calls));
    }

    #[test]
    fn a_put_must_report_the_value_it_replaced() {
        let calls = [
            call(0, 10, Action::Put("a".into()), value(None)),
            call(20, 30, Action::Put("b".into()), value(None)),
        ];
        assert!(!is_linearizable(&calls));
    }
}
