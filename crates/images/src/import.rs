//! `ImageStore::import`: OCI archives (an image layout in a tar, as
//! `skopeo copy oci-archive:`, `ctr export` and `docker save` since Docker 25
//! write them) and classic `docker save` archives (`manifest.json` naming
//! `<id>.json` configs and `<id>/layer.tar` layers).
//!
//! The archive is read once, front to back: blobs and layer tars stream into
//! the blob store as they come (checked against their names where the names
//! are digests), the small JSON members are kept in memory, and links
//! between members are remembered so that `docker save`'s shared layers
//! resolve.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result, json};
use crate::manifest::{Descriptor, IMAGE_NAME_ANNOTATION, ManifestOrIndex, REF_NAME_ANNOTATION};
use crate::reference::Reference;
use crate::store::{Image, ImageStore, Layer};

/// Members larger than this go to the blob store rather than memory.
const SMALL_MEMBER: u64 = 4 << 20;
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";

enum Member {
    Small(Vec<u8>),
    Blob(Digest),
}

/// An archive's members and links between them, by normalised path.
struct Members {
    archive: PathBuf,
    members: HashMap<PathBuf, Member>,
    links: HashMap<PathBuf, PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ImageStore {
    /// Imports every image in an OCI or `docker save` archive (plain or
    /// gzip-compressed), unpacks their layers, and returns them. Images keep
    /// the names the archive gives them; an OCI index entry without a full
    /// name is imported untagged.
    pub fn import(&self, path: &Path) -> Result<Vec<Image>> {
        let _ingest = self.ingest_lock()?;
        let failed = |message: String| Error::Import {
            path: path.to_path_buf(),
            message,
        };
        let members = self.read_archive(path)?;
        let images = if members.members.contains_key(Path::new("manifest.json")) {
            self.docker_save_images(&members)?
        } else if members.members.contains_key(Path::new("index.json")) {
            self.oci_layout_images(&members)?
        } else {
            return Err(failed(
                "neither an OCI archive (index.json) nor a docker save archive (manifest.json)"
                    .to_string(),
            ));
        };
        if images.is_empty() {
            return Err(failed("the archive holds no image".to_string()));
        }
        images
            .into_iter()
            .map(|image| {
                for layer in &image.layers {
                    self.layers.ensure(&self.blobs, &layer.digest)?;
                }
                self.commit(image)
            })
            .collect()
    }

    fn read_archive(&self, path: &Path) -> Result<Members> {
        let file = File::open(path).context(|| format!("opening {}", path.display()))?;
        let mut reader = BufReader::new(file);
        let gzip = reader
            .fill_buf()
            .context(|| format!("reading {}", path.display()))?
            .starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = if gzip {
            Box::new(flate2::bufread::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let mut archive = tar::Archive::new(reader);
        let mut members = HashMap::new();
        let mut links = HashMap::new();
        let reading = || format!("reading {}", path.display());
        for entry in archive.entries().context(reading)? {
            let mut entry = entry.context(reading)?;
            let name = normalise(Path::new(""), &entry.path().context(reading)?);
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name().context(reading)?.unwrap_or_default();
                // Symbolic links are relative to the link; hard links to the archive root.
                let base = match kind.is_symlink() {
                    true => name.parent().unwrap_or(Path::new("")),
                    false => Path::new(""),
                };
                let target = normalise(base, &target);
                links.insert(name, target);
            } else if kind.is_file() {
                let named_digest = name
                    .strip_prefix("blobs/sha256")
                    .ok()
                    .and_then(|hex| Digest::from_hex(&hex.to_string_lossy()).ok());
                let member = if named_digest.is_none() && entry.size() <= SMALL_MEMBER {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).context(reading)?;
                    Member::Small(bytes)
                } else if let Some(digest) = named_digest.clone().filter(|d| self.blobs.contains(d))
                {
                    Member::Blob(digest)
                } else {
                    let what = format!("{} in {}", name.display(), path.display());
                    Member::Blob(
                        self.blobs
                            .write_from(&mut entry, named_digest.as_ref(), &what)?,
                    )
                };
                members.insert(name, member);
            }
        }
        Ok(Members {
            archive: path.to_path_buf(),
            members,
            links,
        })
    }

    fn docker_save_images(&self, members: &Members) -> Result<Vec<Image>> {
        let entries: Vec<DockerSaveEntry> =
            json("manifest.json", &members.bytes(self, "manifest.json")?)?;
        entries
            .into_iter()
            .map(|entry| {
                let config = members.bytes(self, &entry.config)?;
                let id = self.blobs.write(&config, None, &entry.config)?;
                let layers = entry
                    .layers
                    .iter()
                    .map(|layer| {
                        let digest = members.blob(self, layer)?;
                        Ok(Layer {
                            size: self.blobs.size(&digest)?,
                            digest,
                            media_type: DOCKER_LAYER.to_string(),
                        })
                    })
                    .collect::<Result<_>>()?;
                let repo_tags = entry
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|tag| Ok(tag.parse::<Reference>()?.to_string()))
                    .collect::<Result<_>>()?;
                Ok(Image {
                    id,
                    repo_tags,
                    repo_digests: Vec::new(),
                    manifest: None,
                    layers,
                    config: ImageConfig::parse(&config)?,
                    added: 0,
                })
            })
            .collect()
    }

