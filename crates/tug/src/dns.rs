//! The cluster DNS inside `tug server`: where it listens, which resolvers
//! it forwards to, and the `kube-system/kube-dns` Service pods reach it by.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tugboat_apiserver::system_services::{SystemPort, SystemService, SystemServices};
use tugboat_net::dns::{DnsConfig, host_resolvers};

/// The namespace and name of the Service pods reach the DNS by.
const KUBE_DNS: (&str, &str) = ("kube-system", "kube-dns");

#[derive(clap::Args, Clone)]
pub struct DnsArgs {
    /// Run no cluster DNS (pods' `ClusterFirst` lookups then go unanswered
    /// unless another DNS serves the kube-dns Service).
    #[arg(long)]
    disable_dns: bool,
    /// The port the cluster DNS listens on (UDP and TCP), on the advertise
    /// address; 0, or a port already taken, picks a free one, which the
    /// kube-dns EndpointSlice publishes.
    #[arg(long, default_value_t = 53)]
    cluster_dns_port: u16,
    /// A resolver (IP or IP:PORT) for names outside the cluster
    /// (repeatable); by default those of /etc/resolv.conf.
    #[arg(long = "cluster-dns-upstream", value_parser = parse_upstream)]
    upstreams: Vec<SocketAddr>,
}

/// Where the DNS serves and how pods find it.
pub struct Placement {
    /// The address it listens on and the kube-dns endpoint publishes (the
    /// server's advertise address, unless that is loopback).
    pub address: IpAddr,
    /// The kube-dns Service's cluster IP (what pods have as nameserver).
    pub cluster_ip: IpAddr,
    pub domain: String,
}

/// Starts the DNS in the background and keeps the kube-dns Service
/// pointing at it. Failing to start is logged, not fatal: the rest of
/// the cluster works without names.
pub fn spawn(kubeconfig: &Path, args: &DnsArgs, placement: Placement, services: SystemServices) {
    if args.disable_dns {
        return;
    }
    let kubeconfig: PathBuf = kubeconfig.to_owned();
    let args = args.clone();
    tokio::spawn(async move {
        if let Err(e) = run(&kubeconfig, &args, &placement, &services).await {
            tracing::error!("the cluster DNS is not running: {e:#}");
        }
    });
}

async fn run(
    kubeconfig: &Path,
    args: &DnsArgs,
    placement: &Placement,
    services: &SystemServices,
) -> anyhow::Result<()> {
    let upstreams = if args.upstreams.is_empty() {
        host_resolvers().context("reading the host's resolvers from /etc/resolv.conf")?
    } else {
        args.upstreams.clone()
    };
    // Pods reach the DNS through the kube-dns Service, which cannot lead
    // to this host's loopback: a server advertised there serves its DNS on
    // the host's primary address.
    let address = if placement.address.is_loopback() {
        tugboat_agent::machine::internal_ip()
    } else {
        placement.address
    };
    let client = kube::Client::try_from(crate::client::config(kubeconfig).await?)?;
    // When the asked-for port is taken, the port an earlier run published
    // comes next: pods and the proxy keep reaching the DNS where they did.
    let published = published_port(&client).await;
    let bound = tugboat_net::dns::start(
        client,
        DnsConfig {
            address,
            ports: [Some(args.cluster_dns_port), published]
                .into_iter()
                .flatten()
                .collect(),
            domain: placement.domain.clone(),
            upstreams,
        },
    )
    .await?;
    tracing::info!(
        "cluster DNS on {bound} (UDP and TCP), Service kube-system/kube-dns at {}",
        placement.cluster_ip
    );
    let port = |name: &str, protocol: &str| SystemPort {
        name: name.to_owned(),
        protocol: protocol.to_owned(),
        port: 53,
        target_port: bound.port(),
    };
    services
        .keep(&SystemService {
            namespace: KUBE_DNS.0.to_owned(),
            name: KUBE_DNS.1.to_owned(),
            labels: BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
            cluster_ip: placement.cluster_ip,
            ports: vec![port("dns", "UDP"), port("dns-tcp", "TCP")],
            address: bound.ip(),
        })
        .await
}

/// The target port of the kube-dns Service as an earlier run left it.
async fn published_port(client: &kube::Client) -> Option<u16> {
    let services: kube::Api<Service> = kube::Api::namespaced(client.clone(), KUBE_DNS.0);
    let service = services.get_opt(KUBE_DNS.1).await.ok()??;
    match service.spec?.ports?.first()?.target_port.as_ref()? {
        IntOrString::Int(port) => u16::try_from(*port).ok(),
        IntOrString::String(_) => None,
    }
}

/// `IP` (port 53) or `IP:PORT`.
fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("expected IP or IP:PORT, got {text:?}"))
}
