//! Telling a pod's live network namespace from a path whose namespace is
//! gone (unmounted, or the machine rebooted since).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::statfs::{NSFS_MAGIC, statfs};
use serde::{Deserialize, Serialize};

/// Which namespace a path held: namespace inode numbers are unique among
/// the namespaces alive on one boot of the machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetnsId {
    boot_id: String,
    inode: u64,
}

/// The namespace mounted at `path`, or `None` when no namespace is there.
pub(crate) fn identify(path: &Path) -> Option<NetnsId> {
    if statfs(path).ok()?.filesystem_type() != NSFS_MAGIC {
        return None;
    }
    let inode = std::fs::metadata(path).ok()?.ino();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(NetnsId {
        boot_id: boot_id.trim().to_owned(),
        inode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_file_is_one_and_a_plain_file_is_not() {
        assert!(identify(Path::new("/proc/self/ns/net")).is_some());
        assert_eq!(
            identify(Path::new("/proc/self/ns/net")),
            identify(Path::new("/proc/thread-self/ns/net"))
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        assert_eq!(identify(file.path()), None);
        assert_eq!(identify(Path::new("/nonexistent/net")), None);
    }
}
