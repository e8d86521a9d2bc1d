//! `tug-bench`: measures the release `tug server` through its HTTPS API, and
//! the store backends side by side through the `Store` trait, and prints the
//! figures as tables. A program to run by hand, never a test: nothing here
//! gates CI.
//!
//! ```text
//! cargo build --release -p tug -p tugboat-bench
//! target/release/tug-bench
//! ```

mod api;
mod client;
mod dns;
mod ingress;
mod node;
mod pods;
mod report;
mod scheduler;
mod services;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tugboat_store::Store;
use tugboat_store::embedded::EmbeddedStore;
use tugboat_store::etcd::LocalEtcd;

use report::{Creates, Samples, Table, count, mib, ms};

#[derive(Parser)]
#[command(
    name = "tug-bench",
    about = "Measures tug server and the store backends"
)]
struct Args {
    /// The `tug` binary to measure (build it with --release).
    #[arg(long, env = "TUG_BIN", default_value = "target/release/tug")]
    tug: PathBuf,
    /// Where the temporary data dirs go: keep it on a real disk (not tmpfs),
    /// since every acknowledged write is synced.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// Objects created in all (split 10% / 40% / 50% over 1, 16 and 64
    /// clients); the LIST and range then read all of them.
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Concurrent watchers in the watch delivery measure.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes each watcher must see in the watch delivery measure.
    #[arg(long, default_value_t = 100)]
    watch_events: usize,
    /// Pause between two watched writes, in milliseconds.
    #[arg(long, default_value_t = 10)]
    watch_gap_ms: u64,
    /// How many restarts the ready time is the median of.
    #[arg(long, default_value_t = 5)]
    restarts: usize,
    /// The `etcd` binary the store part compares against (etcd 3.4 from
    /// Debian's etcd-server).
    #[arg(long, env = "ETCD_BIN", default_value = "etcd")]
    etcd: PathBuf,
    /// Leave etcd out of the store part.
    #[arg(long)]
    no_etcd: bool,
    /// Only the API server part.
    #[arg(long)]
    api_only: bool,
    /// Only the store part.
    #[arg(long, conflicts_with = "api_only")]
    store_only: bool,
    /// The scheduler workloads, NODESxPODS, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000x10000,5000x50000")]
    scheduler_cases: Vec<scheduler::Case>,
    /// The replicas of the scheduler part's Deployment (on 100 simulated
    /// nodes, controllers running); 0 leaves it out.
    #[arg(long, default_value_t = 1_000)]
    scheduler_deployment: usize,
    /// Only the scheduler part.
    #[arg(long, conflicts_with_all = ["api_only", "store_only"])]
    scheduler_only: bool,
    /// Only the ingress part.
    #[arg(long, conflicts_with_all = ["api_only", "store_only", "scheduler_only"])]
    ingress_only: bool,
    /// Only the cluster DNS part.
    #[arg(long, conflicts_with_all = ["api_only", "store_only", "scheduler_only", "ingress_only"])]
    dns_only: bool,
    /// The Services the cluster DNS part makes (each query asks for one).
    #[arg(long, default_value_t = 1_000)]
    dns_services: usize,
    /// Only the Services part.
    #[arg(long, conflicts_with_all = ["api_only", "store_only", "scheduler_only", "ingress_only", "dns_only"])]
    services_only: bool,
    /// The Service counts the Services part measures at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    service_counts: Vec<usize>,
    /// Samples of each Services measure at each count.
    #[arg(long, default_value_t = 20)]
    service_samples: usize,
    /// Only the pod start part (pods on a node server beside runc, crun
    /// and containerd).
    #[arg(long, conflicts_with_all = ["api_only", "store_only", "scheduler_only", "ingress_only", "dns_only", "services_only"])]
    pods_only: bool,
    /// Pods started one at a time in the pod start part.
    #[arg(long, default_value_t = 10)]
    pod_runs: usize,
    /// Pods created at once in the pod start part.
    #[arg(long, default_value_t = 30)]
    pod_batch: usize,
    /// Where the test images are (`scripts/build-test-images`): the ingress
    /// and Services parts run the httpd one.
    #[arg(long, default_value = "target/test-images")]
    test_images: PathBuf,
}

impl Args {
    /// (clients, creates) for each create phase.
    fn phases(&self) -> [(usize, usize); 3] {
        let first = self.objects / 10;
        let second = self.objects * 4 / 10;
        [
            (1, first),
            (16, second),
            (64, self.objects - first - second),
        ]
    }

