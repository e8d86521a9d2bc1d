//! The service proxy (kube-proxy in nftables mode): Services and their
//! EndpointSlices, watched through the API, become DNAT rules in one
//! nftables table of this node's own.
//!
//! ```text
//! model      Service + EndpointSlices → ServicePort (addresses, policies,
//!            endpoints with their conditions)
//! rules      ServicePort → chains, affinity sets, map elements (text)
//! programmed what the table holds, Service by Service; what a change to
//!            some Services changes in it
//! table      the table's frame; the nft batch from what it holds to what
//!            it should hold (only what differs), or a whole replacement
//! nft        `nft -f -`: one batch, one kernel transaction
//! conntrack  UDP flows to removed endpoints forgotten (`conntrack -D`)
//! ```
//!
//! Traffic reaches the `services` chain from pods (prerouting) and from the
//! node itself (output): a Service's cluster IP, its external and
//! LoadBalancer ingress addresses on its port, and its NodePort on any
//! address of the node but 127.0.0.1. Each table is named for its agent's
//! state dir ([`table_name`]), so two agents on one machine (test servers)
//! keep apart, and `tug killall` finds the table to remove.
//!
//! [`run`] programs the whole table at start in one batch (whatever a
//! crashed proxy left is replaced, tracked connections keep flowing). Then
//! the watches note which Services changed (their own object or one of
//! their EndpointSlices), and a sync renders those alone and sends only
//! their chains and elements: at once when a change follows a quiet
//! spell, else [`MIN_SYNC_PERIOD`] after the last sync began, so that one
//! batch carries a burst. A refused batch is logged with nft's message and
//! retried as a whole replacement.

mod conntrack;
pub mod model;
mod nft;
mod programmed;
pub mod rules;
pub mod table;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use conntrack::StaleFlows;
use model::ServiceKey;
pub use nft::NftError;
use programmed::{Programmed, Rendered};
use rules::Contents;
use table::Table;

/// The shortest time from one sync's start to the next, as kube-proxy's
/// `minSyncPeriod`: changes arriving meanwhile wait and go in one batch.
pub const MIN_SYNC_PERIOD: Duration = Duration::from_millis(100);
/// How long without a change before chains emptied by earlier batches
/// are deleted, if no batch that deletes something did it first.
const STALE_CHAINS_DELAY: Duration = Duration::from_secs(10);
/// How long after a refused batch the proxy tries again.
const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// What the proxy of one node needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// The node's name: endpoints on it are local (traffic policies Local).
    pub node_name: String,
    /// This node's pod addresses: traffic from elsewhere is masqueraded.
    pub pod_cidr: IpNet,
    /// The agent's state dir, which names the table.
    pub agent_dir: std::path::PathBuf,
}

/// The table of the agent whose state is in `agent_dir`:
/// `tugboat-` and eight hex digits of a hash of the dir's absolute path.
pub fn table_name(agent_dir: &Path) -> String {
    let path = std::path::absolute(agent_dir).unwrap_or_else(|_| agent_dir.to_owned());
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("tugboat-{hash}")
}

/// Removes the table of the agent whose state is in `agent_dir`, if any.
pub async fn delete_table(agent_dir: &Path) -> Result<(), NftError> {
    nft::apply(&Table::new(table_name(agent_dir), "").delete()).await
}

