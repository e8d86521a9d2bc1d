//! The ingress's two listeners on every address of the node: HTTP, and
//! HTTPS with the certificates of `tls`. HTTP/1.1 and HTTP/2 (h2 by ALPN
//! over TLS, prior knowledge over plain HTTP) are both served.
//!
//! Their ports are the node's, not a pod's: when another program (or
//! another `tug server` on the same machine) holds one, that listener logs
//! which flag to change and stays off, and the rest of the node runs on.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::proxy::Proxy;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves plain HTTP on `port` until the process ends.
pub async fn http(port: u16, proxy: Arc<Proxy>) {
    let Some(listener) = bind(port, "HTTP", "--ingress-http-port").await else {
        return;
    };
    loop {
        let (stream, client) = accept(&listener).await;
        let proxy = proxy.clone();
        tokio::spawn(serve(stream, client, proxy, "http"));
    }
}

/// Serves HTTPS on `port` until the process ends.
pub async fn https(port: u16, proxy: Arc<Proxy>, tls: Arc<ServerConfig>) {
    let Some(listener) = bind(port, "HTTPS", "--ingress-https-port").await else {
        return;
    };
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, client) = accept(&listener).await;
        let (proxy, acceptor) = (proxy.clone(), acceptor.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve(stream, client, proxy, "https").await,
                Ok(Err(e)) => tracing::debug!("TLS handshake with {client} failed: {e}"),
                Err(_) => tracing::debug!("TLS handshake with {client} timed out"),
            }
        });
    }
}

async fn bind(port: u16, what: &str, flag: &str) -> Option<TcpListener> {
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    match TcpListener::bind(address).await {
        Ok(listener) => {
            tracing::info!("the ingress serves {what} on {address}");
            Some(listener)
        }
        Err(e) => {
            tracing::error!(
                "the ingress cannot serve {what} on {address}: {e}; another program (or \
                 another tug server on this machine) may hold the port: choose another with \
                 {flag}, or run no ingress here with --disable-ingress. Ingresses are not \
                 served over {what} on this node; everything else runs on."
            );
            None
        }
    }
}

/// The next connection; failures to accept one (out of file descriptors)
/// are waited out rather than ending the listener.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let _ = stream.set_nodelay(true);
                return (stream, client);
            }
            Err(e) => {
                tracing::warn!("the ingress cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve<S>(stream: S, client: SocketAddr, proxy: Arc<Proxy>, scheme: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let proxy = proxy.clone();
        async move { proxy.handle(request, client, scheme).await }
    });
    if let Err(e) = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!("connection from {client}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{Backend, Target};
    use crate::current::Current;
    use crate::routes::{PathType, Table};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads from `stream` up to the blank line ending an HTTP head.
    async fn read_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    /// An ingress in front of one backend at `address` for every host and
    /// path, serving one connection; where it listens.
    async fn front(address: SocketAddr, read_timeout: Duration) -> SocketAddr {
        let mut table = Table::default();
        let backend = Backend::new("t/backend:80".into(), Ok(vec![address]));
        let target = Target {
            backend: Arc::new(backend),
            read_timeout,
        };
        table.add("", "/", PathType::Prefix, target);
        let proxy = Arc::new(Proxy::new(Arc::new(Current::new(table))));
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front_address = front.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, client) = front.accept().await.unwrap();
            serve(stream, client, proxy, "http").await;
        });
        front_address
    }

    #[tokio::test]
    async fn a_backend_silent_past_the_read_timeout_gets_504() {
        // A backend that takes the request and never answers.
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_address = backend.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = backend.accept().await.unwrap();
            read_head(&mut stream).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let front_address = front(backend_address, Duration::from_secs(1)).await;

        let mut client = TcpStream::connect(front_address).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    }

    #[tokio::test]
    async fn switched_connections_are_carried_both_ways() {
        // A backend that switches to an echo protocol.
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_address = backend.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = backend.accept().await.unwrap();
            let head = read_head(&mut stream).await;
            assert!(head.contains("upgrade: echo"), "{head}");
            stream
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                .await
                .unwrap();
            let (mut from, mut to) = stream.split();
            tokio::io::copy(&mut from, &mut to).await.unwrap();
        });
        let front_address = front(backend_address, Duration::from_secs(60)).await;

        let mut client = TcpStream::connect(front_address).await.unwrap();
        client
            .write_all(
                b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
        let head = read_head(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("upgrade: echo"),
            "{head}"
        );
        client.write_all(b"ping").await.unwrap();
        let mut echoed = [0; 4];
        client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping");
    }
}
