//! Host ports (NodePorts): two pods cannot hold the same host port and
//! protocol on one node, unless they bind different specific addresses.

use super::Unfit;
use crate::cache::NodeInfo;
use crate::pod::PodInfo;

/// A host port a pod holds: (address, protocol, port).
type HostPort = (String, String, i32);

pub fn free(pod: &PodInfo, node: &NodeInfo) -> Result<(), Unfit> {
    let wanted = host_ports(pod);
    if wanted.is_empty() {
        return Ok(());
    }
    let taken = node
        .pods
        .values()
        .flat_map(|p| host_ports(p))
        .any(|held| wanted.iter().any(|w| conflict(w, &held)));
    if taken {
        Err(Unfit::resolvable(vec![
            "node(s) didn't have free ports for the requested pod ports".to_owned(),
        ]))
    } else {
        Ok(())
    }
}

fn host_ports(pod: &PodInfo) -> Vec<HostPort> {
    let spec = pod.spec();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| {
            let ip = p.host_ip.as_deref().filter(|ip| !ip.is_empty());
            (
                ip.unwrap_or("0.0.0.0").to_owned(),
                p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                p.host_port.unwrap_or_default(),
            )
        })
        .collect()
}

fn conflict(a: &HostPort, b: &HostPort) -> bool {
    a.1 == b.1 && a.2 == b.2 && (a.0 == b.0 || a.0 == "0.0.0.0" || b.0 == "0.0.0.0")
}
