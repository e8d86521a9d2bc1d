//! The EndpointSlice controller, with the legacy Endpoints controller: for
//! every Service with a selector, the pods it selects as EndpointSlices
//! (what the proxy, DNS and ingress read) and as an `Endpoints` object
//! (what `kubectl get endpoints` shows), both from one computation of the
//! pods' endpoints. Services without a selector are left to whoever writes
//! their endpoints; the slices of a deleted Service go with it through
//! their owner reference, its Endpoints are deleted here.
//!
//! Work is per Service and per change: the watches feed an indexed cache
//! and queue only the Services a change concerns (a pod's old and new
//! Services, a slice's Service), and workers handle one Service at a time.
//!
//! - `pod_endpoints`: a pod as an endpoint of a Service (conditions, ports);
//! - `slices`: the slice writes that bring a Service's slices up to date;
//! - `legacy`: the Endpoints object;
//! - `cache`: the indexed cache of the watches;
//! - `queue`: the work queue of Services;
//! - here: the watches, the workers, and one Service's pass.

mod cache;
mod legacy;
mod pod_endpoints;
mod queue;
mod slices;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tugboat_events::{Recorder, Type};

use self::cache::{Cache, Cached, Key, Written, key_of};
use self::pod_endpoints::{PodEndpoint, endpoint_of, is_managed};
use self::queue::Queue;
use self::slices::{CONTROLLER_NAME, MANAGED_BY_LABEL, Plan};
use crate::pods;

/// Services handled at the same time.
const WORKERS: usize = 16;
/// How long a Service whose pass failed waits before it is tried again.
const RETRY: Duration = Duration::from_secs(2);
/// The kinds watched; workers start once each has been listed.
const KINDS: usize = 5;

struct Context {
    client: Client,
    cache: Mutex<Cache>,
    queue: Arc<Queue>,
    /// How many watches have listed their kind once.
    listed: watch::Sender<usize>,
    events: Recorder,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let ctx = Arc::new(Context {
        events: Recorder::new(client.clone(), "endpointslice-controller", None),
        client: client.clone(),
        cache: Mutex::default(),
        queue: Arc::default(),
        listed: watch::Sender::new(0),
    });
    let ours = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={CONTROLLER_NAME}"));
    let all = watcher::Config::default;
    let mut tasks = JoinSet::new();
    tasks.spawn(follow(
        Api::<Service>::all(client.clone()),
        all(),
        ctx.clone(),
    ));
    tasks.spawn(follow(Api::<Pod>::all(client.clone()), all(), ctx.clone()));
    tasks.spawn(follow(
        Api::<EndpointSlice>::all(client.clone()),
        ours,
        ctx.clone(),
    ));
    tasks.spawn(follow(
        Api::<Endpoints>::all(client.clone()),
        all(),
        ctx.clone(),
    ));
    tasks.spawn(follow(Api::<Node>::all(client), all(), ctx.clone()));
    for _ in 0..WORKERS {
        tasks.spawn(work(ctx.clone()));
    }
    while let Some(stopped) = tasks.join_next().await {
        stopped?;
    }
    Ok(())
}

/// Keeps the cache's copy of one kind and queues the Services its changes
/// concern. A relist forgets what it no longer lists.
async fn follow<K>(api: Api<K>, config: watcher::Config, ctx: Arc<Context>)
where
    K: Cached + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let mut events = watcher(api, config).default_backoff().boxed();
    let mut relisted: Option<HashSet<Key>> = None;
    let mut first_list = true;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("endpointslice controller: watching {}: {e}", K::plural(&()));
                continue;
            }
        };
        let mut listed_now = false;
        let touched = {
            let mut cache = ctx.cache.lock().expect("cache lock");
            match event {
                watcher::Event::Init => {
                    relisted = Some(HashSet::new());
                    Vec::new()
                }
                watcher::Event::InitApply(object) => {
                    let key = key_of(&object);
                    relisted.get_or_insert_default().insert(key.clone());
                    K::store(&mut cache, key, Some(Arc::new(object)))
                }
                watcher::Event::InitDone => {
                    listed_now = true;
                    let listed = relisted.take().unwrap_or_default();
                    let gone: Vec<Key> = K::keys(&cache)
                        .into_iter()
                        .filter(|key| !listed.contains(key))
                        .collect();
                    gone.into_iter()
                        .flat_map(|key| K::store(&mut cache, key, None))
                        .collect()
                }
                watcher::Event::Apply(object) => {
                    K::store(&mut cache, key_of(&object), Some(Arc::new(object)))
                }
                watcher::Event::Delete(object) => K::store(&mut cache, key_of(&object), None),
            }
        };
        if first_list && listed_now {
            first_list = false;
            ctx.listed.send_modify(|n| *n += 1);
        }
        for key in touched {
            ctx.queue.add(key);
        }
    }
}

/// Handles queued Services, once every kind has been listed.
async fn work(ctx: Arc<Context>) {
    // The sender lives in the context, so this waits until all are listed.
    let _ = ctx.listed.subscribe().wait_for(|n| *n >= KINDS).await;
    loop {
        let key = ctx.queue.next().await;
        if let Err(e) = sync(&ctx, &key).await {
            tracing::warn!(
                namespace = key.0,
                name = key.1,
                "endpointslice controller: {e}"
            );
            ctx.queue.add_after(key.clone(), RETRY);
        }
        ctx.queue.done(&key);
    }
}

