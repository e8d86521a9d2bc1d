//! Cluster DNS: the names of the Kubernetes DNS specification
//! (`<svc>.<ns>.svc.<zone>`, headless endpoints, SRV, PTR, ExternalName,
//! pods) answered from memory, every other name forwarded to the host's
//! resolvers; over UDP and TCP, as CoreDNS with its kubernetes plugin
//! serves them in a Kubernetes cluster.
//!
//! ```text
//! names     what a question names: ClusterName (service, endpoint, port, pod...), reverse names
//! index     Index: each Service's records (ServiceRecords from a Service and its slices),
//!           the reverse map of Service IPs and endpoint addresses
//! watch     keeps the Index from watches on Services and EndpointSlices
//! answer    Zone::answer: the reply to one question from the Index (or None: forward it)
//! upstream  Upstream: the host's resolvers (hickory-resolver, cached)
//! server    Handler: hickory-server's RequestHandler putting them together
//! ```
//!
//! Queries never reach the API server: the watches keep the index, and a
//! query reads it under a lock held for the lookup only.

mod answer;
mod index;
mod names;
mod server;
mod upstream;
mod watch;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use tokio::net::{TcpListener, UdpSocket};

use crate::error::{Context, Error, Result};
pub use upstream::host_resolvers;

/// The TTL of the cluster's records (CoreDNS' kubernetes plugin default).
const TTL: u32 = 5;

/// How long a TCP client may stay silent before its connection is closed.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many replies may wait to be written on one TCP connection.
const TCP_QUEUE: usize = 32;

/// Where and what the cluster DNS serves.
pub struct DnsConfig {
    /// The address it listens on (UDP and TCP).
    pub address: IpAddr,
    /// The ports to try, in order (0s are skipped); when none is free the
    /// kernel picks one.
    pub ports: Vec<u16>,
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// The resolvers other names go to, e.g. [`host_resolvers`].
    pub upstreams: Vec<SocketAddr>,
}

/// Binds the DNS's sockets, then serves in the background (with the
/// watches that feed it) for as long as the runtime runs. Returns the
/// address it bound.
pub async fn start(client: kube::Client, config: DnsConfig) -> Result<SocketAddr> {
    let origin = Name::from_ascii(format!("{}.", config.domain.trim_end_matches('.')))
        .map_err(|e| Error::InvalidConfig {
            path: "--cluster-domain".into(),
            reason: format!("{:?} is not a domain name: {e}", config.domain),
        })?
        .to_lowercase();
    let upstream = upstream::Upstream::new(&config.upstreams)
        .map_err(std::io::Error::other)
        .context(|| "setting up the upstream resolvers".to_owned())?;
    let (udp, tcp) = bind(config.address, &config.ports).await?;
    let bound = udp
        .local_addr()
        .context(|| "reading the DNS socket's address".to_owned())?;
    let serial = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let index = Arc::new(RwLock::new(index::Index::default()));
    tokio::spawn(watch::run(client, index.clone()));
    let handler = server::Handler {
        zone: answer::Zone {
            origin,
            ttl: TTL,
            serial,
        },
        index,
        upstream,
    };
    let mut server = hickory_server::Server::new(handler);
    server.register_socket(udp);
    server.register_listener(tcp, TCP_TIMEOUT, TCP_QUEUE);
    tokio::spawn(async move {
        if let Err(e) = server.block_until_done().await {
            tracing::error!("cluster DNS stopped: {e}");
        }
    });
    Ok(bound)
}

/// A UDP socket and a TCP listener on the same port of `address`: the
/// first of `ports` free for both, else one the kernel picks.
async fn bind(address: IpAddr, ports: &[u16]) -> Result<(UdpSocket, TcpListener)> {
    for &port in ports.iter().filter(|&&port| port != 0) {
        match (
            UdpSocket::bind((address, port)).await,
            TcpListener::bind((address, port)).await,
        ) {
            (Ok(udp), Ok(tcp)) => return Ok((udp, tcp)),
            (Err(e), _) | (_, Err(e)) => tracing::warn!(
                "cluster DNS: port {port} on {address} is not free ({e}); trying another, which the kube-dns EndpointSlice publishes"
            ),
        }
    }
    // The kernel picks a free UDP port; TCP may hold that one already, so
    // try a few.
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind((address, 0))
            .await
            .context(|| format!("binding a UDP port for the cluster DNS on {address}"))?;
        let picked = udp
            .local_addr()
            .context(|| "reading the DNS socket's address".to_owned())?
            .port();
        match TcpListener::bind((address, picked)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
        .context(|| format!("binding a TCP port for the cluster DNS on {address}"))
}
