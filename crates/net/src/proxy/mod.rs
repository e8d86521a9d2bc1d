//! The service proxy (kube-proxy in nftables mode): Services and their
//! EndpointSlices, watched through the API, become DNAT rules in one
//! nftables table of this node's own.
//!
//! ```text
//! model      Service + EndpointSlices → ServicePort (addresses, policies,
//!            endpoints with their conditions)
//! rules      ServicePort → chains, affinity sets, map elements (text)
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
//! crashed proxy left is replaced, tracked connections keep flowing), then
//! once per burst of changes (after [`MIN_SYNC_PERIOD`]) only the chains
//! and elements of the Services that changed. A refused batch is logged
//! with nft's message and retried as a whole replacement.

mod conntrack;
pub mod model;
mod nft;
pub mod rules;
pub mod table;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ipnet::{IpNet, Ipv4Net};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

pub use nft::NftError;
use rules::Contents;
use table::Table;

/// How long changes are gathered before one batch carries them all, as
/// kube-proxy's `minSyncPeriod`.
pub const MIN_SYNC_PERIOD: Duration = Duration::from_millis(100);
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
    let changed = Arc::new(Notify::new());
    let services = watch(Api::<Service>::all(client.clone()), &changed);
    let slices = watch(Api::<EndpointSlice>::all(client), &changed);
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
        let first = proxier.applied.is_none();
        match proxier.sync(&services.state(), &slices.state()).await {
            Ok(()) => {
                if first {
                    tracing::info!(
                        "service proxy: table ip {} holds {} Service port(s) ({:?})",
                        proxier.table.name(),
                        proxier.ports.len(),
                        started.elapsed()
                    );
                } else {
                    tracing::debug!("service proxy synced in {:?}", started.elapsed());
                }
                changed.notified().await;
                // Let the rest of a burst (a Deployment's pods becoming
                // ready) arrive, so one batch carries it.
                tokio::time::sleep(MIN_SYNC_PERIOD).await;
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

/// A reflector of `api`'s objects that pokes `changed` on every event.
fn watch<K>(api: Api<K>, changed: &Arc<Notify>) -> Store<K>
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
    let changed = changed.clone();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(stream.for_each(move |event| {
        match event {
            Ok(_) => changed.notify_one(),
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
    /// What the table holds; `None` until a whole replacement succeeds.
    applied: Option<Contents>,
    /// The Service ports the table was last programmed from.
    ports: Vec<model::ServicePort>,
    /// Each Service port's rules by its name, as last rendered: a sync
    /// renders only the ports that changed.
    rendered: HashMap<String, (model::ServicePort, Contents)>,
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
            applied: None,
            ports: Vec::new(),
            rendered: HashMap::new(),
        }
    }

    /// Brings the table in step with `services` and `slices`.
    async fn sync(
        &mut self,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
    ) -> Result<(), NftError> {
        let ports = model::service_ports(
            services.iter().map(|s| &**s),
            slices.iter().map(|s| &**s),
            &self.node_name,
        );
        let mut desired = Contents::default();
        let mut rendered = HashMap::with_capacity(ports.len());
        for port in &ports {
            let name = port.name();
            let fragment = match self.rendered.remove(&name) {
                Some((before, fragment)) if before == *port => fragment,
                _ => {
                    let mut fragment = Contents::default();
                    rules::render(port, self.pod_cidr, &mut fragment);
                    fragment
                }
            };
            desired.merge(&fragment);
            rendered.insert(name, (port.clone(), fragment));
        }
        self.rendered = rendered;
        let batch = match self.applied.take() {
            Some(applied) => self.table.update(&applied, &desired),
            None => self.table.replace(&desired),
        };
        if !batch.is_empty() {
            nft::apply(&batch).await?;
        }
        self.applied = Some(desired);
        conntrack::forget(&conntrack::stale(&self.ports, &ports)).await;
        self.ports = ports;
        Ok(())
    }
}
