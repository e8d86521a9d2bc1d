//! The scheduler part: how many pods per second `tug scheduler` binds.
//! A `tug server` with no node agent, controllers or scheduler gets N
//! simulated Ready nodes and P unbound pods; then `tug scheduler` starts
//! and a watch counts the pods as they are bound. Throughput is the pods
//! over the time from the first binding seen to the last (the figure
//! Kubernetes' scheduler_perf reports); the wall time from the scheduler's
//! start, its initial lists included, is printed beside it. A second
//! case runs the controllers too: a Deployment of many replicas on a few
//! simulated nodes, timed from its creation until every pod is bound.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::api::{TugServer, free_port};
use crate::report::count;

const NAMESPACE: &str = "sched-bench";
/// Concurrent creates while setting up.
const WRITERS: usize = 64;

/// One workload: this many nodes and pods.
#[derive(Clone, Copy)]
pub struct Case {
    pub nodes: usize,
    pub pods: usize,
}

impl std::str::FromStr for Case {
    type Err = String;

    /// `1000x10000`: nodes x pods.
    fn from_str(s: &str) -> Result<Case, String> {
        let (nodes, pods) = s.split_once('x').ok_or("expected NODESxPODS")?;
        Ok(Case {
            nodes: nodes.parse().map_err(|_| "bad node count")?,
            pods: pods.parse().map_err(|_| "bad pod count")?,
        })
    }
}

/// What one case measured.
pub struct Outcome {
    pub pods_per_second: f64,
    pub wall: Duration,
    pub setup: Duration,
}

pub async fn measure(tug: &Path, run: &Path, case: Case) -> anyhow::Result<Outcome> {
    let data = run.join(format!("sched-{}x{}", case.nodes, case.pods));
    let flags = [
        "--disable-agent",
        "--disable-controllers",
        "--disable-scheduler",
    ];
    let setup = Instant::now();
    let (server, client) = cluster(tug, &data, &flags, case.nodes).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    create_all(case.pods, {
        let pods = pods.clone();
        move |i| {
            let pods = pods.clone();
            async move {
                pods.create(&PostParams::default(), &pod(i)?)
                    .await
                    .map(drop)
                    .map_err(anyhow::Error::from)
            }
        }
    })
    .await?;
    let setup = setup.elapsed();

    let from = current_revision(&pods).await?;
    let started = Instant::now();
    let _scheduler = Scheduler::start(tug, &data)?;
    let first = wait_until_bound(&pods, &from, case.pods).await?;
    let wall = started.elapsed();
    let busy = first.elapsed();
    drop(server);
    Ok(Outcome {
        pods_per_second: case.pods as f64 / busy.as_secs_f64(),
        wall,
        setup,
    })
}

/// The Deployment case: a Deployment of `replicas` pods on `nodes`
/// simulated nodes, with the controllers making its ReplicaSet's pods and
/// the scheduler (synced beforehand) placing them; the time from the
/// Deployment's creation until every pod is bound.
pub async fn deployment(
    tug: &Path,
    run: &Path,
    nodes: usize,
    replicas: usize,
) -> anyhow::Result<Duration> {
    let data = run.join(format!("sched-deployment-{replicas}"));
    let flags = ["--disable-agent", "--disable-scheduler"];
    let (server, client) = cluster(tug, &data, &flags, nodes).await?;
    let _scheduler = Scheduler::start(tug, &data)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let from = current_revision(&pods).await?;
    // Time for the scheduler to list the nodes, so that its start is not
    // counted against the Deployment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    Api::<Deployment>::namespaced(client, NAMESPACE)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "app"},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": "app"}},
                    "template": {
                        "metadata": {"labels": {"app": "app"}},
                        "spec": {"containers": [{
                            "name": "app",
                            "image": "registry.example/bench/app:1.0",
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }]},
                    },
                },
            }))?,
        )
        .await?;
    wait_until_bound(&pods, &from, replicas).await?;
    let took = started.elapsed();
    drop(server);
    Ok(took)
}

