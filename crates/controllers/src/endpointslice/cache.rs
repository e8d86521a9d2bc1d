//! What the watches saw, indexed so that the work for one Service or one
//! pod does not grow with the cluster: Services by one entry of their
//! selector (a pod finds the Services that may select it through its own
//! labels), pods by label (a Service finds its pods through its rarest
//! selector entry), slices by Service. It also remembers the controller's
//! own writes until their echo arrives, so a pass never works from a cache
//! older than what it wrote (a second slice for the same endpoints).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{Resource, ResourceExt};

use super::slices::SERVICE_NAME_LABEL;
use crate::pods;

/// An object's namespace and name (`""` for a node's namespace).
pub type Key = (String, String);
/// A label in a namespace: namespace, label, value.
type LabelKey = (String, String, String);

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

#[derive(Default)]
pub struct Cache {
    services: HashMap<Key, Arc<Service>>,
    /// Services with a selector, by their selector's first entry.
    services_by_label: HashMap<LabelKey, HashSet<String>>,
    pods: HashMap<Key, Arc<Pod>>,
    pods_by_label: HashMap<LabelKey, HashSet<String>>,
    slices: HashMap<Key, Arc<EndpointSlice>>,
    slices_by_service: HashMap<Key, HashSet<String>>,
    endpoints: HashMap<Key, Arc<Endpoints>>,
    zones: HashMap<String, String>,
    /// The controller's writes not yet seen back, by Service.
    pending: HashMap<Key, Pending>,
}

/// A kind of object the writes go to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Written {
    Slice,
    Endpoints,
}

struct Pending {
    /// By kind and name: the resourceVersion written, `None` for a delete.
    writes: HashMap<(Written, String), Option<u64>>,
    /// A pass found the cache stale: the Service is queued once it is not.
    waiting: bool,
    /// When the first write was made: an echo lost in a watch restart is
    /// not waited for longer than `ECHO_TIMEOUT`.
    since: Instant,
}

const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// A kind the cache holds.
pub trait Cached: Resource<DynamicType = ()> + Sized {
    /// Stores `object` at `key` (forgets it when `None`); the Services
    /// whose endpoints may have changed.
    fn store(cache: &mut Cache, key: Key, object: Option<Arc<Self>>) -> Vec<Key>;
    /// The keys of the objects of this kind the cache holds.
    fn keys(cache: &Cache) -> Vec<Key>;
}

pub fn key_of<K: Resource>(object: &K) -> Key {
    (
        object.meta().namespace.clone().unwrap_or_default(),
        object.meta().name.clone().unwrap_or_default(),
    )
}

impl Cache {
    pub fn service(&self, key: &Key) -> Option<Arc<Service>> {
        self.services.get(key).cloned()
    }

    /// The pods in the Service's namespace that its selector selects.
    pub fn pods_of(&self, service: &Service) -> Vec<Arc<Pod>> {
        let namespace = service.namespace().unwrap_or_default();
        let Some(selector) = selector_of(service) else {
            return Vec::new();
        };
        let rarest = selector
            .iter()
            .map(|(k, v)| {
                self.pods_by_label
                    .get(&(namespace.clone(), k.clone(), v.clone()))
            })
            .min_by_key(|names| names.map_or(0, HashSet::len));
        rarest
            .flatten()
            .into_iter()
            .flatten()
            .filter_map(|name| self.pods.get(&(namespace.clone(), name.clone())))
            .filter(|pod| selects(selector, pod))
            .cloned()
            .collect()
    }

