//! The kubelet API's TLS: a self-signed serving certificate made at start
//! (as the kubelet makes one when given none; the API server does not check
//! it), and client certificates required and checked against the cluster CA.

use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub fn server_config(names: &[String], client_cas: &[Vec<u8>]) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in client_cas {
        roots
            .add(CertificateDer::from(ca.clone()))
            .context("reading the cluster CA certificate")?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "the kubeconfig has no certificate authority to check the kubelet API's clients with"
    );
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let serving = rcgen::generate_simple_self_signed(names.to_vec())
        .context("making the kubelet's serving certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        serving.signing_key.serialize_der(),
    ));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![serving.cert.der().clone()], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
