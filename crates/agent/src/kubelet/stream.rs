//! `/exec` and `/attach`: a command's or a container's standard streams
//! carried to the client on numbered channels, 0 stdin, 1 stdout, 2 stderr,
//! 3 the final `metav1.Status`, 4 terminal resizes; `transport` carries
//! them over WebSocket (kubectl 1.30 and later) or SPDY (older kubectls).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tugboat_runtime::{ContainerId, ContainerState, ExecSession};

use super::logs::{Follower, Stream};
use super::transport::{self, Channels, Input};
use super::{Attempt, Kubelet, Refusal, flag};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;

/// What the client asked for, from the query (`command` repeats).
pub struct StreamOptions {
    command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
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
    request: Request,
) -> Result<Response, Refusal> {
    let options = StreamOptions::parse(&pairs);
    if options.command.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 command",
        ));
    }
    let id = running_container(&kubelet, &names).await?;
    transport::upgrade(request, options, move |options, channels| async move {
        let command = options.command.clone();
        let started =
            tokio::task::spawn_blocking(move || kubelet.runtime.exec(&id, command, options.tty))
                .await
                .expect("starting an exec does not panic");
        match started {
            Ok(session) => run_exec(session, options, channels).await,
            Err(e) => {
                let _ = channels
                    .send(ERROR, status_bytes(&failure(&e.to_string())))
                    .await;
            }
        }
    })
    .await
}

pub async fn attach(
    State(kubelet): State<Arc<Kubelet>>,
    UrlPath(names): UrlPath<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
    request: Request,
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
    transport::upgrade(request, options, move |options, channels| async move {
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
        let mut channels = channels;
        if relay(&mut channels, outputs, stdin.map(stdin_writer), None).await {
            let success = json!({"metadata": {}, "status": "Success"});
            let _ = channels.send(ERROR, status_bytes(&success)).await;
        }
    })
    .await
}

async fn run_exec(mut session: ExecSession, options: StreamOptions, mut channels: Channels) {
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
    let session = Arc::new(Mutex::new(session));
    // A client gone away leaves no one to tell: the session ends with it.
    if !relay(
        &mut channels,
        outputs,
        stdin.map(stdin_writer),
        Some(session.clone()),
    )
    .await
    {
        return;
    }
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
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                options.command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => failure(&e.to_string()),
    };
    let _ = channels.send(ERROR, status_bytes(&status)).await;
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

/// Moves bytes both ways until every output has ended; false when the
/// client went away first.
async fn relay(
    channels: &mut Channels,
    mut outputs: mpsc::Receiver<(u8, Bytes)>,
    mut stdin: Option<std::sync::mpsc::Sender<Bytes>>,
    session: Option<Arc<Mutex<ExecSession>>>,
) -> bool {
    loop {
        tokio::select! {
            out = outputs.recv() => {
                let Some((channel, data)) = out else { return true };
                if channels.send(channel, data).await.is_err() {
                    return false;
                }
            }
            input = channels.inputs.recv() => match input {
                Some(Input::Stdin(data)) => {
                    if let Some(writer) = &stdin {
                        let _ = writer.send(data);
                    }
                }
                Some(Input::CloseStdin) => stdin = None,
                Some(Input::Resize { width, height }) => {
                    if let Some(session) = &session {
                        let session = session.lock().expect("the exec session lock is not poisoned");
                        if let Err(e) = session.resize(width, height) {
                            tracing::debug!("resizing an exec terminal: {e}");
                        }
                    }
                }
                None => return false,
            },
        }
    }
}

fn status_bytes(status: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(status).expect("JSON values serialize"))
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
