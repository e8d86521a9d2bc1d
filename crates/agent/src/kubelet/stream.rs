//! `/exec` and `/attach` over WebSocket with Kubernetes' channel protocols
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every binary message starts
//! with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the final
//! `metav1.Status`, 4 terminal resizes (`{"Width":..,"Height":..}`), and in
//! v5 255 to close a channel (the client's end of stdin).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tugboat_runtime::{ContainerId, ContainerState, ExecSession};

use super::logs::{Follower, Stream};
use super::{Attempt, Kubelet, Refusal, flag};

const V5: &str = "v5.channel.k8s.io";
const PROTOCOLS: [&str; 2] = [V5, "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// What the client asked for, from the query (`command` repeats).
struct StreamOptions {
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl StreamOptions {
    fn parse(pairs: &[(String, String)]) -> StreamOptions {
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        StreamOptions {
            command: pairs
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect(),
            stdin: flag(get("stdin")),
            stdout: flag(get("stdout")),
            stderr: flag(get("stderr")),
            tty: flag(get("tty")),
        }
    }
}

/// A terminal's new size, as kubectl sends it on channel 4.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TerminalSize {
    width: u16,
    height: u16,
}

/// Finds the running container a stream is for.
async fn running_container(
    kubelet: &Arc<Kubelet>,
    (namespace, pod, container): &(String, String, String),
) -> Result<ContainerId, Refusal> {
    let found = kubelet
        .container(namespace, pod, container, Attempt::Latest)
        .await?;
    if !matches!(found.state, ContainerState::Running { .. }) {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} is not running"),
        ));
    }
    Ok(found.id)
}

pub async fn exec(
    State(kubelet): State<Arc<Kubelet>>,
    UrlPath(names): UrlPath<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Refusal> {
    let options = StreamOptions::parse(&pairs);
    if options.command.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 command",
        ));
    }
    let id = running_container(&kubelet, &names).await?;
    let upgrade = upgrade.protocols(PROTOCOLS);
    let v5 = upgrade.selected_protocol().is_some_and(|p| p == V5);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let command = options.command.clone();
        let runtime_kubelet = kubelet.clone();
        let started = tokio::task::spawn_blocking(move || {
            runtime_kubelet.runtime.exec(&id, command, options.tty)
        })
        .await
        .expect("starting an exec does not panic");
        match started {
            Ok(session) => run_exec(socket, session, options, v5).await,
            Err(e) => finish(socket, failure(&e.to_string())).await,
        }
    }))
}

