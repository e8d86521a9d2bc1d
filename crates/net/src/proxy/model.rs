//! What the proxy programs, read from the API's objects: one
//! [`ServicePort`] per port of every proxied Service, with its endpoints
//! from the Service's EndpointSlices. Pure: objects in, values out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Services that name another proxy are left to it, as kube-proxy does.
const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (3 hours).
const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

/// A transport protocol a Service port can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(text: Option<&str>) -> Option<Self> {
        match text.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// The name nftables (and chain names) use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// One port of one Service, with everything its rules depend on. Two equal
/// values render the same rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    /// The port's name; empty for the one unnamed port of a Service.
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `spec.externalIPs` and the LoadBalancer's ingress addresses: reached
    /// on `port` from outside, as NodePorts are.
    pub external_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP`: how long a client keeps its endpoint.
    pub affinity_seconds: Option<u32>,
    /// `externalTrafficPolicy: Local` on a Service reachable from outside.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// Sorted by address and port, one per address and port.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// Reached from outside the cluster: by NodePort or an external address.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }

    /// `namespace/service/protocol/port-name`, as kube-proxy names it.
    pub fn name(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.service,
            self.protocol.as_str(),
            self.port_name
        )
    }
}

/// One endpoint of a Service port, with its EndpointSlice conditions.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this proxy's node.
    pub local: bool,
}

impl Endpoint {
    /// Ready, or still serving while it terminates: kube-proxy falls back
    /// to the latter when a Service has none of the former.
    fn usable(&self) -> bool {
        self.ready || (self.serving && self.terminating)
    }
}

/// The endpoints each kind of traffic is sent to, as kube-proxy's
/// `CategorizeEndpoints` chooses them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Categorized<'a> {
    /// For `Cluster` traffic policies; empty when no policy uses them.
    pub cluster: Vec<&'a Endpoint>,
    /// For `Local` traffic policies; empty when no policy uses them.
    pub local: Vec<&'a Endpoint>,
    /// Some endpoint, on any node, can take traffic.
    pub any: bool,
}

impl ServicePort {
    pub fn categorize(&self) -> Categorized<'_> {
        // External traffic from pods and the node itself takes the Cluster
        // path even under externalTrafficPolicy Local.
        let uses_cluster = !self.internal_local || self.externally_accessible();
        let uses_local =
            self.internal_local || (self.externally_accessible() && self.external_local);
        let pick = |wanted: &dyn Fn(&Endpoint) -> bool| {
            let ready: Vec<&Endpoint> = self
                .endpoints
                .iter()
                .filter(|e| e.ready && wanted(e))
                .collect();
            if !ready.is_empty() {
                return ready;
            }
            // Terminating endpoints that still serve are used only when no
            // endpoint is ready, so that a rollout's last pods keep serving.
            self.endpoints
                .iter()
                .filter(|e| e.serving && e.terminating && wanted(e))
                .collect()
        };
        Categorized {
            cluster: if uses_cluster {
                pick(&|_| true)
            } else {
                Vec::new()
            },
            local: if uses_local {
                pick(&|e| e.local)
            } else {
                Vec::new()
            },
            any: self.endpoints.iter().any(Endpoint::usable),
        }
    }
}

/// A Service by namespace and name: what the proxy keeps its rules by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn of_service(service: &Service) -> Option<Self> {
        Some(Self {
            namespace: service.metadata.namespace.clone()?,
            name: service.metadata.name.clone()?,
        })
    }

    /// The Service an EndpointSlice belongs to, by its label.
    pub fn of_slice(slice: &EndpointSlice) -> Option<Self> {
        let labels = slice.metadata.labels.as_ref()?;
        Some(Self {
            namespace: slice.metadata.namespace.clone()?,
            name: labels.get(SERVICE_NAME_LABEL)?.clone(),
        })
    }
}

/// Every port of `service` that this proxy handles, with its endpoints
/// from `slices` (the Service's own): none for a Service without a cluster
/// IP (headless, ExternalName), one whose addresses are not IPv4, or one
/// left to another proxy.
pub fn ports_of(service: &Service, slices: &[&EndpointSlice], node_name: &str) -> Vec<ServicePort> {
    let labels = service.metadata.labels.as_ref();
    if labels.is_some_and(|labels| labels.contains_key(SERVICE_PROXY_NAME_LABEL)) {
        return Vec::new();
    }
    let (Some(spec), Some(namespace), Some(name)) = (
        service.spec.as_ref(),
        service.metadata.namespace.as_ref(),
        service.metadata.name.as_ref(),
    ) else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let cluster_ip = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .find_map(|ip| ip.parse::<Ipv4Addr>().ok());
    // Headless Services ("None") and those not given an address yet.
    let Some(cluster_ip) = cluster_ip else {
        return Vec::new();
    };
    let load_balancer = spec.type_.as_deref() == Some("LoadBalancer");
    let mut external_ips: BTreeSet<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if load_balancer {
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        // An ingress in "Proxy" mode is reached through the load balancer,
        // never directly at its address.
        external_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_SECONDS)
    });
    let node_ports_open = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let mut ports = Vec::new();
    for port in spec.ports.iter().flatten() {
        let (Some(protocol), Ok(number)) = (
            Protocol::parse(port.protocol.as_deref()),
            u16::try_from(port.port),
        ) else {
            continue;
        };
        let port_name = port.name.clone().unwrap_or_default();
        let node_port = port
            .node_port
            .filter(|_| node_ports_open)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0);
        let mut service_port = ServicePort {
            namespace: namespace.clone(),
            service: name.clone(),
            port_name,
            protocol,
            cluster_ip,
            port: number,
            node_port,
            external_ips: external_ips.iter().copied().collect(),
            affinity_seconds,
            external_local: false,
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            endpoints: Vec::new(),
        };
        service_port.external_local = service_port.externally_accessible()
            && spec.external_traffic_policy.as_deref() == Some("Local");
        service_port.endpoints = endpoints(&service_port, slices, node_name);
        ports.push(service_port);
    }
    ports
}

/// The endpoints of one Service port across its slices: each slice's port
/// of the same name and protocol (resolved per pod for named target ports).
fn endpoints(port: &ServicePort, slices: &[&EndpointSlice], node_name: &str) -> Vec<Endpoint> {
    let mut found: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let slice_port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port.port_name
                && Protocol::parse(p.protocol.as_deref()) == Some(port.protocol)
        });
        let Some(number) = slice_port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            // kube-proxy uses an endpoint's first address only.
            let Some(ip) = endpoint
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let conditions = endpoint.conditions.as_ref();
            // Unset conditions mean ready and serving, not terminating.
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            // During a handover two slices may list one endpoint; the
            // first kept wins, as in kube-proxy.
            found.entry((ip, number)).or_insert(Endpoint {
                ip,
                port: number,
                ready,
                serving,
                terminating,
                local: endpoint.node_name.as_deref() == Some(node_name),
            });
        }
    }
    found.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    fn slice(value: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(value).unwrap()
    }

    /// The ports of `svc`, with the endpoints of those of `slices` that
    /// are its own, as seen from node n1.
    fn service_ports(svc: &Service, slices: &[&EndpointSlice]) -> Vec<ServicePort> {
        let key = ServiceKey::of_service(svc);
        let own: Vec<&EndpointSlice> = slices
            .iter()
            .copied()
            .filter(|s| ServiceKey::of_slice(s) == key)
            .collect();
        ports_of(svc, &own, "n1")
    }

    fn web_slice() -> EndpointSlice {
        slice(json!({
            "metadata": {"namespace": "ns", "name": "web-abc", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.7"], "conditions": {"ready": true}, "nodeName": "n1"},
                {"addresses": ["10.42.0.5"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "n2"},
                {"addresses": ["10.42.0.6"], "conditions": {"ready": false}, "nodeName": "n1"},
            ],
        }))
    }

    #[test]
    fn a_service_port_gets_its_slice_endpoints_sorted_with_their_conditions() {
        let svc = service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.5",
                     "ports": [{"name": "http", "port": 80, "targetPort": "web", "nodePort": 30001}]},
        }));
        let ports = service_ports(&svc, &[&web_slice()]);
        assert_eq!(ports.len(), 1);
        let port = &ports[0];
        assert_eq!(port.name(), "ns/web/tcp/http");
        assert_eq!(port.cluster_ip, Ipv4Addr::new(10, 43, 0, 5));
        assert_eq!((port.port, port.node_port), (80, Some(30001)));
        let ips: Vec<_> = port.endpoints.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips, ["10.42.0.5", "10.42.0.6", "10.42.0.7"]);
        assert!(port.endpoints.iter().all(|e| e.port == 8080));
        assert!(port.endpoints[0].serving && port.endpoints[0].terminating);
        assert!(!port.endpoints[1].serving);
        assert!(port.endpoints[2].ready && port.endpoints[2].local);
        let chosen = port.categorize();
        assert_eq!(chosen.cluster, [&port.endpoints[2]]);
        assert!(chosen.local.is_empty(), "no Local policy: {chosen:?}");
    }

    #[test]
    fn headless_external_name_and_other_proxies_services_are_left_out() {
        let headless = service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]},
        }));
        let external = service(json!({
            "metadata": {"namespace": "ns", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com"},
        }));
        let other = service(json!({
            "metadata": {"namespace": "ns", "name": "other",
                         "labels": {SERVICE_PROXY_NAME_LABEL: "someone-else"}},
            "spec": {"clusterIP": "10.43.0.9", "ports": [{"port": 80}]},
        }));
        for svc in [headless, external, other] {
            assert!(service_ports(&svc, &[&web_slice()]).is_empty());
        }
    }

    #[test]
    fn load_balancer_ingress_and_external_ips_are_external_addresses() {
        let svc = service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.5", "externalIPs": ["192.0.2.50"],
                     "externalTrafficPolicy": "Local",
                     "ports": [{"name": "http", "port": 80, "nodePort": 31000}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}, {"ip": "192.0.2.9", "ipMode": "Proxy"}, {"hostname": "lb.example"}]}},
        }));
        let ports = service_ports(&svc, &[&web_slice()]);
        let port = &ports[0];
        let external: Vec<_> = port.external_ips.iter().map(Ipv4Addr::to_string).collect();
        assert_eq!(external, ["192.0.2.2", "192.0.2.50"]);
        assert!(port.external_local);
        let chosen = port.categorize();
        assert_eq!(chosen.cluster.len(), 1, "internal traffic uses Cluster");
        assert_eq!(chosen.local.len(), 1);
    }

    #[test]
    fn session_affinity_defaults_to_three_hours_and_protocols_match_slice_ports() {
        let svc = service(json!({
            "metadata": {"namespace": "ns", "name": "dns"},
            "spec": {"clusterIP": "10.43.0.10", "sessionAffinity": "ClientIP",
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]},
        }));
        let slice = slice(json!({
            "metadata": {"namespace": "ns", "name": "dns-1", "labels": {SERVICE_NAME_LABEL: "dns"}},
            "addressType": "IPv4",
            "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"},
                      {"name": "dns-tcp", "port": 5354, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["192.0.2.2"]}],
        }));
        let ports = service_ports(&svc, &[&slice]);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].affinity_seconds, Some(10_800));
        assert_eq!(
            (ports[0].protocol, ports[0].endpoints[0].port),
            (Protocol::Udp, 5353)
        );
        assert_eq!(
            (ports[1].protocol, ports[1].endpoints[0].port),
            (Protocol::Tcp, 5354)
        );
        assert!(ports[1].endpoints[0].ready, "unset conditions mean ready");
    }

    #[test]
    fn only_terminating_endpoints_that_serve_are_a_fallback() {
        let svc = service(json!({
            "metadata": {"namespace": "ns", "name": "web"},
            "spec": {"clusterIP": "10.43.0.5", "internalTrafficPolicy": "Local",
                     "ports": [{"name": "http", "port": 80}]},
        }));
        let slice = slice(json!({
            "metadata": {"namespace": "ns", "name": "web-1", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "n1"},
                {"addresses": ["10.42.0.6"], "conditions": {"ready": true}, "nodeName": "n2"},
            ],
        }));
        let ports = service_ports(&svc, &[&slice]);
        let chosen = ports[0].categorize();
        assert!(
            chosen.cluster.is_empty(),
            "internal Local uses no cluster chain"
        );
        let local: Vec<_> = chosen.local.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(local, ["10.42.0.5"]);
        assert!(chosen.any);
    }
}
