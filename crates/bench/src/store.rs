//! The store part: one workload through the `tugboat_store::Store` trait,
//! run against each backend in turn.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use tokio::sync::Barrier;
use tugboat_store::{Compare, KeyRange, Op, RangeOptions, Store, Txn};

use crate::report::{Creates, Samples};

const PODS: &str = "/registry/pods/bench/";
const WATCHED: &str = "/registry/configmaps/bench/";

/// About the size of a small pod as the API server stores it.
fn value(name: &str) -> Vec<u8> {
    let mut v = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"bench"}},"spec":{{"containers":[{{"name":"app","image":"registry.example/bench/app:1.0"}}]}},"pad":""#
    )
    .into_bytes();
    v.resize(1000, b'x');
    v.extend_from_slice(b"\"}");
    v
}

/// The API server's create: put only if the key does not exist.
fn create(key: String, value: Vec<u8>) -> Txn {
    Txn {
        compares: vec![Compare::mod_revision_is(key.clone(), 0)],
        success: vec![Op::Put {
            key,
            value,
            lease: 0,
        }],
        failure: vec![],
    }
}

/// `count` single-key creates spread over `clients` concurrent tasks.
pub async fn creates(
    store: &Arc<dyn Store>,
    clients: usize,
    count: usize,
) -> anyhow::Result<Creates> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let mine = count / clients + usize::from(client < count % clients);
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut latencies = Samples::default();
            for i in 0..mine {
                let name = format!("c{clients}-{client}-{i}");
                let txn = create(format!("{PODS}{name}"), value(&name));
                let sent = Instant::now();
                let resp = store.txn(txn).await?;
                latencies.push(sent.elapsed());
                if !resp.succeeded {
                    bail!("the create of {name} found the key taken");
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut latencies = Samples::default();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Creates {
        count,
        elapsed: start.elapsed(),
        latencies,
    })
}

/// Times `runs` reads of the whole pod prefix; checks it holds `expected` keys.
pub async fn range(
    store: &Arc<dyn Store>,
    expected: usize,
    runs: usize,
) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    for _ in 0..runs {
        let start = Instant::now();
        let resp = store
            .range(KeyRange::Prefix(PODS.into()), RangeOptions::default())
            .await?;
        samples.push(start.elapsed());
        if resp.kvs.len() != expected {
            bail!("the range held {} keys, not {expected}", resp.kvs.len());
        }
    }
    Ok(samples)
}

/// `watchers` watches of one prefix, then `events` puts one after another,
/// `gap` apart. Each sample is the time from calling the put to one watcher
/// receiving its event.
pub async fn watch_latency(
    store: &Arc<dyn Store>,
    watchers: usize,
    events: usize,
    gap: Duration,
) -> anyhow::Result<Samples> {
    let sent: Arc<Vec<OnceLock<Instant>>> =
        Arc::new((0..events).map(|_| OnceLock::new()).collect());
    let from = store.current_revision().await?;
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut watch = store.watch(WATCHED, from).await?;
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            while samples.len() < events {
                let event = tokio::time::timeout(Duration::from_secs(60), watch.next())
                    .await
                    .context("the watch delivered too little in time")?
                    .context("the watch ended early")??;
                let now = Instant::now();
                let i: usize = event.kv.key[WATCHED.len()..].parse()?;
                let at = sent[i].get().context("an event before its put")?;
                samples.push(now.duration_since(*at));
            }
            anyhow::Ok(samples)
        }));
    }
    for (i, at) in sent.iter().enumerate() {
        let key = format!("{WATCHED}{i}");
        let txn = Txn {
            success: vec![Op::Put {
                key,
                value: value(&i.to_string()),
                lease: 0,
            }],
            ..Txn::default()
        };
        at.set(Instant::now()).unwrap();
        store.txn(txn).await?;
        tokio::time::sleep(gap).await;
    }
    let mut samples = Samples::default();
    for task in tasks {
        samples.extend(task.await??);
    }
    Ok(samples)
}
