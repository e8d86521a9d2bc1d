//! Layer tars unpacked once per layer digest into `layers/<hex>/`, each an
//! overlayfs lower directory: OCI whiteouts become what overlayfs reads
//! (a 0:0 character device for a deleted path, `trusted.overlay.opaque=y`
//! for a directory whose lower contents are hidden).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{CWD, FileType, Mode, XattrFlags, lsetxattr, makedev, mknodat};
use tar::EntryType;

use crate::blobs::{Blobs, remove_all};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const UNPACKING_PREFIX: &str = ".unpack-";
const PAX_XATTR: &str = "SCHILY.xattr.";

#[derive(Clone, Debug)]
pub(crate) struct Layers {
    dir: PathBuf,
}

impl Layers {
    pub(crate) fn new(dir: PathBuf) -> Layers {
        Layers { dir }
    }

    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_dir()
    }

    /// Unpacks the layer blob `digest` unless that was done before. The tree
    /// is built beside its final place and renamed there, so a layer
    /// directory that exists is complete; when two processes race, the first
    /// rename wins and the other's copy is dropped.
    pub(crate) fn ensure(&self, blobs: &Blobs, digest: &Digest) -> Result<PathBuf> {
        let path = self.path(digest);
        if path.is_dir() {
            return Ok(path);
        }
        let tmp = tempfile::Builder::new()
            .prefix(UNPACKING_PREFIX)
            .tempdir_in(&self.dir)
            .context(|| format!("creating a directory in {}", self.dir.display()))?;
        let unpacked =
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).and_then(|()| {
                unpack(
                    BufReader::new(blobs.open(digest).map_err(io::Error::other)?),
                    tmp.path(),
                )
            });
        unpacked.map_err(|source| Error::Unpack {
            digest: digest.to_string(),
            source,
        })?;
        match fs::rename(tmp.path(), &path) {
            Ok(()) => {
                // Renamed away: nothing left for the guard to clean up.
                let _renamed = tmp.keep();
                Ok(path)
            }
            Err(_) if path.is_dir() => Ok(path),
            Err(e) => Err(e).context(|| format!("renaming into {}", path.display())),
        }
    }

    pub(crate) fn remove(&self, digest: &Digest) -> Result<()> {
        remove_all(&self.path(digest))
    }

    /// Unpacked layers, and leftovers of unpacks a crash interrupted.
    pub(crate) fn list(&self) -> Result<(Vec<Digest>, Vec<PathBuf>)> {
        let mut layers = Vec::new();
        let mut partial = Vec::new();
        for entry in
            fs::read_dir(&self.dir).context(|| format!("listing {}", self.dir.display()))?
        {
            let entry = entry.context(|| format!("listing {}", self.dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(UNPACKING_PREFIX) {
                partial.push(entry.path());
            } else if let Ok(digest) = Digest::from_hex(&name) {
                layers.push(digest);
            }
        }
        Ok((layers, partial))
    }
}

/// Unpacks a layer tar (gzip, zstd or plain) into `dest`.
pub(crate) fn unpack(reader: impl BufRead, dest: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(decompress(reader)?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    // Extended attributes are set below, without the overlay's own.
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    // Directories are made last, deepest first, as tar's own unpack does: a
    // read-only directory would refuse its children, and creating children
    // would move the directory's mtime.
    let mut directories = Vec::new();
    let mut opaque = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = relative(&entry.path()?)?;
        let Some(name) = path.file_name().and_then(OsStr::to_str) else {
            continue;
        };
        let parent = path.parent().unwrap_or(Path::new(""));
        if name == OPAQUE_WHITEOUT {
            opaque.push(parent.to_path_buf());
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let target = directory_inside(dest, parent)?.join(hidden);
            remove_all(&target).map_err(io::Error::other)?;
            mknodat(
                CWD,
                &target,
                FileType::CharacterDevice,
                Mode::empty(),
                makedev(0, 0),
            )?;
        } else {
            let xattrs = xattrs(&mut entry)?;
            match entry.header().entry_type() {
                EntryType::Directory => directories.push((entry, xattrs)),
                EntryType::Char | EntryType::Block | EntryType::Fifo => {
                    make_node(dest, &path, entry.header())?;
                    set_xattrs(&dest.join(&path), &xattrs)?;
                }
                kind => {
                    entry.unpack_in(dest)?;
                    if !kind.is_symlink() {
                        set_xattrs(&dest.join(&path), &xattrs)?;
                    }
                }
            }
        }
    }
    directories.sort_by(|(a, _), (b, _)| b.path_bytes().cmp(&a.path_bytes()));
    for (mut directory, xattrs) in directories {
        directory.unpack_in(dest)?;
        set_xattrs(&dest.join(relative(&directory.path()?)?), &xattrs)?;
    }
    for directory in opaque {
        let directory = directory_inside(dest, &directory)?;
        lsetxattr(&directory, OPAQUE_XATTR, b"y", XattrFlags::empty())?;
    }
    Ok(())
}

/// An entry's extended attributes (pax `SCHILY.xattr.*` records) but for
/// `trusted.*`, where overlayfs keeps its opaque, redirect and metacopy
/// marks: a layer must not forge those.
fn xattrs(entry: &mut tar::Entry<impl Read>) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(Vec::new());
    };
    let mut xattrs = Vec::new();
    for extension in extensions {
        let extension = extension?;
        if let Some(name) = extension.key_bytes().strip_prefix(PAX_XATTR.as_bytes())
            && !name.starts_with(b"trusted.")
        {
            xattrs.push((
                OsStr::from_bytes(name).to_owned(),
                extension.value_bytes().to_vec(),
            ));
        }
    }
    Ok(xattrs)
}

