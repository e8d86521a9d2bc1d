//! A real registry for tests: Debian's docker-registry on a free loopback
//! port, open, behind htpasswd basic authentication, or taking a token
//! service's bearer tokens, with images pushed into it by skopeo.
//!
//! The image store's tests use it, and so do the end-to-end tests of
//! `crates/tug` (through `#[path]`), so it needs nothing but std and tempfile.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use tempfile::TempDir;

/// The service and issuer names of test tokens.
pub const TOKEN_SERVICE: &str = "tugboat-test-registry";
pub const TOKEN_ISSUER: &str = "tugboat-test-token-service";

/// Who a test registry lets in.
pub enum Access<'a> {
    Open,
    /// Basic authentication of one user (an htpasswd file).
    Htpasswd(&'a str, &'a str),
    /// Bearer tokens from a token service at `realm`, signed by the key of
    /// `certificate` (PEM).
    Token {
        realm: &'a str,
        certificate: &'a str,
    },
}

/// Debian's docker-registry serving on a free loopback port from a temporary
/// directory, stopped when dropped.
pub struct Registry {
    child: Child,
    _dir: TempDir,
    /// `127.0.0.1:PORT`
    pub address: String,
}

impl Registry {
    pub fn start(access: Access) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {address}\n",
            dir.path().join("data").display()
        );
        match access {
            Access::Open => {}
            Access::Htpasswd(name, password) => {
                let htpasswd = Command::new("htpasswd")
                    .args(["-Bbn", name, password])
                    .output()
                    .expect("htpasswd (Debian's apache2-utils) must be installed");
                assert!(htpasswd.status.success(), "htpasswd failed");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, htpasswd.stdout).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: tugboat-test\n    path: {}\n",
                    path.display()
                ));
            }
            Access::Token { realm, certificate } => {
                let path = dir.path().join("token.pem");
                std::fs::write(&path, certificate).unwrap();
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    realm,
                    path.display()
                ));
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian's docker-registry package) must be installed");
        let registry = Registry {
            child,
            _dir: dir,
            address,
        };
        for _ in 0..200 {
            if TcpStream::connect(&registry.address).is_ok() {
                return registry;
            }
            sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on {}", registry.address);
    }

    /// Pushes an OCI archive with skopeo as `repository:tag`; `format` is
    /// skopeo's manifest format (`oci` or `v2s2`, Docker's schema 2).
    pub fn push(&self, archive: &Path, target: &str, format: &str, creds: Option<&str>) {
        let mut command = Command::new("skopeo");
        // --all: an index goes with every platform's image.
        command.args([
            "--insecure-policy",
            "copy",
            "--all",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        command.args(["--format", format]);
        if let Some(creds) = creds {
            command.args(["--dest-creds", creds]);
        }
        command
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{target}", self.address));
        let output = command.output().expect("skopeo must be installed");
        assert!(
            output.status.success(),
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
