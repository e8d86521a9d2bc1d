//! `/containerLogs/{namespace}/{pod}/{container}`: a container's output read
//! back from its CRI log files, oldest rotated file first, with the
//! kubelet's options (`follow`, `tailLines`, `sinceSeconds`, `sinceTime`,
//! `timestamps`, `previous`, `limitBytes`).
//!
//! Following polls the file: the shim appends and rotates it from another
//! process, and a container that has ended ends the stream once its file is
//! read to the end.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;
use tokio::sync::mpsc;
use tugboat_runtime::{ContainerId, ContainerState, Runtime};

use super::{Attempt, Kubelet, Refusal, flag};

/// About how many bytes of log go out at once.
const CHUNK: usize = 64 * 1024;

/// How often a followed log is looked at for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    follow: Option<String>,
    tail_lines: Option<i64>,
    since_seconds: Option<i64>,
    since_time: Option<String>,
    timestamps: Option<String>,
    previous: Option<String>,
    limit_bytes: Option<i64>,
}

/// Which output stream a log entry came from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of a CRI log file: `<time> <stream> <F|P> <content>`.
pub struct Entry {
    /// As written in the file (RFC 3339 with nanoseconds), which is also
    /// how `timestamps=true` shows it; parsed only when filtered on.
    pub time: String,
    pub stream: Stream,
    /// `F`: the content ends a line; `P`: a piece of a longer one.
    pub full: bool,
    pub content: Vec<u8>,
}

impl Entry {
    fn parse(line: &[u8]) -> Option<Entry> {
        let mut parts = line.splitn(4, |&b| b == b' ');
        let time = std::str::from_utf8(parts.next()?).ok()?.to_owned();
        let stream = match parts.next()? {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return None,
        };
        let full = parts.next()? != b"P";
        Some(Entry {
            time,
            stream,
            full,
            content: parts.next().unwrap_or_default().to_vec(),
        })
    }

    fn written_before(&self, since: Timestamp) -> bool {
        self.time
            .parse::<Timestamp>()
            .is_ok_and(|time| time < since)
    }

    /// Appends the entry as the client reads it: its content, a newline when
    /// it ends a line, and the time first when asked for.
    fn render(&self, timestamps: bool, out: &mut Vec<u8>) {
        if timestamps {
            out.extend_from_slice(self.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&self.content);
        if self.full {
            out.push(b'\n');
        }
    }
}

pub async fn container_logs(
    State(kubelet): State<Arc<Kubelet>>,
    UrlPath((namespace, pod, container)): UrlPath<(String, String, String)>,
    Query(query): Query<LogQuery>,
) -> Result<Response, Refusal> {
    let attempt = if flag(query.previous.as_deref()) {
        Attempt::Previous
    } else {
        Attempt::Latest
    };
    let found = kubelet
        .container(&namespace, &pod, &container, attempt)
        .await?;
    let since = match (&query.since_time, query.since_seconds) {
        (Some(time), _) => Some(time.parse::<Timestamp>().map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("invalid sinceTime {time:?}: {e}"),
            )
        })?),
        (None, Some(seconds)) => {
            Some(Timestamp::now() - jiff::SignedDuration::from_secs(seconds.max(0)))
        }
        (None, None) => None,
    };
    let options = Options {
        follow: flag(query.follow.as_deref()) && attempt == Attempt::Latest,
        tail: query.tail_lines.and_then(|n| usize::try_from(n).ok()),
        since,
        timestamps: flag(query.timestamps.as_deref()),
        limit: query.limit_bytes.and_then(|n| u64::try_from(n).ok()),
    };
    let (sender, mut receiver) = mpsc::channel::<Bytes>(16);
    let id = found.id.clone();
    let path = found.log_path.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write_logs(&kubelet.runtime, &id, &path, &options, &sender) {
            tracing::debug!("reading {}: {e}", path.display());
        }
    });
    let chunks = futures::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, Infallible>))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(chunks),
    )
        .into_response())
}

struct Options {
    follow: bool,
    tail: Option<usize>,
    since: Option<Timestamp>,
    timestamps: bool,
    limit: Option<u64>,
}

