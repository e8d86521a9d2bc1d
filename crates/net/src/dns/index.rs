//! What the DNS knows of the cluster, in the shape queries need: each
//! Service's addresses, ports and ready endpoints, and which name every
//! Service IP and endpoint address points back to. Built from Services and
//! their EndpointSlices as the watches see them; queries only read it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::names::dashed_label;

/// The label an EndpointSlice names its Service by.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service by namespace and name, both lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: &str, name: &str) -> ServiceKey {
        ServiceKey {
            namespace: namespace.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        }
    }
}

/// What a Service's name resolves to.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Its cluster IPs (one per family).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the addresses of its ready endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to this name.
    ExternalName(String),
}

/// A port with its protocol (lower case, as SRV names spell it).
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    pub protocol: String,
    pub port: u16,
}

/// A ready endpoint: its DNS label (hostname, or dashed address) and the
/// ports of the slice it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub hostname: String,
    pub addresses: Vec<IpAddr>,
    pub ports: Arc<[Port]>,
}

/// One Service as DNS answers for it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRecords {
    pub kind: Kind,
    pub ports: Vec<Port>,
    pub endpoints: Vec<Endpoint>,
}

impl ServiceRecords {
    /// The records of `service` with the endpoints of `slices` (those
    /// labelled with its name; addresses of other families included).
    pub fn new<'a>(
        service: &KubeService,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> ServiceRecords {
        let spec = service.spec.clone().unwrap_or_default();
        let kind = if spec.type_.as_deref() == Some("ExternalName") {
            Kind::ExternalName(spec.external_name.unwrap_or_default())
        } else {
            let ips: Vec<IpAddr> = spec
                .cluster_ips
                .or_else(|| spec.cluster_ip.map(|ip| vec![ip]))
                .unwrap_or_default()
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect();
            if ips.is_empty() {
                Kind::Headless
            } else {
                Kind::ClusterIp(ips)
            }
        };
        let ports = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| {
                Some(Port {
                    name: p.name?.to_ascii_lowercase(),
                    protocol: protocol(p.protocol.as_deref()),
                    port: u16::try_from(p.port).ok()?,
                })
            })
            .collect();
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for slice in slices {
            let slice_ports: Arc<[Port]> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    Some(Port {
                        name: p.name.clone()?.to_ascii_lowercase(),
                        protocol: protocol(p.protocol.as_deref()),
                        port: u16::try_from(p.port?).ok()?,
                    })
                })
                .collect();
            for endpoint in &slice.endpoints {
                // An endpoint whose readiness is unknown counts as ready, as
                // the EndpointSlice API says consumers should take it.
                if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                let addresses: Vec<IpAddr> = endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .filter(|a| !endpoints.iter().any(|e| e.addresses.contains(a)))
                    .collect();
                let Some(first) = addresses.first() else {
                    continue;
                };
                let hostname = endpoint
                    .hostname
                    .as_deref()
                    .map_or_else(|| dashed_label(first), str::to_ascii_lowercase);
                endpoints.push(Endpoint {
                    hostname,
                    addresses,
                    ports: slice_ports.clone(),
                });
            }
        }
        ServiceRecords {
            kind,
            ports,
            endpoints,
        }
    }

    /// The addresses a reverse lookup finds this Service at, with the
    /// label before `<svc>.<ns>.svc.<zone>` (none for the Service's own IP).
    fn reverse_entries(&self) -> Vec<(IpAddr, Option<String>)> {
        let own = match &self.kind {
            Kind::ClusterIp(ips) => ips.iter().map(|ip| (*ip, None)).collect(),
            _ => Vec::new(),
        };
        let endpoints = self
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.iter().map(|ip| (*ip, Some(e.hostname.clone()))));
        own.into_iter().chain(endpoints).collect()
    }
}

fn protocol(protocol: Option<&str>) -> String {
    protocol.unwrap_or("TCP").to_ascii_lowercase()
}

/// Every Service's records, and the reverse map of their addresses.
#[derive(Default)]
pub struct Index {
    services: HashMap<ServiceKey, ServiceRecords>,
    namespaces: HashMap<String, usize>,
    reverse: HashMap<IpAddr, Vec<(ServiceKey, Option<String>)>>,
    /// Whether it holds the whole cluster: Services and EndpointSlices
    /// both listed once.
    synced: bool,
}

impl Index {
    /// Whether a name missing here is missing from the cluster, rather
    /// than not yet listed.
    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn mark_synced(&mut self) {
        self.synced = true;
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&ServiceRecords> {
        self.services.get(key)
    }

    /// Whether any Service lives in `namespace` (its `<ns>.svc` name exists).
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains_key(namespace)
    }

    /// Who `ip` belongs to: the Service and, for an endpoint, its label.
    /// The first one known wins when two claim it.
    pub fn reverse(&self, ip: &IpAddr) -> Option<&(ServiceKey, Option<String>)> {
        self.reverse.get(ip).and_then(|owners| owners.first())
    }

    /// Puts `records` in for `key` (or takes the Service out with `None`).
    pub fn set(&mut self, key: ServiceKey, records: Option<ServiceRecords>) {
        if let Some(old) = self.services.remove(&key) {
            for (ip, _) in old.reverse_entries() {
                if let Some(owners) = self.reverse.get_mut(&ip) {
                    owners.retain(|(owner, _)| *owner != key);
                    if owners.is_empty() {
                        self.reverse.remove(&ip);
                    }
                }
            }
            if let Some(count) = self.namespaces.get_mut(&key.namespace) {
                *count -= 1;
                if *count == 0 {
                    self.namespaces.remove(&key.namespace);
                }
            }
        }
        let Some(records) = records else { return };
        for (ip, label) in records.reverse_entries() {
            self.reverse
                .entry(ip)
                .or_default()
                .push((key.clone(), label));
        }
        *self.namespaces.entry(key.namespace.clone()).or_default() += 1;
        self.services.insert(key, records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: serde_json::Value) -> KubeService {
        serde_json::from_value(json).unwrap()
    }

    fn slice(json: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn headless_endpoints_are_the_ready_ones_with_their_hostnames() {
        let svc = service(serde_json::json!({
            "metadata": {"name": "db", "namespace": "apps"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
        }));
        let slices = [slice(serde_json::json!({
            "metadata": {"name": "db-x", "namespace": "apps"},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 15432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.6"], "conditions": {}},
                {"addresses": ["10.42.0.7"], "conditions": {"ready": false}}
            ]
        }))];
        let records = ServiceRecords::new(&svc, &slices);
        assert_eq!(records.kind, Kind::Headless);
        let names: Vec<_> = records.endpoints.iter().map(|e| &e.hostname).collect();
        assert_eq!(names, ["db-0", "10-42-0-6"]);
        assert_eq!(records.endpoints[0].ports[0].port, 15432);
        assert_eq!(records.ports[0].protocol, "tcp");
    }

    #[test]
    fn reverse_entries_follow_updates_and_removals() {
        let svc = service(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"]}
        }));
        let key = ServiceKey::new("default", "web");
        let mut index = Index::default();
        index.set(key.clone(), Some(ServiceRecords::new(&svc, [])));
        let ip: IpAddr = "10.43.0.20".parse().unwrap();
        assert_eq!(index.reverse(&ip), Some(&(key.clone(), None)));
        assert!(index.has_namespace("default"));
        index.set(key.clone(), Some(ServiceRecords::new(&svc, [])));
        index.set(key, None);
        assert_eq!(index.reverse(&ip), None);
        assert!(!index.has_namespace("default"));
    }
}
