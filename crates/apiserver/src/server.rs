//! Startup and the listener: certificates, the admin kubeconfig, the
//! namespaces every cluster has, and HTTPS with client-certificate
//! authentication over HTTP/1.1 and HTTP/2.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipnet::IpNet;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tugboat_store::Store;

use crate::objects::Objects;
use crate::pki::Pki;
use crate::rest::kubelet_proxy::Kubelets;
use crate::routes::{self, Authenticated};
use crate::service_allocation::{self, IpRange, PortRange, ServiceRanges};
use crate::system_services::SystemServices;
use crate::tokens::Tokens;
use crate::{bootstrap, compactor, custom_resources};

/// How `tug server` runs the API server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Holds the certificates and the admin kubeconfig.
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    pub port: u16,
    /// Extra names and addresses the serving certificate is valid for.
    pub tls_san: Vec<String>,
    /// How much store history is kept for watches and paginated lists.
    pub compaction_interval: Duration,
    /// Where Services' cluster IPs come from; the first is the `kubernetes` Service's.
    pub service_cidr: IpNet,
    pub service_node_port_range: PortRange,
    /// The address the `kubernetes` Service's endpoints point at.
    pub advertise_address: IpAddr,
}

/// The API server bound to its port with its certificates made, not yet
/// answering: what [`listen`] returns so that the caller can start the
/// in-process clients (the node agent) before [`Listening::serve`].
pub struct Listening {
    kubeconfig: PathBuf,
    objects: Arc<Objects>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
}

/// Makes the certificates, binds the port, creates the system namespaces and
/// the `kubernetes` Service (repairing what Services hold first), and writes
/// the admin kubeconfig.
pub async fn listen(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Listening> {
    let pki = Pki::load_or_create(&config.data_dir, &certificate_hosts(&config))
        .context("making the cluster certificates")?;
    let tokens = Tokens::load_or_create(&config.data_dir.join("pki"))
        .context("making the service account key")?;
    let listener = TcpListener::bind((config.bind_address, config.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}; is another server running? choose another with --port",
                config.bind_address, config.port
            )
        })?;
    let ranges = ServiceRanges {
        ips: IpRange::new(config.service_cidr),
        node_ports: config.service_node_port_range,
    };
    let objects = Objects::new(store, ranges);
    compactor::start(objects.clone(), config.compaction_interval);
    bootstrap::create_system_namespaces(&objects).await?;
    service_allocation::repair(&objects)
        .await
        .context("repairing the Services' cluster IPs and node ports")?;
    // Without it, in-cluster clients lack the API server's address, but
    // everything else still works: say why and carry on, as kube-apiserver does.
    if let Err(e) =
        bootstrap::keep_kubernetes_service(&objects, config.advertise_address, config.port).await
    {
        tracing::error!(
            "{e:#}; if another Service holds {}, delete it and restart",
            objects.service_ranges.ips.first()
        );
    }
    bootstrap::create_system_priority_classes(&objects).await?;
    custom_resources::start(objects.clone())
        .await
        .context("serving the CustomResourceDefinitions")?;
    let url = format!(
        "https://{}:{}",
        client_address(config.bind_address),
        config.port
    );
    let kubeconfig = pki.write_admin_kubeconfig(&config.data_dir, &url)?;
    println!("kubeconfig: {}", kubeconfig.display());
    tracing::info!("serving the Kubernetes API at {url}");
    Ok(Listening {
        kubeconfig,
        objects: objects.clone(),
        listener,
        acceptor: TlsAcceptor::from(Arc::new(tls_config(&pki)?)),
        app: routes::router(objects, Arc::new(Kubelets::new(&pki)?), Arc::new(tokens)),
    })
}

impl Listening {
    /// The admin kubeconfig, for clients in this process.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// For keeping the Services the server runs (the cluster DNS).
    pub fn system_services(&self) -> SystemServices {
        SystemServices::new(self.objects.clone())
    }

    /// Serves the Kubernetes API until the process ends.
    pub async fn serve(self) -> anyhow::Result<()> {
        loop {
            match self.listener.accept().await {
                Ok((tcp, _)) => {
                    tokio::spawn(serve_connection(
                        self.acceptor.clone(),
                        self.app.clone(),
                        tcp,
                    ));
                }
                Err(e) => tracing::warn!("accepting a connection: {e}"),
            }
        }
    }
}

async fn serve_connection(acceptor: TlsAcceptor, app: Router, tcp: tokio::net::TcpStream) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!("TLS handshake failed: {e}");
            return;
        }
    };
    let authenticated = tls
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|certs| !certs.is_empty());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(Authenticated(authenticated));
        app.clone().oneshot(request)
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!("connection ended: {e}");
    }
}

/// TLS with our serving certificate; client certificates are asked for and,
/// when shown, must be signed by the cluster CA. Without one a client only
/// reaches the health and version endpoints.
fn tls_config(pki: &Pki) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_cert.as_bytes()) {
        roots.add(cert?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let chain = CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes())?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Names the serving certificate covers: loopback, this host, the bound
/// address and whatever `--tls-san` adds.
fn certificate_hosts(config: &Config) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        hosts.push(name.trim().to_owned());
    }
    if !config.bind_address.is_unspecified() {
        hosts.push(config.bind_address.to_string());
    }
    hosts.extend(config.tls_san.iter().cloned());
    hosts.dedup();
    hosts
}

/// The address the admin kubeconfig points at.
fn client_address(bind: IpAddr) -> IpAddr {
    if bind.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bind
    }
}