fn set_xattrs(path: &Path, xattrs: &[(OsString, Vec<u8>)]) -> io::Result<()> {
    for (name, value) in xattrs {
        lsetxattr(path, name.as_os_str(), value, XattrFlags::empty())?;
    }
    Ok(())
}

fn decompress<'a>(mut reader: impl BufRead + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let magic = reader.fill_buf()?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(reader).map_err(io::Error::other)?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(reader))
    }
}

/// An entry's path relative to the layer root; `..` is refused.
fn relative(path: &Path) -> io::Result<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::other(format!(
                    "entry {} leaves the layer",
                    path.display()
                )));
            }
        }
    }
    Ok(relative)
}

/// `dest/relative`, created as plain directories where missing. A symbolic
/// link on the way is refused: following one could lead out of the layer.
fn directory_inside(dest: &Path, relative: &Path) -> io::Result<PathBuf> {
    let mut path = dest.to_path_buf();
    for part in relative.components() {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    path.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&path)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(path)
}

/// Device nodes and fifos, which the tar crate would write as plain files.
fn make_node(dest: &Path, path: &Path, header: &tar::Header) -> io::Result<()> {
    let parent = directory_inside(dest, path.parent().unwrap_or(Path::new("")))?;
    let target = parent.join(path.file_name().unwrap_or_default());
    let (file_type, device) = match header.entry_type() {
        EntryType::Fifo => (FileType::Fifo, makedev(0, 0)),
        kind => {
            let major = header.device_major()?.unwrap_or(0);
            let minor = header.device_minor()?.unwrap_or(0);
            let file_type = if kind == EntryType::Block {
                FileType::BlockDevice
            } else {
                FileType::CharacterDevice
            };
            (file_type, makedev(major, minor))
        }
    };
    remove_all(&target).map_err(io::Error::other)?;
    mknodat(CWD, &target, file_type, Mode::empty(), device)?;
    let owner = |id: u64| u32::try_from(id).map_err(io::Error::other);
    std::os::unix::fs::lchown(
        &target,
        Some(owner(header.uid()?)?),
        Some(owner(header.gid()?)?),
    )?;
    fs::set_permissions(&target, fs::Permissions::from_mode(header.mode()? & 0o7777))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use super::*;

    fn header(kind: EntryType, size: usize) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(size as u64);
        header
    }

    fn tar_of(entries: &[(&str, EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, content) in entries {
            let mut header = header(*kind, content.len());
            builder.append_data(&mut header, path, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn unpacked(layer: &[u8]) -> io::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir().unwrap();
        unpack(layer, dir.path())?;
        Ok(dir)
    }

    #[test]
    fn plain_gzip_and_zstd_layers_unpack_alike() {
        let layer = tar_of(&[("hello", EntryType::Regular, b"world")]);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gzip, &layer).unwrap();
        let zstd = ruzstd::encoding::compress_to_vec(
            &layer[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for bytes in [layer.clone(), gzip.finish().unwrap(), zstd] {
            let dir = unpacked(&bytes).unwrap();
            assert_eq!(fs::read(dir.path().join("hello")).unwrap(), b"world");
        }
    }

    #[test]
    fn a_whiteout_in_a_missing_directory_creates_it() {
        let dir = unpacked(&tar_of(&[("a/b/.wh.c", EntryType::Regular, b"")])).unwrap();
        let whiteout = fs::symlink_metadata(dir.path().join("a/b/c")).unwrap();
        assert!(whiteout.file_type().is_char_device());
        assert_eq!(whiteout.rdev(), 0);
    }

    /// A pax extended header record: its length counts its own digits.
    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut length = body.len() + 1;
        while length.to_string().len() + body.len() != length {
            length = length.to_string().len() + body.len();
        }
        format!("{length}{body}")
    }

    #[test]
    fn extended_attributes_are_kept_except_the_overlays_own() {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind) in [
            ("dir", EntryType::Directory),
            ("dir/file", EntryType::Regular),
        ] {
            let records = pax_record("SCHILY.xattr.user.tugboat", "kept")
                + &pax_record("SCHILY.xattr.trusted.overlay.opaque", "y");
            let mut extension = header(EntryType::XHeader, records.len());
            builder
                .append_data(&mut extension, "PaxHeaders/entry", records.as_bytes())
                .unwrap();
            let mut entry = header(kind, 0);
            builder.append_data(&mut entry, path, &[][..]).unwrap();
        }
        let dir = unpacked(&builder.into_inner().unwrap()).unwrap();
        for path in ["dir", "dir/file"] {
            let path = dir.path().join(path);
            let mut value = [0u8; 16];
            let length = rustix::fs::getxattr(&path, "user.tugboat", &mut value).unwrap();
            assert_eq!(&value[..length], b"kept");
            let forged = rustix::fs::getxattr(&path, "trusted.overlay.opaque", &mut value);
            assert_eq!(forged, Err(rustix::io::Errno::NODATA), "{}", path.display());
        }
    }

    #[test]
    fn fifos_are_made_as_fifos() {
        let dir = unpacked(&tar_of(&[("run/pipe", EntryType::Fifo, b"")])).unwrap();
        let fifo = fs::symlink_metadata(dir.path().join("run/pipe")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o644);
    }

    #[test]
    fn entries_leaving_the_layer_are_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut escape = header(EntryType::Regular, 1);
        // Header::set_path refuses "..", as it should; write the name raw.
        escape.as_old_mut().name[..9].copy_from_slice(b"../escape");
        escape.set_cksum();
        builder.append(&escape, &b"x"[..]).unwrap();
        let layer = builder.into_inner().unwrap();
        assert!(unpacked(&layer).is_err());

        // A whiteout may not reach through a symbolic link either.
        let mut builder = tar::Builder::new(Vec::new());
        let mut link = header(EntryType::Symlink, 0);
        builder.append_link(&mut link, "etc", "/etc").unwrap();
        let mut whiteout = header(EntryType::Regular, 0);
        builder
            .append_data(&mut whiteout, "etc/.wh.passwd", &[][..])
            .unwrap();
        let error = unpacked(&builder.into_inner().unwrap()).unwrap_err();
        assert!(error.to_string().contains("not a directory"), "{error}");
    }
}
