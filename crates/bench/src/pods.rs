//! The pod start part: how long a pod takes from its create POST to Running
//! and Ready (seen on a watch, as `kubectl wait` sees it), one at a time and
//! a batch created at once, on a release node server with the test image
//! imported; beside the same image's container started by runc, crun and
//! containerd's `ctr run` in the same run (`peers`); and the memory the
//! server and the containers' shims hold.

mod peers;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, future::join_all};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{from_value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::node::{Node, create_namespace};
use crate::report::{Samples, Table, mib, ms, rss_kib};

const NAMESPACE: &str = "bench-pods";
/// The image every runtime starts: the httpd test image is busybox-static
/// with one small layer more, and `Node` imports it.
const IMAGE: &str = "tugboat.test/httpd:latest";
const ARCHIVE: &str = "httpd.oci.tar";
/// What every container runs, under every runtime: a shell that waits, and
/// ends at once on SIGTERM (as pid 1 it would otherwise ignore it), so that
/// deleting a pod between runs takes no grace period.
const COMMAND: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
/// The longest a pod may take to start or to go.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Start latencies of one runtime: one container (or pod) at a time, and a
/// batch started at once.
pub struct Starts {
    pub one: Samples,
    pub batch: Samples,
    /// From the first start sent to the last one done.
    pub batch_wall: Duration,
}

/// What a runtime's processes hold in memory, in KiB.
pub struct Memory {
    /// Which processes: the daemon, and the shim each container has.
    pub processes: String,
    pub daemon_idle: u64,
    pub daemon_busy: u64,
    /// Each container's shim (RSS), while the batch runs.
    pub shims: Vec<u64>,
    /// All those shims together, proportional set size: the pages they
    /// share (the binary's) counted once.
    pub shims_pss: u64,
}

impl Memory {
    /// Reads the daemon's and the shims' memory now.
    fn read(
        processes: &str,
        daemon: u32,
        daemon_idle: u64,
        shims: &[u32],
    ) -> anyhow::Result<Memory> {
        Ok(Memory {
            processes: processes.to_owned(),
            daemon_idle,
            daemon_busy: rss_kib(daemon)?,
            shims: shims
                .iter()
                .map(|&pid| rss_kib(pid))
                .collect::<Result<_, _>>()?,
            shims_pss: shims
                .iter()
                .map(|&pid| pss_kib(pid))
                .sum::<anyhow::Result<u64>>()?,
        })
    }
}

/// Measures pods on a node server, then the peers, and prints the tables.
pub async fn run(
    tug: &Path,
    run: &Path,
    images: &Path,
    runs: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let data = run.join("pods");
    let node = Node::start(tug, &data, images).await?;
    let tug_figures = measure_tug(&node, &data, runs, batch).await;
    // Stops the server and removes what its pods left (`tug killall`).
    drop(node);
    let (first, tug_starts, tug_memory) = tug_figures?;
    let peers = peers::measure(run, &images.join(ARCHIVE), runs, batch).await;

    let mut starts = Table::new(
        &format!(
            "Pod start: one at a time ({runs} runs, after a first one) and {batch} at once, same image and command ({IMAGE}: {})",
            COMMAND.join(" ")
        ),
        &[
            "runtime",
            "one: median",
            "one: p99",
            &format!("{batch} at once: all started"),
            &format!("{batch} at once: each p50 / p99"),
        ],
    );
    starts.row(start_cells(
        "tug server: pod create POST -> Running and Ready on a watch (API server, scheduler, agent, CNI bridge and IP, overlay root, shim)",
        tug_starts,
    ));
    let mut memory = Table::new(
        &format!(
            "Memory (RSS; the shims also as PSS, shared pages counted once), {batch} containers running"
        ),
        &[
            "process",
            "idle",
            &format!("with {batch} running"),
            "per shim (RSS)",
            "all shims (PSS)",
        ],
    );
    memory.row(memory_cells(&tug_memory));
    for peer in peers {
        match peer.figures {
            Ok((peer_starts, peer_memory)) => {
                starts.row(start_cells(&peer.label, peer_starts));
                if let Some(m) = peer_memory {
                    memory.row(memory_cells(&m));
                }
            }
            Err(e) => starts.row(vec![peer.label, format!("not run: {e:#}")]),
        }
    }
    starts.print();
    println!(
        "  (the first pod after the server started, not counted above: {})",
        ms(first)
    );
    memory.print();
    Ok(())
}

fn start_cells(label: &str, mut s: Starts) -> Vec<String> {
    vec![
        label.to_owned(),
        ms(s.one.median()),
        ms(s.one.percentile(99.0)),
        ms(s.batch_wall),
        format!(
            "{} / {}",
            ms(s.batch.median()),
            ms(s.batch.percentile(99.0))
        ),
    ]
}

fn memory_cells(m: &Memory) -> Vec<String> {
    let per_shim = match m.shims.len() {
        0 => "no shim".to_owned(),
        n => mib(m.shims.iter().sum::<u64>() / n as u64),
    };
    vec![
        m.processes.clone(),
        mib(m.daemon_idle),
        mib(m.daemon_busy),
        per_shim,
        mib(m.shims_pss),
    ]
}

/// The pods' part: the server's idle memory, a first pod, `runs` pods one
/// after the other, then `batch` pods at once and the memory while they run.
async fn measure_tug(
    node: &Node,
    data: &Path,
    runs: usize,
    batch: usize,
) -> anyhow::Result<(Duration, Starts, Memory)> {
    let data = std::path::absolute(data)?;
    let server = processes(|argv| {
        argv.get(1).is_some_and(|a| a == "server")
            && argv.windows(2).any(|w| {
                w[0] == "--data-dir" && std::path::absolute(&w[1]).ok() == Some(data.clone())
            })
    })
    .into_iter()
    .next()
    .context("the tug server process is not in /proc")?;
    create_namespace(&node.client, NAMESPACE).await?;
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), NAMESPACE);
    let mut watch = PodWatch::start(pods.clone()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let daemon_idle = rss_kib(server)?;

    let mut first = start_pods(&pods, &mut watch, &["first".to_owned()]).await?;
    let mut one = Samples::default();
    for i in 0..runs {
        one.extend(start_pods(&pods, &mut watch, &[format!("one-{i}")]).await?);
    }
    let names: Vec<String> = (0..batch).map(|i| format!("batch-{i}")).collect();
    let began = Instant::now();
    let batch_samples = start_pods(&pods, &mut watch, &names).await?;
    let batch_wall = began.elapsed();
    // Settled: the workers' status writes are done.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let agent = canonical_prefix(&data.join("agent/runtime"));
    let shims = processes(|argv| {
        argv.get(1).is_some_and(|a| a == "shim")
            && argv.get(2).is_some_and(|a| a == "run")
            && argv.get(3).is_some_and(|dir| dir.starts_with(&agent))
    });
    let memory = Memory::read(
        "tug server (API server, store, scheduler, controllers, agent, proxy, DNS, ingress: one process) + a tug shim per container",
        server,
        daemon_idle,
        &shims,
    )?;
    anyhow::ensure!(
        memory.shims.len() == batch,
        "{batch} pods run, but {} tug shims were found",
        memory.shims.len()
    );
    delete_pods(&pods, &mut watch, &names).await?;
    watch.task.abort();
    let starts = Starts {
        one,
        batch: batch_samples,
        batch_wall,
    };
    Ok((first.median(), starts, memory))
}

