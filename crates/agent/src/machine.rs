//! Facts about the machine the agent runs on, read from `/proc` and the
//! kernel each time they are asked for, so that a status report is current.

use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::Path;

/// What the node offers to pods before anything is reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub cpus: u32,
    pub memory_bytes: u64,
    /// Size of the file system holding the agent's data dir.
    pub ephemeral_storage_bytes: u64,
}

/// How much of the limited resources is left, for the pressure conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    pub memory_bytes: u64,
    pub memory_total_bytes: u64,
    pub disk_bytes: u64,
    pub disk_total_bytes: u64,
    pub pids: u64,
    pub pid_max: u64,
}

/// The kernel, OS and identity lines of `kubectl describe node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    pub kernel_version: String,
    pub os_image: String,
    pub architecture: String,
    pub machine_id: String,
    pub boot_id: String,
}

pub fn capacity(data_dir: &Path) -> io::Result<Capacity> {
    let disk = rustix::fs::statvfs(data_dir)?;
    Ok(Capacity {
        cpus: online_cpus()?,
        memory_bytes: meminfo_bytes("MemTotal")?,
        ephemeral_storage_bytes: disk.f_blocks * disk.f_frsize,
    })
}

pub fn available(data_dir: &Path) -> io::Result<Available> {
    let disk = rustix::fs::statvfs(data_dir)?;
    Ok(Available {
        memory_bytes: meminfo_bytes("MemAvailable")?,
        memory_total_bytes: meminfo_bytes("MemTotal")?,
        disk_bytes: disk.f_bavail * disk.f_frsize,
        disk_total_bytes: disk.f_blocks * disk.f_frsize,
        pids: running_processes()?,
        pid_max: read_number("/proc/sys/kernel/pid_max")?,
    })
}

pub fn system_info() -> SystemInfo {
    let uname = rustix::system::uname();
    SystemInfo {
        kernel_version: uname.release().to_string_lossy().into_owned(),
        os_image: os_image(),
        architecture: go_architecture(&uname.machine().to_string_lossy()),
        machine_id: read_trimmed("/etc/machine-id"),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
    }
}

pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .to_lowercase()
}

/// The address other machines reach this one at: the source address of the
/// default route. Connecting a UDP socket picks the route without sending a
/// packet. A machine with no route at all is reached on loopback only.
pub fn internal_ip() -> IpAddr {
    UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|socket| {
            socket.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// CPUs the kernel has online (`/sys/devices/system/cpu/online`, e.g.
/// `0-3,6`), not those this process may run on: capacity is the node's.
fn online_cpus() -> io::Result<u32> {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online")?;
    let mut count = 0;
    for range in list.trim().split(',').filter(|r| !r.is_empty()) {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let parse = |n: &str| n.parse::<u32>().map_err(invalid);
        count += parse(last)? - parse(first)? + 1;
    }
    Ok(count)
}

fn meminfo_bytes(field: &str) -> io::Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| invalid(format!("no {field} in /proc/meminfo")))
}

/// Processes and threads alive now, from the fourth field of
/// `/proc/loadavg` ("running/total").
fn running_processes() -> io::Result<u64> {
    let loadavg = std::fs::read_to_string("/proc/loadavg")?;
    loadavg
        .split_whitespace()
        .nth(3)
        .and_then(|field| field.split_once('/'))
        .and_then(|(_, total)| total.parse().ok())
        .ok_or_else(|| invalid(format!("unexpected /proc/loadavg: {loadavg}")))
}

fn read_number(path: &str) -> io::Result<u64> {
    std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(invalid)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|release| {
            release.lines().find_map(|line| {
                line.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        })
        .unwrap_or_else(|| "Linux".to_owned())
}

/// Kubernetes names architectures as Go does (`GOARCH`).
fn go_architecture(machine: &str) -> String {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i686" | "i386" => "386",
        other => other,
    }
    .to_owned()
}

fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_matches_what_the_kernel_reports() {
        let capacity = capacity(Path::new("/")).unwrap();
        let nproc = std::process::Command::new("nproc")
            .arg("--all")
            .output()
            .unwrap();
        let nproc: u32 = String::from_utf8(nproc.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(capacity.cpus, nproc);
        let free = std::process::Command::new("free")
            .arg("-b")
            .output()
            .unwrap();
        let free = String::from_utf8(free.stdout).unwrap();
        let total: u64 = free
            .lines()
            .find(|l| l.starts_with("Mem:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(capacity.memory_bytes, total);
        assert!(capacity.ephemeral_storage_bytes > 0);
    }

    #[test]
    fn available_resources_are_below_their_totals() {
        let available = available(Path::new("/")).unwrap();
        assert!(available.memory_bytes > 0);
        assert!(available.disk_bytes <= available.disk_total_bytes);
        assert!(available.pids > 0 && available.pids < available.pid_max);
    }

    #[test]
    fn system_info_names_the_running_kernel() {
        let info = system_info();
        let uname = std::process::Command::new("uname")
            .arg("-r")
            .output()
            .unwrap();
        assert_eq!(
            info.kernel_version,
            String::from_utf8_lossy(&uname.stdout).trim()
        );
        assert_eq!(go_architecture("x86_64"), "amd64");
        assert!(!info.os_image.is_empty());
    }
}
