//! How exec and attach channels travel to the client.
//!
//! - WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), kubectl 1.30 and
//!   later: every binary message starts with its channel byte; in v5,
//!   channel 255 closes a channel (the client's end of stdin).
//! - SPDY/3.1 (`v4.channel.k8s.io`), older kubectls: the client opens one
//!   stream per channel, named by its `streamType` header, and ends stdin by
//!   ending its stream.
//!
//! Either way the session sees [`Channels`]: outputs to send, inputs to read.
//! Port-forward shares the upgrade helpers and, for SPDY on the connection
//! itself, [`bytes`].

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Refusal;
use super::spdy::{self, Codec, Frame};
use super::stream::{ERROR, RESIZE, STDERR, STDIN, STDOUT, StreamOptions};

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
/// Channel 255 (v5): the client closes the channel in the next byte.
const CLOSE: u8 = 255;
/// How long a SPDY client has to open its streams, as the kubelet's
/// `streamCreationTimeout`.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// What the client sends during a session.
pub enum Input {
    Stdin(Bytes),
    CloseStdin,
    Resize { width: u16, height: u16 },
}

/// A terminal's new size, as kubectl sends it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TerminalSize {
    width: u16,
    height: u16,
}

/// The session's side: it sends `(channel, bytes)` and reads inputs, which
/// end when the client has gone. Dropping it ends the connection.
pub struct Channels {
    outputs: mpsc::Sender<(u8, Bytes)>,
    pub inputs: mpsc::UnboundedReceiver<Input>,
}

impl Channels {
    pub async fn send(&self, channel: u8, data: Bytes) -> Result<(), ()> {
        self.outputs.send((channel, data)).await.map_err(|_| ())
    }
}

/// The transport's side of [`Channels`].
struct Ends {
    outputs: mpsc::Receiver<(u8, Bytes)>,
    inputs: mpsc::UnboundedSender<Input>,
}

fn channels() -> (Channels, Ends) {
    let (outputs, outputs_end) = mpsc::channel(16);
    let (inputs_end, inputs) = mpsc::unbounded_channel();
    (
        Channels { outputs, inputs },
        Ends {
            outputs: outputs_end,
            inputs: inputs_end,
        },
    )
}

/// Answers the upgrade the client asked for and runs `session` on the
/// upgraded connection.
pub async fn upgrade<F, Fut>(
    mut request: Request,
    options: StreamOptions,
    session: F,
) -> Result<Response, Refusal>
where
    F: FnOnce(StreamOptions, Channels) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let asked = upgrade_asked(&request);
    if asked == "websocket" {
        let (mut parts, _) = request.into_parts();
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.body_text()))?
            .protocols([V5, V4]);
        let v5 = upgrade.selected_protocol().is_some_and(|p| p == V5);
        return Ok(upgrade.on_upgrade(move |socket| async move {
            let (channels, ends) = channels();
            tokio::join!(websocket(socket, ends, v5), session(options, channels));
        }));
    }
    if asked.starts_with("spdy/3.1") {
        if !offers(&request, V4) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("the client must offer {V4}"),
            ));
        }
        let upgraded = hyper::upgrade::on(&mut request);
        let mut expected = vec![ERROR];
        for (wanted, channel) in [
            (options.stdin, STDIN),
            (options.stdout, STDOUT),
            (options.stderr && !options.tty, STDERR),
            (options.tty, RESIZE),
        ] {
            if wanted {
                expected.push(channel);
            }
        }
        tokio::spawn(async move {
            let Ok(upgraded) = upgraded.await else {
                return;
            };
            let (channels, ends) = channels();
            tokio::join!(
                spdy_session(TokioIo::new(upgraded), expected, ends),
                session(options, channels)
            );
        });
        return Ok(spdy_switch(V4));
    }
    Err(Refusal::new(
        StatusCode::BAD_REQUEST,
        "exec and attach need an upgrade to WebSocket or SPDY/3.1",
    ))
}

/// The protocol the client asks to switch to (`Upgrade`), lowercased.
pub fn upgrade_asked(request: &Request) -> String {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Whether a SPDY client offers `protocol` (`X-Stream-Protocol-Version`).
pub fn offers(request: &Request, protocol: &str) -> bool {
    request
        .headers()
        .get_all("X-Stream-Protocol-Version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == protocol)
}

/// The answer that switches the connection to SPDY speaking `protocol`.
pub fn spdy_switch(protocol: &'static str) -> Response {
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "Upgrade"),
            (header::UPGRADE, "SPDY/3.1"),
            (
                header::HeaderName::from_static("x-stream-protocol-version"),
                protocol,
            ),
        ],
        Body::empty(),
    )
        .into_response()
}

