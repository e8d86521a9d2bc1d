//! Content-addressed blobs: `blobs/sha256/<hex>`, each written to a temporary
//! file, checked against its digest and renamed into place, so a blob that
//! exists is always whole and correct.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

#[derive(Clone, Debug)]
pub(crate) struct Blobs {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Blobs {
    pub(crate) fn new(dir: PathBuf, tmp: PathBuf) -> Blobs {
        Blobs { dir, tmp }
    }

    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub(crate) fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub(crate) fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        Ok(fs::metadata(&path)
            .context(|| format!("reading {}", path.display()))?
            .len())
    }

    pub(crate) fn open(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).context(|| format!("opening blob {}", path.display()))
    }

    /// Reads a small blob (a manifest or a config) whole, checking its digest.
    pub(crate) fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.open(digest)?
            .read_to_end(&mut bytes)
            .context(|| format!("reading blob {digest}"))?;
        check(&format!("blob {digest}"), digest, &Digest::of(&bytes))?;
        Ok(bytes)
    }

    pub(crate) fn writer(&self) -> Result<BlobWriter> {
        let file = NamedTempFile::with_prefix_in("blob-", &self.tmp)
            .context(|| format!("creating a file in {}", self.tmp.display()))?;
        Ok(BlobWriter {
            file: HashingWriter::new(file),
            dir: self.dir.clone(),
        })
    }

    /// Stores `reader`'s content; with `expected`, refuses other content.
    pub(crate) fn write_from(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<Digest> {
        let mut writer = self.writer()?;
        io::copy(&mut reader, &mut writer).context(|| format!("storing {what}"))?;
        writer.commit(expected, what)
    }

    pub(crate) fn write(
        &self,
        bytes: &[u8],
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<Digest> {
        self.write_from(bytes, expected, what)
    }

    pub(crate) fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn list(&self) -> Result<Vec<Digest>> {
        let entries =
            fs::read_dir(&self.dir).context(|| format!("listing {}", self.dir.display()))?;
        let mut digests = Vec::new();
        for entry in entries {
            let entry = entry.context(|| format!("listing {}", self.dir.display()))?;
            if let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|name| Digest::from_hex(name).ok())
            {
                digests.push(digest);
            }
        }
        Ok(digests)
    }
}

/// A blob being written; it enters the store only through `commit`.
pub(crate) struct BlobWriter {
    file: HashingWriter<NamedTempFile>,
    dir: PathBuf,
}

impl BlobWriter {
    pub(crate) fn written(&self) -> u64 {
        self.file.written()
    }

    /// Checks the content against `expected`, syncs it and renames it into place.
    pub(crate) fn commit(self, expected: Option<&Digest>, what: &str) -> Result<Digest> {
        let (file, digest) = self.file.finish();
        if let Some(expected) = expected {
            check(what, expected, &digest)?;
        }
        file.as_file()
            .sync_all()
            .context(|| format!("syncing {what}"))?;
        let path = self.dir.join(digest.hex());
        file.persist(&path)
            .map_err(|e| e.error)
            .context(|| format!("storing {}", path.display()))?;
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn check(what: &str, expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            path: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// Removes a directory tree or file if it is there.
pub(crate) fn remove_all(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.context(|| format!("removing {}", path.display()))
}
