//! What the image tests share: the project's test images, a store in a
//! temporary directory, OCI archives made on the spot, and a token service
//! for the real registry of `registry_server`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use tempfile::TempDir;
use tugboat_images::{Digest, ImageStore};

use crate::registry_server::{Access, TOKEN_ISSUER, TOKEN_SERVICE};

/// The archives `scripts/build-test-images` makes, built once per test run.
pub fn test_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = workspace.join("target/test-images");
        run(Command::new(workspace.join("scripts/build-test-images")).arg(&dir));
        dir
    })
}

/// This machine's architecture as OCI names it.
pub fn this_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

pub fn test_image(name: &str) -> PathBuf {
    test_images().join(name)
}

pub fn new_store() -> (TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    (dir, store)
}

pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A file or directory in a layer tar under construction.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    /// path, content, mode, uid, gid
    Owned(&'a str, &'a [u8], u32, u64, u64),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match *entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Entry::File(path, content) => {
                header.set_mode(0o644);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, path, content).unwrap();
            }
            Entry::Owned(path, content, mode, uid, gid) => {
                header.set_mode(mode);
                header.set_uid(uid);
                header.set_gid(gid);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, path, content).unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Entry::HardLink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o644);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Writes an OCI archive of one image named `name` whose layers are the
/// given (uncompressed) tars, stored gzip-compressed.
pub fn oci_archive(path: &Path, name: &str, layers: &[Vec<u8>], config: serde_json::Value) {
    let mut blobs = Vec::new();
    let manifest = image_blobs("amd64", layers, config, &mut blobs);
    write_layout(path, name, manifest, blobs);
}

/// Writes an OCI archive whose image `name` is a multi-platform index of
/// `(architecture, layers)` images.
pub fn oci_index_archive(path: &Path, name: &str, images: &[(&str, Vec<Vec<u8>>)]) {
    let mut blobs = Vec::new();
    let manifests: Vec<_> = images
        .iter()
        .map(|(architecture, layers)| {
            image_blobs(architecture, layers, serde_json::json!({}), &mut blobs)
        })
        .collect();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let descriptor = serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": Digest::of(&index).to_string(),
        "size": index.len(),
    });
    blobs.push((Digest::of(&index), index));
    write_layout(path, name, descriptor, blobs);
}

/// Adds one image's layers, config and manifest to `blobs`; returns the
/// manifest's descriptor.
fn image_blobs(
    architecture: &str,
    layers: &[Vec<u8>],
    config: serde_json::Value,
    blobs: &mut Vec<(Digest, Vec<u8>)>,
) -> serde_json::Value {
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let compressed = gzip(layer);
        let digest = Digest::of(&compressed);
        diff_ids.push(Digest::of(layer).to_string());
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest.to_string(),
            "size": compressed.len(),
        }));
        blobs.push((digest, compressed));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = Digest::of(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config.len(),
        },
        "layers": descriptors,
    }))
    .unwrap();
    let descriptor = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": Digest::of(&manifest).to_string(),
        "size": manifest.len(),
        "platform": {"os": "linux", "architecture": architecture},
    });
    blobs.push((config_digest, config));
    blobs.push((Digest::of(&manifest), manifest));
    descriptor
}

fn write_layout(
    path: &Path,
    name: &str,
    mut descriptor: serde_json::Value,
    blobs: Vec<(Digest, Vec<u8>)>,
) {
    descriptor["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [descriptor],
    }))
    .unwrap();
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, content: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        builder.append_data(&mut header, name, content).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for (digest, content) in &blobs {
        add(&format!("blobs/sha256/{}", digest.hex()), content);
    }
    builder.finish().unwrap();
}

/// A registry token service (the bearer flow Docker Hub uses): it checks a
/// user's basic credentials and answers with a JWT granting the requested
/// scope, signed by a key whose certificate the registry trusts.
pub struct TokenService {
    /// `http://127.0.0.1:PORT/token`
    pub realm: String,
    /// The certificate the registry verifies tokens with, as PEM.
    pub certificate: String,
}

impl TokenService {
    /// A registry that takes this service's tokens.
    pub fn access(&self) -> Access<'_> {
        Access::Token {
            realm: &self.realm,
            certificate: &self.certificate,
        }
    }

    pub fn start(user: &'static str, password: &'static str) -> TokenService {
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = rcgen::CertificateParams::new(vec!["tugboat-token".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let x5c = base64::engine::general_purpose::STANDARD.encode(certificate.der());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        // Serves until the test process ends; each request is one connection.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                answer_token_request(stream, &expected, &signer, &x5c);
            }
        });
        TokenService {
            realm,
            certificate: certificate.pem(),
        }
    }
}

fn answer_token_request(
    mut stream: TcpStream,
    expected_authorization: &str,
    signer: &ring::signature::EcdsaKeyPair,
    x5c: &str,
) {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut authorized = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            authorized |= name.eq_ignore_ascii_case("authorization")
                && value.trim() == expected_authorization;
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or_default();
    let query = target.split_once('?').map_or("", |(_, query)| query);
    let access: Vec<serde_json::Value> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .filter_map(|scope| {
            let scope = scope
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",");
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let (status, body) = if authorized {
        let token = jwt(signer, x5c, access);
        (
            "200 OK",
            serde_json::json!({"token": token, "access_token": token, "expires_in": 300}),
        )
    } else {
        (
            "401 Unauthorized",
            serde_json::json!({"details": "bad credentials"}),
        )
    };
    let body = body.to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn jwt(
    signer: &ring::signature::EcdsaKeyPair,
    x5c: &str,
    access: Vec<serde_json::Value>,
) -> String {
    let url = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": "tug",
        "aud": TOKEN_SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now - 10,
        "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signed = format!(
        "{}.{}",
        url(header.to_string().as_bytes()),
        url(claims.to_string().as_bytes())
    );
    let signature = signer
        .sign(&ring::rand::SystemRandom::new(), signed.as_bytes())
        .unwrap();
    format!("{signed}.{}", url(signature.as_ref()))
}
