//! `tug controllers`: the controllers on their own, for a cluster whose
//! server runs with `--disable-controllers`.

use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ControllersArgs {
    /// The kubeconfig the controllers reach the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
    #[command(flatten)]
    settings: ControllerSettings,
}

/// The controllers' settings, flags of `tug controllers` and `tug server`
/// named as kube-controller-manager names them.
#[derive(clap::Args, Clone)]
pub struct ControllerSettings {
    /// How long a node's kubelet may go unheard (Lease, status) before the
    /// node is marked NotReady (`40s`, `1m`...).
    #[arg(long, default_value = "40s")]
    node_monitor_grace_period: jiff::SignedDuration,
    /// How many finished pods (Succeeded or Failed) may stay before the
    /// oldest are deleted; 0 keeps them all.
    #[arg(long, default_value_t = 12500)]
    terminated_pod_gc_threshold: usize,
}

pub async fn run(args: ControllersArgs) -> anyhow::Result<()> {
    start(&args.kubeconfig, &args.settings).await
}

/// Connects with `kubeconfig` and runs the controllers until one fails.
pub async fn start(kubeconfig: &Path, settings: &ControllerSettings) -> anyhow::Result<()> {
    let config = crate::client::config(kubeconfig).await?;
    let settings = tugboat_controllers::Config {
        root_ca: crate::client::root_ca_pem(&config),
        node_monitor_grace_period: settings.node_monitor_grace_period.unsigned_abs(),
        terminated_pod_gc_threshold: settings.terminated_pod_gc_threshold,
    };
    tugboat_controllers::run(kube::Client::try_from(config)?, settings).await
}
