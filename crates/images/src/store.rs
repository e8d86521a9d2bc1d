//! The image store: records of images (by image ID) over the blob and layer
//! stores, and the operations the agent and `tug images` use.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::blobs::{Blobs, remove_all};
use crate::config::ImageConfig;
use crate::digest::{Digest, ImageId};
use crate::error::{Error, IoContext, Result, json};
use crate::layers::Layers;
use crate::lock::{self, Lock};
use crate::reference::Reference;

/// An image in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The digest of the image's config.
    pub id: ImageId,
    /// Full references (`docker.io/library/busybox:latest`); a tag names one
    /// image at a time, so tagging another image moves it.
    pub repo_tags: Vec<String>,
    /// `registry/repository@digest` for each registry the image was pulled
    /// from: the manifest (or index) digest, which Kubernetes reports as a
    /// container's imageID.
    pub repo_digests: Vec<String>,
    /// The manifest this image was read from; none for `docker save` archives.
    pub manifest: Option<Digest>,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
    pub config: ImageConfig,
    /// When the image was last pulled or imported (seconds since the epoch);
    /// garbage collection drops the oldest first.
    pub added: u64,
}

/// One layer blob of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

impl Image {
    /// What Kubernetes reports as a container's `imageID`: the first repo
    /// digest, else the image ID, as containerd's CRI answers.
    pub fn image_ref(&self) -> &str {
        self.repo_digests
            .first()
            .map_or(self.id.as_str(), String::as_str)
    }

    /// The size of the image's layer blobs as stored (compressed, as
    /// registries and `crictl images` count it).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|layer| layer.size).sum()
    }
}

/// What `ImageStore::remove` did, in the words `docker rmi` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(ImageId),
}

/// A node's images under one root directory.
#[derive(Clone, Debug)]
pub struct ImageStore {
    pub(crate) root: PathBuf,
    pub(crate) blobs: Blobs,
    pub(crate) layers: Layers,
    images: PathBuf,
    tmp: PathBuf,
}

