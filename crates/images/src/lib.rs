//! The node's image store: OCI and Docker images pulled from registries or
//! imported from archives, kept by digest, unpacked once per layer and
//! mounted as overlayfs roots for containers.
//!
//! # Map
//!
//! ```text
//! reference   Reference: image names normalised as Docker and Kubernetes do
//!             ("busybox" = "docker.io/library/busybox:latest")
//! digest      Digest ("sha256:<hex>"), ImageId (the config's digest)
//! store       ImageStore: open, list, get, resolve, remove, layer_dirs;
//!             Image (tags, repo digests, image_ref, size), Layer, Removed
//! config      ImageConfig: entrypoint, cmd, env, working dir, user, ports
//! import      ImageStore::import: OCI archives and `docker save` archives
//! pull        ImageStore::pull from OCI and Docker v2 registries;
//!             PullOptions, RegistryAuth (from imagePullSecrets), Progress
//! gc          ImageStore::gc: drop unused images when the disk fills
//!             (GcThresholds, the kubelet's 85/80 percent by default)
//! rootfs      mount_overlay / unmount: a container's root filesystem
//!             (overlayfs through the mount API, Linux 6.8 or later)
//! blobs       content-addressed files, written by temp file and rename (private)
//! layers      layer tars (gzip, zstd, plain) unpacked with whiteouts made
//!             overlay-ready (private)
//! manifest    the JSON of manifests, indexes and configs (private)
//! ```
//!
//! # On disk (`ImageStore::open(root)`)
//!
//! ```text
//! root/blobs/sha256/<hex>   manifests, configs and layer tars, by digest
//! root/layers/<hex>/        one directory per layer blob, an overlay lowerdir
//! root/images/<hex>.json    one record per image, named by its image ID
//! root/tmp/                 downloads and imports in progress
//! root/images.lock          held while records change
//! root/ingest.lock          shared by pulls and imports, exclusive to prune
//! ```
//!
//! Layers are unpacked as overlayfs lower directories: a deleted file
//! (`.wh.name`) becomes a 0:0 character device and an opaque directory
//! (`.wh..wh..opq`) gets `trusted.overlay.opaque=y`, so stacking
//! `ImageStore::layer_dirs` with [`rootfs::mount_overlay`] gives the image's
//! file system. Several processes (the agent, `tug images`) may share one
//! root: records change under a lock file, and unreferenced blobs and layers
//! are only deleted while no pull or import is running.
//!
//! Local operations are blocking (call them from `spawn_blocking` in async
//! code); `pull` is async and does its file work on blocking threads.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use tugboat_images::{ImageStore, PullOptions, Reference, rootfs};
//!
//! let store = ImageStore::open("/var/lib/tugboat/images")?;
//! let reference: Reference = "busybox".parse()?;
//! let image = match store.resolve(&reference.to_string())? {
//!     Some(image) => image,
//!     None => store.pull(&reference, &PullOptions::default()).await?,
//! };
//! let container = Path::new("/run/tugboat/c1");
//! rootfs::mount_overlay(
//!     &store.layer_dirs(&image),
//!     &container.join("upper"),
//!     &container.join("work"),
//!     &container.join("rootfs"),
//! )?;
//! # Ok(()) }
//! ```

mod blobs;
mod config;
mod digest;
mod error;
mod gc;
mod import;
mod layers;
mod lock;
mod manifest;
mod pull;
mod reference;
pub mod rootfs;
mod store;

pub use config::ImageConfig;
pub use digest::{Digest, ImageId};
pub use error::{Error, Result};
pub use gc::{GcReport, GcThresholds};
pub use pull::{Progress, ProgressPhase, PullOptions, RegistryAuth};
pub use reference::Reference;
pub use store::{Image, ImageStore, Layer, Removed};
