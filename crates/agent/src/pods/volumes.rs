//! A pod's volumes on the node, and each container's mounts of them.
//!
//! Everything a pod gets lives under its own directory
//! (`<agent>/pods/<uid>/`): emptyDirs, the files of ConfigMap, Secret,
//! downward API and projected volumes, and the `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf` every container sees. Removing the directory removes
//! the pod's storage; a `medium: Memory` emptyDir is a tmpfs unmounted first.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource, Volume,
};
use tugboat_api::quantity;
use tugboat_runtime::Mount;

use super::dns::{ClusterDns, ResolvConf, hosts_line, resolv_conf};
use super::spec::{ConfigError, References, field_value};
use super::tokens::TokenKey;

/// The pod's directory and what is in it.
pub struct PodDir {
    root: PathBuf,
}

impl PodDir {
    pub fn new(pods_dir: &Path, uid: &str) -> PodDir {
        PodDir {
            root: pods_dir.join(uid),
        }
    }

    fn volume(&self, kind: &str, name: &str) -> PathBuf {
        self.root.join("volumes").join(kind).join(name)
    }

    /// Where the pod's emptyDir `name` lives.
    pub fn empty_dir(&self, name: &str) -> PathBuf {
        self.volume("empty-dir", name)
    }

    /// Makes every volume of the pod and the files all its containers share.
    /// Safe to call again: existing emptyDirs keep their content, ConfigMap
    /// and Secret files are rewritten with current data.
    pub fn prepare(
        &self,
        refs: &References,
        pod_ip: Option<IpAddr>,
        dns: &ClusterDns,
    ) -> Result<(), ConfigError> {
        let pod = refs.pod;
        fs::create_dir_all(&self.root).map_err(io_error)?;
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            self.prepare_volume(volume, refs)?;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let hostname = spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| name.clone());
        let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
        let hosts = if host_network {
            fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            let ip = pod_ip.map_or_else(|| "127.0.1.1".to_owned(), |ip| ip.to_string());
            format!(
                "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}",
                hosts_line(pod, &ip, &hostname, dns)
            )
        };
        write_file(&self.root.join("etc-hosts"), hosts.as_bytes(), 0o644)?;
        write_file(
            &self.root.join("etc-hostname"),
            format!("{hostname}\n").as_bytes(),
            0o644,
        )?;
        let host = ResolvConf::parse(&fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        let resolv = resolv_conf(pod, host, dns).render();
        write_file(&self.root.join("resolv.conf"), resolv.as_bytes(), 0o644)
    }

