//! The Services part: how long a change takes to carry traffic through the
//! service proxy, with 100, 1,000 and 10,000 Services programmed. On a node
//! server with two busybox httpd pods (`app: web`), every Service selects
//! both pods, so each has endpoints and its own rules. For each count:
//!
//! - a new Service: from its create acknowledged to the first HTTP 200 from
//!   the host through its cluster IP;
//! - an endpoint change: a Service whose selector matches no pod (its
//!   cluster IP refuses connections); from the label PATCH that makes a
//!   third running httpd pod match acknowledged to the first HTTP 200
//!   through it. The label is taken off again, and the refusal awaited,
//!   between samples. (Not one of the web pods: a change to those touches
//!   every Service, which only this benchmark's shared pods would do.)
//!
//! Both include the EndpointSlice controller's write and the proxy's sync
//! (kube-proxy's SLI, network programming latency, measures the same span).
//! The poll opens a fresh connection every [`POLL`] (a connection whose SYN
//! left before the rules existed would never be translated), so it adds at
//! most a few milliseconds.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{from_value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::node::{Node, create_namespace, httpd_pod};
use crate::report::{Samples, Table, count, ms};

const NAMESPACE: &str = "bench-services";
/// The label that makes a pod an endpoint of the probe Service.
const PROBE_LABEL: &str = "bench.tugboat.io/probe";
/// How often a measure opens a new connection.
const POLL: Duration = Duration::from_millis(5);
/// How often the wait for a whole batch of Services polls each.
const BULK_POLL: Duration = Duration::from_millis(100);
/// How long one connection and GET may take.
const ATTEMPT: Duration = Duration::from_millis(250);
/// How long a single change may take before the run fails.
const CHANGE_LIMIT: Duration = Duration::from_secs(60);
/// How long a whole batch of new Services may take to be programmed.
const BULK_LIMIT: Duration = Duration::from_secs(900);
/// Concurrent creates (and polls) while a batch of Services is made.
const CONCURRENCY: usize = 32;

/// Runs the node server, brings it to each of `counts` Services in turn,
/// takes `samples` of each measure there, and prints the table.
pub async fn run(
    tug: &Path,
    run: &Path,
    images: &Path,
    counts: &[usize],
    samples: usize,
) -> anyhow::Result<()> {
    let node = Node::start(tug, &run.join("services"), images).await?;
    let table = measure(&node.client, counts, samples).await;
    drop(node);
    table?.print();
    Ok(())
}

async fn measure(client: &kube::Client, counts: &[usize], samples: usize) -> anyhow::Result<Table> {
    create_namespace(client, NAMESPACE).await?;
    for i in 0..2 {
        httpd_pod(
            client,
            NAMESPACE,
            &format!("web-{i}"),
            json!({"app": "web"}),
        )
        .await?;
    }
    httpd_pod(client, NAMESPACE, "spare", json!({})).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let (probe, _) = create_service(&services, "probe", PROBE_LABEL, "on").await?;
    wait_refused(probe).await?;

    let mut table = Table::new(
        "Services: from a change acknowledged by the API to the first HTTP 200 through the cluster IP, from the host\n  (every Service selects the same 2 busybox httpd pods; polled with a new connection every 5 ms)",
        &["Services", "change", "samples", "p50", "p99", "goal"],
    );
    let mut addresses = Vec::new();
    for &n in counts {
        let started = Instant::now();
        let made = create_services(&services, addresses.len()..n).await?;
        let created = started.elapsed();
        wait_all_answer(&made).await?;
        addresses.extend(made);
        println!(
            "services: {} Services created in {} and all answering after {}",
            count(n as f64),
            ms(created),
            ms(started.elapsed())
        );

        let mut new = Samples::default();
        let mut extra = Vec::new();
        for s in 0..samples {
            let name = format!("new-{n}-{s}");
            let (address, acked) = create_service(&services, &name, "app", "web").await?;
            new.push(first_answer(address, acked, POLL, CHANGE_LIMIT).await?);
            extra.push((name, address));
        }
        remove_services(&services, &extra).await?;

        let mut changed = Samples::default();
        for _ in 0..samples {
            let acked = label(&pods, "spare", json!("on")).await?;
            changed.push(first_answer(probe, acked, POLL, CHANGE_LIMIT).await?);
            label(&pods, "spare", json!(null)).await?;
            wait_refused(probe).await?;
        }

        let goal = "p99 < 1 s at 10,000 (Kubernetes CI: < 30 s)";
        table.row(vec![
            format!("{} (to {})", count(n as f64), count((n + samples) as f64)),
            "new Service".into(),
            new.len().to_string(),
            ms(new.median()),
            ms(new.percentile(99.0)),
            goal.into(),
        ]);
        table.row(vec![
            count(n as f64),
            "pod labelled into a Service".into(),
            changed.len().to_string(),
            ms(changed.median()),
            ms(changed.percentile(99.0)),
            goal.into(),
        ]);
    }
    Ok(table)
}

