//! `ImageStore::pull` from OCI and Docker v2 registries through `oci-client`,
//! which speaks the distribution protocol and its basic and bearer (token
//! service) authentication. Manifests are fetched raw so the store keeps the
//! registry's exact bytes under their digest; layers stream into the blob
//! store, three at a time, and are unpacked as they arrive.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use oci_client::RegistryOperation;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use serde::Deserialize;

use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result, json};
use crate::manifest::{ACCEPTED, Descriptor, Manifest, ManifestOrIndex};
use crate::reference::Reference;
use crate::store::{Image, ImageStore, Layer};

/// How many layers download at once, as Docker does.
const CONCURRENT_LAYERS: usize = 3;

/// Credentials for one registry.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum RegistryAuth {
    #[default]
    Anonymous,
    /// Sent as HTTP basic authentication, or to the registry's token service
    /// when it asks for a bearer token.
    Basic { username: String, password: String },
    /// A registry token used as is.
    Bearer(String),
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::Anonymous => f.write_str("Anonymous"),
            RegistryAuth::Basic { username, .. } => write!(f, "Basic({username}, ****)"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(****)"),
        }
    }
}

/// One registry's entry in a Docker config file.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
struct DockerConfigEntry {
    username: Option<String>,
    password: Option<String>,
    /// base64 of `username:password`
    auth: Option<String>,
    registrytoken: Option<String>,
}

impl RegistryAuth {
    /// The credentials for `registry` in the content of an imagePullSecret:
    /// a `.dockerconfigjson` (`{"auths": {...}}`) or a legacy `.dockercfg`.
    /// Keys match as the kubelet matches them: with or without scheme and
    /// path, and Docker Hub under any of its names.
    pub fn from_docker_config(config: &[u8], registry: &str) -> Result<Option<RegistryAuth>> {
        #[derive(Deserialize)]
        struct DockerConfigJson {
            auths: HashMap<String, DockerConfigEntry>,
        }
        let entries = match json::<DockerConfigJson>("docker config", config) {
            Ok(config) => config.auths,
            Err(_) => json::<HashMap<String, DockerConfigEntry>>("docker config", config)?,
        };
        let wanted = registry_key(registry);
        let Some(entry) = entries
            .into_iter()
            .find_map(|(key, entry)| (registry_key(&key) == wanted).then_some(entry))
        else {
            return Ok(None);
        };
        if let Some(token) = entry.registrytoken.filter(|t| !t.is_empty()) {
            return Ok(Some(RegistryAuth::Bearer(token)));
        }
        let (username, password) = match (entry.username, entry.password, entry.auth) {
            (Some(username), Some(password), _) if !username.is_empty() => (username, password),
            (_, _, Some(auth)) if !auth.is_empty() => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| Error::InvalidCredentials(registry.to_string()))?;
                match decoded.split_once(':') {
                    Some((username, password)) => (username.to_string(), password.to_string()),
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(RegistryAuth::Basic { username, password }))
    }

    fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            RegistryAuth::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            RegistryAuth::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
            }
            RegistryAuth::Bearer(token) => oci_client::secrets::RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// A registry as config keys name it, reduced to its host: `https://index.docker.io/v1/` is `docker.io`.
fn registry_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        host => host,
    }
}

/// How to pull.
#[derive(Default)]
pub struct PullOptions<'a> {
    pub auth: RegistryAuth,
    /// Registries (`host` or `host:port`) reached over plain HTTP. Loopback
    /// registries always are, as Docker treats them.
    pub insecure_registries: Vec<String>,
    /// Called as layers advance, from the pulling task.
    pub progress: Option<&'a (dyn Fn(&Progress) + Send + Sync)>,
}

/// Where one layer of a pull is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub layer: Digest,
    pub phase: ProgressPhase,
    /// Bytes downloaded so far (`size` when cached or done).
    pub downloaded: u64,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressPhase {
    /// Already unpacked in the store: nothing to download.
    Cached,
    Downloading,
    Unpacking,
    Done,
}