/// A `tug server` with `flags`, the bench namespace and `nodes` simulated
/// nodes.
async fn cluster(
    tug: &Path,
    data: &Path,
    flags: &[&str],
    nodes: usize,
) -> anyhow::Result<(TugServer, Client)> {
    let (server, _) = TugServer::start(tug, data, free_port()?, flags).await?;
    let client = connect(&data.join("admin.kubeconfig")).await?;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;
    create_all(nodes, {
        let nodes: Api<Node> = Api::all(client.clone());
        move |i| {
            let nodes = nodes.clone();
            async move {
                nodes
                    .create(&PostParams::default(), &node(i)?)
                    .await
                    .map(drop)
                    .map_err(anyhow::Error::from)
            }
        }
    })
    .await?;
    Ok((server, client))
}

async fn current_revision(pods: &Api<Pod>) -> anyhow::Result<String> {
    Ok(pods
        .list_metadata(&Default::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default())
}

/// Watches from revision `from` until `count` pods are bound; returns when
/// the first binding was seen.
async fn wait_until_bound(pods: &Api<Pod>, from: &str, count: usize) -> anyhow::Result<Instant> {
    let mut events = pods.watch(&WatchParams::default(), from).await?.boxed();
    let mut bound = HashSet::new();
    let mut first = None;
    while bound.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(120), events.try_next())
            .await
            .context("no pod bound for 120 s")??;
        match event {
            Some(WatchEvent::Added(pod) | WatchEvent::Modified(pod))
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some() =>
            {
                first.get_or_insert_with(Instant::now);
                bound.insert(pod.metadata.name.unwrap_or_default());
            }
            Some(WatchEvent::Error(e)) => anyhow::bail!("watch: {e}"),
            Some(_) => {}
            None => events = pods.watch(&WatchParams::default(), from).await?.boxed(),
        }
    }
    Ok(first.unwrap_or_else(Instant::now))
}

/// `tug scheduler` in a process of its own; killed when dropped.
struct Scheduler(Child);

impl Scheduler {
    fn start(tug: &Path, data: &Path) -> anyhow::Result<Scheduler> {
        let log = std::fs::File::create(data.with_extension("scheduler.log"))?;
        let child = Command::new(tug)
            .arg("scheduler")
            .arg("--kubeconfig")
            .arg(data.join("admin.kubeconfig"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting tug scheduler")?;
        Ok(Scheduler(child))
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(kubeconfig: &Path) -> anyhow::Result<Client> {
    let file = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Runs `make(0..total)` with [`WRITERS`] at a time.
async fn create_all<F, Fut>(total: usize, make: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let writers = Arc::new(Semaphore::new(WRITERS));
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let permit = writers.clone().acquire_owned().await?;
        let create = make(i);
        tasks.push(tokio::spawn(async move {
            let done = create.await;
            drop(permit);
            done
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// A Ready node with room for 110 pods, in one of three zones.
fn node(i: usize) -> anyhow::Result<Node> {
    let name = format!("node-{i}");
    let resources = json!({"cpu": "32", "memory": "256Gi", "pods": "110"});
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
        }},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))?)
}

/// A small pod as a ReplicaSet's would be (requests, a controller), in
/// groups of 100 sharing a controller so that default spreading applies.
fn pod(i: usize) -> anyhow::Result<Pod> {
    let group = i / 100;
    Ok(serde_json::from_value(json!({
        "metadata": {
            "name": format!("pod-{i}"),
            "labels": {"app": format!("app-{group}")},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("app-{group}"),
                "uid": format!("00000000-0000-0000-0000-{group:012}"), "controller": true,
            }],
        },
        "spec": {"containers": [{
            "name": "app",
            "image": "registry.example/bench/app:1.0",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }]},
    }))?)
}

/// `12,345 pods/s`.
pub fn rate(outcome: &Outcome) -> String {
    format!("{} pods/s", count(outcome.pods_per_second))
}
