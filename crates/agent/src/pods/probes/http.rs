//! The httpGet check, over HTTP or HTTPS, as the kubelet's prober makes it:
//! one `GET` with the probe's headers, any status from 200 to 399 a success.
//! HTTPS does not verify the server's certificate (the kubelet sets
//! `InsecureSkipVerify`): a probe asks whether the server answers, not who
//! it is.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

/// One probe request.
pub struct HttpGet {
    pub addr: SocketAddr,
    /// The `host` the probe names (a DNS name is sent as the TLS server
    /// name); the address alone when it names none.
    pub host: Option<String>,
    pub https: bool,
    pub path: String,
    /// The probe's `httpHeaders`; a `Host`, `User-Agent` or `Accept` among
    /// them replaces the kubelet's own.
    pub headers: Vec<(String, String)>,
}

impl HttpGet {
    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, self.path)
    }

    fn request(&self) -> String {
        let mut request = format!("GET {} HTTP/1.1\r\n", self.path);
        let given = |name: &str| {
            self.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let defaults = [
            ("Host", self.addr.to_string()),
            ("User-Agent", "kube-probe/1.33".to_owned()),
            ("Accept", "*/*".to_owned()),
        ];
        for (name, value) in defaults.iter().filter(|(name, _)| !given(name)) {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        for (name, value) in &self.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        request
    }

    /// Makes the request within `timeout` per step (connect, each write and
    /// read); `Err` says why it failed, in the kubelet's words.
    pub fn check(&self, timeout: Duration) -> Result<(), String> {
        let url = self.url();
        let addr = self.addr;
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("Get {url:?}: dial tcp {addr}: connect: {e}"))?;
        for set in [TcpStream::set_read_timeout, TcpStream::set_write_timeout] {
            set(&stream, Some(timeout)).map_err(|e| e.to_string())?;
        }
        let code = if self.https {
            let connection = ClientConnection::new(insecure_tls(), self.server_name())
                .map_err(|e| format!("Get {url:?}: {e}"))?;
            self.exchange(StreamOwned::new(connection, stream))
        } else {
            self.exchange(stream)
        }
        .map_err(|e| format!("Get {url:?}: {e}"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    }

    /// The name TLS is started with: the probe's host when it is a DNS name
    /// (sent as SNI), else the address (no SNI, as Go does for IPs).
    fn server_name(&self) -> ServerName<'static> {
        self.host
            .as_deref()
            .filter(|h| h.parse::<IpAddr>().is_err())
            .and_then(|h| ServerName::try_from(h.to_owned()).ok())
            .unwrap_or_else(|| ServerName::from(self.addr.ip()))
    }

    /// Sends the request and reads the status code of the answer.
    fn exchange(&self, mut stream: impl Read + Write) -> Result<u16, String> {
        stream
            .write_all(self.request().as_bytes())
            .map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 256];
        while !head.contains(&b'\n') {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if head.is_empty() => return Err(e.to_string()),
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&head)
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| "malformed HTTP response".to_owned())
    }
}

/// A TLS client that takes any server certificate but still checks that
/// the server holds its key (the handshake's signatures).
fn insecure_tls() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(tugboat_tls::any_server_certificate().with_no_client_auth()))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, headers: &[(&str, &str)]) -> HttpGet {
        HttpGet {
            addr,
            host: None,
            https: false,
            path: "/healthz".to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn checks_take_2xx_and_3xx_as_success() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for status in ["302 Found", "500 Internal Server Error"] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes());
            }
        });
        let timeout = Duration::from_secs(2);
        assert_eq!(get(addr, &[]).check(timeout), Ok(()));
        assert_eq!(
            get(addr, &[]).check(timeout),
            Err("HTTP probe failed with statuscode: 500".to_owned())
        );
        server.join().unwrap();
    }

    #[test]
    fn https_checks_take_a_self_signed_certificate_and_send_the_probes_request() {
        let serving = rcgen::generate_simple_self_signed(vec!["other.test".to_owned()]).unwrap();
        let key =
            rustls_pki_types::PrivateKeyDer::Pkcs8(serving.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![serving.cert.der().clone()], key)
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            let mut stream = StreamOwned::new(tls, conn);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .unwrap();
            stream.conn.send_close_notify();
            let _ = stream.flush();
            let sni = stream.conn.server_name().map(str::to_owned);
            (String::from_utf8(request).unwrap(), sni)
        });
        let probe = HttpGet {
            host: Some("probe.test".to_owned()),
            https: true,
            ..get(addr, &[("X-Probe", "tugboat")])
        };
        assert_eq!(probe.check(Duration::from_secs(5)), Ok(()));
        let (request, sni) = server.join().unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nX-Probe: tugboat\r\n"), "{request}");
        assert_eq!(sni.as_deref(), Some("probe.test"));
    }

    #[test]
    fn the_probes_headers_replace_the_kubelets_own() {
        let addr: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        let request = get(addr, &[("Host", "example.com"), ("X-Custom", "1")]).request();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nHost: example.com\r\n"), "{request}");
        assert!(!request.contains("10.0.0.5"), "{request}");
        assert!(request.contains("\r\nX-Custom: 1\r\n"), "{request}");
        assert!(request.contains("\r\nUser-Agent: kube-probe/1.33\r\n"));
        let plain = get(addr, &[]).request();
        assert!(plain.contains("\r\nHost: 10.0.0.5:8080\r\n"), "{plain}");
    }
}