    fn gap(&self) -> Duration {
        Duration::from_millis(self.watch_gap_ms)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.work_dir)
        .with_context(|| format!("creating {}", args.work_dir.display()))?;
    let run = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&args.work_dir)?;
    println!(
        "tug-bench: {} objects, {} watchers x {} events, on {} cores (load average {})",
        count(args.objects as f64),
        args.watchers,
        args.watch_events,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into()),
    );
    if args.dns_only {
        return dns::run(&args.tug, run.path(), args.dns_services).await;
    }
    if args.ingress_only {
        return ingress::run(&args.tug, run.path(), &args.test_images).await;
    }
    if args.services_only {
        return services_part(&args, run.path()).await;
    }
    if args.pods_only {
        return pods_part(&args, run.path()).await;
    }
    if !args.store_only && !args.scheduler_only {
        api_part(&args, run.path()).await?;
    }
    if !args.api_only && !args.scheduler_only {
        store_part(&args, run.path()).await?;
    }
    if !args.api_only && !args.store_only {
        scheduler_part(&args, run.path()).await?;
    }
    if !args.api_only && !args.store_only && !args.scheduler_only {
        ingress::run(&args.tug, run.path(), &args.test_images).await?;
        dns::run(&args.tug, run.path(), args.dns_services).await?;
        pods_part(&args, run.path()).await?;
        services_part(&args, run.path()).await?;
    }
    Ok(())
}

async fn services_part(args: &Args, run: &std::path::Path) -> anyhow::Result<()> {
    services::run(
        &args.tug,
        run,
        &args.test_images,
        &args.service_counts,
        args.service_samples,
    )
    .await
}

async fn pods_part(args: &Args, run: &std::path::Path) -> anyhow::Result<()> {
    pods::run(
        &args.tug,
        run,
        &args.test_images,
        args.pod_runs,
        args.pod_batch,
    )
    .await
}

async fn scheduler_part(args: &Args, run: &std::path::Path) -> anyhow::Result<()> {
    let mut table = Table::new(
        "Scheduler: tug scheduler binding unbound pods to simulated nodes",
        &[
            "nodes x pods",
            "throughput",
            "wall (with initial lists)",
            "setup (creates)",
            "Kubernetes floor",
        ],
    );
    for case in &args.scheduler_cases {
        let outcome = scheduler::measure(&args.tug, run, *case).await?;
        table.row(vec![
            format!("{} x {}", count(case.nodes as f64), count(case.pods as f64)),
            scheduler::rate(&outcome),
            ms(outcome.wall),
            ms(outcome.setup),
            "680-810 pods/s".into(),
        ]);
    }
    table.print();
    if args.scheduler_deployment > 0 {
        let nodes = 100;
        let took = scheduler::deployment(&args.tug, run, nodes, args.scheduler_deployment).await?;
        println!(
            "Scheduler: a Deployment of {} replicas on {nodes} simulated nodes, created to all bound: {}",
            count(args.scheduler_deployment as f64),
            ms(took)
        );
    }
    Ok(())
}

fn creates_cell(c: &mut Creates) -> String {
    format!(
        "{}/s  p50 {}  p99 {}",
        count(c.per_second()),
        ms(c.latencies.median()),
        ms(c.latencies.percentile(99.0))
    )
}

fn latency_cell(s: &mut Samples) -> String {
    format!("p50 {}  p99 {}", ms(s.median()), ms(s.percentile(99.0)))
}

fn clients(n: usize) -> String {
    if n == 1 {
        "1 client".into()
    } else {
        format!("{n} clients")
    }
}

/// The API part measures the API server: no scheduler places its pods on
/// the server's node (where the agent would try to run them).
const API_ONLY: &[&str] = &["--disable-scheduler"];

