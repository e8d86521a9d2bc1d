//! Forwarding a request to a backend's endpoints over one pooled HTTP/1.1
//! client, so kept-alive connections to each endpoint serve request after
//! request. Each request goes to the next endpoint in turn, and on to
//! another when one cannot be connected to (refused, unreachable, timed
//! out): nothing of the request has been sent then, so trying again is safe
//! whatever its method, and its body is still there for the next attempt.
//! An endpoint that takes the request but sends no answer's head within the
//! read timeout (connecting included) is given up, and not tried again
//! elsewhere: its body has gone to it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::backends::Backend;

/// How long an endpoint may take to accept a connection before the next
/// one is tried (ingress-nginx waits 5 s by default; pods on this node
/// answer in microseconds, so a slow one is as good as gone).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an idle kept-alive connection to an endpoint is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request reached no endpoint, or no answer came back.
#[derive(Debug)]
pub enum Failure {
    /// Nothing to send to: no such Service or port, or no ready endpoint.
    NoEndpoints(String),
    /// Every endpoint was tried and none accepted a connection.
    Unreachable(Vec<String>),
    /// The endpoint took the request but failed before a full answer.
    Broken(SocketAddr, String),
    /// The endpoint sent no answer within the read timeout.
    TimedOut(SocketAddr, Duration),
}

pub struct Forwarder {
    client: Client<HttpConnector, SharedBody>,
}

impl Forwarder {
    pub fn new() -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector);
        Forwarder { client }
    }

    /// Sends `request` (its headers already as the endpoint should see them)
    /// to one of the backend's endpoints, waiting `read_timeout` at most for
    /// its answer.
    pub async fn send(
        &self,
        backend: &Backend,
        request: Request<Incoming>,
        read_timeout: Duration,
    ) -> Result<Response<Incoming>, Failure> {
        let endpoints = match &backend.endpoints {
            Err(problem) => return Err(Failure::NoEndpoints(problem.clone())),
            Ok(endpoints) if endpoints.is_empty() => {
                return Err(Failure::NoEndpoints(format!(
                    "no ready endpoints for service {}",
                    backend.name
                )));
            }
            Ok(_) => backend.attempt_order(),
        };
        let (parts, body) = request.into_parts();
        let body = Arc::new(Mutex::new(Some(body)));
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let mut refused = Vec::new();
        for endpoint in endpoints {
            let uri: Uri = format!("http://{endpoint}{path}")
                .parse()
                .expect("an address and a request path make a URI");
            let mut attempt = Request::new(SharedBody {
                slot: body.clone(),
                taken: None,
            });
            *attempt.method_mut() = parts.method.clone();
            *attempt.uri_mut() = uri;
            *attempt.version_mut() = Version::HTTP_11;
            *attempt.headers_mut() = parts.headers.clone();
            match tokio::time::timeout(read_timeout, self.client.request(attempt)).await {
                Err(_) => return Err(Failure::TimedOut(endpoint, read_timeout)),
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(e)) if e.is_connect() => refused.push(format!("{endpoint}: {}", causes(&e))),
                Ok(Err(e)) => return Err(Failure::Broken(endpoint, causes(&e))),
            }
        }
        Err(Failure::Unreachable(refused))
    }
}

/// An error with what caused it, innermost last, on one line.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The client's request body, shared by the attempts of one request. The
/// client reads a body only once its connection is open, so the attempt
/// that gets one takes the body from the slot, and attempts refused before
/// leave it there for the next.
struct SharedBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    taken: Option<Incoming>,
}

impl SharedBody {
    /// What `f` says of the body, wherever it is now; an empty body once
    /// another attempt has it.
    fn inspect<T>(&self, f: impl Fn(&Incoming) -> T, empty: T) -> T {
        match &self.taken {
            Some(body) => f(body),
            None => self
                .slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map_or(empty, f),
        }
    }
}

impl Body for SharedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.taken.is_none() {
            this.taken = this.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        match &mut this.taken {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inspect(Incoming::is_end_stream, true)
    }

    fn size_hint(&self) -> SizeHint {
        self.inspect(Incoming::size_hint, SizeHint::with_exact(0))
    }
}
