//! The grpc check: one call of the standard gRPC health checking protocol
//! (`grpc.health.v1.Health/Check`), over plain-text HTTP/2 as the kubelet
//! makes it; only `SERVING` is a success. Failures read as the kubelet's.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};
use tonic_prost::ProstCodec;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(enumeration = "ServingStatus", tag = "1")]
    status: i32,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
enum ServingStatus {
    Unknown = 0,
    Serving = 1,
    NotServing = 2,
    ServiceUnknown = 3,
}

impl ServingStatus {
    /// The name in the .proto file, as Go's generated `String()` gives it.
    fn name(self) -> &'static str {
        match self {
            ServingStatus::Unknown => "UNKNOWN",
            ServingStatus::Serving => "SERVING",
            ServingStatus::NotServing => "NOT_SERVING",
            ServingStatus::ServiceUnknown => "SERVICE_UNKNOWN",
        }
    }
}

const CHECK: &str = "/grpc.health.v1.Health/Check";

/// Asks the server at `addr` whether `service` ("" for the whole server)
/// is serving. Connects from the calling thread (the pod's network
/// namespace) and spends at most `timeout` on the connection and as much
/// on the call.
pub fn check(addr: SocketAddr, service: &str, timeout: Duration) -> Result<(), String> {
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        format!("timeout: failed to connect service \"{addr}\" within {timeout:?}: {e}")
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let status = runtime.block_on(async {
        tokio::time::timeout(timeout, call(stream, addr, service))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "timeout: health rpc did not complete within {timeout:?}"
                ))
            })
    })?;
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(other) => Err(format!(
            "service unhealthy (responded with \"{}\")",
            other.name()
        )),
        Err(_) => Err(format!("service unhealthy (responded with \"{status}\")")),
    }
}

/// The health call over the connected `stream`; the response's status.
async fn call(stream: TcpStream, addr: SocketAddr, service: &str) -> Result<i32, String> {
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stream = tokio::net::TcpStream::from_std(stream).map_err(|e| e.to_string())?;
    // The channel's one connection is the one already made.
    let connection = Arc::new(Mutex::new(Some(stream)));
    let connector = tower::service_fn(move |_: Uri| {
        let taken = connection.lock().expect("not poisoned").take();
        async move {
            taken
                .map(TokioIo::new)
                .ok_or_else(|| std::io::Error::other("the probe's connection was closed"))
        }
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .and_then(|e| e.user_agent("kube-probe/1.33"))
        .map_err(|e| e.to_string())?
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("error: failed to connect service at \"{addr}\": {e}"))?;
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| format!("error: failed to connect service at \"{addr}\": {e}"))?;
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let response = client
        .unary(
            tonic::Request::new(request),
            PathAndQuery::from_static(CHECK),
            ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default(),
        )
        .await
        .map_err(|status| match status.code() {
            tonic::Code::Unimplemented => format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            ),
            code => format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                status.message()
            ),
        })?;
    Ok(response.into_inner().status)
}
