//! One request through the ingress: the route its host and path take, the
//! headers a reverse proxy adds, connections switched to another protocol
//! (WebSocket) carried through, and the answer when no backend can give one
//! (404 for no route, 503 for no endpoint, 502 for endpoints that refuse or
//! fail, 504 for one that does not answer in time), each with a body saying
//! why, as ingress-nginx answers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::backends::{Backend, Target};
use crate::current::Current;
use crate::forward::{Failure, Forwarder};
use crate::routes::Table;

pub type Routes = Current<Table<Target>>;
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one connection, not the message, so a proxy does
/// not pass them on (RFC 9110, section 7.6.1), beside those `Connection`
/// names.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub struct Proxy {
    routes: Arc<Routes>,
    forwarder: Forwarder,
}

impl Proxy {
    pub fn new(routes: Arc<Routes>) -> Proxy {
        Proxy {
            routes,
            forwarder: Forwarder::new(),
        }
    }

    /// Answers `request`, which `client` sent over `scheme` (`http` or `https`).
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        client: SocketAddr,
        scheme: &'static str,
    ) -> Result<Response<ProxyBody>, Infallible> {
        // HTTP/2 carries the host in the URI, HTTP/1.1 in the Host header.
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_owned();
        let path = request.uri().path().to_owned();
        let Some(target) = self.routes.load().find(&host, &path).cloned() else {
            return Ok(text(
                StatusCode::NOT_FOUND,
                format!("no Ingress rule matches host {host:?} and path {path:?}"),
            ));
        };
        let upgrade = upgrade_asked(request.headers());
        let client_side = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        set_forwarded_headers(request.headers_mut(), &host, client, scheme);
        if let Some(protocol) = upgrade {
            let headers = request.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        let sent = self
            .forwarder
            .send(&target.backend, request, target.read_timeout)
            .await;
        let answer = match sent {
            Ok(mut response) => {
                match client_side {
                    Some(client_side) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                        // The 101 keeps its Connection and Upgrade: they are the answer.
                        let backend_side = hyper::upgrade::on(&mut response);
                        tokio::spawn(tunnel(client_side, backend_side));
                    }
                    _ => remove_hop_by_hop(response.headers_mut()),
                }
                response.map(BodyExt::boxed)
            }
            Err(failure) => failed(&target.backend, failure),
        };
        Ok(answer)
    }
}

/// The ingress's answer when `backend` gave none.
fn failed(backend: &Backend, failure: Failure) -> Response<ProxyBody> {
    match failure {
        Failure::NoEndpoints(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        Failure::Unreachable(tried) => text(
            StatusCode::BAD_GATEWAY,
            format!(
                "no endpoint of service {} accepted a connection ({})",
                backend.name,
                tried.join("; ")
            ),
        ),
        Failure::TimedOut(endpoint, timeout) => text(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "endpoint {endpoint} of service {} sent no answer within {} s \
                 (nginx.ingress.kubernetes.io/proxy-read-timeout)",
                backend.name,
                timeout.as_secs()
            ),
        ),
        Failure::Broken(endpoint, why) => text(
            StatusCode::BAD_GATEWAY,
            format!(
                "endpoint {endpoint} of service {} failed the request: {why}",
                backend.name
            ),
        ),
    }
}

/// The request's headers as the endpoint gets them: without this hop's
/// headers, with the host the client asked for, and with who asked over
/// what. What the client sent as X-Forwarded-* is replaced, not extended:
/// whoever reaches the ingress directly is not trusted to say where a
/// request came from (Traefik's default for untrusted clients).
fn set_forwarded_headers(headers: &mut HeaderMap, host: &str, client: SocketAddr, scheme: &str) {
    remove_hop_by_hop(headers);
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("host", host);
    set("x-forwarded-for", &client.ip().to_string());
    set("x-forwarded-proto", scheme);
    set("x-forwarded-host", host);
}

/// The protocol a request asks to switch to (WebSocket, mostly), when it
/// asks with both `Connection: upgrade` and `Upgrade`.
fn upgrade_asked(headers: &HeaderMap) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    headers
        .get(header::UPGRADE)
        .filter(|_| connection_upgrade)
        .cloned()
}

/// Carries the bytes of a switched connection both ways until either side
/// closes it.
async fn tunnel(client_side: OnUpgrade, backend_side: OnUpgrade) {
    match futures::future::try_join(client_side, backend_side).await {
        Ok((client, backend)) => {
            let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        }
        Err(e) => tracing::debug!("an upgraded connection failed to switch: {e}"),
    }
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// An answer of the ingress's own: the status line's words, then why.
pub fn text(status: StatusCode, why: String) -> Response<ProxyBody> {
    let reason = status.canonical_reason().unwrap_or_default();
    let body = format!("{} {reason}: {why}\n", status.as_u16());
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key(header::ACCEPT));
    }

    #[test]
    fn forwarded_headers_replace_what_the_client_claimed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        let client: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        set_forwarded_headers(&mut headers, "a.example.com", client, "https");
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "a.example.com");
        assert_eq!(headers["host"], "a.example.com");
    }
}
