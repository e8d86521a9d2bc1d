//! The OCI runtime spec (`config.json`) libcontainer runs a container from,
//! made from the agent's [`ContainerSpec`] and the pod's [`Sandbox`].

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use libcontainer::oci_spec::OciSpecError;
use libcontainer::oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder, get_default_mounts,
};

use crate::spec::{ContainerSpec, Sandbox, Security};

/// The capabilities containerd gives a container that asks for none.
const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The CFS period quotas are measured against, in microseconds.
const CPU_PERIOD: u64 = 100_000;

pub(crate) fn runtime_spec(
    sandbox: &Sandbox,
    spec: &ContainerSpec,
    rootfs: &Path,
    cgroups_path: &Path,
) -> Result<Spec, OciSpecError> {
    let (uid, gid) = spec.user.unwrap_or((0, 0));
    let capabilities = capabilities(&spec.security);
    let process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(UserBuilder::default().uid(uid).gid(gid).build()?)
        .args(spec.args.clone())
        .env(environment(sandbox, spec))
        .cwd(spec.working_dir.as_deref().unwrap_or("/"))
        .no_new_privileges(spec.security.no_new_privileges)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(capabilities.clone())
                .effective(capabilities.clone())
                .permitted(capabilities)
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()?,
        )
        // The shim's own limits, as containerd leaves them.
        .rlimits(Vec::new())
        .build()?;

    let mut namespaces = vec![
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Mount)
            .build()?,
        joined(LinuxNamespaceType::Ipc, Some(&sandbox.ipcns_path))?,
    ];
    let pid_namespace = match (&sandbox.pidns_path, spec.share_pid_with_sandbox) {
        (Some(path), true) => Some(path.as_path()),
        _ => None,
    };
    namespaces.push(joined(LinuxNamespaceType::Pid, pid_namespace)?);
    // Host-network pods stay in the host's network and UTS namespaces.
    if let Some(netns) = &sandbox.netns_path {
        namespaces.push(joined(LinuxNamespaceType::Network, Some(netns))?);
    }
    if let Some(utsns) = &sandbox.utsns_path {
        namespaces.push(joined(LinuxNamespaceType::Uts, Some(utsns))?);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(cgroups_path)
        .resources(resources(spec)?);
    if spec.security.privileged {
        linux = linux
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new())
            .devices(host_devices(Path::new("/dev"))?);
    }

    let mut oci = SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(spec.security.read_only_rootfs)
                .build()?,
        )
        .mounts(mounts(spec)?)
        .linux(linux.build()?)
        .build()?;
    // The sandbox named its UTS namespace; host-network pods keep the host's name.
    oci.set_hostname(None);
    Ok(oci)
}

/// A namespace of the sandbox to join, or a new one when there is no path.
fn joined(
    typ: LinuxNamespaceType,
    path: Option<&Path>,
) -> Result<libcontainer::oci_spec::runtime::LinuxNamespace, OciSpecError> {
    let mut namespace = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(path) = path {
        namespace = namespace.path(path);
    }
    namespace.build()
}

/// The container's variables, with the `PATH` and `HOSTNAME` a container
/// gets from Docker and containerd when the image and pod do not set them.
fn environment(sandbox: &Sandbox, spec: &ContainerSpec) -> Vec<String> {
    let has = |name: &str| spec.env.iter().any(|(key, _)| key == name);
    let mut env = Vec::with_capacity(spec.env.len() + 2);
    if !has("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOSTNAME") {
        env.push(format!("HOSTNAME={}", sandbox.hostname));
    }
    env.extend(spec.env.iter().map(|(key, value)| format!("{key}={value}")));
    env
}

/// Default capabilities with `add` and `drop` applied (`ALL` in either
/// means every capability, drop first, as the kubelet does); all of the
/// agent's own for a privileged container.
fn capabilities(security: &Security) -> Capabilities {
    let all = || -> Capabilities {
        caps::read(None, caps::CapSet::Bounding)
            .unwrap_or_default()
            .iter()
            .filter_map(|cap| parse_capability(&cap.to_string()))
            .collect()
    };
    if security.privileged {
        return all();
    }
    let names = |list: &[String]| -> (bool, HashSet<Capability>) {
        let every = list.iter().any(|name| name.eq_ignore_ascii_case("ALL"));
        (
            every,
            list.iter().filter_map(|n| parse_capability(n)).collect(),
        )
    };
    let (drop_all, drop) = names(&security.capabilities_drop);
    let (add_all, add) = names(&security.capabilities_add);
    if add_all {
        return all();
    }
    let mut set: Capabilities = if drop_all {
        HashSet::new()
    } else {
        DEFAULT_CAPABILITIES
            .into_iter()
            .filter(|cap| !drop.contains(cap))
            .collect()
    };
    set.extend(add);
    set
}

