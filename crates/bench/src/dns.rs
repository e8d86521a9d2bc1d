//! The DNS part: query latency (p50, p99) and queries/s of the cluster DNS
//! of `tug server`, beside dnsmasq (Debian's dnsmasq-base) answering the
//! same names from a hosts file, measured by the same UDP client in the
//! same run; and names outside the cluster, which the cluster DNS forwards
//! to that dnsmasq (and caches).
//!
//! The cluster has `--dns-services` Services; each query asks the A record
//! of one of them (`svc-N.bench-dns.svc.cluster.local`), in turn.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{from_value, json};
use tokio::net::UdpSocket;

use crate::api::{TugServer, free_port};
use crate::report::{Samples, Table, count, ms};

const NAMESPACE: &str = "bench-dns";
/// How long each load runs.
const DURATION: Duration = Duration::from_secs(5);
/// The concurrent clients of each load: one (latency alone), then many.
const CLIENTS: [usize; 2] = [1, 16];
/// A query unanswered for this long is lost.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The address dnsmasq gives every outside name (`*.upstream.test`).
const OUTSIDE_ADDRESS: &str = "192.0.2.77";

/// Starts a server with `services` Services and dnsmasq beside it,
/// measures, and prints the table.
pub async fn run(tug: &Path, run: &Path, services: usize) -> anyhow::Result<()> {
    let dir = run.join("dns");
    std::fs::create_dir_all(&dir)?;
    // dnsmasq starts once the names are known; the server is told its port.
    let dnsmasq_port = free_port()?;
    let upstream = format!("127.0.0.1:{dnsmasq_port}");
    let flags = [
        "--disable-agent",
        "--cluster-dns-port",
        "0",
        "--cluster-dns-upstream",
        &upstream,
    ];
    let data = dir.join("tug");
    let (server, _) = TugServer::start(tug, &data, free_port()?, &flags).await?;
    let client = client(&data).await?;
    println!("dns: creating {} Services...", count(services as f64));
    let addresses = create_services(&client, services).await?;
    let cluster_dns = cluster_dns(&client).await?;
    let names: Vec<Name> = (0..services)
        .map(|i| Name::from_ascii(format!("svc-{i}.{NAMESPACE}.svc.cluster.local.")))
        .collect::<Result<_, _>>()?;
    // dnsmasq answers the same names with the same addresses, from memory.
    let lines: String = names
        .iter()
        .zip(&addresses)
        .map(|(name, ip)| format!("{ip} {}\n", name.to_ascii().trim_end_matches('.')))
        .collect();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, lines)?;
    let _dnsmasq = Dnsmasq::start(dnsmasq_port, &hosts)?;
    let cluster = Arc::new(packets(&names)?);
    let last = names.len() - 1;
    wait_answered(cluster_dns, &cluster[last]).await?;
    let dnsmasq_addr = SocketAddr::from(([127, 0, 0, 1], dnsmasq_port));
    wait_answered(dnsmasq_addr, &cluster[last]).await?;
    let outside: Vec<Name> = (0..100)
        .map(|i| Name::from_ascii(format!("host-{i}.upstream.test.")))
        .collect::<Result<_, _>>()?;
    let outside = Arc::new(packets(&outside)?);

    let mut table = Table::new(
        &format!(
            "DNS: A queries over UDP, {} s per load, {} Services; dnsmasq answers the same names from a hosts file",
            DURATION.as_secs(),
            count(services as f64)
        ),
        &[
            "server",
            "clients",
            "queries/s",
            "p50",
            "p99",
            "unanswered",
            "goal",
        ],
    );
    for clients in CLIENTS {
        let goal = if clients == 1 { "p99 < 2 ms" } else { "" };
        let mut ours = load(cluster_dns, &cluster, clients).await;
        table.row(ours.cells("cluster DNS (tug server)", clients, goal));
        let mut peer = load(dnsmasq_addr, &cluster, clients).await;
        table.row(peer.cells("dnsmasq (plain resolver)", clients, ""));
    }
    let mut forwarded = load(cluster_dns, &outside, 1).await;
    table.row(forwarded.cells(
        "cluster DNS, outside names forwarded to dnsmasq (cached)",
        1,
        "",
    ));
    drop(server);
    table.print();
    Ok(())
}

/// dnsmasq on loopback: the names of a hosts file, and `*.upstream.test`
/// for the outside names; stopped when dropped.
struct Dnsmasq(Child);