/// Sends what the options select, then, when following, new entries until
/// the container has ended or the client has gone.
fn write_logs(
    runtime: &Runtime,
    id: &ContainerId,
    path: &Path,
    options: &Options,
    sender: &mpsc::Sender<Bytes>,
) -> io::Result<()> {
    let mut left = options.limit.unwrap_or(u64::MAX);
    // Sends the entries in chunks of about CHUNK bytes; false once the
    // client is gone or the byte limit reached.
    let mut send = |entries: Vec<Entry>| -> bool {
        let mut flush = |chunk: &mut Vec<u8>| -> bool {
            chunk.truncate(usize::try_from(left).unwrap_or(usize::MAX));
            left -= chunk.len() as u64;
            let sent = sender.blocking_send(Bytes::from(std::mem::take(chunk)));
            sent.is_ok() && left > 0
        };
        let mut chunk = Vec::new();
        for entry in entries {
            if options
                .since
                .is_some_and(|since| entry.written_before(since))
            {
                continue;
            }
            entry.render(options.timestamps, &mut chunk);
            if chunk.len() >= CHUNK && !flush(&mut chunk) {
                return false;
            }
        }
        chunk.is_empty() || flush(&mut chunk)
    };
    let mut follower = Follower::at_start(path)?;
    let mut history = VecDeque::new();
    for rotated in rotated_files(path) {
        history.extend(read_entries(&mut File::open(rotated)?, &mut Vec::new())?);
    }
    history.extend(follower.read()?);
    if let Some(tail) = options.tail {
        let skip = history.len().saturating_sub(tail);
        history.drain(..skip);
    }
    if !send(history.into()) || !options.follow {
        return Ok(());
    }
    while !sender.is_closed() {
        let entries = follower.read()?;
        if entries.is_empty() {
            let ended = runtime
                .container_status(id)
                .map(|status| matches!(status.state, ContainerState::Exited { .. }))
                .unwrap_or(true);
            if ended {
                send(follower.read()?);
                return Ok(());
            }
            std::thread::sleep(FOLLOW_POLL);
        } else if !send(entries) {
            return Ok(());
        }
    }
    Ok(())
}

/// The rotated files of a log, oldest first: `<log>.N` ... `<log>.1`.
fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    let mut files: Vec<PathBuf> = (1..)
        .map(numbered)
        .take_while(|file| file.exists())
        .collect();
    files.reverse();
    files
}

/// Reads the whole lines from `file`'s position on; an unfinished last line
/// stays in `pending` for the next read.
fn read_entries(file: &mut File, pending: &mut Vec<u8>) -> io::Result<Vec<Entry>> {
    file.read_to_end(pending)?;
    let Some(end) = pending.iter().rposition(|&b| b == b'\n') else {
        return Ok(Vec::new());
    };
    let entries = pending[..end]
        .split(|&b| b == b'\n')
        .filter_map(Entry::parse)
        .collect();
    pending.drain(..=end);
    Ok(entries)
}

/// Reads a log file as it grows, and its successor when the shim rotates it.
pub struct Follower {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
}

impl Follower {
    /// From the start of the current file.
    pub fn at_start(path: &Path) -> io::Result<Follower> {
        Ok(Follower {
            path: path.to_owned(),
            file: File::open(path)?,
            pending: Vec::new(),
        })
    }

    /// From the end of the current file: only what is written from now on.
    pub fn at_end(path: &Path) -> io::Result<Follower> {
        let mut follower = Follower::at_start(path)?;
        follower.file.seek(SeekFrom::End(0))?;
        Ok(follower)
    }

    /// The entries written since the last read.
    pub fn read(&mut self) -> io::Result<Vec<Entry>> {
        let mut entries = read_entries(&mut self.file, &mut self.pending)?;
        let rotated = std::fs::metadata(&self.path)
            .map(|now| now.ino() != self.file.metadata().map(|m| m.ino()).unwrap_or(0))
            .unwrap_or(false);
        if rotated {
            // What the shim wrote between the read and the rename.
            entries.extend(read_entries(&mut self.file, &mut self.pending)?);
            self.file = File::open(&self.path)?;
            self.pending.clear();
            entries.extend(read_entries(&mut self.file, &mut self.pending)?);
        }
        Ok(entries)
    }
}
