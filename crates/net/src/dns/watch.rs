//! Keeping the [`Index`] current from watches on Services and
//! EndpointSlices: a change recomputes the one Service it concerns; a
//! relist (at start, or after the watch lost its place) rebuilds the whole
//! index once the list is complete, so queries never see half a cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use super::index::{Index, SERVICE_NAME_LABEL, ServiceKey, ServiceRecords};

/// One event of either watch (boxed: the objects are large).
enum Change {
    Service(Box<watcher::Event<Service>>),
    Slice(Box<watcher::Event<EndpointSlice>>),
}

/// The objects as the watches last saw them, with the slices grouped by
/// the Service they belong to, and whether each kind was listed yet.
#[derive(Default)]
struct Objects {
    services: HashMap<ServiceKey, Service>,
    slices: HashMap<ServiceKey, BTreeMap<String, EndpointSlice>>,
    services_listed: bool,
    slices_listed: bool,
}

impl Objects {
    fn records(&self, key: &ServiceKey) -> Option<ServiceRecords> {
        let service = self.services.get(key)?;
        let slices = self.slices.get(key).into_iter().flat_map(|s| s.values());
        Some(ServiceRecords::new(service, slices))
    }

    fn rebuild(&self) -> Index {
        let mut index = Index::default();
        for key in self.services.keys() {
            index.set(key.clone(), self.records(key));
        }
        if self.services_listed && self.slices_listed {
            index.mark_synced();
        }
        index
    }
}

fn service_key(service: &Service) -> ServiceKey {
    ServiceKey::new(
        service.namespace().as_deref().unwrap_or_default(),
        &service.name_any(),
    )
}

/// The Service a slice belongs to; `None` for one no Service claims.
fn slice_key(slice: &EndpointSlice) -> Option<ServiceKey> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?;
    Some(ServiceKey::new(
        slice.namespace().as_deref().unwrap_or_default(),
        service,
    ))
}

/// Watches Services and EndpointSlices in every namespace and keeps
/// `index` current until the watches end (they retry on errors with
/// back-off, so in practice never).
pub async fn run(client: Client, index: Arc<RwLock<Index>>) {
    let services = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(|event| Change::Service(Box::new(event)));
    let slices = watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .map_ok(|event| Change::Slice(Box::new(event)));
    let mut changes = std::pin::pin!(futures::stream::select(services, slices));
    let mut objects = Objects::default();
    // A relist in progress: the objects listed so far replace those of
    // that kind when it completes.
    let mut listing_services: Option<HashMap<ServiceKey, Service>> = None;
    let mut listing_slices: Option<HashMap<ServiceKey, BTreeMap<String, EndpointSlice>>> = None;
    while let Some(change) = changes.next().await {
        let change = match change {
            Ok(change) => change,
            Err(e) => {
                tracing::warn!("cluster DNS: watch failed, retrying: {e}");
                continue;
            }
        };
        let touched = match change {
            Change::Service(event) => match *event {
                watcher::Event::Init => {
                    listing_services = Some(HashMap::new());
                    None
                }
                watcher::Event::InitApply(service) => {
                    if let Some(listing) = listing_services.as_mut() {
                        listing.insert(service_key(&service), service);
                    }
                    None
                }
                watcher::Event::InitDone => {
                    objects.services = listing_services.take().unwrap_or_default();
                    objects.services_listed = true;
                    *write(&index) = objects.rebuild();
                    None
                }
                watcher::Event::Apply(service) => {
                    let key = service_key(&service);
                    objects.services.insert(key.clone(), service);
                    Some(key)
                }
                watcher::Event::Delete(service) => {
                    let key = service_key(&service);
                    objects.services.remove(&key);
                    Some(key)
                }
            },
            Change::Slice(event) => match *event {
                watcher::Event::Init => {
                    listing_slices = Some(HashMap::new());
                    None
                }
                watcher::Event::InitApply(slice) => {
                    if let (Some(listing), Some(key)) = (listing_slices.as_mut(), slice_key(&slice))
                    {
                        listing
                            .entry(key)
                            .or_default()
                            .insert(slice.name_any(), slice);
                    }
                    None
                }
                watcher::Event::InitDone => {
                    objects.slices = listing_slices.take().unwrap_or_default();
                    objects.slices_listed = true;
                    *write(&index) = objects.rebuild();
                    None
                }
                watcher::Event::Apply(slice) => slice_key(&slice).inspect(|key| {
                    objects
                        .slices
                        .entry(key.clone())
                        .or_default()
                        .insert(slice.name_any(), slice);
                }),
                watcher::Event::Delete(slice) => slice_key(&slice).inspect(|key| {
                    if let Some(slices) = objects.slices.get_mut(key) {
                        slices.remove(&slice.name_any());
                        if slices.is_empty() {
                            objects.slices.remove(key);
                        }
                    }
                }),
            },
        };
        if let Some(key) = touched {
            let records = objects.records(&key);
            write(&index).set(key, records);
        }
    }
}

/// The index for writing; a panic elsewhere cannot have left it half
/// written (every write is one `set` or one swap), so a poisoned lock is
/// taken as it is.
fn write(index: &RwLock<Index>) -> std::sync::RwLockWriteGuard<'_, Index> {
    index.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_has_the_cluster_once_services_and_slices_are_both_listed() {
        let mut objects = Objects::default();
        assert!(!objects.rebuild().synced());
        objects.services_listed = true;
        assert!(!objects.rebuild().synced());
        objects.slices_listed = true;
        assert!(objects.rebuild().synced());
    }
}