impl Dnsmasq {
    fn start(port: u16, hosts: &Path) -> anyhow::Result<Dnsmasq> {
        Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--cache-size=10000",
                &format!("--port={port}"),
                &format!("--address=/upstream.test/{OUTSIDE_ADDRESS}"),
            ])
            .arg(format!("--addn-hosts={}", hosts.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Dnsmasq)
            .context("starting dnsmasq (apt-get install dnsmasq-base)")
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A kube client of the server in `data`, with its admin kubeconfig.
pub async fn client(data: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(data.join("admin.kubeconfig"))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Creates `n` ClusterIP Services (16 at a time) and returns their cluster
/// IPs in order.
async fn create_services(client: &kube::Client, n: usize) -> anyhow::Result<Vec<String>> {
    let create = PostParams::default();
    Api::<Namespace>::all(client.clone())
        .create(
            &create,
            &from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    futures::stream::iter(0..n)
        .map(|i| {
            let services = services.clone();
            let create = create.clone();
            async move {
                let service: Service = from_value(json!({
                    "metadata": {"name": format!("svc-{i}")},
                    "spec": {"ports": [{"name": "http", "port": 80}]},
                }))?;
                let made = services.create(&create, &service).await?;
                made.spec
                    .and_then(|s| s.cluster_ip)
                    .with_context(|| format!("Service svc-{i} got no cluster IP"))
            }
        })
        .buffered(16)
        .try_collect()
        .await
}

/// The cluster DNS's address, as the kube-dns EndpointSlice publishes it.
async fn cluster_dns(client: &kube::Client) -> anyhow::Result<SocketAddr> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    for _ in 0..300 {
        if let Ok(slice) = slices.get("kube-dns").await {
            let ip = slice
                .endpoints
                .first()
                .and_then(|e| e.addresses.first())
                .and_then(|a| a.parse().ok());
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some("dns"))
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok());
            if let (Some(ip), Some(port)) = (ip, port) {
                return Ok(SocketAddr::new(ip, port));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the kube-dns EndpointSlice did not appear: is the cluster DNS running?")
}

/// One encoded A query per name (its ID is set per send).
fn packets(names: &[Name]) -> anyhow::Result<Vec<Vec<u8>>> {
    names
        .iter()
        .map(|name| {
            let mut message = Message::new(0, MessageType::Query, OpCode::Query);
            message.metadata.recursion_desired = true;
            message.add_query(Query::query(name.clone(), RecordType::A));
            Ok(message.to_vec()?)
        })
        .collect()
}

/// Waits (a minute at most) until `server` answers `packet` with records:
/// the watches have caught up with the last Service.
async fn wait_answered(server: SocketAddr, packet: &[u8]) -> anyhow::Result<()> {
    let socket = connect(server).await?;
    for id in 0..600u16 {
        if ask(&socket, packet, id).await == Outcome::Answered {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{server} does not answer the last name")
}

async fn connect(server: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = UdpSocket::bind("0.0.0.0:0").await?;
    socket.connect(server).await?;
    Ok(socket)
}

#[derive(PartialEq)]
enum Outcome {
    Answered,
    /// An answer without records, or with an error code.
    Empty,
    Lost,
}

/// Sends `packet` with `id` and waits for its answer.
async fn ask(socket: &UdpSocket, packet: &[u8], id: u16) -> Outcome {
    let mut query = packet.to_vec();
    query[..2].copy_from_slice(&id.to_be_bytes());
    if socket.send(&query).await.is_err() {
        return Outcome::Lost;
    }
    let mut buffer = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let Ok(Ok(len)) = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await else {
            return Outcome::Lost;
        };
        // A late answer to an earlier query: not this one's.
        if len < 12 || buffer[..2] != id.to_be_bytes() {
            continue;
        }
        let code = buffer[3] & 0x0f;
        let answers = u16::from_be_bytes([buffer[6], buffer[7]]);
        return if code == 0 && answers > 0 {
            Outcome::Answered
        } else {
            Outcome::Empty
        };
    }
}

/// What a load gave.
#[derive(Default)]
struct Load {
    latencies: Samples,
    answered: usize,
    unanswered: usize,
    elapsed: Duration,
}

impl Load {
    fn cells(&mut self, server: &str, clients: usize, goal: &str) -> Vec<String> {
        vec![
            server.into(),
            clients.to_string(),
            count(self.answered as f64 / self.elapsed.as_secs_f64()),
            ms(self.latencies.median()),
            ms(self.latencies.percentile(99.0)),
            count(self.unanswered as f64),
            goal.into(),
        ]
    }
}

/// `clients` clients, each on its own socket asking the names of
/// `packets` in turn as fast as answers come, for [`DURATION`].
async fn load(server: SocketAddr, packets: &Arc<Vec<Vec<u8>>>, clients: usize) -> Load {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let packets = packets.clone();
            tokio::spawn(async move {
                let mut load = Load::default();
                let Ok(socket) = connect(server).await else {
                    return load;
                };
                let mut n = c * 7919;
                while started.elapsed() < DURATION {
                    let packet = &packets[n % packets.len()];
                    let sent = Instant::now();
                    match ask(&socket, packet, n as u16).await {
                        Outcome::Answered => {
                            load.latencies.push(sent.elapsed());
                            load.answered += 1;
                        }
                        Outcome::Empty | Outcome::Lost => load.unanswered += 1,
                    }
                    n += 1;
                }
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for task in tasks {
        if let Ok(load) = task.await {
            total.latencies.extend(load.latencies);
            total.answered += load.answered;
            total.unanswered += load.unanswered;
        }
    }
    total.elapsed = started.elapsed();
    total
}