/// What a pass writes for one Service.
struct Writes {
    service: Option<Arc<Service>>,
    slices: Plan,
    endpoints: Option<EndpointsWrite>,
}

enum EndpointsWrite {
    Create(Endpoints),
    Update(Endpoints),
    Delete(String),
}

/// Brings one Service's slices and Endpoints up to date with its pods.
async fn sync(ctx: &Context, key: &Key) -> Result<(), kube::Error> {
    let Some(writes) = plan(&mut ctx.cache.lock().expect("cache lock"), key) else {
        return Ok(());
    };
    let result = write(ctx, key, writes.slices, writes.endpoints).await;
    if let (Err(e), Some(service)) = (&result, &writes.service) {
        let conflict = matches!(e, kube::Error::Api(status) if status.code == 409);
        if !conflict {
            ctx.events
                .record(
                    service.as_ref(),
                    Type::Warning,
                    "FailedToUpdateEndpointSlices",
                    format!(
                        "Error updating Endpoint Slices for Service {}/{}: {e}",
                        key.0, key.1
                    ),
                )
                .await;
        }
    }
    result
}

/// The writes one Service needs, from the cache; `None` while the cache
/// has not caught up with the last pass's writes (the Service is queued
/// again when it has).
fn plan(cache: &mut Cache, key: &Key) -> Option<Writes> {
    if cache.is_stale(key) {
        return None;
    }
    let existing_slices = cache.slices_of(key);
    let existing_endpoints = cache.endpoints(key);
    let Some(service) = cache.service(key) else {
        return Some(Writes {
            service: None,
            slices: Plan::default(),
            endpoints: existing_endpoints.map(|e| EndpointsWrite::Delete(e.name_any())),
        });
    };
    if !is_managed(&service) {
        return Some(Writes {
            service: Some(service),
            slices: Plan {
                delete: existing_slices,
                ..Plan::default()
            },
            endpoints: None,
        });
    }
    let pods = cache.pods_of(&service);
    let endpoints: Vec<PodEndpoint> = pods
        .iter()
        .filter_map(|p| endpoint_of(&service, p))
        .collect();
    let trigger = trigger_time(&service, &pods);
    let slices = slices::plan(
        &service,
        &endpoints,
        |node| cache.zone_of(node),
        &existing_slices,
        trigger.clone(),
    );
    let endpoints = legacy::desired(&service, &endpoints, existing_endpoints.as_deref(), trigger)
        .map(|desired| match existing_endpoints {
            Some(_) => EndpointsWrite::Update(desired),
            None => EndpointsWrite::Create(desired),
        });
    Some(Writes {
        service: Some(service),
        slices,
        endpoints,
    })
}

/// When the last change the endpoints reflect happened: the Service's
/// creation or a selected pod's creation, readiness change or deletion.
fn trigger_time(service: &Service, pods: &[Arc<Pod>]) -> Option<String> {
    let created = |meta: &kube::api::ObjectMeta| meta.creation_timestamp.as_ref().map(|t| t.0);
    let of_pod = |pod: &Arc<Pod>| {
        [
            created(&pod.metadata),
            pod.metadata.deletion_timestamp.as_ref().map(|t| t.0),
            pods::ready_since(pod).filter(|t| *t != Timestamp::UNIX_EPOCH),
        ]
    };
    pods.iter()
        .flat_map(of_pod)
        .chain([created(service.meta())])
        .flatten()
        .max()
        .map(|t| t.to_string())
}

/// Makes the writes: new slices first and deletions last, so a Service's
/// endpoints are never missing in between, as Kubernetes orders them.
async fn write(
    ctx: &Context,
    key: &Key,
    slices: Plan,
    endpoints: Option<EndpointsWrite>,
) -> Result<(), kube::Error> {
    let slice_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &key.0);
    let endpoints_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &key.0);
    let params = PostParams::default();
    let wrote = |kind: Written, name: &str, version: Option<&str>| {
        ctx.cache
            .lock()
            .expect("cache lock")
            .wrote(key, kind, name, version);
    };
    for slice in &slices.create {
        let made = slice_api.create(&params, slice).await?;
        wrote(
            Written::Slice,
            &made.name_any(),
            made.resource_version().as_deref(),
        );
    }
    for slice in &slices.update {
        let made = slice_api.replace(&slice.name_any(), &params, slice).await?;
        wrote(
            Written::Slice,
            &made.name_any(),
            made.resource_version().as_deref(),
        );
    }
    for slice in &slices.delete {
        delete(&slice_api, &slice.name_any()).await?;
        wrote(Written::Slice, &slice.name_any(), None);
    }
    let made = match endpoints {
        None => return Ok(()),
        Some(EndpointsWrite::Create(desired)) => endpoints_api.create(&params, &desired).await?,
        Some(EndpointsWrite::Update(desired)) => {
            endpoints_api
                .replace(&desired.name_any(), &params, &desired)
                .await?
        }
        Some(EndpointsWrite::Delete(name)) => {
            delete(&endpoints_api, &name).await?;
            wrote(Written::Endpoints, &name, None);
            return Ok(());
        }
    };
    wrote(
        Written::Endpoints,
        &made.name_any(),
        made.resource_version().as_deref(),
    );
    Ok(())
}

/// Deletes an object; one already gone is fine.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(|_| ()),
    }
}
