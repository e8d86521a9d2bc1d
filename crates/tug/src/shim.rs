//! `tug shim`: the runtime's per-container process (see
//! `tugboat_runtime::shim`). The runtime starts it; people do not.

/// The shim's own arguments, passed through as they are.
#[derive(clap::Args)]
pub struct ShimArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Runs the shim and returns its exit code. It forks, so it must run
/// before anything starts a thread.
pub fn run(args: &ShimArgs) -> i32 {
    tugboat_runtime::shim::main(&args.args)
}
