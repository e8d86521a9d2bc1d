//! Tugboat's ingress controller: an HTTP and HTTPS reverse proxy on each
//! node (beside the node agent) serving the Ingresses of the `tug`
//! IngressClass, the cluster's default, as k3s serves them with Traefik.
//!
//! ```text
//! API ──watch──▶ cluster    Ingresses, IngressClasses, Services, EndpointSlices,
//!                           TLS Secrets kept in memory; on any change rebuilds ─┐
//!                class      the `tug` class (made at start), which Ingresses are ours
//!                routes     host and path rules → backend, matched as Kubernetes says
//!                backends   Service port → its ready endpoints' addresses
//!                annotations  an Ingress's proxy-read-timeout (ingress-nginx's; 60 s)
//!                tls        spec.tls Secrets → certificates by SNI name, a default one
//!                current    the table and certificates, swapped whole ◀─────────┘
//!                status     status.loadBalancer.ingress ← this node's InternalIP
//!
//! client ──▶ listen  :80 HTTP, :443 HTTPS (ports: flags; taken: logged, skipped)
//!            proxy   route → X-Forwarded-* → forward; upgrades (WebSocket) carried
//!                    through; 404 / 502 / 503 / 504 with why
//!            forward pooled HTTP/1.1 client to pod addresses, round robin,
//!                    the next endpoint when one refuses the connection, no
//!                    more than the read timeout for an answer
//! ```
//!
//! ```text
//! tugboat_ingress::run(client, Config { http_port: 80, https_port: 443, address }).await;
//! ```
//!
//! No request waits on the API server: every answer comes from the table of
//! the last rebuild.

mod annotations;
mod backends;
mod class;
mod cluster;
mod current;
mod forward;
mod listen;
mod proxy;
mod routes;
mod status;
mod tls;

use std::net::IpAddr;
use std::sync::Arc;

pub use class::{CLASS_NAME, CONTROLLER};

/// Where this node's ingress listens and what it publishes.
pub struct Config {
    pub http_port: u16,
    pub https_port: u16,
    /// The node's address, written into the status of served Ingresses.
    pub address: IpAddr,
}

/// Runs the ingress until the process ends. Only a TLS setup failure (no
/// default certificate) returns; a port that cannot be had is logged and
/// left off.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let routes = Arc::new(current::Current::new(routes::Table::default()));
    let certificates = Arc::new(current::Current::new(tls::Certificates::default()));
    let tls = Arc::new(tls::server_config(certificates.clone())?);
    let proxy = Arc::new(proxy::Proxy::new(routes.clone()));
    tokio::spawn(class::ensure_class(client.clone()));
    tokio::spawn(listen::http(config.http_port, proxy.clone()));
    tokio::spawn(listen::https(config.https_port, proxy, tls));
    let status = status::Status::new(client.clone(), config.address);
    cluster::run(client, routes, certificates, status).await;
    Ok(())
}
