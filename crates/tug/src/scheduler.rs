//! `tug scheduler`: the scheduler on its own, for a cluster whose server
//! runs with `--disable-scheduler`.

use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct SchedulerArgs {
    /// The kubeconfig the scheduler reaches the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
}

pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    start(&args.kubeconfig).await
}

/// Connects with `kubeconfig` and schedules pods until the watches fail.
pub async fn start(kubeconfig: &Path) -> anyhow::Result<()> {
    let config = crate::client::config(kubeconfig).await?;
    tugboat_scheduler::run(kube::Client::try_from(config)?).await
}
