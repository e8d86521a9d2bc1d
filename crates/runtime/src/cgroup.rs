//! Where containers sit in the cgroup tree and what it tells about them.
//! libcgroups manages the limits; this module names the paths
//! (`/tugboat/pod<uid>/<container>`, under each v1 controller or under the
//! v2 root), reads OOM kills and removes what is left.

use std::path::{Path, PathBuf};

use libcgroups::common::{
    AnyCgroupManager, CgroupConfig, CgroupManager, CgroupSetup, DEFAULT_CGROUP_ROOT,
};
use libcgroups::v1::ControllerType;

use crate::ContainerStats;

pub(crate) fn pod_path(pod_uid: &str) -> PathBuf {
    PathBuf::from(format!("/tugboat/pod{pod_uid}"))
}

pub(crate) fn container_path(pod_uid: &str, id: &str) -> PathBuf {
    pod_path(pod_uid).join(id)
}

fn manager(path: &Path) -> Option<AnyCgroupManager> {
    libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path: path.to_owned(),
        systemd_cgroup: false,
        container_name: String::new(),
    })
    .ok()
}

/// How many processes the kernel's OOM killer killed in this cgroup: the
/// `oom_kill` line of `memory.oom_control` (v1) or `memory.events` (v2).
pub(crate) fn oom_kills(path: &Path) -> u64 {
    let relative = path.strip_prefix("/").unwrap_or(path);
    let file = match libcgroups::common::get_cgroup_setup() {
        Ok(CgroupSetup::Unified) => Path::new(DEFAULT_CGROUP_ROOT)
            .join(relative)
            .join("memory.events"),
        _ => match libcgroups::v1::util::get_subsystem_mount_point(&ControllerType::Memory) {
            Ok(mount) => mount.join(relative).join("memory.oom_control"),
            Err(_) => return 0,
        },
    };
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Kills every process still in the cgroup and removes it (in every
/// controller); a cgroup that is already gone is fine.
pub(crate) fn remove(path: &Path) -> Result<(), String> {
    match manager(path) {
        Some(manager) => manager.remove().map_err(|err| err.to_string()),
        None => Ok(()),
    }
}

/// The processes in the cgroup and its children.
pub(crate) fn pids(path: &Path) -> Vec<i32> {
    manager(path)
        .and_then(|m| m.get_all_pids().ok())
        .map(|pids| pids.into_iter().map(|p| p.as_raw()).collect())
        .unwrap_or_default()
}

/// What the cgroup has used: CPU time, memory (the working set as the
/// kubelet counts it: usage less inactive file pages) and processes.
pub(crate) fn stats(path: &Path) -> Result<ContainerStats, String> {
    let manager = manager(path).ok_or_else(|| "no cgroup manager".to_owned())?;
    let stats = manager.stats().map_err(|err| err.to_string())?;
    let usage = stats.memory.memory.usage;
    let inactive_file = ["total_inactive_file", "inactive_file"]
        .iter()
        .find_map(|key| stats.memory.stats.get(*key).copied())
        .unwrap_or(0);
    Ok(ContainerStats {
        cpu_usage_nanos: stats.cpu.usage.usage_total,
        memory_usage_bytes: usage,
        memory_working_set_bytes: usage.saturating_sub(inactive_file),
        processes: stats.pids.current,
    })
}