/// `NET_ADMIN` and `CAP_NET_ADMIN` both name `Capability::NetAdmin`.
fn parse_capability(name: &str) -> Option<Capability> {
    let upper = name.to_ascii_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).parse().ok()
}

/// Directories under /dev whose devices a container has its own of (or
/// that hold none), and the host's console: left out of a privileged
/// container's devices, as containerd leaves them out.
const NOT_HOST_DEVICES: [&str; 8] = [
    "pts",
    "shm",
    "fd",
    "mqueue",
    ".lxc",
    ".lxd-mounts",
    ".udev",
    "console",
];

/// Every block and character device under `dir` (the host's /dev), with its
/// numbers, mode and owner: a privileged container gets them all, as on
/// Kubernetes. Symbolic links are left out.
fn host_devices(dir: &Path) -> Result<Vec<LinuxDevice>, OciSpecError> {
    let mut devices = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(devices);
    };
    for entry in entries.flatten() {
        if NOT_HOST_DEVICES
            .iter()
            .any(|name| entry.file_name() == *name)
        {
            continue;
        }
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let typ = if file_type.is_dir() {
            devices.extend(host_devices(&path)?);
            continue;
        } else if file_type.is_block_device() {
            LinuxDeviceType::B
        } else if file_type.is_char_device() {
            LinuxDeviceType::C
        } else {
            continue;
        };
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        let number = metadata.rdev();
        devices.push(
            LinuxDeviceBuilder::default()
                .path(path)
                .typ(typ)
                .major(libc::major(number) as i64)
                .minor(libc::minor(number) as i64)
                .file_mode(metadata.mode() & 0o7777)
                .uid(metadata.uid())
                .gid(metadata.gid())
                .build()?,
        );
    }
    Ok(devices)
}

fn resources(
    spec: &ContainerSpec,
) -> Result<libcontainer::oci_spec::runtime::LinuxResources, OciSpecError> {
    let limits = &spec.resources;
    let mut resources = LinuxResourcesBuilder::default();
    if spec.security.privileged {
        // Every device, as the host's are all in the container.
        resources = resources.devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::A)
                .access("rwm")
                .build()?,
        ]);
    }
    if let Some(limit) = limits.memory_limit_bytes {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if limits.cpu_quota_millis.is_some() || limits.cpu_shares.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(millis) = limits.cpu_quota_millis {
            cpu = cpu
                .quota((millis * CPU_PERIOD / 1000).max(1000) as i64)
                .period(CPU_PERIOD);
        }
        if let Some(shares) = limits.cpu_shares {
            cpu = cpu.shares(shares);
        }
        resources = resources.cpu(cpu.build()?);
    }
    if let Some(limit) = limits.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }
    resources.build()
}

/// The usual `/proc`, `/dev`, `/sys`... (`/sys` writable only for
/// privileged containers) and the pod's bind mounts.
fn mounts(spec: &ContainerSpec) -> Result<Vec<Mount>, OciSpecError> {
    let mut mounts = get_default_mounts();
    if spec.security.privileged {
        for mount in &mut mounts {
            if mount.destination() == Path::new("/sys") {
                let options = mount.options().clone().unwrap_or_default();
                mount.set_options(Some(options.into_iter().filter(|o| o != "ro").collect()));
            }
        }
    }
    for bind in &spec.mounts {
        let mut options = vec!["rbind".to_owned(), "rprivate".to_owned()];
        if bind.read_only {
            options.push("ro".to_owned());
        }
        mounts.push(
            MountBuilder::default()
                .destination(&bind.destination)
                .typ("bind")
                .source(&bind.source)
                .options(options)
                .build()?,
        );
    }
    Ok(mounts)
}
