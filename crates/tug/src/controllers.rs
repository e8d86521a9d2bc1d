//! `tug controllers`: the controllers on their own, for a cluster whose
//! server runs with `--disable-controllers`.

use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ControllersArgs {
    /// The kubeconfig the controllers reach the API server with.
    #[arg(long)]
    kubeconfig: PathBuf,
}

pub async fn run(args: ControllersArgs) -> anyhow::Result<()> {
    start(&args.kubeconfig).await
}

/// Connects with `kubeconfig` and runs the controllers until one fails.
pub async fn start(kubeconfig: &Path) -> anyhow::Result<()> {
    tugboat_controllers::run(crate::client::connect(kubeconfig).await?).await
}
