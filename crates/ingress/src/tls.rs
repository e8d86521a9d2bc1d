//! TLS on the HTTPS port: the certificate of the Ingresses' `spec.tls`
//! Secrets (`tls.crt`, `tls.key`) for the names they list, chosen by the
//! name the client asks for (SNI), and a self-signed default certificate for
//! other names and for clients that send none, as ingress-nginx answers with
//! its "fake certificate".

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use k8s_openapi::api::core::v1::Secret;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::current::Current;
use crate::routes::normalize_host;

/// The certificates of the served Ingresses, by host name.
#[derive(Default)]
pub struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Certificates of `*.domain` names, by domain.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Certificates {
    /// Serves `key` for `host` (`*.domain` for one label under domain),
    /// unless an earlier Ingress already gave that name a certificate.
    pub fn add(&mut self, host: &str, key: Arc<CertifiedKey>) {
        let host = host.to_ascii_lowercase();
        let map = match host.strip_prefix("*.") {
            Some(domain) => self.wildcard.entry(domain.to_owned()),
            None => self.exact.entry(host),
        };
        map.or_insert(key);
    }

    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = normalize_host(name);
        self.exact.get(&name).or_else(|| {
            let (_, domain) = name.split_once('.')?;
            self.wildcard.get(domain)
        })
    }
}

/// Picks the certificate for each TLS handshake from the current set.
struct SniResolver {
    current: Arc<Current<Certificates>>,
    fallback: Arc<CertifiedKey>,
}

// rustls wants resolvers printable; the keys are not for logs.
impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certificates = self.current.load();
        let found = hello.server_name().and_then(|name| certificates.find(name));
        Some(found.unwrap_or(&self.fallback).clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS settings of the HTTPS listener: certificates from `current`,
/// HTTP/2 and HTTP/1.1 offered.
pub fn server_config(current: Arc<Current<Certificates>>) -> anyhow::Result<ServerConfig> {
    let resolver = SniResolver {
        current,
        fallback: Arc::new(default_certificate()?),
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A self-signed certificate made at start, for names no Ingress covers.
fn default_certificate() -> anyhow::Result<CertifiedKey> {
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_owned()])?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Tugboat Ingress Controller Default Certificate",
    );
    let key = rcgen::KeyPair::generate()?;
    let cert = params
        .self_signed(&key)
        .context("making the ingress's default certificate")?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(CertifiedKey::from_der(
        vec![cert.der().clone()],
        der,
        &provider(),
    )?)
}

/// The certificate and key of a TLS Secret, or what is wrong with it.
pub fn from_secret(secret: &Secret) -> Result<CertifiedKey, String> {
    let data = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.0.as_slice())
            .ok_or_else(|| format!("it has no {key}"))
    };
    let chain = CertificateDer::pem_slice_iter(data("tls.crt")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("its tls.crt is not PEM certificates: {e}"))?;
    if chain.is_empty() {
        return Err("its tls.crt holds no certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(data("tls.key")?)
        .map_err(|e| format!("its tls.key is not a PEM private key: {e}"))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| format!("its tls.key does not go with its tls.crt: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<CertifiedKey> {
        Arc::new(default_certificate().unwrap())
    }

    #[test]
    fn names_find_their_exact_then_wildcard_certificate() {
        let (exact, wild) = (key(), key());
        let mut certificates = Certificates::default();
        certificates.add("a.example.com", exact.clone());
        certificates.add("*.example.com", wild.clone());
        certificates.add("a.example.com", key());
        let found = |name| certificates.find(name).map(Arc::as_ptr);
        assert_eq!(found("A.example.com"), Some(Arc::as_ptr(&exact)));
        assert_eq!(found("b.example.com"), Some(Arc::as_ptr(&wild)));
        assert_eq!(found("b.c.example.com"), None);
        assert_eq!(found("example.com"), None);
    }

    #[test]
    fn a_secret_without_a_key_says_so() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s"},
            "data": {"tls.crt": ""},
        }))
        .unwrap();
        assert_eq!(
            from_secret(&secret).err(),
            Some("its tls.crt holds no certificate".to_owned())
        );
    }
}
