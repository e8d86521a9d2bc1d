//! The JSON of image manifests, indexes (manifest lists) and configs, in both
//! their OCI and Docker media types, which share one shape.

use std::collections::HashMap;

use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, Result, json};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// What a pull accepts from a registry, in order of preference.
pub(crate) const ACCEPTED: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// The annotation containerd and Docker put on an archive's index entries.
pub(crate) const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";
pub(crate) const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub platform: Option<Platform>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Index {
    pub manifests: Vec<Descriptor>,
}

/// A manifest or an index, told apart by their members since the media type
/// is optional in both.
pub(crate) enum ManifestOrIndex {
    Manifest(Manifest),
    Index(Index),
}

impl ManifestOrIndex {
    pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<ManifestOrIndex> {
        #[derive(Deserialize)]
        struct Probe {
            manifests: Option<serde::de::IgnoredAny>,
        }
        if json::<Probe>(what, bytes)?.manifests.is_some() {
            Ok(ManifestOrIndex::Index(json(what, bytes)?))
        } else {
            Ok(ManifestOrIndex::Manifest(json(what, bytes)?))
        }
    }
}

impl Index {
    /// The manifest for this machine (linux and our architecture), as
    /// containerd's default platform matcher picks it.
    pub(crate) fn for_this_platform(&self) -> Result<&Descriptor> {
        let architecture = oci_architecture();
        let matches = |d: &&Descriptor| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == architecture)
        };
        let preferred_variant = (architecture == "arm64").then_some("v8");
        self.manifests
            .iter()
            .filter(matches)
            .find(|d| d.platform.as_ref().and_then(|p| p.variant.as_deref()) == preferred_variant)
            .or_else(|| self.manifests.iter().find(matches))
            .ok_or_else(|| {
                let available: Vec<String> = self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .map(|p| format!("{}/{}", p.os, p.architecture))
                    .collect();
                Error::NotFound(format!(
                    "no manifest for linux/{architecture} (the index has {})",
                    available.join(", ")
                ))
            })
    }
}

/// Rust's name for this machine's architecture in OCI's (Go's) words.
fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}
