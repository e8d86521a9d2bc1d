//! The watches that keep the cache and the queue: nodes, and pods (bound
//! ones into the cache, unbound ones of this scheduler into the queue).
//! Each tells `synced` once it has listed everything, so that no pod is
//! placed before the scheduler knows what the nodes already run. Other
//! kinds (the volume objects) are mirrored whole into stores.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Barrier;

use crate::cache::Cache;
use crate::pod::{PodInfo, is_terminal, key_of, wants_scheduling};
use crate::queue::Queue;

pub async fn nodes(
    client: Client,
    cache: Arc<Mutex<Cache>>,
    queue: Arc<Queue>,
    synced: Arc<Barrier>,
) -> anyhow::Result<()> {
    let name_of = |node: &Node| node.metadata.name.clone().unwrap_or_default();
    follow(client, synced, name_of, |change| match change {
        Change::Apply(node) => {
            if lock(&cache).set_node(node) {
                queue.cluster_changed();
            }
        }
        Change::Delete(node) => lock(&cache).remove_node(&name_of(&node)),
        Change::Relisted(seen) => {
            forget_unseen(&cache, |cache| cache.node_names(), seen, Cache::remove_node);
            queue.cluster_changed();
        }
    })
    .await
}

pub async fn pods(
    client: Client,
    cache: Arc<Mutex<Cache>>,
    queue: Arc<Queue>,
    synced: Arc<Barrier>,
) -> anyhow::Result<()> {
    follow(client, synced, key_of, |change| match change {
        Change::Apply(pod) => pod_changed(pod, &cache, &queue),
        Change::Delete(pod) => {
            let key = key_of(&pod);
            queue.remove(&key);
            if lock(&cache).remove_pod(&key) {
                queue.cluster_changed();
            }
        }
        Change::Relisted(seen) => {
            forget_unseen(&cache, Cache::bound_pod_keys, seen, |cache, key| {
                cache.remove_pod(key);
            });
        }
    })
    .await
}

/// What a watch of every `K` tells its handler.
enum Change<'a, K> {
    /// Listed, added or changed.
    Apply(K),
    Delete(K),
    /// A (re)list is complete; these keys are all that exist.
    Relisted(&'a HashSet<String>),
}

/// Watches every `K`, handing each change to `handle` and telling `synced`
/// once the first list is complete.
async fn follow<K>(
    client: Client,
    synced: Arc<Barrier>,
    key: impl Fn(&K) -> String,
    mut handle: impl FnMut(Change<'_, K>),
) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut events = watcher::watcher(Api::<K>::all(client), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut seen = HashSet::new();
    let mut first_sync = true;
    while let Some(event) = events.next().await {
        match event? {
            Event::Init => seen.clear(),
            Event::InitApply(object) | Event::Apply(object) => {
                seen.insert(key(&object));
                handle(Change::Apply(object));
            }
            Event::Delete(object) => handle(Change::Delete(object)),
            Event::InitDone => {
                handle(Change::Relisted(&seen));
                if std::mem::take(&mut first_sync) {
                    synced.wait().await;
                }
            }
        }
    }
    Ok(())
}

fn pod_changed(pod: Pod, cache: &Mutex<Cache>, queue: &Queue) {
    let key = key_of(&pod);
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    match node {
        Some(_) if is_terminal(&pod) => {
            queue.remove(&key);
            if lock(cache).remove_pod(&key) {
                queue.cluster_changed();
            }
        }
        Some(node) => {
            let newly_bound = lock(cache).set_pod(Arc::new(PodInfo::new(pod)), &node);
            queue.remove(&key);
            if newly_bound {
                queue.cluster_changed();
            }
        }
        None if wants_scheduling(&pod) => {
            if !lock(cache).is_assumed(&key) {
                queue.add_or_update(PodInfo::new(pod));
            }
        }
        None => queue.remove(&key),
    }
}

/// A store holding every object of kind `K`, and the task that keeps it;
/// each change may let waiting pods fit, so the queue hears of it.
pub fn mirror<K>(
    client: Client,
    queue: Arc<Queue>,
) -> (
    Store<K>,
    impl Future<Output = anyhow::Result<()>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher::watcher(Api::<K>::all(client), watcher::Config::default());
    let task = async move {
        let mut events = reflector::reflector(writer, events)
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            event?;
            queue.cluster_changed();
        }
        Ok(())
    };
    (store, task)
}

/// After a relist: what the cache holds but the list did not show is gone.
fn forget_unseen(
    cache: &Mutex<Cache>,
    held: impl Fn(&Cache) -> Vec<String>,
    seen: &HashSet<String>,
    remove: impl Fn(&mut Cache, &str),
) {
    let mut cache = lock(cache);
    for gone in held(&cache).into_iter().filter(|k| !seen.contains(k)) {
        remove(&mut cache, &gone);
    }
}

fn lock(cache: &Mutex<Cache>) -> std::sync::MutexGuard<'_, Cache> {
    cache.lock().expect("cache lock")
}