    fn prepare_volume(&self, volume: &Volume, refs: &References) -> Result<(), ConfigError> {
        let name = &volume.name;
        if let Some(empty) = &volume.empty_dir {
            let dir = self.empty_dir(name);
            if !dir.exists() {
                fs::create_dir_all(&dir).map_err(io_error)?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(io_error)?;
                if empty.medium.as_deref() == Some("Memory") {
                    let size = empty
                        .size_limit
                        .as_ref()
                        .and_then(|q| quantity::value(&q.0));
                    mount_tmpfs(&dir, size).map_err(io_error)?;
                }
            }
        } else if let Some(host) = &volume.host_path {
            let path = Path::new(&host.path);
            match host.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => fs::create_dir_all(path).map_err(io_error)?,
                "FileOrCreate" if !path.exists() => {
                    write_file(path, b"", 0o644)?;
                }
                "Directory" if !path.is_dir() => {
                    return Err(ConfigError(format!(
                        "hostPath type check failed: {} is not a directory",
                        host.path
                    )));
                }
                "File" if !path.is_file() => {
                    return Err(ConfigError(format!(
                        "hostPath type check failed: {} is not a file",
                        host.path
                    )));
                }
                _ => {}
            }
        } else if volume.persistent_volume_claim.is_some() {
            // Linked to its volume's directory by `link_claim` once bound.
        } else if let Some(cm) = &volume.config_map {
            let files = object_files(
                "configmap",
                refs.config_maps,
                &cm.name,
                cm.items.as_deref(),
                cm.optional,
                cm.default_mode,
            )?;
            write_volume(&self.volume("configmap", name), &files)?;
        } else if let Some(secret) = &volume.secret {
            let secret_name = secret.secret_name.as_deref().unwrap_or_default();
            let mode = secret.default_mode.or(Some(0o644));
            let files = object_files(
                "secret",
                refs.secrets,
                secret_name,
                secret.items.as_deref(),
                secret.optional,
                mode,
            )?;
            write_volume(&self.volume("secret", name), &files)?;
        } else if let Some(downward) = &volume.downward_api {
            let files = downward_files(downward.items.as_deref(), downward.default_mode, refs)?;
            write_volume(&self.volume("downward-api", name), &files)?;
        } else if let Some(projected) = &volume.projected {
            write_volume(
                &self.volume("projected", name),
                &projected_files(projected, refs)?,
            )?;
        } else {
            return Err(ConfigError(format!(
                "volume {name:?}: this volume type is not supported by this node yet"
            )));
        }
        Ok(())
    }

    /// The bind mounts of one container: its volumeMounts and the pod's
    /// hosts, hostname and resolv.conf files.
    pub fn mounts(&self, pod: &Pod, container: &Container) -> Result<Vec<Mount>, ConfigError> {
        let volumes: BTreeMap<&str, &Volume> = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .map(|v| (v.name.as_str(), v))
            .collect();
        let mut mounts = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = volumes.get(mount.name.as_str()).ok_or_else(|| {
                ConfigError(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    mount.name, container.name
                ))
            })?;
            let (source, always_read_only) = self.source(volume);
            let source = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
                Some(sub) => {
                    let path = source.join(relative(sub)?);
                    if !path.exists() {
                        fs::create_dir_all(&path).map_err(io_error)?;
                    }
                    path
                }
                None => source,
            };
            mounts.push(Mount {
                source,
                destination: mount.mount_path.clone(),
                read_only: always_read_only || mount.read_only.unwrap_or(false),
            });
        }
        for (file, dest) in [
            ("etc-hosts", "/etc/hosts"),
            ("etc-hostname", "/etc/hostname"),
            ("resolv.conf", "/etc/resolv.conf"),
        ] {
            if !mounts.iter().any(|m| m.destination == dest) {
                mounts.push(Mount {
                    source: self.root.join(file),
                    destination: dest.to_owned(),
                    read_only: false,
                });
            }
        }
        Ok(mounts)
    }

    /// Where a volume's content is on the node, and whether Kubernetes
    /// always mounts it read-only.
    fn source(&self, volume: &Volume) -> (PathBuf, bool) {
        let name = &volume.name;
        if let Some(host) = &volume.host_path {
            (PathBuf::from(&host.path), false)
        } else if let Some(claim) = &volume.persistent_volume_claim {
            (self.volume("pvc", name), claim.read_only == Some(true))
        } else if volume.config_map.is_some() {
            (self.volume("configmap", name), true)
        } else if volume.secret.is_some() {
            (self.volume("secret", name), true)
        } else if volume.downward_api.is_some() {
            (self.volume("downward-api", name), true)
        } else if volume.projected.is_some() {
            (self.volume("projected", name), true)
        } else {
            (self.empty_dir(name), false)
        }
    }

    /// Points the pod's claim volume `name` at `target`, the directory of
    /// the PersistentVolume bound to it: a link, so that removing the pod's
    /// directory leaves the data where the volume keeps it.
    pub fn link_claim(&self, name: &str, target: &Path) -> io::Result<()> {
        let link = self.volume("pvc", name);
        fs::create_dir_all(link.parent().expect("volume paths have parents"))?;
        match fs::remove_file(&link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::os::unix::fs::symlink(target, &link)
    }

    /// Removes the pod's emptyDirs with their content, unmounting
    /// memory-backed ones first: what a pod that ran its course gives back.
    pub fn remove_empty_dirs(&self) -> io::Result<()> {
        let empty_dirs = self.root.join("volumes").join("empty-dir");
        if let Ok(entries) = fs::read_dir(&empty_dirs) {
            for entry in entries.flatten() {
                // Not a mount point unless it was a tmpfs: EINVAL is expected.
                let _ = rustix::mount::unmount(entry.path(), rustix::mount::UnmountFlags::DETACH);
            }
        }
        remove_dir(&empty_dirs)
    }

    /// Removes the pod's directory, emptyDirs first.
    pub fn remove(&self) -> io::Result<()> {
        self.remove_empty_dirs()?;
        remove_dir(&self.root)
    }
}

/// A file of a volume: its path in the volume, content and mode.
type File = (String, Vec<u8>, i32);

/// The files of a ConfigMap or Secret (`kind`, looked up in `objects`) as a
/// volume or a projected volume source shows them.
fn object_files(
    kind: &str,
    objects: &BTreeMap<String, BTreeMap<String, String>>,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: Option<bool>,
    mode: Option<i32>,
) -> Result<Vec<File>, ConfigError> {
    let data = objects.get(name);
    if data.is_none() && optional != Some(true) {
        return Err(ConfigError(format!("{kind} {name:?} not found")));
    }
    key_files(data, items, mode)
}

fn downward_files(
    items: Option<&[DownwardAPIVolumeFile]>,
    default_mode: Option<i32>,
    refs: &References,
) -> Result<Vec<File>, ConfigError> {
    let mut files = Vec::new();
    for item in items.into_iter().flatten() {
        let Some(field) = &item.field_ref else {
            continue;
        };
        let mode = item.mode.or(default_mode).unwrap_or(0o644);
        let value = field_value(&field.field_path, refs)?;
        files.push((item.path.clone(), value.into_bytes(), mode));
    }
    Ok(files)
}

