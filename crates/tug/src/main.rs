//! `tug`: Tugboat's one binary. Each subcommand lives in its own module;
//! this file only parses the command line and dispatches.

mod agent;
mod client;
mod controllers;
mod dns;
mod images;
mod ingress;
mod scheduler;
mod server;
mod shim;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tug", version, about = "A small Kubernetes in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a whole cluster on this machine: the Kubernetes API on an embedded store.
    Server(server::ServerArgs),
    /// Manages this node's images: import, ls, rm, pull.
    Images(images::ImagesArgs),
    /// Runs the node agent alone, joining the cluster its kubeconfig names.
    Agent(agent::AgentArgs),
    /// Runs the controllers alone, for a server started with --disable-controllers.
    Controllers(controllers::ControllersArgs),
    /// Runs the scheduler alone, for a server started with --disable-scheduler.
    Scheduler(scheduler::SchedulerArgs),
    /// Stops every container on this node and removes what its pods left.
    Killall(agent::KillallArgs),
    /// The runtime's per-container process; the runtime starts it, people do not.
    #[command(hide = true)]
    Shim(shim::ShimArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Shim(args) = &cli.command {
        // The shim forks, so it runs before the tokio runtime starts threads,
        // and logs to its container's directory, not to stderr.
        std::process::exit(shim::run(args));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server::run(args)),
        Command::Images(args) => runtime.block_on(images::run(args)),
        Command::Agent(args) => runtime.block_on(agent::run(args)),
        Command::Controllers(args) => runtime.block_on(controllers::run(args)),
        Command::Scheduler(args) => runtime.block_on(scheduler::run(args)),
        Command::Killall(args) => agent::killall(args),
        Command::Shim(_) => unreachable!("the shim ran before the tokio runtime"),
    }
}
