//! A TLS client that takes any server certificate, for the connections
//! where Kubernetes does not check who answers: HTTPS probes (the kubelet
//! sets `InsecureSkipVerify`), the API server to kubelets (whose serving
//! certificates are self-signed), and the benchmark polling a server before
//! its CA exists.
//!
//! Only the certificate's identity goes unchecked: the handshake's
//! signatures are still verified against the certificate's key, so the
//! peer must hold that key, and the connection is encrypted as any other.
//!
//! ```text
//! let config = tugboat_tls::any_server_certificate().with_no_client_auth();
//! ```

use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ConfigBuilder, DigitallySignedStruct, SignatureScheme};

/// A client configuration (ring, TLS 1.2 and 1.3) that accepts any server
/// certificate, left to be finished with or without a client certificate.
pub fn any_server_certificate() -> ConfigBuilder<ClientConfig, WantsClientCert> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
}

/// Accepts every certificate chain for every name, and checks the
/// handshake's signatures with the provider's algorithms.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use rustls::pki_types::PrivateKeyDer;
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use rustls::{ClientConnection, ServerConfig, ServerConnection, StreamOwned};

    use super::*;

    /// Serves one connection with `key`'s certificate and signing key,
    /// answering `pong` to what the client sends; returns the port.
    fn serve_once(
        key: Arc<CertifiedKey>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> u16 {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Always(key)));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let connection = ServerConnection::new(Arc::new(config)).unwrap();
            let mut tls = StreamOwned::new(connection, tcp);
            let mut ping = [0; 4];
            if tls.read_exact(&mut ping).is_ok() {
                let _ = tls.write_all(b"pong");
                let _ = tls.flush();
            }
        });
        port
    }

    /// Gives every client the same certificate and signing key, whether
    /// they belong together or not.
    #[derive(Debug)]
    struct Always(Arc<CertifiedKey>);

    impl ResolvesServerCert for Always {
        fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    /// A self-signed certificate for `name`, signed by the key generated
    /// with it, served with `signing` (that same key when `None`).
    fn certified(name: &str, signing: Option<&rcgen::KeyPair>) -> Arc<CertifiedKey> {
        let own = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&own)
            .unwrap();
        let key = PrivateKeyDer::try_from(signing.unwrap_or(&own).serialize_der()).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let signer = provider.key_provider.load_private_key(key).unwrap();
        Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer))
    }

    /// Sends `ping` over TLS to the port, asking for `name`, and reads the
    /// answer.
    fn ping(port: u16, name: &str) -> Result<String, std::io::Error> {
        let config = Arc::new(any_server_certificate().with_no_client_auth());
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let connection = ClientConnection::new(config, name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        let mut tls = StreamOwned::new(connection, tcp);
        tls.write_all(b"ping")?;
        let mut answer = [0; 4];
        tls.read_exact(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    #[test]
    fn a_self_signed_certificate_for_another_name_is_taken_over_tls_1_2_and_1_3() {
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let port = serve_once(certified("kubelet.invalid", None), &[version]);
            assert_eq!(ping(port, "node-1.example").unwrap(), "pong", "{version:?}");
        }
    }

    #[test]
    fn a_server_without_its_certificates_key_is_refused() {
        let stranger = rcgen::KeyPair::generate().unwrap();
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let port = serve_once(certified("kubelet.invalid", Some(&stranger)), &[version]);
            let refused = ping(port, "kubelet.invalid").unwrap_err();
            assert!(
                refused.to_string().to_lowercase().contains("signature"),
                "{version:?}: {refused}"
            );
        }
    }
}
