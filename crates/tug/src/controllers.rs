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
    let config = crate::client::config(kubeconfig).await?;
    let settings = tugboat_controllers::Config {
        root_ca: crate::client::root_ca_pem(&config),
    };
    tugboat_controllers::run(kube::Client::try_from(config)?, settings).await
}
