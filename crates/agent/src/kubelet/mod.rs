//! The kubelet API: what the API server reaches the node through for
//! `kubectl logs`, `exec`, `attach`, `port-forward` and for node stats.
//!
//! - `tls`: the self-signed serving certificate and the client check (only
//!   certificates signed by the cluster CA get in).
//! - `logs`: `/containerLogs`, read from the CRI log files.
//! - `stream`: `/exec` and `/attach`, a session's standard streams on
//!   Kubernetes' numbered channels; `transport` carries them over WebSocket
//!   or SPDY.
//! - `portforward`: `/portForward` over SPDY tunnelled in WebSocket, on
//!   `spdy`'s frames.
//! - `stats`: `/stats/summary` from the containers' cgroups.
//!
//! Pods are named by namespace and name in URLs; the API tells their uid,
//! and the runtime finds their containers by uid and container name.

mod logs;
mod portforward;
mod spdy;
mod stats;
mod stream;
mod tls;
mod transport;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tugboat_runtime::{ContainerStatus, Runtime};

/// What the handlers share.
pub struct Kubelet {
    pub client: Client,
    pub node_name: String,
    pub runtime: Runtime,
}

/// The kubelet API bound to its port, not yet serving.
pub struct Listening {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
}

/// Binds `port` on every address (0, or a port taken, picks a free one) with
/// a certificate for `node_name` and `addresses`; clients must show a
/// certificate signed by one of `client_cas` (DER).
pub async fn listen(
    kubelet: Kubelet,
    port: u16,
    addresses: &[String],
    client_cas: &[Vec<u8>],
) -> anyhow::Result<Listening> {
    let listener = match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await {
        // Several nodes on one machine (tests, `tug agent` beside `tug
        // server`) cannot share the port; the Node publishes whichever it is.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 => {
            tracing::warn!("port {port} is taken; serving the kubelet API on a free port instead");
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).await
        }
        bound => bound,
    }
    .map_err(|e| anyhow::anyhow!("cannot listen on port {port} for the kubelet API: {e}"))?;
    let mut names = vec![kubelet.node_name.clone()];
    names.extend(addresses.iter().cloned());
    let config = tls::server_config(&names, client_cas)?;
    Ok(Listening {
        listener,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        app: router(Arc::new(kubelet)),
    })
}

impl Listening {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the future is dropped.
    pub async fn serve(self) {
        loop {
            match self.listener.accept().await {
                Ok((tcp, _)) => {
                    tokio::spawn(serve_connection(
                        self.acceptor.clone(),
                        self.app.clone(),
                        tcp,
                    ));
                }
                Err(e) => tracing::warn!("kubelet API: accepting a connection: {e}"),
            }
        }
    }
}

fn router(kubelet: Arc<Kubelet>) -> Router {
    Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route("/exec/{namespace}/{pod}/{container}", any(stream::exec))
        .route("/attach/{namespace}/{pod}/{container}", any(stream::attach))
        .route(
            "/portForward/{namespace}/{pod}",
            any(portforward::port_forward),
        )
        .route("/stats/summary", get(stats::summary))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(kubelet)
}

async fn serve_connection(acceptor: TlsAcceptor, app: Router, tcp: tokio::net::TcpStream) {
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!("kubelet API: TLS handshake failed: {e}");
            return;
        }
    };
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        app.clone().oneshot(request)
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!("kubelet API: connection ended: {e}");
    }
}

/// A request the kubelet refuses, with the words the client shows.
pub struct Refusal {
    code: StatusCode,
    message: String,
}

impl Refusal {
    fn new(code: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.code, self.message).into_response()
    }
}

/// Which run of a container a request is about.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Latest,
    /// The run before the latest (`--previous`).
    Previous,
}

impl Kubelet {
    /// The pod's uid, from the API: URLs name pods, the runtime knows uids.
    async fn pod_uid(&self, namespace: &str, pod: &str) -> Result<String, Refusal> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let found = pods.get_opt(pod).await.map_err(|e| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("looking up pod {namespace}/{pod}: {e}"),
            )
        })?;
        let not_found = || Refusal::new(StatusCode::NOT_FOUND, format!("pod {pod} not found"));
        let pod_object = found.ok_or_else(not_found)?;
        if pod_object
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            != Some(self.node_name.as_str())
        {
            return Err(not_found());
        }
        pod_object.metadata.uid.ok_or_else(not_found)
    }

    /// The container's latest (or previous) run as the runtime has it.
    async fn container(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        container: &str,
        attempt: Attempt,
    ) -> Result<ContainerStatus, Refusal> {
        let uid = self.pod_uid(namespace, pod).await?;
        let kubelet = self.clone();
        let listing = tokio::task::spawn_blocking(move || kubelet.runtime.list_containers())
            .await
            .expect("listing containers does not panic")
            .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut runs: Vec<ContainerStatus> = listing
            .into_iter()
            .filter(|c| c.pod_uid == uid && c.name == container)
            .collect();
        runs.sort_by_key(|c| std::cmp::Reverse(c.attempt));
        let found = match attempt {
            Attempt::Latest => runs.into_iter().next(),
            Attempt::Previous => runs.into_iter().nth(1),
        };
        found.ok_or_else(|| {
            let message = match attempt {
                Attempt::Latest => format!(
                    "container {container:?} in pod {pod:?} is waiting to start: ContainerCreating"
                ),
                Attempt::Previous => {
                    format!("previous terminated container {container:?} in pod {pod:?} not found")
                }
            };
            Refusal::new(StatusCode::BAD_REQUEST, message)
        })
    }
}

/// A query flag as Kubernetes parses it: `true`, `1`...
fn flag(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1" | "True" | "TRUE" | "t" | "T"))
}