    /// The slices this controller keeps for the Service.
    pub fn slices_of(&self, key: &Key) -> Vec<Arc<EndpointSlice>> {
        self.slices_by_service
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|name| self.slices.get(&(key.0.clone(), name.clone())))
            .cloned()
            .collect()
    }

    pub fn endpoints(&self, key: &Key) -> Option<Arc<Endpoints>> {
        self.endpoints.get(key).cloned()
    }

    pub fn zone_of(&self, node: &str) -> Option<String> {
        self.zones.get(node).cloned()
    }

    /// Whether writes for the Service have not come back yet; if so, the
    /// Service is queued again once they have.
    pub fn is_stale(&mut self, service: &Key) -> bool {
        match self.pending.get_mut(service) {
            Some(pending) if pending.since.elapsed() < ECHO_TIMEOUT => {
                pending.waiting = true;
                true
            }
            Some(_) => {
                self.pending.remove(service);
                false
            }
            None => false,
        }
    }

    /// Remembers a write for `service` (`None` for a delete) until the
    /// cache holds it.
    pub fn wrote(&mut self, service: &Key, kind: Written, name: &str, version: Option<&str>) {
        let version = version.and_then(|v| v.parse::<u64>().ok());
        if self.holds(service, kind, name, version) {
            return;
        }
        self.pending
            .entry(service.clone())
            .or_insert_with(|| Pending {
                writes: HashMap::new(),
                waiting: false,
                since: Instant::now(),
            })
            .writes
            .insert((kind, name.to_owned()), version);
    }

    /// Whether the cache is at least as new as the write of `version`
    /// (`None`: a delete).
    fn holds(&self, service: &Key, kind: Written, name: &str, version: Option<u64>) -> bool {
        let key = (service.0.clone(), name.to_owned());
        let held = match kind {
            Written::Slice => self.slices.get(&key).map(|s| s.resource_version()),
            Written::Endpoints => self.endpoints.get(&key).map(|e| e.resource_version()),
        };
        match (held, version) {
            (None, _) => version.is_none(),
            (Some(_), None) => false,
            (Some(held), Some(version)) => held
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|held| held >= version),
        }
    }

    /// After a slice or Endpoints event (`deleted`: the object is gone):
    /// the Services to queue. One whose writes have all come back is queued
    /// if a pass waited for them; an event that is not the echo of a write
    /// is someone else's change.
    fn settle(&mut self, service: Key, kind: Written, name: &str, deleted: bool) -> Vec<Key> {
        let Some(pending) = self.pending.get(&service) else {
            return vec![service];
        };
        let Some(&version) = pending.writes.get(&(kind, name.to_owned())) else {
            return vec![service];
        };
        if !deleted && !self.holds(&service, kind, name, version) {
            return Vec::new();
        }
        let pending = self.pending.get_mut(&service).expect("looked up above");
        pending.writes.remove(&(kind, name.to_owned()));
        if !pending.writes.is_empty() {
            return Vec::new();
        }
        let waiting = pending.waiting;
        self.pending.remove(&service);
        if waiting { vec![service] } else { Vec::new() }
    }

    /// The Services whose selector selects `pod`.
    fn services_of(&self, pod: &Pod) -> Vec<Key> {
        let namespace = pod.namespace().unwrap_or_default();
        pod.labels()
            .iter()
            .filter_map(|(k, v)| {
                self.services_by_label
                    .get(&(namespace.clone(), k.clone(), v.clone()))
            })
            .flatten()
            .map(|name| (namespace.clone(), name.clone()))
            .filter(|key| {
                self.services
                    .get(key)
                    .and_then(|s| selector_of(s))
                    .is_some_and(|selector| selects(selector, pod))
            })
            .collect()
    }
}