/// Creates a Service on port 80 (to the pods' 8080) selecting `key=value`;
/// returns its cluster IP address and when the create was acknowledged.
async fn create_service(
    services: &Api<Service>,
    name: &str,
    key: &str,
    value: &str,
) -> anyhow::Result<(SocketAddr, Instant)> {
    let service: Service = from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {key: value},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }))?;
    let made = services.create(&PostParams::default(), &service).await?;
    let acked = Instant::now();
    let ip: Ipv4Addr = made
        .spec
        .and_then(|s| s.cluster_ip)
        .with_context(|| format!("Service {name} got no cluster IP"))?
        .parse()?;
    Ok((SocketAddr::from((ip, 80)), acked))
}

/// Creates the Services `svc-{i}` for each `i` of `range`, selecting the
/// web pods, [`CONCURRENCY`] at a time; returns their addresses.
async fn create_services(
    services: &Api<Service>,
    range: Range<usize>,
) -> anyhow::Result<Vec<SocketAddr>> {
    futures::stream::iter(range)
        .map(|i| async move {
            let (address, _) = create_service(services, &format!("svc-{i}"), "app", "web").await?;
            anyhow::Ok(address)
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

/// Waits until every one of `addresses` answers: the proxy has caught up.
async fn wait_all_answer(addresses: &[SocketAddr]) -> anyhow::Result<()> {
    let since = Instant::now();
    futures::stream::iter(addresses)
        .map(|&address| first_answer(address, since, BULK_POLL, BULK_LIMIT))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Deletes the Services `made` and waits until none answers any more.
async fn remove_services(
    services: &Api<Service>,
    made: &[(String, SocketAddr)],
) -> anyhow::Result<()> {
    for (name, _) in made {
        services.delete(name, &DeleteParams::default()).await?;
    }
    for &(_, address) in made {
        wait_for("a deleted Service to stop answering", || async move {
            !matches!(get(address).await, Ok(true))
        })
        .await?;
    }
    Ok(())
}

/// Sets the probe label of pod `name` to `value` (null takes it off);
/// returns when the PATCH was acknowledged.
async fn label(pods: &Api<Pod>, name: &str, value: serde_json::Value) -> anyhow::Result<Instant> {
    let patch = json!({"metadata": {"labels": {PROBE_LABEL: value}}});
    pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Instant::now())
}

/// Waits until `address` refuses connections: its Service has no endpoint.
async fn wait_refused(address: SocketAddr) -> anyhow::Result<()> {
    wait_for("the probe Service to refuse connections", || async move {
        matches!(get(address).await, Err(e) if e.kind() == ErrorKind::ConnectionRefused)
    })
    .await
}

/// Polls `check` every [`POLL`] until it holds, for at most [`CHANGE_LIMIT`].
async fn wait_for<F, Fut>(what: &str, check: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + CHANGE_LIMIT;
    while !check().await {
        if Instant::now() > deadline {
            bail!("gave up waiting for {what} after {CHANGE_LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Opens a new connection to `address` every `poll` (each given
/// [`ATTEMPT`] to answer) until one gets an HTTP 200; returns the time from
/// `since` to that answer.
async fn first_answer(
    address: SocketAddr,
    since: Instant,
    poll: Duration,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let mut attempts = JoinSet::new();
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if since.elapsed() > limit {
                    bail!("{address} did not answer within {limit:?}");
                }
                attempts.spawn(async move {
                    matches!(get(address).await, Ok(true)).then(Instant::now)
                });
            }
            Some(Ok(Some(answered))) = attempts.join_next() => {
                return Ok(answered - since);
            }
        }
    }
}

/// One GET of `/` on a new connection: whether it was answered 200.
async fn get(address: SocketAddr) -> std::io::Result<bool> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
        let mut head = Vec::with_capacity(16);
        while head.len() < 12 {
            if stream.read_buf(&mut head).await? == 0 {
                break;
            }
        }
        Ok(head.starts_with(b"HTTP/1.") && head.get(9..12) == Some(b"200".as_slice()))
    };
    tokio::time::timeout(ATTEMPT, exchange)
        .await
        .unwrap_or_else(|_| Err(ErrorKind::TimedOut.into()))
}