/// A projected volume: the files of all its sources in one directory, a
/// service account token among them.
fn projected_files(
    projected: &ProjectedVolumeSource,
    refs: &References,
) -> Result<Vec<File>, ConfigError> {
    let mode = projected.default_mode.or(Some(0o644));
    let mut files = Vec::new();
    for source in projected.sources.iter().flatten() {
        if let Some(cm) = &source.config_map {
            files.extend(object_files(
                "configmap",
                refs.config_maps,
                &cm.name,
                cm.items.as_deref(),
                cm.optional,
                mode,
            )?);
        } else if let Some(secret) = &source.secret {
            files.extend(object_files(
                "secret",
                refs.secrets,
                &secret.name,
                secret.items.as_deref(),
                secret.optional,
                mode,
            )?);
        } else if let Some(downward) = &source.downward_api {
            files.extend(downward_files(downward.items.as_deref(), mode, refs)?);
        } else if let Some(projection) = &source.service_account_token {
            let token = refs.tokens.get(&TokenKey::of(projection)).ok_or_else(|| {
                ConfigError("the service account token is not issued yet".to_owned())
            })?;
            files.push((
                projection.path.clone(),
                token.clone().into_bytes(),
                mode.unwrap_or(0o644),
            ));
        } else {
            return Err(ConfigError(
                "projected volume: this source type is not supported by this node yet".to_owned(),
            ));
        }
    }
    Ok(files)
}

/// The files of a ConfigMap or Secret volume: every key, or just `items`.
fn key_files(
    data: Option<&BTreeMap<String, String>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
) -> Result<Vec<File>, ConfigError> {
    let mode = default_mode.unwrap_or(0o644);
    let Some(data) = data else {
        return Ok(Vec::new());
    };
    match items {
        None => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes(), mode))
            .collect()),
        Some(items) => items
            .iter()
            .map(|item| {
                let value = data.get(&item.key).ok_or_else(|| {
                    ConfigError(format!(
                        "configmap or secret references non-existent key {:?}",
                        item.key
                    ))
                })?;
                Ok((
                    item.path.clone(),
                    value.clone().into_bytes(),
                    item.mode.unwrap_or(mode),
                ))
            })
            .collect(),
    }
}

/// Replaces a volume's files at once, as the kubelet's atomic writer does:
/// the files go into a fresh `..<time>` directory inside the volume, then the
/// `..data` link is switched to it with one rename, and each top-level name
/// is a link through `..data`. The volume directory itself never changes, so
/// containers that bind-mounted it see every update, never half of one.
fn write_volume(dir: &Path, files: &[File]) -> Result<(), ConfigError> {
    fs::create_dir_all(dir).map_err(io_error)?;
    let payload = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let mut top_level = std::collections::BTreeSet::new();
    for (path, content, mode) in files {
        let path = relative(path)?;
        write_file(&dir.join(&payload).join(path), content, *mode as u32)?;
        top_level.extend(path.components().next().map(|c| c.as_os_str().to_owned()));
    }
    fs::create_dir_all(dir.join(&payload)).map_err(io_error)?;
    let staged_link = dir.join("..data_tmp");
    let _ = fs::remove_file(&staged_link);
    std::os::unix::fs::symlink(&payload, &staged_link).map_err(io_error)?;
    fs::rename(&staged_link, dir.join("..data")).map_err(io_error)?;
    for entry in fs::read_dir(dir).map_err(io_error)?.flatten() {
        let name = entry.file_name();
        let hidden = name.as_encoded_bytes().starts_with(b"..");
        if hidden && name != "..data" && name != payload.as_str() {
            let _ = fs::remove_dir_all(entry.path());
        } else if !(hidden || top_level.contains(&name) && is_link(&entry)) {
            // Gone from the payload, or a plain file a volume written before
            // this layout left: the links below replace it.
            let _ = fs::remove_dir_all(entry.path()).or_else(|_| fs::remove_file(entry.path()));
        }
    }
    for name in &top_level {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link).map_err(io_error)?;
        }
    }
    Ok(())
}

fn is_link(entry: &fs::DirEntry) -> bool {
    entry.file_type().is_ok_and(|t| t.is_symlink())
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), ConfigError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error)?;
    }
    fs::write(path, content).map_err(io_error)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_error)
}

/// A path inside a volume: relative, with no `..` to climb out of it.
fn relative(path: &str) -> Result<&Path, ConfigError> {
    let p = Path::new(path);
    if p.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(p)
    } else {
        Err(ConfigError(format!(
            "{path:?} must be a relative path without '..'"
        )))
    }
}

fn mount_tmpfs(dir: &Path, size: Option<i128>) -> io::Result<()> {
    let options = std::ffi::CString::new(size.map(|s| format!("size={s}")).unwrap_or_default())
        .map_err(io::Error::other)?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
        options.as_c_str(),
    )
    .map_err(io::Error::from)
}

/// Removes a directory tree; one already gone is fine.
fn remove_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn io_error(e: io::Error) -> ConfigError {
    ConfigError(e.to_string())
}
