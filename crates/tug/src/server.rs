//! `tug server`: the whole cluster on this machine.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tugboat_apiserver::Config;
use tugboat_store::Store;
use tugboat_store::embedded::EmbeddedStore;

use crate::agent::NodeArgs;

#[derive(clap::Args)]
pub struct ServerArgs {
    /// Where the cluster keeps its state, certificates and admin kubeconfig.
    #[arg(long, default_value = "/var/lib/tugboat")]
    data_dir: PathBuf,
    /// The HTTPS port of the Kubernetes API.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// The address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Another name or address for the API server's certificate (repeatable).
    #[arg(long)]
    tls_san: Vec<String>,
    /// Seconds of store history kept for watches and paginated lists; older
    /// resourceVersions get 410 Expired.
    #[arg(long, default_value_t = 300)]
    compaction_interval: u64,
    /// Where Services' cluster IPs come from; the first address is the
    /// `kubernetes` Service's.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: tugboat_net::IpNet,
    /// The ports NodePort and LoadBalancer Services get, as first-last.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: tugboat_apiserver::PortRange,
    /// The address this server is reached at, published as the `kubernetes`
    /// Service's endpoint (default: --bind-address, or this host's primary
    /// address when that is every interface).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Serve the API only: run no node agent, so this machine is no node.
    #[arg(long)]
    disable_agent: bool,
    /// Run no controllers (Deployments, ReplicaSets, namespaces...);
    /// `tug controllers` can run them elsewhere.
    #[arg(long)]
    disable_controllers: bool,
    #[command(flatten)]
    controllers: crate::controllers::ControllerSettings,
    /// Run no scheduler: pods stay unbound unless `tug scheduler` (or
    /// another scheduler) runs elsewhere.
    #[arg(long)]
    disable_scheduler: bool,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    dns: crate::dns::DnsArgs,
    #[command(flatten)]
    ingress: crate::ingress::IngressArgs,
}

/// The roles `kubectl get nodes` shows for a server's own node, as k3s sets them.
const SERVER_NODE_ROLES: &[(&str, &str)] = &[("node-role.kubernetes.io/control-plane", "true")];

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
    let state = args.data_dir.join("state.redb");
    let store: Arc<dyn Store> = EmbeddedStore::open(&state)
        .with_context(|| format!("opening the store {}", state.display()))?;
    let proxy = args.node.proxy();
    let agent = (!args.disable_agent).then(|| {
        args.node
            .config(&args.data_dir.join("agent"), SERVER_NODE_ROLES)
    });
    let advertise_address = args.advertise_address.unwrap_or_else(|| {
        if args.bind_address.is_unspecified() {
            tugboat_agent::machine::internal_ip()
        } else {
            args.bind_address
        }
    });
    let config = Config {
        data_dir: args.data_dir,
        bind_address: args.bind_address,
        port: args.port,
        tls_san: args.tls_san,
        compaction_interval: Duration::from_secs(args.compaction_interval.max(1)),
        service_cidr: args.service_cidr,
        service_node_port_range: args.service_node_port_range,
        advertise_address,
    };
    let api = tugboat_apiserver::listen(config, store).await?;
    let kubeconfig = api.kubeconfig().to_owned();
    let dns = crate::dns::Placement {
        address: advertise_address,
        cluster_ip: args.node.cluster_dns_ip(),
        domain: args.node.cluster_domain.clone(),
    };
    crate::dns::spawn(&kubeconfig, &args.dns, dns, api.system_services());
    if !args.disable_controllers {
        let kubeconfig = kubeconfig.clone();
        let settings = args.controllers.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::controllers::start(&kubeconfig, &settings).await {
                tracing::error!("the controllers stopped: {e:#}");
            }
        });
    }
    if !args.disable_scheduler {
        let kubeconfig = kubeconfig.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::scheduler::start(&kubeconfig).await {
                tracing::error!("the scheduler stopped: {e:#}");
            }
        });
    }
    if !args.disable_agent {
        crate::ingress::spawn(&kubeconfig, &args.ingress);
    }
    if let Some(agent) = agent {
        tokio::spawn(async move {
            if let Err(e) = crate::agent::start(&kubeconfig, agent, proxy).await {
                tracing::error!("the node agent stopped: {e:#}");
            }
        });
    }
    api.serve().await
}
