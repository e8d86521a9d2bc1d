//! The scheduler: puts each pod that names no node on one that suits it, as
//! kube-scheduler does, and says why when none does. It is an API client
//! like any other: in `tug server` a task talking to the API server over
//! loopback, and `tug scheduler` runs it on its own.
//!
//! Map, in the order a pod meets them:
//! - `watch`: the node and pod watches that feed the cache and the queue;
//! - `pod`: a pod as the scheduler sees it (key, requests, priority), and
//!   which pods are this scheduler's to place;
//! - `queue`: pods waiting for a node: active, backing off, unschedulable;
//! - `cache`: every node with the pods on it and what they request,
//!   including pods assumed on a node while their binding is in flight;
//! - `schedule`: one attempt: filter the nodes, score the rest, pick one;
//! - `preemption`: when none fits, the lower-priority pods to evict;
//! - `filters`: may the pod go to this node (one file per filter family);
//! - `scores`: how well the node suits the pod (one file per scorer family);
//! - `messages`: "0/3 nodes are available: ..." when no node may take it;
//! - `binding`: the Binding and Scheduled event, or PodScheduled=False and
//!   FailedScheduling;
//! - `volumes`: the claims, volumes and classes pods' volumes are checked against;
//! - `resources`, `labels`: quantities and label matching the others share.

mod binding;
mod cache;
mod filters;
mod labels;
mod messages;
mod pod;
mod preemption;
mod queue;
mod resources;
mod schedule;
mod scores;
mod volumes;
mod watch;

use std::sync::{Arc, Mutex};

use kube::Client;
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;

use binding::Binder;
use cache::Cache;
use queue::Queue;
use schedule::{Decision, Scheduler};
use volumes::Volumes;

/// Bindings in flight at once: the next pods are scheduled while earlier
/// bindings travel, as kube-scheduler binds asynchronously.
const CONCURRENT_BINDINGS: usize = 64;

/// Runs the scheduler until its watches fail for good.
pub async fn run(client: Client) -> anyhow::Result<()> {
    let cache = Arc::new(Mutex::new(Cache::default()));
    let queue = Arc::new(Queue::default());
    let synced = Arc::new(Barrier::new(3));
    let mut tasks = JoinSet::new();
    tasks.spawn(watch::nodes(
        client.clone(),
        cache.clone(),
        queue.clone(),
        synced.clone(),
    ));
    tasks.spawn(watch::pods(
        client.clone(),
        cache.clone(),
        queue.clone(),
        synced.clone(),
    ));
    let (claims, claims_task) = watch::mirror(client.clone(), queue.clone());
    let (volumes, volumes_task) = watch::mirror(client.clone(), queue.clone());
    let (classes, classes_task) = watch::mirror(client.clone(), queue.clone());
    tasks.spawn(claims_task);
    tasks.spawn(volumes_task);
    tasks.spawn(classes_task);
    let volumes = Volumes {
        claims,
        volumes,
        classes,
    };
    tasks.spawn(async move {
        synced.wait().await;
        volumes.wait_until_ready().await?;
        schedule_pods(Arc::new(Binder::new(client)), cache, volumes, queue).await
    });
    while let Some(stopped) = tasks.join_next().await {
        stopped??;
    }
    Ok(())
}

/// The scheduling loop: one pod at a time, each bound in a task of its own.
async fn schedule_pods(
    binder: Arc<Binder>,
    cache: Arc<Mutex<Cache>>,
    volumes: Volumes,
    queue: Arc<Queue>,
) -> anyhow::Result<()> {
    let bindings = Arc::new(Semaphore::new(CONCURRENT_BINDINGS));
    let mut scheduler = Scheduler::default();
    loop {
        let pod = queue.pop().await;
        let decision = {
            let mut cache = cache.lock().expect("cache lock");
            let decision = scheduler.decide(&pod, &cache, &volumes);
            match &decision {
                Decision::Bind(node) => cache.assume(pod.clone(), node),
                Decision::Preempt(plan, _) => cache.nominate(pod.clone(), &plan.node),
                Decision::Unschedulable(_) => {}
            }
            decision
        };
        match decision {
            Decision::Bind(node) => {
                queue.scheduled(&pod.key);
                let permit = bindings.clone().acquire_owned().await?;
                let (binder, cache, queue) = (binder.clone(), cache.clone(), queue.clone());
                tokio::spawn(async move {
                    let bound = binder.bind(&pod, &node).await;
                    drop(permit);
                    match bound {
                        // As kube-scheduler's recorder writes events apart
                        // from its binding cycles, the next bindings do not
                        // wait for this one's event.
                        Ok(()) => binder.scheduled(&pod, &node).await,
                        Err(e) => binding_failed(pod, &node, e, &cache, &queue),
                    }
                });
            }
            Decision::Preempt(plan, fit) => {
                queue.unschedulable(&pod.key);
                let binder = binder.clone();
                tokio::spawn(async move {
                    binder.unschedulable(&pod, fit.message()).await;
                    binder.preempt(&pod, &plan).await;
                });
            }
            Decision::Unschedulable(fit) => {
                queue.unschedulable(&pod.key);
                let binder = binder.clone();
                tokio::spawn(async move { binder.unschedulable(&pod, fit.message()).await });
            }
        }
    }
}

/// Takes back the assumption; the pod is tried again unless it is gone or
/// already bound (the watch says which).
fn binding_failed(
    pod: Arc<pod::PodInfo>,
    node: &str,
    error: kube::Error,
    cache: &Mutex<Cache>,
    queue: &Queue,
) {
    cache.lock().expect("cache lock").forget(&pod.key);
    match &error {
        kube::Error::Api(e) if e.code == 404 || e.code == 409 => {
            tracing::debug!(pod = pod.key, node, "binding refused: {error}");
        }
        _ => {
            tracing::warn!(pod = pod.key, node, "binding failed: {error}");
            queue.failed(pod);
        }
    }
}
