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
use rustls::sign::CertifiedKey;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::annotations;
use crate::backends::{Backend, Resolver, Target, backend_name};
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
    /// The certificates of the last rebuild, so that a rebuild for an
    /// endpoint change does not parse every key again.
    keys: ParsedKeys,
}

/// Keeps `routes` and `certificates` current until the process ends.
pub async fn run(
    client: Client,
    routes: Arc<Routes>,
    certificates: Arc<Current<Certificates>>,
    status: Status,
) {
    let changed = Arc::new(Notify::new());
    let all = watcher::Config::default();
    let mut cluster = Cluster {
        ingresses: watch(&client, all.clone(), &changed),
        classes: watch(&client, all.clone(), &changed),
        services: watch(&client, all.clone(), &changed),
        slices: watch(&client, all.clone(), &changed),
        secrets: watch(&client, all.fields("type=kubernetes.io/tls"), &changed),
        keys: HashMap::new(),
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

/// A store of every `K` that `config` selects, kept by a watch that wakes
/// `changed` on each event.
fn watch<K>(client: &Client, config: watcher::Config, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let changed = changed.clone();
    let events = watcher(Api::all(client.clone()), config)
        .default_backoff()
        .reflect(writer);
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
    routes: Table<Target>,
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

    /// The served Ingresses, oldest first: the oldest wins where two claim
    /// the same host and path.
    fn served(&self, classes: &Classes) -> Vec<Arc<Ingress>> {
        let mut served: Vec<Arc<Ingress>> = self
            .ingresses
            .state()
            .into_iter()
            .filter(|i| classes.serves(i))
            .collect();
        served.sort_by_cached_key(|i| {
            (
                i.metadata.creation_timestamp.clone().map(|t| t.0),
                i.namespace(),
                i.name_any(),
            )
        });
        served
    }

    fn build(&mut self) -> Built {
        let classes = Classes::new(&self.classes.state());
        let served = self.served(&classes);
        let services = self.services.state();
        let slices = self.slices.state();
        let mut backends = Backends {
            resolver: Resolver::new(&services, &slices),
            resolved: HashMap::new(),
        };
        let mut built = Built {
            routes: Table::default(),
            certificates: Certificates::default(),
            classes,
            problems: BTreeSet::new(),
        };
        let mut keys = HashMap::new();
        for ingress in &served {
            let namespace = ingress.namespace().unwrap_or_default();
            let Some(spec) = &ingress.spec else { continue };
            let read_timeout = annotations::read_timeout(ingress);
            let target = |backend| Target {
                backend,
                read_timeout,
            };
            if let Some(backend) = backends.get(&namespace, spec.default_backend.as_ref()) {
                built.routes.set_default(target(backend));
            }
            for rule in spec.rules.iter().flatten() {
                let host = rule.host.as_deref().unwrap_or_default();
                for path in rule.http.iter().flat_map(|h| &h.paths) {
                    if let Some(backend) = backends.get(&namespace, Some(&path.backend)) {
                        let path_type = PathType::from_api(&path.path_type);
                        let path = path.path.as_deref().unwrap_or("/");
                        built.routes.add(host, path, path_type, target(backend));
                    }
                }
            }
            for entry in spec.tls.iter().flatten() {
                let Some(secret) = &entry.secret_name else {
                    continue;
                };
                match self.key(&namespace, secret, &mut keys) {
                    Ok(key) => {
                        for host in entry.hosts.iter().flatten() {
                            built.certificates.add(host, key.clone());
                        }
                    }
                    Err(why) => {
                        built.problems.insert(format!(
                            "Ingress {namespace}/{}: TLS secret {namespace}/{secret} {why}",
                            ingress.name_any()
                        ));
                    }
                }
            }
        }
        self.keys = keys;
        built
    }

    /// The certificate and key of a TLS Secret, parsed again only when the
    /// Secret changed since the last rebuild; `used` collects what this
    /// rebuild keeps.
    fn key(
        &self,
        namespace: &str,
        name: &str,
        used: &mut ParsedKeys,
    ) -> Result<Arc<CertifiedKey>, String> {
        let id = format!("{namespace}/{name}");
        let Some(secret) = self.secrets.get(&ObjectRef::new(name).within(namespace)) else {
            return Err("(type kubernetes.io/tls) not found".to_owned());
        };
        let version = secret.resource_version().unwrap_or_default();
        let parsed = match self.keys.get(&id).filter(|(v, _)| *v == version) {
            Some((_, parsed)) => parsed.clone(),
            None => tls::from_secret(&secret)
                .map(Arc::new)
                .map_err(|why| format!("is unusable: {why}")),
        };
        used.insert(id, (version, parsed.clone()));
        parsed
    }
}

/// TLS Secrets' parsed certificates by `namespace/name`, with the
/// resourceVersion they were parsed from.
type ParsedKeys = HashMap<String, (String, Result<Arc<CertifiedKey>, String>)>;

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