impl ImageStore {
    /// Pulls `reference` (the manifest for this platform when it names an
    /// index), downloads the layers the store lacks, unpacks them, and
    /// records the image under its tag and its repo digest. Registry errors
    /// come back as [`Error::Pull`] with the registry's message.
    pub async fn pull(&self, reference: &Reference, options: &PullOptions<'_>) -> Result<Image> {
        let failed = |e: OciDistributionError| pull_error(reference, &options.auth, &e);
        let _ingest = self.ingest_lock()?;
        let client = client(reference, options);
        let target = oci_reference(reference);
        let auth = options.auth.to_oci();
        if options.auth != RegistryAuth::Anonymous {
            // Done up front because the client would otherwise swallow a
            // token service's refusal and go on anonymously.
            client
                .auth(&target, &auth, RegistryOperation::Pull)
                .await
                .map_err(failed)?;
        }
        let (bytes, digest) = client
            .pull_manifest_raw(&target, &auth, &ACCEPTED)
            .await
            .map_err(failed)?;
        let pulled: Digest = digest.parse()?;
        let (manifest_digest, bytes) = match ManifestOrIndex::parse(&bytes, "manifest")? {
            ManifestOrIndex::Manifest(_) => (pulled.clone(), bytes),
            ManifestOrIndex::Index(index) => {
                let platform = index
                    .for_this_platform()
                    .map_err(|e| Error::Pull {
                        reference: reference.to_string(),
                        message: e.to_string(),
                    })?
                    .digest
                    .clone();
                let (bytes, _) = client
                    .pull_manifest_raw(
                        &target.clone_with_digest(platform.to_string()),
                        &auth,
                        &ACCEPTED,
                    )
                    .await
                    .map_err(failed)?;
                (platform, bytes)
            }
        };
        let ManifestOrIndex::Manifest(manifest) = ManifestOrIndex::parse(&bytes, "manifest")?
        else {
            return Err(Error::Pull {
                reference: reference.to_string(),
                message: format!("{manifest_digest} is an index inside an index"),
            });
        };
        self.blobs
            .write(&bytes, Some(&manifest_digest), "manifest")?;
        let config = self
            .pull_config(&client, &target, &manifest, reference, &options.auth)
            .await?;
        // Layers go by value: a closure taking `&Descriptor` would keep this
        // future from `tokio::spawn` (rustc's "FnOnce is not general enough").
        futures::stream::iter(manifest.layers.iter().cloned())
            .map(|layer| self.pull_layer(&client, &target, layer, reference, options))
            .buffer_unordered(CONCURRENT_LAYERS)
            .try_collect::<Vec<()>>()
            .await?;
        let image = Image {
            id: manifest.config.digest.clone(),
            repo_tags: reference
                .tag()
                .map(|tag| format!("{}:{tag}", reference.name()))
                .into_iter()
                .collect(),
            repo_digests: vec![reference.with_digest(pulled).to_string()],
            manifest: Some(manifest_digest),
            layers: manifest
                .layers
                .iter()
                .map(|layer| Layer {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                    size: layer.size,
                })
                .collect(),
            config,
            added: 0,
        };
        let store = self.clone();
        blocking(move || store.commit(image)).await
    }

    async fn pull_config(
        &self,
        client: &oci_client::Client,
        target: &oci_client::Reference,
        manifest: &Manifest,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<ImageConfig> {
        let digest = &manifest.config.digest;
        if !self.blobs.contains(digest) {
            let mut bytes = Vec::new();
            client
                .pull_blob(target, &descriptor(&manifest.config), &mut bytes)
                .await
                .map_err(|e| pull_error(reference, auth, &e))?;
            self.blobs.write(&bytes, Some(digest), "image config")?;
        }
        ImageConfig::parse(&self.blobs.read(digest)?)
    }

    async fn pull_layer(
        &self,
        client: &oci_client::Client,
        target: &oci_client::Reference,
        layer: Descriptor,
        reference: &Reference,
        options: &PullOptions<'_>,
    ) -> Result<()> {
        let report = |phase, downloaded| {
            if let Some(progress) = options.progress {
                progress(&Progress {
                    layer: layer.digest.clone(),
                    phase,
                    downloaded,
                    size: layer.size,
                });
            }
        };
        if self.layers.contains(&layer.digest) {
            report(ProgressPhase::Cached, layer.size);
            return Ok(());
        }
        if !self.blobs.contains(&layer.digest) {
            report(ProgressPhase::Downloading, 0);
            let mut stream = client
                .pull_blob_stream(target, &descriptor(&layer))
                .await
                .map_err(|e| pull_error(reference, &options.auth, &e))?;
            // Chunks go straight to the page cache; the sync and rename in
            // commit run on a blocking thread.
            let mut writer = self.blobs.writer()?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Error::Pull {
                    reference: reference.to_string(),
                    message: format!("downloading {}: {}", layer.digest, chain(&e)),
                })?;
                writer
                    .write_all(&chunk)
                    .context(|| format!("storing layer {}", layer.digest))?;
                report(ProgressPhase::Downloading, writer.written());
            }
            let digest = layer.digest.clone();
            blocking(move || writer.commit(Some(&digest), &format!("layer {digest}"))).await?;
        }
        report(ProgressPhase::Unpacking, layer.size);
        let (blobs, layers, digest) = (
            self.blobs.clone(),
            self.layers.clone(),
            layer.digest.clone(),
        );
        blocking(move || layers.ensure(&blobs, &digest)).await?;
        report(ProgressPhase::Done, layer.size);
        Ok(())
    }
}