async fn api_part(args: &Args, run: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.tug.exists(),
        "{} not found: run `cargo build --release -p tug -p tugboat-bench` first, or pass --tug",
        args.tug.display()
    );
    let data = run.join("tug");
    let port = api::free_port()?;
    let mut table = Table::new(
        &format!(
            "API server: {} server, HTTPS with the admin client certificate",
            args.tug.display()
        ),
        &["measure", "result", "goal"],
    );

    let (server, first) = api::TugServer::start(&args.tug, &data, port, API_ONLY).await?;
    drop(server);
    let mut restarts = Samples::default();
    let mut server = None;
    for _ in 0..args.restarts.max(1) {
        drop(server.take());
        let (s, ready) = api::TugServer::start(&args.tug, &data, port, API_ONLY).await?;
        restarts.push(ready);
        server = Some(s);
    }
    let server = server.unwrap();
    table.row(vec![
        "ready (/readyz 200) at first start, making the certificates".into(),
        ms(first),
        "< 100 ms".into(),
    ]);
    table.row(vec![
        format!(
            "ready (/readyz 200) at restart, median of {}",
            restarts.len()
        ),
        ms(restarts.median()),
        "< 100 ms".into(),
    ]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    table.row(vec![
        "RSS idle".into(),
        mib(server.rss_kib()?),
        "< 25 MiB".into(),
    ]);

    let ep = server.endpoint()?;
    api::create_namespace(&ep).await?;
    for (n, total) in args.phases() {
        let mut result = api::creates(&ep, n, total).await?;
        let goal = match n {
            16 => "p99 < 5 ms",
            64 => ">= 2,000/s",
            _ => "",
        };
        table.row(vec![
            format!("pod creates, {} ({} pods)", clients(n), count(total as f64)),
            creates_cell(&mut result),
            goal.into(),
        ]);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_objects = server.rss_kib()?;
    let (mut head, mut list) = api::list_pods(&ep, args.objects, 5).await?;
    table.row(vec![
        format!(
            "LIST of {} pods, median of 5 (response head after {})",
            count(args.objects as f64),
            ms(head.median())
        ),
        ms(list.median()),
        "< 100 ms".into(),
    ]);
    table.row(vec![
        format!("RSS with {} pods", count(args.objects as f64)),
        mib(with_objects),
        String::new(),
    ]);
    table.row(vec![
        format!(
            "RSS with {} pods, after the LISTs",
            count(args.objects as f64)
        ),
        mib(server.rss_kib()?),
        String::new(),
    ]);
    let mut watch = api::watch_latency(&ep, args.watchers, args.watch_events, args.gap()).await?;
    table.row(vec![
        format!(
            "watch delivery, {} watchers x {} creates (create sent -> event read)",
            args.watchers, args.watch_events
        ),
        latency_cell(&mut watch),
        String::new(),
    ]);
    drop(server);
    table.print();
    Ok(())
}

/// One store backend under test.
struct Backend {
    name: String,
    store: Arc<dyn Store>,
}

async fn store_part(args: &Args, run: &std::path::Path) -> anyhow::Result<()> {
    let dir = run.join("store");
    std::fs::create_dir_all(&dir)?;
    let mut backends = vec![Backend {
        name: "embedded (redb)".into(),
        store: EmbeddedStore::open(&dir.join("store.redb"))?,
    }];
    if !args.no_etcd {
        let etcd = LocalEtcd::start(Some(&args.etcd), dir.join("etcd"))
            .await
            .with_context(|| {
                format!(
                    "starting {} (apt-get install etcd-server, or pass --no-etcd)",
                    args.etcd.display()
                )
            })?;
        backends.push(Backend {
            name: etcd_version(&args.etcd),
            store: etcd.into_store().await?,
        });
    }

    let mut header = vec!["measure".to_owned()];
    header.extend(backends.iter().map(|b| b.name.clone()));
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut add = |row: usize, label: String, cell: String| {
        if rows.len() <= row {
            rows.push(vec![label]);
        }
        rows[row].push(cell);
    };
    for backend in &backends {
        let store = &backend.store;
        let mut row = 0;
        for (n, total) in args.phases() {
            let mut result = store::creates(store, n, total).await?;
            add(
                row,
                format!("creates, {} ({} keys)", clients(n), count(total as f64)),
                creates_cell(&mut result),
            );
            row += 1;
        }
        let mut range = store::range(store, args.objects, 5).await?;
        add(
            row,
            format!("range of {} keys, median of 5", count(args.objects as f64)),
            ms(range.median()),
        );
        row += 1;
        let mut watch =
            store::watch_latency(store, args.watchers, args.watch_events, args.gap()).await?;
        add(
            row,
            format!(
                "watch delivery, {} watchers x {} puts (put called -> event received)",
                args.watchers, args.watch_events
            ),
            latency_cell(&mut watch),
        );
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(
        "Store: the same workload through the Store trait, one backend after the other\n  (the embedded store runs in this process; etcd in its own, over gRPC)",
        &header,
    );
    for row in rows {
        table.row(row);
    }
    table.print();
    Ok(())
}

/// "etcd 3.4.23", from `etcd --version`.
fn etcd_version(binary: &std::path::Path) -> String {
    let version = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("etcd Version:").map(|v| v.trim().to_owned()))
        });
    match version {
        Some(v) => format!("etcd {v} (loopback)"),
        None => "etcd (loopback)".into(),
    }
}