/// A pod of the benchmark, as `kubectl run` would make it.
fn pod(name: &str) -> anyhow::Result<Pod> {
    Ok(from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench-pods"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "app",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "command": COMMAND,
            }],
        },
    }))?)
}

/// Creates the pods all at once and returns, for each, the time from just
/// before its create POST to the watch seeing it Running and Ready; then
/// deletes them if they were only one (the batch is deleted by the caller).
async fn start_pods(
    pods: &Api<Pod>,
    watch: &mut PodWatch,
    names: &[String],
) -> anyhow::Result<Samples> {
    let creates = names.iter().map(|name| async move {
        let sent = Instant::now();
        pods.create(&PostParams::default(), &pod(name)?).await?;
        anyhow::Ok((name.clone(), sent))
    });
    let sent: HashMap<String, Instant> = join_all(creates)
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let ready = watch.wait(names, Change::Ready).await?;
    let mut samples = Samples::default();
    for (name, at) in ready {
        samples.push(at.duration_since(sent[&name]));
    }
    if names.len() == 1 {
        delete_pods(pods, watch, names).await?;
    }
    Ok(samples)
}

/// Deletes the pods (gracefully: their shells end on SIGTERM) and waits
/// until the watch sees them gone, which the agent allows only once their
/// containers, sandboxes and network are removed.
async fn delete_pods(
    pods: &Api<Pod>,
    watch: &mut PodWatch,
    names: &[String],
) -> anyhow::Result<()> {
    let params = DeleteParams::default();
    let deletes = names.iter().map(|name| pods.delete(name, &params));
    for deleted in join_all(deletes).await {
        deleted?;
    }
    watch.wait(names, Change::Gone).await?;
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Ready,
    Gone,
}

