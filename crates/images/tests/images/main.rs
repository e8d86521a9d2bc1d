//! The image store against real archives, a real registry and real
//! overlayfs mounts (as root, like the node agent).

mod common;
mod import;
mod registry;
mod registry_server;
mod rootfs;
