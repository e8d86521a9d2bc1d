//! The subresources the node's kubelet serves: `pods/log`, `pods/exec`,
//! `pods/attach`, `pods/portforward` and `nodes/proxy`.
//!
//! The API server finds the pod's node, the node's InternalIP and the port
//! its kubelet publishes (`status.daemonEndpoints.kubeletEndpoint.Port`),
//! and passes the request on over HTTPS with its own client certificate:
//! plain responses stream back (`logs -f` until the client goes away), and
//! upgraded connections (WebSocket, SPDY) are spliced both ways. As
//! kube-apiserver does by default, it does not check the kubelet's serving
//! certificate, which the kubelet signs itself.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tugboat_api::{ApiError, ApiResult, registry};

use crate::objects::Objects;
use crate::pki::Pki;

/// How much of a kubelet's refusal is read to pass on.
const MAX_REFUSAL: usize = 64 * 1024;

/// How the API server reaches kubelets.
pub struct Kubelets {
    connector: TlsConnector,
}

impl Kubelets {
    pub fn new(pki: &Pki) -> anyhow::Result<Kubelets> {
        let (cert, key) = pki.kubelet_client()?;
        let chain =
            CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
        // Kubelets sign their own serving certificates.
        let config = tugboat_tls::any_server_certificate().with_client_auth_cert(chain, key)?;
        Ok(Kubelets {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends `request` to the kubelet at `address` as `path_and_query` and
    /// returns its answer; an upgrade is carried on to the client.
    async fn forward(
        &self,
        (host, port): (String, u16),
        path_and_query: String,
        mut request: Request,
    ) -> ApiResult<Response> {
        let unreachable =
            |e: &dyn std::fmt::Display| ApiError::internal(format!("error dialing backend: {e}"));
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| unreachable(&e))?;
        let name = ServerName::try_from(host.clone()).map_err(|e| unreachable(&e))?;
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!("kubelet connection ended: {e}");
            }
        });
        let client_upgrade = hyper::upgrade::on(&mut request);
        let (parts, body) = request.into_parts();
        let mut upstream = hyper::Request::builder()
            .method(parts.method)
            .uri(path_and_query)
            .body(body)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        for (name, value) in &parts.headers {
            if name != header::HOST && name != header::AUTHORIZATION {
                upstream.headers_mut().append(name, value.clone());
            }
        }
        if let Ok(host) = HeaderValue::from_str(&format!("{host}:{port}")) {
            upstream.headers_mut().insert(header::HOST, host);
        }
        let mut answer = sender
            .send_request(upstream)
            .await
            .map_err(|e| unreachable(&e))?;
        if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
            let kubelet_upgrade = hyper::upgrade::on(&mut answer);
            tokio::spawn(async move {
                let (Ok(client), Ok(kubelet)) = tokio::join!(client_upgrade, kubelet_upgrade)
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(kubelet),
                )
                .await;
            });
        }
        Ok(answer.map(Body::new))
    }
}

pub fn routes() -> Router<Arc<Objects>> {
    Router::new()
        .route("/api/v1/namespaces/{namespace}/pods/{name}/log", get(log))
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            any(stream),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/attach",
            any(stream),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            any(stream),
        )
        .route("/api/v1/nodes/{name}/proxy/{*path}", any(node_proxy))
}

async fn log(
    State(objects): State<Arc<Objects>>,
    Extension(kubelets): Extension<Arc<Kubelets>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let forwarded = async {
        let pod = objects.get(kind("pods"), &namespace, &name).await?;
        let container = container_of(&pod, &name, query.as_deref())?;
        // A pod not yet on a node has no logs yet: an empty answer.
        let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            return Ok(StatusCode::OK.into_response());
        };
        let address = kubelet_address(&objects, node).await?;
        let path = with_query(
            format!("/containerLogs/{namespace}/{name}/{container}"),
            query.as_deref(),
        );
        let answer = kubelets.forward(address, path, request).await?;
        if answer.status().is_success() {
            return Ok(answer);
        }
        // The kubelet refuses in plain text; clients read a Status.
        let code = answer.status();
        let text = axum::body::to_bytes(answer.into_body(), MAX_REFUSAL)
            .await
            .map(|body| String::from_utf8_lossy(&body).trim().to_owned())
            .unwrap_or_default();
        Err(match code {
            StatusCode::BAD_REQUEST => ApiError::bad_request(text),
            StatusCode::NOT_FOUND => ApiError::not_found("", "pods", &name),
            _ => ApiError::internal(text),
        })
    };
    forwarded.await.unwrap_or_else(|e| super::error(&e))
}