    fn oci_layout_images(&self, members: &Members) -> Result<Vec<Image>> {
        let ManifestOrIndex::Index(index) =
            ManifestOrIndex::parse(&members.bytes(self, "index.json")?, "index.json")?
        else {
            return Err(members.failed("index.json is not an image index".to_string()));
        };
        let mut images = Vec::new();
        for descriptor in &index.manifests {
            let repo_tags = match image_name(descriptor)? {
                Some(name) => vec![name.to_string()],
                None => Vec::new(),
            };
            let (manifest_digest, manifest) = self.platform_manifest(members, descriptor)?;
            let config_bytes = self.blobs.read(&manifest.config.digest)?;
            images.push(Image {
                id: manifest.config.digest.clone(),
                repo_tags,
                repo_digests: Vec::new(),
                manifest: Some(manifest_digest),
                layers: manifest
                    .layers
                    .iter()
                    .map(|layer| {
                        members.require(self, &layer.digest)?;
                        Ok(Layer {
                            digest: layer.digest.clone(),
                            media_type: layer.media_type.clone(),
                            size: layer.size,
                        })
                    })
                    .collect::<Result<_>>()?,
                config: ImageConfig::parse(&config_bytes)?,
                added: 0,
            });
        }
        Ok(images)
    }

    /// Follows nested indexes down to this platform's manifest.
    fn platform_manifest(
        &self,
        members: &Members,
        descriptor: &Descriptor,
    ) -> Result<(Digest, crate::manifest::Manifest)> {
        let mut digest = descriptor.digest.clone();
        loop {
            members.require(self, &digest)?;
            match ManifestOrIndex::parse(&self.blobs.read(&digest)?, &format!("manifest {digest}"))?
            {
                ManifestOrIndex::Manifest(manifest) => {
                    members.require(self, &manifest.config.digest)?;
                    return Ok((digest, manifest));
                }
                ManifestOrIndex::Index(index) => digest = index.for_this_platform()?.digest.clone(),
            }
        }
    }
}

/// The name an OCI index entry gives its image: containerd's full-name
/// annotation, or a `ref.name` that is a whole reference rather than a bare
/// tag (which names no repository).
fn image_name(descriptor: &Descriptor) -> Result<Option<Reference>> {
    if let Some(name) = descriptor.annotations.get(IMAGE_NAME_ANNOTATION) {
        return Ok(Some(name.parse()?));
    }
    match descriptor.annotations.get(REF_NAME_ANNOTATION) {
        Some(name) if name.contains(['/', ':']) => Ok(Some(name.parse()?)),
        _ => Ok(None),
    }
}

impl Members {
    fn failed(&self, message: String) -> Error {
        Error::Import {
            path: self.archive.clone(),
            message,
        }
    }

    fn get(&self, name: &str) -> Result<&Member> {
        let mut path = normalise(Path::new(""), Path::new(name));
        // Bounded: a link cycle must not hang the import.
        for _ in 0..16 {
            if let Some(member) = self.members.get(&path) {
                return Ok(member);
            }
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        Err(self.failed(format!("the archive has no file {name}")))
    }

    fn bytes(&self, store: &ImageStore, name: &str) -> Result<Vec<u8>> {
        match self.get(name)? {
            Member::Small(bytes) => Ok(bytes.clone()),
            Member::Blob(digest) => store.blobs.read(digest),
        }
    }

    fn blob(&self, store: &ImageStore, name: &str) -> Result<Digest> {
        match self.get(name)? {
            Member::Small(bytes) => store.blobs.write(bytes, None, name),
            Member::Blob(digest) => Ok(digest.clone()),
        }
    }

    /// Checks that a blob the manifests name came with the archive (or was
    /// in the store already).
    fn require(&self, store: &ImageStore, digest: &Digest) -> Result<()> {
        if store.blobs.contains(digest) {
            Ok(())
        } else {
            Err(self.failed(format!("the archive lacks blob {digest}")))
        }
    }
}

/// `base/path` without `.`, `..` or a leading `/`, as archive member names
/// and link targets are compared.
fn normalise(base: &Path, path: &Path) -> PathBuf {
    let mut normalised = base.to_path_buf();
    for component in path.components() {
        match component {
            Component::Normal(part) => normalised.push(part),
            Component::ParentDir => {
                normalised.pop();
            }
            Component::RootDir => normalised.clear(),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    normalised
}
