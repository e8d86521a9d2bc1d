//! Forgetting UDP flows that point at endpoints which are gone. A UDP
//! "connection" lives in conntrack as long as its client keeps sending, so
//! without this a client would keep talking to a removed pod (or, for a
//! Service that had no endpoints, to nobody), as kube-proxy explains.
//! TCP needs nothing: its flows end.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};

use tokio::process::Command;

use super::model::{Protocol, ServicePort};

/// One `conntrack -D` filter: the flows to a Service address (or NodePort)
/// answered by `reply_source`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleFlows {
    /// `None` for a NodePort, which any local address takes.
    pub destination: Option<Ipv4Addr>,
    pub port: u16,
    /// The endpoint that answered, or the Service address and port
    /// themselves for flows that were never translated.
    pub reply_source: SocketAddrV4,
}

/// The UDP flows that `before` allowed and `after` no longer does: those
/// to endpoints a Service port stopped using, and the untranslated flows
/// to a Service port that had no endpoint before (a restarted proxy knows
/// of none before, which spares the translated ones).
pub fn stale(before: &[ServicePort], after: &[ServicePort]) -> BTreeSet<StaleFlows> {
    let used = |ports: &[ServicePort]| -> BTreeMap<String, BTreeSet<SocketAddrV4>> {
        ports
            .iter()
            .filter(|p| p.protocol == Protocol::Udp)
            .map(|p| {
                let chosen = p.categorize();
                let endpoints = chosen.cluster.iter().chain(&chosen.local);
                (
                    p.name(),
                    endpoints.map(|e| SocketAddrV4::new(e.ip, e.port)).collect(),
                )
            })
            .collect()
    };
    let (old, new) = (used(before), used(after));
    let mut flows = BTreeSet::new();
    // The flows to `port`'s addresses (and NodePort) answered by `source`.
    let mut add = |port: &ServicePort, source: Option<SocketAddrV4>| {
        let addresses = std::iter::once(port.cluster_ip).chain(port.external_ips.iter().copied());
        for address in addresses {
            flows.insert(StaleFlows {
                destination: Some(address),
                port: port.port,
                reply_source: source.unwrap_or(SocketAddrV4::new(address, port.port)),
            });
        }
        if let (Some(node_port), Some(source)) = (port.node_port, source) {
            flows.insert(StaleFlows {
                destination: None,
                port: node_port,
                reply_source: source,
            });
        }
    };
    for port in after.iter().filter(|p| p.protocol == Protocol::Udp) {
        let now = &new[&port.name()];
        match old.get(&port.name()) {
            Some(then) if !then.is_empty() => {
                for gone in then.difference(now) {
                    add(port, Some(*gone));
                }
            }
            // Untranslated flows: answered by the Service address itself.
            _ if !now.is_empty() => add(port, None),
            _ => {}
        }
    }
    // Ports removed altogether: their flows are stale too.
    for port in before.iter().filter(|p| p.protocol == Protocol::Udp) {
        if !new.contains_key(&port.name()) {
            for endpoint in &old[&port.name()] {
                add(port, Some(*endpoint));
            }
        }
    }
    flows
}

/// Deletes the flows with `conntrack -D`; failures are logged, not fatal:
/// a stale flow ends by itself once its client stops sending.
pub async fn forget(flows: &BTreeSet<StaleFlows>) {
    for flow in flows {
        let mut command = Command::new("conntrack");
        command.args(["-D", "-p", "udp", "--orig-port-dst", &flow.port.to_string()]);
        if let Some(destination) = flow.destination {
            command.args(["--orig-dst", &destination.to_string()]);
        }
        command.args(["--reply-src", &flow.reply_source.ip().to_string()]);
        command.args(["--reply-port-src", &flow.reply_source.port().to_string()]);
        match command.output().await {
            // conntrack exits with 1 when nothing matched.
            Ok(out) if out.status.success() || out.status.code() == Some(1) => {}
            Ok(out) => tracing::warn!(
                "conntrack -D for UDP port {}: {}",
                flow.port,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => tracing::warn!(
                "running conntrack (apt-get install conntrack) to forget stale UDP flows: {e}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::Endpoint;

    fn dns(endpoints: &[u8]) -> ServicePort {
        ServicePort {
            namespace: "kube-system".into(),
            service: "kube-dns".into(),
            port_name: "dns".into(),
            protocol: Protocol::Udp,
            cluster_ip: Ipv4Addr::new(10, 43, 0, 10),
            port: 53,
            node_port: None,
            external_ips: Vec::new(),
            affinity_seconds: None,
            external_local: false,
            internal_local: false,
            endpoints: endpoints
                .iter()
                .map(|last| Endpoint {
                    ip: Ipv4Addr::new(10, 42, 0, *last),
                    port: 53,
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: true,
                })
                .collect(),
        }
    }

    fn flow(reply: [u8; 4]) -> StaleFlows {
        StaleFlows {
            destination: Some(Ipv4Addr::new(10, 43, 0, 10)),
            port: 53,
            reply_source: SocketAddrV4::new(reply.into(), 53),
        }
    }

    #[test]
    fn removed_endpoints_and_first_endpoints_make_flows_stale() {
        let pod = |last| [10, 42, 0, last];
        let untranslated = [10, 43, 0, 10];
        assert_eq!(
            stale(&[dns(&[5, 6])], &[dns(&[6, 7])]),
            [flow(pod(5))].into()
        );
        assert_eq!(
            stale(&[dns(&[])], &[dns(&[6])]),
            [flow(untranslated)].into()
        );
        assert_eq!(stale(&[], &[dns(&[6])]), [flow(untranslated)].into());
        assert_eq!(stale(&[dns(&[6])], &[]), [flow(pod(6))].into());
        assert!(stale(&[dns(&[6])], &[dns(&[6])]).is_empty());
    }
}