/// Runs the proxy until the process ends: watches Services and
/// EndpointSlices and keeps the table in step with them.
pub async fn run(client: Client, config: Config) {
    let changes = Arc::new(Changes::default());
    let services = watch(
        Api::<Service>::all(client.clone()),
        &changes,
        |service: &Service, _| ServiceKey::of_service(service).into_iter().collect(),
    );
    let mut owners = HashMap::new();
    let slices = watch(
        Api::<EndpointSlice>::all(client),
        &changes,
        move |slice: &EndpointSlice, deleted| slice_services(&mut owners, slice, deleted),
    );
    // As kube-proxy: nothing is programmed before both lists are known, or
    // a restart would briefly reject every Service whose endpoints were
    // not read yet.
    for ready in [
        services.wait_until_ready().await,
        slices.wait_until_ready().await,
    ] {
        if ready.is_err() {
            tracing::error!("the service proxy's watches stopped before their first list");
            return;
        }
    }
    let mut proxier = Proxier::new(&config);
    tracing::info!(
        "service proxy: programming nftables table ip {} for node {}",
        proxier.table.name(),
        config.node_name
    );
    loop {
        let started = Instant::now();
        let first = proxier.replace;
        match proxier.sync(&services, &slices, changes.take()).await {
            Ok(()) => {
                if first {
                    tracing::info!(
                        "service proxy: table ip {} holds {} Service port(s) ({:?})",
                        proxier.table.name(),
                        proxier.programmed.port_count(),
                        started.elapsed()
                    );
                } else {
                    tracing::debug!("service proxy synced in {:?}", started.elapsed());
                }
                let quiet = tokio::time::timeout(STALE_CHAINS_DELAY, changes.wait()).await;
                if quiet.is_err() {
                    proxier.delete_stale_chains().await;
                    changes.wait().await;
                }
                tokio::time::sleep_until((started + MIN_SYNC_PERIOD).into()).await;
            }
            Err(e) => {
                tracing::error!(
                    "service proxy: {e}; retrying in {RETRY_PERIOD:?} with the whole table"
                );
                tokio::time::sleep(RETRY_PERIOD).await;
            }
        }
    }
}

/// The Services whose objects or EndpointSlices changed since the last
/// sync, and a poke for the sync loop.
#[derive(Default)]
struct Changes {
    changed: Mutex<Changed>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Changed {
    services: BTreeSet<ServiceKey>,
    /// A watch listed everything anew (objects deleted meanwhile sent no
    /// event): every Service is to be looked at.
    all: bool,
}

impl Changes {
    fn note(&self, services: impl IntoIterator<Item = ServiceKey>) {
        self.changed
            .lock()
            .expect("no panic holds the lock")
            .services
            .extend(services);
        self.notify.notify_one();
    }

    fn note_all(&self) {
        self.changed.lock().expect("no panic holds the lock").all = true;
        self.notify.notify_one();
    }

    fn take(&self) -> Changed {
        std::mem::take(&mut *self.changed.lock().expect("no panic holds the lock"))
    }

    async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// The Services an event about `slice` concerns: the one it names, and the
/// one it named before if its label changed. `owners` remembers which
/// Service each slice belonged to.
fn slice_services(
    owners: &mut HashMap<ObjectRef<EndpointSlice>, ServiceKey>,
    slice: &EndpointSlice,
    deleted: bool,
) -> Vec<ServiceKey> {
    let slice_ref = ObjectRef::from_obj(slice);
    let owner = ServiceKey::of_slice(slice);
    let before = match (&owner, deleted) {
        (Some(owner), false) => owners.insert(slice_ref, owner.clone()),
        _ => owners.remove(&slice_ref),
    };
    owner.into_iter().chain(before).collect()
}

/// A reflector of `api`'s objects that notes in `changes` the Services
/// each event concerns (`concerns` is told whether the object was deleted).
fn watch<K>(
    api: Api<K>,
    changes: &Arc<Changes>,
    mut concerns: impl FnMut(&K, bool) -> Vec<ServiceKey> + Send + 'static,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let changes = changes.clone();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(stream.for_each(move |event| {
        match event {
            Ok(watcher::Event::Apply(object)) => changes.note(concerns(&object, false)),
            Ok(watcher::Event::Delete(object)) => changes.note(concerns(&object, true)),
            Ok(watcher::Event::InitApply(object)) => {
                concerns(&object, false);
            }
            // The store holds the new list only from here on.
            Ok(watcher::Event::InitDone) => changes.note_all(),
            Ok(watcher::Event::Init) => {}
            Err(e) => tracing::warn!("service proxy watch: {e}"),
        }
        std::future::ready(())
    }));
    store
}

/// The table as last programmed, and how to program the next one.
struct Proxier {
    table: Table,
    node_name: String,
    pod_cidr: Option<Ipv4Net>,
    /// What the table holds (or, after a refused batch, should hold).
    programmed: Programmed,
    /// The next batch must replace the whole table: at start, and after a
    /// refused batch.
    replace: bool,
    /// Chains emptied but not yet deleted (see [`Table::update`]).
    stale_chains: BTreeSet<String>,
    /// UDP flows to forget once the rules that stopped them are in.
    stale_flows: BTreeSet<StaleFlows>,
}