/// A byte stream as chunks in and frames out, until either side ends.
pub async fn bytes<IO: AsyncRead + AsyncWrite>(
    io: IO,
    chunks: mpsc::Sender<Bytes>,
    mut frames: mpsc::Receiver<Vec<u8>>,
) {
    let (mut read_half, mut write_half) = tokio::io::split(io);
    let reader = async move {
        let mut buffer = vec![0; 32 * 1024];
        while let Ok(n @ 1..) = read_half.read(&mut buffer).await {
            if chunks
                .send(Bytes::copy_from_slice(&buffer[..n]))
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let writer = async move {
        while let Some(frame) = frames.recv().await {
            if write_half.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = write_half.shutdown().await;
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}

async fn websocket(socket: WebSocket, ends: Ends, v5: bool) {
    let Ends {
        mut outputs,
        inputs,
    } = ends;
    let (mut sink, mut source) = socket.split();
    let reader = async move {
        while let Some(Ok(message)) = source.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => return,
                _ => continue,
            };
            let input = match (data.first(), data.get(1..)) {
                (Some(&STDIN), Some(rest)) if !rest.is_empty() => {
                    Input::Stdin(Bytes::copy_from_slice(rest))
                }
                (Some(&RESIZE), Some(rest)) => match resize(rest) {
                    Some(input) => input,
                    None => continue,
                },
                (Some(&CLOSE), Some([STDIN, ..])) if v5 => Input::CloseStdin,
                _ => continue,
            };
            if inputs.send(input).is_err() {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((channel, data)) = outputs.recv().await {
            let mut frame = Vec::with_capacity(data.len() + 1);
            frame.push(channel);
            frame.extend_from_slice(&data);
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        // kubectl reads a close without a code as a broken stream.
        let normal = CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}

fn resize(json: &[u8]) -> Option<Input> {
    let size: TerminalSize = serde_json::from_slice(json).ok()?;
    Some(Input::Resize {
        width: size.width,
        height: size.height,
    })
}

async fn spdy_session<IO: AsyncRead + AsyncWrite>(io: IO, expected: Vec<u8>, ends: Ends) {
    let Ends {
        mut outputs,
        inputs,
    } = ends;
    let (mut read_half, mut write_half) = tokio::io::split(io);
    let Ok(mut codec) = Codec::new() else {
        return;
    };
    let mut received = Vec::new();
    let mut streams: HashMap<u8, u32> = HashMap::new();
    let mut early = Vec::new();
    // The client opens its streams first, each answered before the next.
    let opened = tokio::time::timeout(STREAM_CREATION_TIMEOUT, async {
        while !expected.iter().all(|c| streams.contains_key(c)) {
            for frame in read_frames(&mut read_half, &mut codec, &mut received).await? {
                let Frame::SynStream { stream, headers } = frame else {
                    early.push(frame);
                    continue;
                };
                write_half.write_all(&codec.syn_reply(stream)?).await?;
                let kind = headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("streamType"))
                    .map(|(_, value)| value.as_str());
                let channel = match kind {
                    Some("error") => ERROR,
                    Some("stdin") => STDIN,
                    Some("stdout") => STDOUT,
                    Some("stderr") => STDERR,
                    Some("resize") => RESIZE,
                    _ => continue,
                };
                streams.insert(channel, stream);
            }
        }
        std::io::Result::Ok(())
    })
    .await;
    if !matches!(opened, Ok(Ok(()))) {
        return;
    }
    let stdin = streams.get(&STDIN).copied();
    let resizes = streams.get(&RESIZE).copied();
    let reader = async move {
        // Resizes come as JSON objects one per line.
        let mut sizes = Vec::new();
        let mut handle = |frame: Frame| -> bool {
            let Frame::Data { stream, fin, data } = frame else {
                return !matches!(frame, Frame::GoAway);
            };
            if Some(stream) == stdin {
                if !data.is_empty() && inputs.send(Input::Stdin(Bytes::from(data))).is_err() {
                    return false;
                }
                if fin {
                    return inputs.send(Input::CloseStdin).is_ok();
                }
            } else if Some(stream) == resizes {
                sizes.extend(data);
                while let Some(end) = sizes.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = sizes.drain(..=end).collect();
                    if let Some(input) = resize(&line)
                        && inputs.send(input).is_err()
                    {
                        return false;
                    }
                }
            }
            true
        };
        for frame in early {
            if !handle(frame) {
                return;
            }
        }
        while let Ok(frames) = read_frames(&mut read_half, &mut codec, &mut received).await {
            for frame in frames {
                if !handle(frame) {
                    return;
                }
            }
        }
    };
    let writer = async move {
        while let Some((channel, data)) = outputs.recv().await {
            if let Some(&stream) = streams.get(&channel)
                && write_half
                    .write_all(&spdy::data(stream, false, &data))
                    .await
                    .is_err()
            {
                return;
            }
        }
        for channel in [STDOUT, STDERR, ERROR] {
            if let Some(&stream) = streams.get(&channel) {
                let _ = write_half.write_all(&spdy::data(stream, true, &[])).await;
            }
        }
        let _ = write_half.shutdown().await;
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}

/// The next whole frames from the client, reading more as needed.
async fn read_frames<R: AsyncRead + Unpin>(
    reader: &mut R,
    codec: &mut Codec,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Vec<Frame>> {
    let mut chunk = vec![0; 16 * 1024];
    loop {
        let mut frames = Vec::new();
        while let Some(frame) = codec.read_frame(buffer)? {
            frames.push(frame);
        }
        if !frames.is_empty() {
            return Ok(frames);
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}