fn client(reference: &Reference, options: &PullOptions<'_>) -> oci_client::Client {
    // reqwest is built without a TLS provider of its own: use ring, as the
    // rest of Tugboat does. Installing twice is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain_http_registries(reference, options)),
        platform_resolver: None,
        ..ClientConfig::default()
    })
}

fn plain_http_registries(reference: &Reference, options: &PullOptions<'_>) -> Vec<String> {
    let mut insecure = options.insecure_registries.clone();
    if reference.is_loopback_registry() {
        insecure.push(reference.registry().to_string());
    }
    insecure
}

fn oci_reference(reference: &Reference) -> oci_client::Reference {
    let (registry, repository) = (
        reference.registry().to_string(),
        reference.repository().to_string(),
    );
    match (reference.digest(), reference.tag()) {
        (Some(digest), _) => {
            oci_client::Reference::with_digest(registry, repository, digest.to_string())
        }
        (None, tag) => oci_client::Reference::with_tag(
            registry,
            repository,
            tag.unwrap_or("latest").to_string(),
        ),
    }
}

fn descriptor(descriptor: &Descriptor) -> OciDescriptor {
    OciDescriptor {
        media_type: descriptor.media_type.clone(),
        digest: descriptor.digest.to_string(),
        size: i64::try_from(descriptor.size).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    }
}

/// The registry's own words where it gave some, else the whole error chain
/// (a refused connection, a TLS failure).
/// The registry's words for a failed request; a refusal (HTTP 401) says
/// whether credentials were given, so a wrong password reads as one.
fn pull_error(reference: &Reference, auth: &RegistryAuth, error: &OciDistributionError) -> Error {
    let message = match error {
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .map(|e| {
                let code = serde_json::to_value(&e.code)
                    .ok()
                    .and_then(|code| code.as_str().map(str::to_string))
                    .unwrap_or_default();
                format!("{} ({code})", e.message)
            })
            .collect::<Vec<_>>()
            .join("; "),
        OciDistributionError::UnauthorizedError { url } if *auth == RegistryAuth::Anonymous => {
            format!("unauthorized: authentication required for {url}")
        }
        OciDistributionError::UnauthorizedError { url } => {
            format!("unauthorized: the registry refused the credentials given for {url}")
        }
        other => chain(other),
    };
    Error::Pull {
        reference: reference.to_string(),
        message,
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io {
            context: "waiting for a blocking task".to_string(),
            source: std::io::Error::other(e),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(username: &str, password: &str) -> Option<RegistryAuth> {
        Some(RegistryAuth::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    }

    #[test]
    fn docker_hub_credentials_match_under_any_of_its_names() {
        let config =
            br#"{"auths":{"https://index.docker.io/v1/":{"username":"me","password":"pw"}}}"#;
        assert_eq!(
            RegistryAuth::from_docker_config(config, "docker.io").unwrap(),
            basic("me", "pw")
        );
        assert_eq!(
            RegistryAuth::from_docker_config(config, "quay.io").unwrap(),
            None
        );
    }

    #[test]
    fn auth_field_and_legacy_dockercfg() {
        // base64("user:pa:ss"): the password may hold colons.
        let config = br#"{"localhost:5000":{"auth":"dXNlcjpwYTpzcw=="}}"#;
        assert_eq!(
            RegistryAuth::from_docker_config(config, "localhost:5000").unwrap(),
            basic("user", "pa:ss")
        );
        let token = br#"{"auths":{"registry.example":{"registrytoken":"t0k"}}}"#;
        assert_eq!(
            RegistryAuth::from_docker_config(token, "registry.example").unwrap(),
            Some(RegistryAuth::Bearer("t0k".to_string()))
        );
        let broken = br#"{"auths":{"registry.example":{"auth":"%%%"}}}"#;
        assert!(RegistryAuth::from_docker_config(broken, "registry.example").is_err());
    }

    #[test]
    fn plain_http_for_loopback_and_listed_registries_only() {
        let options = PullOptions {
            insecure_registries: vec!["registry.lan:5000".to_string()],
            ..PullOptions::default()
        };
        let plain = |name: &str| {
            let reference: Reference = name.parse().unwrap();
            plain_http_registries(&reference, &options).contains(&reference.registry().to_string())
        };
        assert!(plain("registry.lan:5000/x"));
        assert!(plain("localhost:5000/x"));
        assert!(plain("127.0.0.1:5000/x"));
        assert!(!plain("registry.lan/x"));
        assert!(!plain("busybox"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let shown = format!("{:?}", basic("me", "hunter2").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