impl Proxier {
    fn new(config: &Config) -> Self {
        let pod_cidr = match config.pod_cidr {
            IpNet::V4(cidr) => Some(cidr.trunc()),
            IpNet::V6(_) => {
                tracing::warn!(
                    "service proxy: pod CIDR {} is IPv6; only IPv4 Services are proxied, with every source masqueraded as off-node",
                    config.pod_cidr
                );
                None
            }
        };
        let comment = format!(
            "Services for node {} (tug service proxy, agent dir {})",
            config.node_name,
            config.agent_dir.display()
        );
        Self {
            table: Table::new(table_name(&config.agent_dir), &comment),
            node_name: config.node_name.clone(),
            pod_cidr,
            programmed: Programmed::default(),
            replace: true,
            stale_chains: BTreeSet::new(),
            stale_flows: BTreeSet::new(),
        }
    }

    /// Brings the table in step with the Services in `changed` (every
    /// Service, for a whole replacement or after a watch listed anew).
    async fn sync(
        &mut self,
        services: &Store<Service>,
        slices: &Store<EndpointSlice>,
        changed: Changed,
    ) -> Result<(), NftError> {
        let keys = if self.replace || changed.all {
            let listed = services.state();
            let listed = listed.iter().filter_map(|s| ServiceKey::of_service(s));
            listed.chain(self.programmed.keys().cloned()).collect()
        } else {
            changed.services
        };
        let change = self.programmed.apply(self.render(&keys, services, slices));
        self.stale_flows
            .extend(conntrack::stale(&change.old_ports, &change.new_ports));
        let batch = if self.replace {
            self.stale_chains.clear();
            self.table.replace(&self.programmed.contents())
        } else {
            self.table.update(
                &change.old,
                &change.new,
                &change.refill,
                &mut self.stale_chains,
            )
        };
        if !batch.is_empty()
            && let Err(e) = nft::apply(&batch).await
        {
            self.replace = true;
            return Err(e);
        }
        self.replace = false;
        conntrack::forget(&std::mem::take(&mut self.stale_flows)).await;
        Ok(())
    }

    /// Deletes the chains emptied by earlier batches: nft reads every chain
    /// for it, so it is done in a quiet moment (a failure leaves them for
    /// the next).
    async fn delete_stale_chains(&mut self) {
        if self.stale_chains.is_empty() {
            return;
        }
        match nft::apply(&self.table.delete_chains(&self.stale_chains)).await {
            Ok(()) => self.stale_chains.clear(),
            Err(e) => tracing::warn!("service proxy: deleting emptied chains: {e}"),
        }
    }

    /// The rules of each of `keys` whose ports differ from those its rules
    /// were rendered from (`None`: it has none now).
    fn render(
        &self,
        keys: &BTreeSet<ServiceKey>,
        services: &Store<Service>,
        slices: &Store<EndpointSlice>,
    ) -> Vec<(ServiceKey, Option<Rendered>)> {
        let mut slices_of: HashMap<ServiceKey, Vec<Arc<EndpointSlice>>> = HashMap::new();
        for slice in slices.state() {
            if let Some(key) = ServiceKey::of_slice(&slice)
                && keys.contains(&key)
            {
                slices_of.entry(key).or_default().push(slice);
            }
        }
        let mut updates = Vec::new();
        for key in keys {
            let service = services.get(&ObjectRef::new(&key.name).within(&key.namespace));
            let own: Vec<&EndpointSlice> = slices_of
                .get(key)
                .map(|s| s.iter().map(|s| &**s).collect())
                .unwrap_or_default();
            let ports = service
                .map(|s| model::ports_of(&s, &own, &self.node_name))
                .unwrap_or_default();
            if ports == self.programmed.ports(key) {
                continue;
            }
            let rendered = (!ports.is_empty()).then(|| {
                let mut contents = Contents::default();
                for port in &ports {
                    rules::render(port, self.pod_cidr, &mut contents);
                }
                Rendered { ports, contents }
            });
            updates.push((key.clone(), rendered));
        }
        updates
    }
}