/// A watch of the benchmark's pods, reporting when each becomes Running and
/// Ready and when each is gone, stamped as the event arrives.
struct PodWatch {
    changes: mpsc::UnboundedReceiver<(String, Change, Instant)>,
    task: JoinHandle<()>,
}

impl PodWatch {
    /// Starts the watch and returns once its first list is in.
    async fn start(pods: Api<Pod>) -> anyhow::Result<PodWatch> {
        let (sender, changes) = mpsc::unbounded_channel();
        let (synced, is_synced) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut events = watcher::watcher(pods, watcher::Config::default())
                .default_backoff()
                .boxed();
            let mut synced = Some(synced);
            let mut ready = HashSet::new();
            while let Some(event) = events.next().await {
                let now = Instant::now();
                match event {
                    Ok(Event::InitDone) => {
                        if let Some(synced) = synced.take() {
                            let _ = synced.send(());
                        }
                    }
                    Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        if running_and_ready(&pod) && ready.insert(name.clone()) {
                            let _ = sender.send((name, Change::Ready, now));
                        }
                    }
                    Ok(Event::Delete(pod)) => {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        ready.remove(&name);
                        let _ = sender.send((name, Change::Gone, now));
                    }
                    Ok(Event::Init) => {}
                    Err(e) => eprintln!("tug-bench: the pod watch failed, retrying: {e}"),
                }
            }
        });
        tokio::time::timeout(TIMEOUT, is_synced)
            .await
            .context("the pod watch did not start")??;
        Ok(PodWatch { changes, task })
    }

    /// Waits until each of `names` has made `change`; returns when.
    async fn wait(
        &mut self,
        names: &[String],
        change: Change,
    ) -> anyhow::Result<HashMap<String, Instant>> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let mut seen = HashMap::new();
        while seen.len() < names.len() {
            let event = tokio::time::timeout_at(deadline, self.changes.recv())
                .await
                .with_context(|| {
                    format!(
                        "{} of {} pods not {change:?} after {} s",
                        names.len() - seen.len(),
                        names.len(),
                        TIMEOUT.as_secs()
                    )
                })?
                .context("the pod watch ended")?;
            if let (name, c, at) = event
                && c == change
                && names.contains(&name)
            {
                seen.insert(name, at);
            }
        }
        Ok(seen)
    }
}

fn running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The pids of the processes whose command line `matches`.
fn processes(matches: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let argv: Vec<String> = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            matches(&argv)
        })
        .collect()
}

/// A directory's real path as a string prefix, for matching command lines.
fn canonical_prefix(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    format!("{}/", dir.display())
}

/// Proportional set size of a process, from /proc/PID/smaps_rollup, in KiB.
fn pss_kib(pid: u32) -> anyhow::Result<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no Pss in /proc/{pid}/smaps_rollup"))
}