/// `exec`, `attach` and `portforward`: connections upgraded to streams.
async fn stream(
    State(objects): State<Arc<Objects>>,
    Extension(kubelets): Extension<Arc<Kubelets>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let forwarded = async {
        let pod = objects.get(kind("pods"), &namespace, &name).await?;
        let subresource = request.uri().path().rsplit('/').next().unwrap_or_default();
        let path = if subresource == "portforward" {
            format!("/portForward/{namespace}/{name}")
        } else {
            let container = container_of(&pod, &name, query.as_deref())?;
            format!("/{subresource}/{namespace}/{name}/{container}")
        };
        let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        };
        let address = kubelet_address(&objects, node).await?;
        kubelets
            .forward(address, with_query(path, query.as_deref()), request)
            .await
    };
    forwarded.await.unwrap_or_else(|e| super::error(&e))
}

/// `nodes/{name}/proxy/{path}`: any path of the node's kubelet API.
async fn node_proxy(
    State(objects): State<Arc<Objects>>,
    Extension(kubelets): Extension<Arc<Kubelets>>,
    Path((name, path)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let forwarded = async {
        objects.get(kind("nodes"), "", &name).await?;
        let address = kubelet_address(&objects, &name).await?;
        kubelets
            .forward(
                address,
                with_query(format!("/{path}"), query.as_deref()),
                request,
            )
            .await
    };
    forwarded.await.unwrap_or_else(|e| super::error(&e))
}

fn kind(plural: &str) -> &'static tugboat_api::Kind {
    registry::by_plural("", "v1", plural).expect("the core kinds are registered")
}

fn with_query(path: String, query: Option<&str>) -> String {
    match query {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path,
    }
}

/// The container a request names (`?container=`), or the pod's only one;
/// 400 in Kubernetes' words otherwise.
fn container_of(pod: &Value, name: &str, query: Option<&str>) -> ApiResult<String> {
    let names = |field: &str| -> Vec<&str> {
        pod["spec"][field]
            .as_array()
            .map(|list| list.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init_containers = names("initContainers");
    let asked = serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .find(|(key, value)| key == "container" && !value.is_empty())
        .map(|(_, value)| value);
    match asked {
        Some(container) => {
            let known = containers
                .iter()
                .chain(&init_containers)
                .chain(&names("ephemeralContainers"))
                .any(|c| *c == container);
            if known {
                Ok(container)
            } else {
                Err(ApiError::bad_request(format!(
                    "container {container} is not valid for pod {name}"
                )))
            }
        }
        None if containers.len() == 1 => Ok(containers[0].to_owned()),
        None if containers.is_empty() => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init_containers.is_empty() {
                message += &format!(
                    " or one of the init containers: [{}]",
                    init_containers.join(" ")
                );
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// Where the node's kubelet listens: its InternalIP (or, lacking one, its
/// first address) and the port it publishes.
async fn kubelet_address(objects: &Objects, node: &str) -> ApiResult<(String, u16)> {
    let object = objects.get(kind("nodes"), "", node).await?;
    let status = &object["status"];
    let addresses = status["addresses"].as_array().cloned().unwrap_or_default();
    let address = addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addresses.first())
        .and_then(|a| a["address"].as_str());
    let port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0);
    match (address, port) {
        (Some(address), Some(port)) => Ok((address.to_owned(), port)),
        _ => Err(ApiError::bad_request(format!(
            "node {node} does not publish where its kubelet listens"
        ))),
    }
}