impl ImageStore {
    /// Opens the store at `root`, creating its directories if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        let blobs = root.join("blobs").join("sha256");
        let layers = root.join("layers");
        let images = root.join("images");
        let tmp = root.join("tmp");
        for dir in [&blobs, &layers, &images, &tmp] {
            fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        }
        Ok(ImageStore {
            blobs: Blobs::new(blobs, tmp.clone()),
            layers: Layers::new(layers),
            images,
            tmp,
            root,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every image, sorted by first name then ID.
    pub fn list(&self) -> Result<Vec<Image>> {
        let mut images = Vec::new();
        let entries =
            fs::read_dir(&self.images).context(|| format!("listing {}", self.images.display()))?;
        for entry in entries {
            let path = entry
                .context(|| format!("listing {}", self.images.display()))?
                .path();
            if path.extension().is_some_and(|ext| ext == "json") {
                match fs::read(&path) {
                    Ok(bytes) => images.push(json::<Image>(&path.display().to_string(), &bytes)?),
                    // Removed since the listing: not an image any more.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).context(|| format!("reading {}", path.display())),
                }
            }
        }
        images.sort_by(|a, b| (a.repo_tags.first(), &a.id).cmp(&(b.repo_tags.first(), &b.id)));
        Ok(images)
    }

    pub fn get(&self, id: &ImageId) -> Result<Option<Image>> {
        let path = self.record(id);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(json(&path.display().to_string(), &bytes)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context(|| format!("reading {}", path.display())),
        }
    }

    /// Finds an image by reference (`busybox`, `localhost:5000/x:v1`,
    /// `name@sha256:…`) or by ID (`sha256:<hex>` or a unique prefix of at
    /// least 12 hex digits, as `docker images` shows them).
    pub fn resolve(&self, name: &str) -> Result<Option<Image>> {
        let images = self.list()?;
        if let Some(image) = find_by_id(&images, name) {
            return Ok(Some(image.clone()));
        }
        let reference: Reference = name.parse()?;
        Ok(images.into_iter().find(|image| image.is_named(&reference)))
    }

    /// The image's unpacked layer directories, bottom first: overlayfs wants
    /// them reversed (top first) in `lowerdir`, which
    /// [`crate::rootfs::mount_overlay`] does.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .map(|layer| self.layers.path(&layer.digest))
            .collect()
    }

    /// Removes a name, as `docker rmi` does: by reference, the tag goes, and
    /// the image with it once it has no tag left; by ID, the image goes.
    /// Blobs and layers no other image uses are deleted.
    pub fn remove(&self, name: &str) -> Result<Vec<Removed>> {
        let removed = {
            let _lock = self.records_lock()?;
            let images = self.list()?;
            match find_by_id(&images, name) {
                Some(image) => self.delete(image.clone())?,
                None => {
                    let reference: Reference = name.parse()?;
                    let mut image = images
                        .into_iter()
                        .find(|image| image.is_named(&reference))
                        .ok_or_else(|| Error::NotFound(name.to_string()))?;
                    let full = reference.to_string();
                    let tagged = image.repo_tags.contains(&full);
                    if tagged && image.repo_tags.len() > 1 {
                        image.repo_tags.retain(|tag| *tag != full);
                        self.write_record(&image)?;
                        vec![Removed::Untagged(full)]
                    } else {
                        self.delete(image)?
                    }
                }
            }
        };
        self.prune()?;
        Ok(removed)
    }

    fn delete(&self, image: Image) -> Result<Vec<Removed>> {
        let path = self.record(&image.id);
        fs::remove_file(&path).context(|| format!("removing {}", path.display()))?;
        let mut removed: Vec<Removed> = image
            .repo_tags
            .into_iter()
            .chain(image.repo_digests)
            .map(Removed::Untagged)
            .collect();
        removed.push(Removed::Deleted(image.id));
        Ok(removed)
    }

    /// Records an image whose blobs and layers are in place. Its tags move
    /// to it from any image that had them, and an image already recorded
    /// under the same ID keeps its other names.
    pub(crate) fn commit(&self, mut image: Image) -> Result<Image> {
        let _lock = self.records_lock()?;
        for mut other in self.list()? {
            if other.id == image.id {
                for tag in other.repo_tags {
                    if !image.repo_tags.contains(&tag) {
                        image.repo_tags.push(tag);
                    }
                }
                for digest in other.repo_digests {
                    if !image.repo_digests.contains(&digest) {
                        image.repo_digests.push(digest);
                    }
                }
            } else if other
                .repo_tags
                .iter()
                .any(|tag| image.repo_tags.contains(tag))
            {
                other.repo_tags.retain(|tag| !image.repo_tags.contains(tag));
                self.write_record(&other)?;
            }
        }
        image.added = now();
        self.write_record(&image)?;
        Ok(image)
    }

    /// Deletes blobs and layers no image refers to, and leftovers of pulls
    /// and imports that died. Only done while no pull or import runs (their
    /// new blobs are not referenced yet); returns false when it had to skip.
    pub(crate) fn prune(&self) -> Result<bool> {
        let Some(_ingest) = lock::try_exclusive(&self.root.join("ingest.lock"))? else {
            return Ok(false);
        };
        let images = self.list()?;
        let mut referenced: HashSet<&Digest> = HashSet::new();
        for image in &images {
            referenced.insert(&image.id);
            referenced.extend(&image.manifest);
            referenced.extend(image.layers.iter().map(|layer| &layer.digest));
        }
        for digest in self.blobs.list()? {
            if !referenced.contains(&digest) {
                self.blobs.remove(&digest)?;
            }
        }
        let (layers, partial) = self.layers.list()?;
        for digest in layers {
            if !referenced.contains(&digest) {
                self.layers.remove(&digest)?;
            }
        }
        for path in partial {
            remove_all(&path)?;
        }
        for entry in
            fs::read_dir(&self.tmp).context(|| format!("listing {}", self.tmp.display()))?
        {
            remove_all(
                &entry
                    .context(|| format!("listing {}", self.tmp.display()))?
                    .path(),
            )?;
        }
        Ok(true)
    }

    /// Held (shared) by pulls and imports from their first blob to their
    /// commit, so that `prune` leaves their blobs alone.
    pub(crate) fn ingest_lock(&self) -> Result<Lock> {
        lock::acquire(&self.root.join("ingest.lock"), false)
    }

    fn records_lock(&self) -> Result<Lock> {
        lock::acquire(&self.root.join("images.lock"), true)
    }

    fn record(&self, id: &ImageId) -> PathBuf {
        self.images.join(format!("{}.json", id.hex()))
    }

    fn write_record(&self, image: &Image) -> Result<()> {
        let path = self.record(&image.id);
        let mut file = NamedTempFile::with_prefix_in("image-", &self.tmp)
            .context(|| format!("creating a file in {}", self.tmp.display()))?;
        let bytes = serde_json::to_vec_pretty(image).map_err(io::Error::other);
        bytes
            .and_then(|bytes| file.write_all(&bytes))
            .and_then(|()| file.as_file().sync_all())
            .context(|| format!("writing {}", path.display()))?;
        file.persist(&path)
            .map_err(|e| e.error)
            .context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

impl Image {
    fn is_named(&self, reference: &Reference) -> bool {
        match reference.digest() {
            Some(digest) => {
                self.repo_digests
                    .contains(&reference.with_digest(digest.clone()).to_string())
                    || (self.manifest.as_ref() == Some(digest)
                        && self.repo_tags.iter().any(|tag| {
                            tag.parse::<Reference>()
                                .is_ok_and(|t| t.name() == reference.name())
                        }))
            }
            None => self.repo_tags.contains(&reference.to_string()),
        }
    }
}

fn find_by_id<'a>(images: &'a [Image], name: &str) -> Option<&'a Image> {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if hex.len() < 12 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut found = images
        .iter()
        .filter(|image| image.id.hex().starts_with(hex));
    match (found.next(), found.next()) {
        (Some(image), None) => Some(image),
        _ => None,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_by_unique_prefix_of_twelve_or_more() {
        let image = |hex: &str| Image {
            id: Digest::from_hex(hex).unwrap(),
            repo_tags: vec![],
            repo_digests: vec![],
            manifest: None,
            layers: vec![],
            config: ImageConfig::default(),
            added: 0,
        };
        let a = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111";
        let b = "aaaaaaaaaaaa2222222222222222222222222222222222222222222222222222";
        let images = [image(a), image(b)];
        assert_eq!(
            find_by_id(&images, &format!("sha256:{a}"))
                .unwrap()
                .id
                .hex(),
            a
        );
        assert_eq!(find_by_id(&images, "aaaaaaaaaaaa2").unwrap().id.hex(), b);
        assert!(find_by_id(&images, "aaaaaaaaaaaa").is_none(), "ambiguous");
        assert!(find_by_id(&images, "aaaaaa").is_none(), "too short");
        assert!(find_by_id(&images, "busybox").is_none());
    }
}
