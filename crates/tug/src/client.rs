//! Connecting to the API server the way every component of `tug` does:
//! with a kubeconfig, as `kubectl` would.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The client settings `kubeconfig` describes (its current context).
pub async fn config(kubeconfig: &Path) -> anyhow::Result<kube::Config> {
    let file = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading the kubeconfig {}", kubeconfig.display()))?;
    Ok(kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?)
}

/// The CA certificates `config` trusts the API server by, as PEM: what
/// pods get to check the API server with.
pub fn root_ca_pem(config: &kube::Config) -> String {
    let mut pem = String::new();
    for der in config.root_cert.iter().flatten() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}
