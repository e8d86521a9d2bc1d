//! `tug agent`: the node agent on its own, and the same agent inside
//! `tug server`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The kubeconfig the agent reaches the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    ingress: crate::ingress::IngressArgs,
}

/// What names and shapes this node: shared by `tug agent` and `tug server`.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// Where the agent keeps its state (images, containers, pod volumes);
    /// `/var/lib/tugboat/agent` for `tug agent`, `DATA_DIR/agent` for `tug server`.
    #[arg(long = "agent-dir")]
    dir: Option<PathBuf>,
    /// The Node's name; the host name by default.
    #[arg(long)]
    node_name: Option<String>,
    /// A label for the Node, as key=value (repeatable).
    #[arg(long = "node-label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The most pods this node runs.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// The addresses this node gives its pods.
    #[arg(long, default_value = "10.42.0.0/24")]
    pod_cidr: tugboat_net::IpNet,
    /// A registry (host[:port]) to pull from over plain HTTP (repeatable).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The port of the kubelet API (logs, exec, attach, stats); 0, or a port
    /// already taken, picks a free one, which the Node publishes.
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Run no service proxy beside the agent: this node's traffic to
    /// Services is left to another proxy.
    #[arg(long)]
    disable_proxy: bool,
    /// The cluster DNS server pods resolve names with (dnsPolicy
    /// ClusterFirst): the kube-dns Service's address.
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster's DNS domain: pods search `<ns>.svc.<domain>`,
    /// `svc.<domain>` and `<domain>`.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Unused images are removed once the image file system is fuller than
    /// this many percent.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_high_threshold: u8,
    /// Image garbage collection stops once the image file system is at
    /// most this many percent full.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_low_threshold: u8,
    /// Hard eviction thresholds, in the kubelet's syntax
    /// (`memory.available<100Mi,nodefs.available<10%,pid.available<10%`):
    /// below one the node reports memory, disk or PID pressure, and the
    /// memory and disk named are kept from pods. The thresholds given
    /// replace the defaults whole, as the kubelet's flag does.
    #[arg(
        long,
        default_value = tugboat_agent::thresholds::DEFAULT,
        value_parser = clap::builder::ValueParser::new(str::parse::<tugboat_agent::thresholds::EvictionThresholds>),
    )]
    eviction_hard: tugboat_agent::thresholds::EvictionThresholds,
}

impl NodeArgs {
    /// The kube-dns Service's cluster IP: the first `--cluster-dns`.
    pub fn cluster_dns_ip(&self) -> std::net::IpAddr {
        *self
            .cluster_dns
            .first()
            .expect("--cluster-dns has a default value")
    }

    /// Whether the service proxy runs beside the agent.
    pub fn proxy(&self) -> bool {
        !self.disable_proxy
    }

    /// The agent's configuration: its state in `default_dir` unless told
    /// otherwise, and `extra_labels` (the roles `tug server` gives its own
    /// node) under the user's labels.
    pub fn config(
        &self,
        default_dir: &Path,
        extra_labels: &[(&str, &str)],
    ) -> tugboat_agent::Config {
        let mut labels: BTreeMap<String, String> = extra_labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.extend(self.labels.iter().cloned());
        tugboat_agent::Config {
            node_name: self
                .node_name
                .clone()
                .unwrap_or_else(tugboat_agent::machine::hostname),
            data_dir: self.dir.clone().unwrap_or_else(|| default_dir.to_owned()),
            labels,
            max_pods: self.max_pods,
            insecure_registries: self.insecure_registries.clone(),
            pod_cidr: self.pod_cidr,
            kubelet_port: self.kubelet_port,
            cluster_ca: Vec::new(),
            cluster_dns: self.cluster_dns.clone(),
            cluster_domain: self.cluster_domain.clone(),
            image_gc: tugboat_images::GcThresholds {
                high_percent: self.image_gc_high_threshold,
                low_percent: self.image_gc_low_threshold,
            },
            eviction_hard: self.eviction_hard,
        }
    }
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let config = args.node.config(Path::new("/var/lib/tugboat/agent"), &[]);
    crate::ingress::spawn(&args.kubeconfig, &args.ingress);
    start(&args.kubeconfig, config, args.node.proxy()).await
}

/// Connects with `kubeconfig` and runs the agent until it fails, with the
/// service proxy beside it when `proxy`.
pub async fn start(
    kubeconfig: &Path,
    mut config: tugboat_agent::Config,
    proxy: bool,
) -> anyhow::Result<()> {
    let client_config = crate::client::config(kubeconfig).await?;
    config.cluster_ca = client_config.root_cert.clone().unwrap_or_default();
    let client = kube::Client::try_from(client_config)?;
    if proxy {
        let proxy = tugboat_net::proxy::Config {
            node_name: config.node_name.clone(),
            pod_cidr: config.pod_cidr,
            agent_dir: config.data_dir.clone(),
        };
        tokio::spawn(tugboat_net::proxy::run(client.clone(), proxy));
    }
    tugboat_agent::run(client, config).await
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected key=value, got {text:?}"))
}

#[derive(clap::Args)]
pub struct KillallArgs {
    /// The agent's state directory (`DATA_DIR/agent` for `tug server`).
    #[arg(long = "agent-dir", default_value = "/var/lib/tugboat/agent")]
    dir: PathBuf,
}

/// `tug killall`: stops every container of this node and removes what its
/// pods had (mounts, namespaces, cgroups, volumes) and the service proxy's
/// nftables table, as `k3s-killall.sh` does. The cluster's state is
/// untouched: a restarted agent starts the pods again.
pub fn killall(args: KillallArgs) -> anyhow::Result<()> {
    let removed = tugboat_agent::remove_all_pods(&args.dir)?;
    println!("removed {removed} pod(s) from {}", args.dir.display());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(tugboat_net::proxy::delete_table(&args.dir))?;
    println!(
        "removed the service proxy's table ip {}",
        tugboat_net::proxy::table_name(&args.dir)
    );
    Ok(())
}
