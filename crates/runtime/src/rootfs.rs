//! A container's root filesystem: the image's unpacked layers as overlayfs
//! lower directories under a writable layer of its own.

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// Mounts the overlay at `<dir>/merged` with `<dir>/upper` and `<dir>/work`
/// beside it; `lowers` are bottom first, as image layers are listed.
pub(crate) fn mount_overlay(lowers: &[PathBuf], dir: &Path) -> io::Result<PathBuf> {
    if lowers.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an image needs at least one layer",
        ));
    }
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d)?;
    }
    // overlayfs lists lower directories top first.
    let lowerdir = lowers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join(":");
    let options = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )?;
    Ok(merged)
}

/// Detaches whatever is mounted at `path`; nothing mounted, or no such
/// path, is not an error, so that removal can be retried.
pub(crate) fn unmount(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(err) => Err(err.into()),
    }
}
