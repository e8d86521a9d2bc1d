//! A container's root file system: the image's unpacked layers under an
//! overlayfs with a writable upper directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags, fsconfig_create,
    fsconfig_set_string, fsmount, fsopen, move_mount, unmount as umount,
};

/// Mounts `lowers` (bottom first, as `ImageStore::layer_dirs` gives them)
/// under `upper` at `target`, creating `upper`, `work` and `target` if they
/// are missing. `upper` and `work` must be on the same file system.
///
/// Uses the mount API's `lowerdir+` (Linux 6.8 and later), which takes one
/// layer at a time, so an image's layer count is not bound by the size of
/// one mount option string.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> io::Result<()> {
    for dir in [upper, work, target] {
        fs::create_dir_all(dir)?;
    }
    let failed = |step: &str, e: rustix::io::Errno| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("overlay on {}: {step}: {e}", target.display()),
        )
    };
    let context =
        fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| failed("fsopen", e))?;
    fsconfig_set_string(&context, "source", "tugboat").map_err(|e| failed("source", e))?;
    for lower in lowers.iter().rev() {
        fsconfig_set_string(&context, "lowerdir+", lower)
            .map_err(|e| failed(&format!("lowerdir+ {}", lower.display()), e))?;
    }
    fsconfig_set_string(&context, "upperdir", upper).map_err(|e| failed("upperdir", e))?;
    fsconfig_set_string(&context, "workdir", work).map_err(|e| failed("workdir", e))?;
    fsconfig_create(&context).map_err(|e| failed("create", e))?;
    let mount = fsmount(
        &context,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map_err(|e| failed("fsmount", e))?;
    move_mount(
        &mount,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| failed("move_mount", e))
}

/// Unmounts what `mount_overlay` mounted at `target`.
pub fn unmount(target: &Path) -> io::Result<()> {
    umount(target, UnmountFlags::empty()).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("unmounting {}: {e}", target.display()),
        )
    })
}
