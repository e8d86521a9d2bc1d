//! Random transactions, compactions and reads checked against a plain
//! in-memory model that keeps a full copy of the keys at every revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;

use super::{PATIENCE, delete_op, put_op};
use crate::{
    Event, EventKind, KeyRange, KeyValue, Op, OpResponse, RangeOptions, RangeResponse, Revision,
    Store, TxnResponse,
};

const STEPS: usize = 300;
const KEYS: usize = 8;
const PREFIXES: [&str; 3] = ["", "/m/", "/m/1"];

/// The keys at each revision, and every event.
struct Model {
    snapshots: BTreeMap<Revision, BTreeMap<String, KeyValue>>,
    events: Vec<Event>,
    compacted: Revision,
}

impl Model {
    fn new(start: Revision) -> Model {
        Model {
            snapshots: BTreeMap::from([(start, BTreeMap::new())]),
            events: Vec::new(),
            compacted: 1,
        }
    }

    fn current(&self) -> Revision {
        *self.snapshots.keys().next_back().unwrap()
    }

    fn txn(&mut self, ops: &[Op]) -> TxnResponse {
        let revision = self.current() + 1;
        let mut keys = self.snapshots[&self.current()].clone();
        let mut responses = Vec::new();
        let mut changed = false;
        for op in ops {
            responses.push(match op {
                Op::Put { key, value, lease } => {
                    let prev = keys.get(key).cloned();
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                        mod_revision: revision,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        lease: *lease,
                    };
                    keys.insert(key.clone(), kv.clone());
                    self.events.push(Event {
                        kind: EventKind::Put,
                        kv,
                        prev_kv: prev.clone(),
                    });
                    changed = true;
                    OpResponse::Put { prev }
                }
                Op::Delete { key } => {
                    let prev = keys.remove(key);
                    if let Some(prev) = &prev {
                        self.events.push(Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key: key.clone(),
                                value: Vec::new(),
                                create_revision: 0,
                                mod_revision: revision,
                                version: 0,
                                lease: 0,
                            },
                            prev_kv: Some(prev.clone()),
                        });
                        changed = true;
                    }
                    OpResponse::Delete { prev }
                }
                Op::Get { key } => OpResponse::Get {
                    kv: keys.get(key).cloned(),
                },
            });
        }
        if changed {
            self.snapshots.insert(revision, keys);
        }
        TxnResponse {
            succeeded: true,
            revision: self.current(),
            responses,
        }
    }

    fn range(&self, range: &KeyRange, limit: usize, revision: Revision) -> RangeResponse {
        let matching: Vec<&KeyValue> = self.snapshots[&revision]
            .values()
            .filter(|kv| match range {
                KeyRange::Key(key) => &kv.key == key,
                KeyRange::Prefix(prefix) => kv.key.starts_with(prefix),
                KeyRange::PrefixFrom { prefix, start } => {
                    kv.key.starts_with(prefix) && &kv.key >= start
                }
            })
            .collect();
        let shown = if limit == 0 {
            matching.len()
        } else {
            limit.min(matching.len())
        };
        RangeResponse {
            kvs: matching[..shown].iter().map(|kv| (*kv).clone()).collect(),
            more: shown < matching.len(),
            count: matching.len(),
            revision,
        }
    }
}

pub async fn random_operations_match_a_model(store: Arc<dyn Store>) {
    let mut rng = fastrand::Rng::new();
    let seed = rng.get_seed();
    let start = store.current_revision().await.unwrap();
    let mut model = Model::new(start);
    model.compacted = store.compacted_revision().await.unwrap();
    let key = |rng: &mut fastrand::Rng| format!("/m/{}", rng.usize(..KEYS));

    for step in 0..STEPS {
        let context = format!("seed {seed}, step {step}");
        match rng.u8(..20) {
            0..=11 => {
                let mut ops = Vec::new();
                // Distinct keys in one txn: etcd refuses duplicates.
                let mut used = Vec::new();
                for _ in 0..rng.usize(1..=3) {
                    let key = key(&mut rng);
                    if used.contains(&key) {
                        continue;
                    }
                    ops.push(match rng.u8(..4) {
                        0 => delete_op(&key),
                        1 => Op::Get { key: key.clone() },
                        _ => put_op(&key, &rng.u32(..).to_string()),
                    });
                    used.push(key);
                }
                let expected = model.txn(&ops);
                let got = super::write(&*store, ops).await;
                assert_eq!(got, expected, "{context}");
            }
            12 if model.current() > model.compacted => {
                let revision = rng.i64(model.compacted + 1..=model.current());
                store.compact(revision).await.unwrap();
                model.compacted = revision;
            }
            _ => {
                let revision = rng.i64(model.compacted..=model.current());
                let prefix = PREFIXES[rng.usize(..PREFIXES.len())].to_owned();
                let range = match rng.u8(..3) {
                    0 => KeyRange::Key(key(&mut rng)),
                    1 => KeyRange::Prefix(prefix),
                    _ => KeyRange::PrefixFrom {
                        prefix,
                        start: key(&mut rng),
                    },
                };
                let limit = rng.usize(..4);
                let opts = RangeOptions {
                    limit,
                    revision,
                    count_only: false,
                };
                let got = store.range(range.clone(), opts).await.unwrap();
                assert_eq!(
                    got,
                    model.range(&range, limit, revision),
                    "{context}: {range:?}"
                );
            }
        }
    }

    assert_eq!(store.compacted_revision().await.unwrap(), model.compacted);
    let from = model.compacted - 1;
    let expected: Vec<Event> = model
        .events
        .into_iter()
        .filter(|event| event.kv.mod_revision > from)
        .collect();
    let watch = store.watch("/m/", from).await.unwrap();
    let replayed: Vec<Event> = tokio::time::timeout(
        PATIENCE,
        watch.take(expected.len()).map(Result::unwrap).collect(),
    )
    .await
    .expect("the watch replayed too little");
    assert_eq!(replayed, expected, "seed {seed}");
}