/// A Service's selector, when it has a non-empty one.
fn selector_of(service: &Service) -> Option<&BTreeMap<String, String>> {
    service
        .spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.labels();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn label_keys<'a>(
    namespace: &str,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<LabelKey> {
    labels
        .into_iter()
        .map(|(k, v)| (namespace.to_owned(), k.clone(), v.clone()))
        .collect()
}

/// The selector entry a Service is indexed by.
fn first_entry(service: &Service) -> Option<(&String, &String)> {
    selector_of(service)?.iter().next()
}

/// Adds or removes `name` under each of `keys` of `index`.
fn index(
    index: &mut HashMap<LabelKey, HashSet<String>>,
    keys: Vec<LabelKey>,
    name: &str,
    add: bool,
) {
    for key in keys {
        if add {
            index.entry(key).or_default().insert(name.to_owned());
        } else if let Some(names) = index.get_mut(&key) {
            names.remove(name);
            if names.is_empty() {
                index.remove(&key);
            }
        }
    }
}

impl Cached for Service {
    fn store(cache: &mut Cache, key: Key, service: Option<Arc<Service>>) -> Vec<Key> {
        if let Some(old) = cache.services.get(&key).cloned() {
            index(
                &mut cache.services_by_label,
                label_keys(&key.0, first_entry(&old)),
                &key.1,
                false,
            );
        }
        match service {
            Some(service) => {
                index(
                    &mut cache.services_by_label,
                    label_keys(&key.0, first_entry(&service)),
                    &key.1,
                    true,
                );
                cache.services.insert(key.clone(), service);
            }
            None => {
                cache.services.remove(&key);
            }
        }
        vec![key]
    }

    fn keys(cache: &Cache) -> Vec<Key> {
        cache.services.keys().cloned().collect()
    }
}

impl Cached for Pod {
    fn store(cache: &mut Cache, key: Key, pod: Option<Arc<Pod>>) -> Vec<Key> {
        let old = cache.pods.get(&key).cloned();
        if let (Some(old), Some(new)) = (&old, &pod)
            && same_endpoint(old, new)
        {
            cache.pods.insert(key, new.clone());
            return Vec::new();
        }
        let mut services = Vec::new();
        if let Some(old) = &old {
            services.extend(cache.services_of(old));
            index(
                &mut cache.pods_by_label,
                label_keys(&key.0, old.labels()),
                &key.1,
                false,
            );
        }
        match pod {
            Some(pod) => {
                services.extend(cache.services_of(&pod));
                index(
                    &mut cache.pods_by_label,
                    label_keys(&key.0, pod.labels()),
                    &key.1,
                    true,
                );
                cache.pods.insert(key, pod);
            }
            None => {
                cache.pods.remove(&key);
            }
        }
        services.sort();
        services.dedup();
        services
    }

    fn keys(cache: &Cache) -> Vec<Key> {
        cache.pods.keys().cloned().collect()
    }
}

/// Whether two versions of a pod make the same endpoints (most pod updates
/// are container statuses that change none).
fn same_endpoint(a: &Pod, b: &Pod) -> bool {
    let status = |p: &Pod| {
        p.status.as_ref().map(|s| {
            (
                s.phase.clone(),
                s.pod_ip.clone(),
                s.pod_ips.clone(),
                pods::ready_since(p),
            )
        })
    };
    a.metadata.labels == b.metadata.labels
        && a.metadata.deletion_timestamp == b.metadata.deletion_timestamp
        && a.spec == b.spec
        && status(a) == status(b)
}

impl Cached for EndpointSlice {
    fn store(cache: &mut Cache, key: Key, slice: Option<Arc<EndpointSlice>>) -> Vec<Key> {
        let service_of = |s: &EndpointSlice| {
            s.labels()
                .get(SERVICE_NAME_LABEL)
                .map(|name| (key.0.clone(), name.clone()))
        };
        let mut services = Vec::new();
        if let Some(old) = cache.slices.remove(&key)
            && let Some(service) = service_of(&old)
        {
            if let Some(names) = cache.slices_by_service.get_mut(&service) {
                names.remove(&key.1);
                if names.is_empty() {
                    cache.slices_by_service.remove(&service);
                }
            }
            services.push(service);
        }
        let deleted = slice.is_none();
        if let Some(slice) = slice {
            if let Some(service) = service_of(&slice) {
                cache
                    .slices_by_service
                    .entry(service.clone())
                    .or_default()
                    .insert(key.1.clone());
                services.push(service);
            }
            cache.slices.insert(key.clone(), slice);
        }
        services.sort();
        services.dedup();
        services
            .into_iter()
            .flat_map(|service| cache.settle(service, Written::Slice, &key.1, deleted))
            .collect()
    }

    fn keys(cache: &Cache) -> Vec<Key> {
        cache.slices.keys().cloned().collect()
    }
}

impl Cached for Endpoints {
    fn store(cache: &mut Cache, key: Key, endpoints: Option<Arc<Endpoints>>) -> Vec<Key> {
        let deleted = endpoints.is_none();
        match endpoints {
            Some(endpoints) => cache.endpoints.insert(key.clone(), endpoints),
            None => cache.endpoints.remove(&key),
        };
        let name = key.1.clone();
        let mut services = cache.settle(key, Written::Endpoints, &name, deleted);
        // Endpoints without a Service are someone else's (a Service may
        // follow): only a Service's deletion deletes its Endpoints.
        services.retain(|service| cache.services.contains_key(service));
        services
    }

    fn keys(cache: &Cache) -> Vec<Key> {
        cache.endpoints.keys().cloned().collect()
    }
}

impl Cached for Node {
    fn store(cache: &mut Cache, key: Key, node: Option<Arc<Node>>) -> Vec<Key> {
        match node.as_ref().and_then(|n| n.labels().get(ZONE_LABEL)) {
            Some(zone) => cache.zones.insert(key.1, zone.clone()),
            None => cache.zones.remove(&key.1),
        };
        Vec::new()
    }

    fn keys(cache: &Cache) -> Vec<Key> {
        cache
            .zones
            .keys()
            .map(|name| (String::new(), name.clone()))
            .collect()
    }
}
