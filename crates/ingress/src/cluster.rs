//! What the ingress knows of the cluster: Ingresses, IngressClasses,
//! Services, EndpointSlices and TLS Secrets, each kept in memory by a
//! watch. Any change rebuilds the routing table and the certificates whole
//! and swaps them in, so requests never wait for the API server; changes
//! that come together make one rebuild.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::backends::{Backend, Resolver, backend_name};
use crate::class::Classes;
use crate::current::Current;
use crate::proxy::Routes;
use crate::routes::{PathType, Table};
use crate::status::Status;
use crate::tls::{self, Certificates};

/// How often everything is rebuilt even without a change, so that a status
/// write that failed is tried again.
const RESYNC: Duration = Duration::from_secs(30);

/// The watched objects.
struct Cluster {
    ingresses: Store<Ingress>,
    classes: Store<IngressClass>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
}

/// Keeps `routes` and `certificates` current until the process ends.
pub async fn run(
    client: Client,
    routes: Arc<Routes>,
    certificates: Arc<Current<Certificates>>,
    status: Status,
) {
    let changed = Arc::new(Notify::new());
    let tls_secrets = watcher::Config::default().fields("type=kubernetes.io/tls");
    let cluster = Cluster {
        ingresses: watch(
            Api::all(client.clone()),
            watcher::Config::default(),
            &changed,
        ),
        classes: watch(
            Api::all(client.clone()),
            watcher::Config::default(),
            &changed,
        ),
        services: watch(
            Api::all(client.clone()),
            watcher::Config::default(),
            &changed,
        ),
        slices: watch(
            Api::all(client.clone()),
            watcher::Config::default(),
            &changed,
        ),
        secrets: watch(Api::all(client), tls_secrets, &changed),
    };
    cluster.wait_until_ready().await;
    tracing::info!("the ingress has the cluster's Ingresses and Services");
    // Problems already reported, so that each is logged once, not on every rebuild.
    let mut reported = BTreeSet::new();
    loop {
        let built = cluster.build();
        routes.store(built.routes);
        certificates.store(built.certificates);
        for problem in built.problems.difference(&reported) {
            tracing::warn!("{problem}");
        }
        reported = built.problems;
        let ingresses = cluster.ingresses.state();
        status.update(&ingresses, |i| built.classes.serves(i)).await;
        let _ = tokio::time::timeout(RESYNC, changed.notified()).await;
    }
}

/// A store of every `K`, kept by a watch that wakes `changed` on each event.
fn watch<K>(api: Api<K>, config: watcher::Config, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let changed = changed.clone();
    let events = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(events.for_each(move |event| {
        if let Err(e) = event {
            tracing::debug!("ingress watch: {e}");
        }
        changed.notify_one();
        futures::future::ready(())
    }));
    store
}

/// One rebuild's results.
struct Built {
    routes: Table<Arc<Backend>>,
    certificates: Certificates,
    classes: Classes,
    /// What is wrong with the served Ingresses' TLS, for the log.
    problems: BTreeSet<String>,
}

impl Cluster {
    async fn wait_until_ready(&self) {
        // Ready only fails when the writer is dropped, which a running watch never does.
        let _ = futures::join!(
            self.ingresses.wait_until_ready(),
            self.classes.wait_until_ready(),
            self.services.wait_until_ready(),
            self.slices.wait_until_ready(),
            self.secrets.wait_until_ready(),
        );
    }

    fn build(&self) -> Built {
        let classes = Classes::new(&self.classes.state());
        let mut served: Vec<Arc<Ingress>> = self
            .ingresses
            .state()
            .into_iter()
            .filter(|i| classes.serves(i))
            .collect();
        // The oldest Ingress wins where two claim the same host and path.
        served.sort_by(|a, b| {
            let key = |i: &Ingress| {
                (
                    i.metadata.creation_timestamp.clone().map(|t| t.0),
                    i.namespace(),
                    i.name_any(),
                )
            };
            key(a).cmp(&key(b))
        });
        let services = self.services.state();
        let slices = self.slices.state();
        let mut backends = Backends {
            resolver: Resolver::new(&services, &slices),
            resolved: HashMap::new(),
        };
        let mut routes = Table::default();
        let mut certificates = Certificates::default();
        let mut problems = BTreeSet::new();
        for ingress in &served {
            let namespace = ingress.namespace().unwrap_or_default();
            let Some(spec) = &ingress.spec else { continue };
            if let Some(backend) = backends.get(&namespace, spec.default_backend.as_ref()) {
                routes.set_default(backend);
            }
            for rule in spec.rules.iter().flatten() {
                let host = rule.host.as_deref().unwrap_or_default();
                for path in rule.http.iter().flat_map(|h| &h.paths) {
                    if let Some(backend) = backends.get(&namespace, Some(&path.backend)) {
                        let path_type = PathType::from_api(&path.path_type);
                        routes.add(
                            host,
                            path.path.as_deref().unwrap_or("/"),
                            path_type,
                            backend,
                        );
                    }
                }
            }
            for entry in spec.tls.iter().flatten() {
                let Some(secret_name) = &entry.secret_name else {
                    continue;
                };
                let secret = self
                    .secrets
                    .get(&ObjectRef::new(secret_name).within(&namespace));
                let key = match secret.as_deref().map(tls::from_secret) {
                    Some(Ok(key)) => Arc::new(key),
                    Some(Err(why)) => {
                        problems.insert(format!(
                            "Ingress {namespace}/{}: TLS secret {secret_name} is unusable: {why}",
                            ingress.name_any()
                        ));
                        continue;
                    }
                    None => {
                        problems.insert(format!(
                            "Ingress {namespace}/{}: TLS secret {namespace}/{secret_name} \
                             (type kubernetes.io/tls) not found",
                            ingress.name_any()
                        ));
                        continue;
                    }
                };
                for host in entry.hosts.iter().flatten() {
                    certificates.add(host, key.clone());
                }
            }
        }
        Built {
            routes,
            certificates,
            classes,
            problems,
        }
    }
}

/// The backends of one rebuild, one per Service port, so that every path
/// sending to the same Service port takes turns over its endpoints together.
struct Backends<'a> {
    resolver: Resolver<'a>,
    /// By [`backend_name`].
    resolved: HashMap<String, Arc<Backend>>,
}

impl Backends<'_> {
    /// The backend of a Service; `None` for none or a resource backend,
    /// which this ingress does not serve.
    fn get(&mut self, namespace: &str, backend: Option<&IngressBackend>) -> Option<Arc<Backend>> {
        let service = backend?.service.as_ref()?;
        let resolver = &self.resolver;
        let resolved = self
            .resolved
            .entry(backend_name(namespace, service))
            .or_insert_with(|| Arc::new(resolver.resolve(namespace, service)));
        Some(resolved.clone())
    }
}
