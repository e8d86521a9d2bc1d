//! The ingress controller beside the node agent, in `tug server` and `tug
//! agent` alike: its flags, and starting it.

use std::path::Path;

#[derive(clap::Args)]
pub struct IngressArgs {
    /// The port the ingress serves HTTP on, on every address of the node.
    #[arg(long, default_value_t = 80)]
    ingress_http_port: u16,
    /// The port the ingress serves HTTPS on (certificates from the
    /// Ingresses' spec.tls Secrets).
    #[arg(long, default_value_t = 443)]
    ingress_https_port: u16,
    /// Run no ingress controller on this node: Ingresses of the `tug`
    /// class are not served here.
    #[arg(long)]
    disable_ingress: bool,
}

/// Starts the ingress in the background, unless disabled, reaching the API
/// server with `kubeconfig`.
pub fn spawn(kubeconfig: &Path, args: &IngressArgs) {
    if args.disable_ingress {
        return;
    }
    let kubeconfig = kubeconfig.to_owned();
    let config = tugboat_ingress::Config {
        http_port: args.ingress_http_port,
        https_port: args.ingress_https_port,
        address: tugboat_agent::machine::internal_ip(),
    };
    tokio::spawn(async move {
        let result = async {
            let client = kube::Client::try_from(crate::client::config(&kubeconfig).await?)?;
            tugboat_ingress::run(client, config).await
        };
        if let Err(e) = result.await {
            tracing::error!("the ingress controller stopped: {e:#}");
        }
    });
}
