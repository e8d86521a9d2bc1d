//! `/portForward/{namespace}/{pod}`: kubectl's port-forward over SPDY,
//! tunnelled in WebSocket by kubectl 1.31 and later
//! (`SPDY/3.1+portforward.k8s.io`, each binary message a piece of the SPDY
//! byte stream) or on the upgraded connection itself by older ones.
//!
//! For every local connection kubectl opens two streams with the same
//! `requestID` and `port` headers: `streamType: error`, where a failure is
//! written, and `streamType: data`, the connection's bytes. The agent
//! connects to the port on the pod's loopback, inside its network
//! namespace, and copies both ways; the error stream ends when the
//! connection does.

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::spdy::{self, Codec, Frame};
use super::{Kubelet, Refusal, transport};

const WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
const SPDY_PROTOCOL: &str = "portforward.k8s.io";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn port_forward(
    State(kubelet): State<Arc<Kubelet>>,
    UrlPath((namespace, pod)): UrlPath<(String, String)>,
    mut request: axum::extract::Request,
) -> Result<Response, Refusal> {
    let uid = kubelet.pod_uid(&namespace, &pod).await?;
    let sandbox = kubelet.runtime.sandbox(&uid).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("pod {pod} has no sandbox to forward to: {e}"),
        )
    })?;
    let netns = sandbox.netns_path;
    let (chunks_in, chunks) = mpsc::channel::<Bytes>(16);
    let (frames, frames_out) = mpsc::channel::<Vec<u8>>(64);
    let ended = move |result: std::io::Result<()>| {
        if let Err(e) = result {
            tracing::debug!("port-forward to {namespace}/{pod} ended: {e}");
        }
    };
    match transport::upgrade_asked(&request).as_str() {
        "websocket" => {
            let (mut parts, _) = request.into_parts();
            let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
                .await
                .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.body_text()))?
                .protocols([WEBSOCKET_PROTOCOL]);
            if upgrade.selected_protocol().is_none() {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("port-forward over WebSocket speaks {WEBSOCKET_PROTOCOL} only"),
                ));
            }
            Ok(upgrade.on_upgrade(move |socket| async move {
                tokio::select! {
                    () = websocket(socket, chunks_in, frames_out) => {}
                    result = session(chunks, frames, netns) => ended(result),
                }
            }))
        }
        asked if asked.starts_with("spdy/3.1") => {
            if !transport::offers(&request, SPDY_PROTOCOL) {
                return Err(Refusal::new(
                    StatusCode::FORBIDDEN,
                    format!("the client must offer {SPDY_PROTOCOL}"),
                ));
            }
            let upgraded = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let Ok(upgraded) = upgraded.await else {
                    return;
                };
                tokio::select! {
                    () = transport::bytes(TokioIo::new(upgraded), chunks_in, frames_out) => {}
                    result = session(chunks, frames, netns) => ended(result),
                }
            });
            Ok(transport::spdy_switch(SPDY_PROTOCOL))
        }
        _ => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "port-forward needs an upgrade to WebSocket or SPDY/3.1",
        )),
    }
}

/// One pair of streams kubectl opened for one of its connections.
#[derive(Default)]
struct Request {
    error_stream: Option<u32>,
    data_stream: Option<u32>,
    port: u16,
}

