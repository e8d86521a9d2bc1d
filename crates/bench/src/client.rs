//! A minimal HTTPS client for the API server: TLS with the admin client
//! certificate from the kubeconfig, one HTTP/1.1 connection per simulated
//! client (as many connections as concurrent clients).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where the server is and how to reach it over TLS.
#[derive(Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    tls: TlsConnector,
}

/// The parts of the admin kubeconfig the benchmark needs.
struct Kubeconfig {
    server: String,
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Reads the flat kubeconfig `tug server` writes (one cluster, one user).
fn parse_kubeconfig(text: &str) -> anyhow::Result<Kubeconfig> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| anyhow!("the kubeconfig has no {name}"))
    };
    let data = |name: &str| -> anyhow::Result<Vec<u8>> {
        Ok(base64::engine::general_purpose::STANDARD.decode(field(name)?)?)
    };
    Ok(Kubeconfig {
        server: field("server:")?,
        ca: data("certificate-authority-data:")?,
        cert: data("client-certificate-data:")?,
        key: data("client-key-data:")?,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Endpoint {
    /// The server in `kubeconfig`, verified against its CA, authenticated
    /// with its client certificate.
    pub fn from_kubeconfig(path: &std::path::Path) -> anyhow::Result<Endpoint> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let kc = parse_kubeconfig(&text)?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&kc.ca) {
            roots.add(cert?)?;
        }
        let chain = CertificateDer::pem_slice_iter(&kc.cert).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(&kc.key)?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        let authority = kc
            .server
            .strip_prefix("https://")
            .ok_or_else(|| anyhow!("the kubeconfig's server is not https: {}", kc.server))?;
        Ok(Endpoint {
            addr: authority
                .parse()
                .context("the kubeconfig's server address")?,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Any server at `addr`, without checking its certificate: for polling
    /// `/readyz` before the cluster CA exists.
    pub fn unverified(addr: SocketAddr) -> anyhow::Result<Endpoint> {
        let config = tugboat_tls::any_server_certificate().with_no_client_auth();
        Ok(Endpoint {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// A new TCP + TLS + HTTP/1.1 connection.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::from(self.addr.ip());
        let tls = self.tls.connect(name, tcp).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }
}

/// One keep-alive connection; requests on it go one after another.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Sends a request and returns its response head, body still streaming.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<Response<Incoming>> {
        self.sender.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("accept", "application/json");
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        Ok(self.sender.send_request(request).await?)
    }

    /// Sends a request and reads the whole response.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let response = self.send(method, path, body).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// Like [`Conn::call`], failing unless the status is `expected`.
    pub async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        expected: StatusCode,
    ) -> anyhow::Result<Bytes> {
        let (status, body) = self.call(method.clone(), path, body).await?;
        if status != expected {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            );
        }
        Ok(body)
    }
}