pub async fn attach(
    State(kubelet): State<Arc<Kubelet>>,
    UrlPath(names): UrlPath<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, Refusal> {
    let options = StreamOptions::parse(&pairs);
    let id = running_container(&kubelet, &names).await?;
    let status = kubelet
        .runtime
        .container_status(&id)
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let stdin = if options.stdin {
        let opened = kubelet.runtime.attach_stdin(&id).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("cannot attach to the stdin of {:?}: {e}", names.2),
            )
        })?;
        Some(opened)
    } else {
        None
    };
    let mut follower = Follower::at_end(&status.log_path)
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let upgrade = upgrade.protocols(PROTOCOLS);
    let v5 = upgrade.selected_protocol().is_some_and(|p| p == V5);
    Ok(upgrade.on_upgrade(move |socket| async move {
        let (output, outputs) = mpsc::channel(16);
        tokio::task::spawn_blocking(move || {
            // The container's output, as its log has it, until it ends.
            loop {
                let entries = follower.read().unwrap_or_default();
                let ended = entries.is_empty()
                    && kubelet
                        .runtime
                        .container_status(&id)
                        .map(|s| matches!(s.state, ContainerState::Exited { .. }))
                        .unwrap_or(true);
                for entry in entries {
                    let channel = match entry.stream {
                        Stream::Stdout if options.stdout => STDOUT,
                        Stream::Stderr if options.stderr => STDERR,
                        _ => continue,
                    };
                    let mut data = entry.content;
                    if entry.full {
                        data.push(b'\n');
                    }
                    if output.blocking_send((channel, Bytes::from(data))).is_err() {
                        return;
                    }
                }
                if ended || output.is_closed() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        let stdin = stdin.map(stdin_writer);
        let end = relay(socket, outputs, stdin, None, v5).await;
        if let Some(socket) = end {
            finish(socket, json!({"metadata": {}, "status": "Success"})).await;
        }
    }))
}

async fn run_exec(socket: WebSocket, mut session: ExecSession, options: StreamOptions, v5: bool) {
    let (output, outputs) = mpsc::channel(16);
    for (file, channel, wanted) in [
        (session.stdout.take(), STDOUT, options.stdout),
        (session.stderr.take(), STDERR, options.stderr),
    ] {
        if let Some(file) = file {
            tokio::task::spawn_blocking({
                let output = output.clone();
                // Read even when unwanted: a full pipe would stall the command.
                move || pump(file, channel, wanted.then_some(output))
            });
        }
    }
    drop(output);
    let stdin = session.stdin.take().filter(|_| options.stdin);
    let stdin = stdin.map(stdin_writer);
    let session = Arc::new(Mutex::new(session));
    let end = relay(socket, outputs, stdin, Some(session.clone()), v5).await;
    // A client gone away leaves no one to tell: the session ends with it.
    let Some(socket) = end else {
        return;
    };
    let exit = tokio::task::spawn_blocking(move || {
        session
            .lock()
            .expect("the exec session lock is not poisoned")
            .wait()
    })
    .await
    .expect("waiting for an exec does not panic");
    let status = match exit {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {:?}, exit code {code}",
                options.command
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => failure(&e.to_string()),
    };
    finish(socket, status).await;
}

/// Copies a command's output into `(channel, bytes)` messages until it ends.
fn pump(mut file: std::fs::File, channel: u8, output: Option<mpsc::Sender<(u8, Bytes)>>) {
    let mut buffer = vec![0; 32 * 1024];
    // A terminal reports the end of its last writer as an error (EIO).
    while let Ok(n @ 1..) = file.read(&mut buffer) {
        if let Some(output) = &output
            && output
                .blocking_send((channel, Bytes::copy_from_slice(&buffer[..n])))
                .is_err()
        {
            return;
        }
    }
}

/// A thread that writes what it is sent to `stdin`; dropping the sender
/// closes it.
fn stdin_writer(mut stdin: std::fs::File) -> std::sync::mpsc::Sender<Bytes> {
    let (sender, received) = std::sync::mpsc::channel::<Bytes>();
    std::thread::spawn(move || {
        for data in received {
            if stdin.write_all(&data).is_err() {
                return;
            }
        }
    });
    sender
}

/// Moves bytes both ways until every output has ended; returns the socket
/// for the final status, or `None` when the client went away first.
async fn relay(
    socket: WebSocket,
    mut outputs: mpsc::Receiver<(u8, Bytes)>,
    mut stdin: Option<std::sync::mpsc::Sender<Bytes>>,
    session: Option<Arc<Mutex<ExecSession>>>,
    v5: bool,
) -> Option<WebSocket> {
    let (mut sink, mut source) = socket.split();
    let mut client_open = true;
    loop {
        tokio::select! {
            out = outputs.recv() => {
                let Some((channel, data)) = out else { break };
                let mut frame = Vec::with_capacity(data.len() + 1);
                frame.push(channel);
                frame.extend_from_slice(&data);
                if sink.send(Message::Binary(frame.into())).await.is_err() {
                    return None;
                }
            }
            message = source.next(), if client_open => {
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => {
                        client_open = false;
                        stdin = None;
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                match (data.first(), data.get(1..)) {
                    (Some(&STDIN), Some(rest)) if !rest.is_empty() => {
                        if let Some(writer) = &stdin {
                            let _ = writer.send(Bytes::copy_from_slice(rest));
                        }
                    }
                    (Some(&RESIZE), Some(rest)) => {
                        if let (Some(session), Ok(size)) =
                            (&session, serde_json::from_slice::<TerminalSize>(rest))
                        {
                            let session = session.lock().expect("the exec session lock is not poisoned");
                            if let Err(e) = session.resize(size.width, size.height) {
                                tracing::debug!("resizing an exec terminal: {e}");
                            }
                        }
                    }
                    (Some(&CLOSE), Some([STDIN, ..])) if v5 => stdin = None,
                    _ => {}
                }
            }
        }
    }
    let socket = sink.reunite(source).ok()?;
    client_open.then_some(socket)
}

/// Sends the final status on the error channel and closes the socket.
async fn finish(mut socket: WebSocket, status: Value) {
    let mut frame = vec![ERROR];
    frame.extend(serde_json::to_vec(&status).expect("JSON values serialize"));
    let _ = socket.send(Message::Binary(frame.into())).await;
    // kubectl reads a close without a code as a broken stream.
    let normal = CloseFrame {
        code: close_code::NORMAL,
        reason: "".into(),
    };
    let _ = socket.send(Message::Close(Some(normal))).await;
}

fn failure(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
}