/// The SPDY byte stream in WebSocket binary messages.
async fn websocket(
    socket: WebSocket,
    chunks: mpsc::Sender<Bytes>,
    mut frames: mpsc::Receiver<Vec<u8>>,
) {
    let (mut sink, mut source) = socket.split();
    let reader = async move {
        while let Some(Ok(message)) = source.next().await {
            match message {
                // Bytes clones share the buffer.
                Message::Binary(data) if chunks.send(data.clone()).await.is_err() => return,
                Message::Close(_) => return,
                _ => {}
            }
        }
    };
    let writer = async move {
        while let Some(frame) = frames.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}

/// Reads kubectl's SPDY frames from `chunks` of the byte stream and sends
/// its own on `frames`, until the client goes.
async fn session(
    mut chunks: mpsc::Receiver<Bytes>,
    frames: mpsc::Sender<Vec<u8>>,
    netns: Option<PathBuf>,
) -> std::io::Result<()> {
    let mut codec = Codec::new()?;
    let mut received = Vec::new();
    let mut requests: HashMap<String, Request> = HashMap::new();
    // Bytes from kubectl for each data stream's connection.
    let mut inbound: HashMap<u32, mpsc::UnboundedSender<Bytes>> = HashMap::new();
    let send = |frame: Vec<u8>| {
        let frames = frames.clone();
        async move { frames.send(frame).await.is_ok() }
    };
    while let Some(chunk) = chunks.recv().await {
        received.extend_from_slice(&chunk);
        while let Some(frame) = codec.read_frame(&mut received)? {
            match frame {
                Frame::SynStream { stream, headers } => {
                    if !send(codec.syn_reply(stream)?).await {
                        return Ok(());
                    }
                    let header = |name: &str| {
                        headers
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.as_str())
                            .unwrap_or_default()
                    };
                    let id = header("requestID").to_owned();
                    let request = requests.entry(id.clone()).or_default();
                    request.port = header("port").parse().unwrap_or(0);
                    match header("streamType") {
                        "error" => request.error_stream = Some(stream),
                        "data" => request.data_stream = Some(stream),
                        _ => continue,
                    }
                    if let (Some(error), Some(data)) = (request.error_stream, request.data_stream) {
                        let port = request.port;
                        requests.remove(&id);
                        let (sender, receiver) = mpsc::unbounded_channel();
                        inbound.insert(data, sender);
                        let streams = Streams {
                            error,
                            data,
                            frames: frames.clone(),
                        };
                        tokio::spawn(forward(netns.clone(), port, streams, receiver));
                    }
                }
                Frame::Data { stream, fin, data } => {
                    if let Some(sender) = inbound.get(&stream)
                        && !data.is_empty()
                    {
                        let _ = sender.send(Bytes::from(data));
                    }
                    if fin {
                        inbound.remove(&stream);
                    }
                }
                Frame::Reset { stream } => {
                    inbound.remove(&stream);
                }
                Frame::Ping { id } => {
                    if !send(spdy::ping(id)).await {
                        return Ok(());
                    }
                }
                Frame::GoAway => return Ok(()),
                Frame::Other => {}
            }
        }
    }
    Ok(())
}

/// Where one connection's frames go back to kubectl.
struct Streams {
    error: u32,
    data: u32,
    frames: mpsc::Sender<Vec<u8>>,
}

impl Streams {
    async fn send(&self, frame: Vec<u8>) -> bool {
        self.frames.send(frame).await.is_ok()
    }
}

/// Connects to `port` in the pod and copies both ways; ends the data stream
/// and the error stream (with the error, if any) when the pod's side ends.
async fn forward(
    netns: Option<PathBuf>,
    port: u16,
    streams: Streams,
    mut inbound: mpsc::UnboundedReceiver<Bytes>,
) {
    let connection = match connect(netns, port).await {
        Ok(connection) => connection,
        Err(e) => {
            let message = format!("error forwarding port {port} to pod: {e}");
            streams
                .send(spdy::data(streams.error, false, message.as_bytes()))
                .await;
            streams.send(spdy::data(streams.error, true, &[])).await;
            streams.send(spdy::data(streams.data, true, &[])).await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = connection.into_split();
    // What kubectl sends goes on until it ends its data stream.
    tokio::spawn(async move {
        while let Some(bytes) = inbound.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    });
    let mut buffer = vec![0; 32 * 1024];
    while let Ok(n @ 1..) = from_pod.read(&mut buffer).await {
        if !streams
            .send(spdy::data(streams.data, false, &buffer[..n]))
            .await
        {
            return;
        }
    }
    // The pod's side is done: older kubectls close their connection only
    // once the error stream has ended too, as the kubelet ends it here.
    streams.send(spdy::data(streams.data, true, &[])).await;
    streams.send(spdy::data(streams.error, true, &[])).await;
}

/// A connection to the pod's loopback: made from a thread that enters the
/// pod's network namespace (a socket stays in the namespace it was made
/// in), or on the host's loopback for a host-network pod.
async fn connect(netns: Option<PathBuf>, port: u16) -> std::io::Result<TcpStream> {
    let (sender, receiver) = oneshot::channel();
    std::thread::spawn(move || {
        let connected = (|| -> std::io::Result<StdTcpStream> {
            if let Some(netns) = &netns {
                let namespace = File::open(netns)?;
                move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Network))?;
            }
            let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            let stream = StdTcpStream::connect_timeout(&v4, CONNECT_TIMEOUT)
                .or_else(|_| StdTcpStream::connect_timeout(&v6, CONNECT_TIMEOUT))?;
            stream.set_nonblocking(true)?;
            Ok(stream)
        })();
        let _ = sender.send(connected);
    });
    let stream = receiver
        .await
        .map_err(|_| std::io::Error::other("the connecting thread ended"))??;
    TcpStream::from_std(stream)
}
