//! The nftables rules of one Service port, in the shape of kube-proxy's
//! nftables mode: elements of the dispatch maps, a chain per traffic
//! policy, a chain per endpoint that DNATs to it, and an affinity set per
//! endpoint for `sessionAffinity: ClientIP`. Pure: a [`ServicePort`] in,
//! text into [`Contents`].

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

use super::model::{Endpoint, ServicePort};

/// The chain that rejects traffic to Services without endpoints.
pub const REJECT_CHAIN: &str = "reject-chain";
/// The chain that marks a packet to be masqueraded on its way out.
pub const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";

/// The verdict maps the fixed chains dispatch through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Map {
    /// `ip daddr . meta l4proto . th dport`: cluster, external and
    /// load-balancer addresses.
    ServiceIps,
    /// `meta l4proto . th dport` on the node's own addresses.
    ServiceNodePorts,
    /// Service addresses with no endpoint: reject (or drop, for a Local
    /// policy with no endpoint here).
    NoEndpointServices,
    /// NodePorts with no endpoint.
    NoEndpointNodePorts,
}

impl Map {
    pub const ALL: [Map; 4] = [
        Map::ServiceIps,
        Map::ServiceNodePorts,
        Map::NoEndpointServices,
        Map::NoEndpointNodePorts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Map::ServiceIps => "service-ips",
            Map::ServiceNodePorts => "service-nodeports",
            Map::NoEndpointServices => "no-endpoint-services",
            Map::NoEndpointNodePorts => "no-endpoint-nodeports",
        }
    }

    /// The map's key type, as nftables declares it.
    pub fn key_type(self) -> &'static str {
        match self {
            Map::ServiceIps | Map::NoEndpointServices => "ipv4_addr . inet_proto . inet_service",
            Map::ServiceNodePorts | Map::NoEndpointNodePorts => "inet_proto . inet_service",
        }
    }
}

/// Everything the Services put into the table, beside its fixed frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// Chain name to its rules, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets (all of one type: client addresses with timeouts).
    pub sets: BTreeSet<String>,
    /// (map, key) to verdict.
    pub elements: BTreeMap<(Map, String), String>,
}

impl Contents {
    /// Adds `other`'s chains and sets, which no two Services share (their
    /// names hold the Service's); map elements, which two Services may
    /// claim, are left to the caller.
    pub fn add_chains_and_sets(&mut self, other: &Contents) {
        for (chain, rules) in &other.chains {
            self.chains.insert(chain.clone(), rules.clone());
        }
        self.sets.extend(other.sets.iter().cloned());
    }
}

/// Renders `port` into `contents`. `pod_cidr` tells traffic from this
/// node's pods from other traffic (kube-proxy's `NodeCIDR` local detector):
/// the latter is masqueraded on its way to an endpoint.
pub fn render(port: &ServicePort, pod_cidr: Option<Ipv4Net>, contents: &mut Contents) {
    let names = Names::new(port);
    let chosen = port.categorize();
    let protocol = port.protocol.as_str();

    let internal_chain = if port.internal_local {
        &names.local
    } else {
        &names.cluster
    };
    let external_policy_chain = if port.external_local {
        &names.local
    } else {
        &names.cluster
    };
    let has_internal = if port.internal_local {
        !chosen.local.is_empty()
    } else {
        chosen.any
    };
    let has_external = if port.external_local {
        !chosen.local.is_empty()
    } else {
        chosen.any
    };
    // Without any endpoint, a client is told at once (connection refused);
    // with endpoints elsewhere only, a Local policy's traffic is dropped.
    let (internal_verdict, external_verdict) = if chosen.any {
        ("drop".to_owned(), "drop".to_owned())
    } else {
        let reject = format!("goto {REJECT_CHAIN}");
        (reject.clone(), reject)
    };

    let mut element = |map: Map, key: String, verdict: String| {
        contents.elements.entry((map, key)).or_insert(verdict);
    };
    let ip_key = |ip: &std::net::Ipv4Addr| format!("{ip} . {protocol} . {}", port.port);
    if has_internal {
        element(
            Map::ServiceIps,
            ip_key(&port.cluster_ip),
            format!("goto {internal_chain}"),
        );
    } else {
        element(
            Map::NoEndpointServices,
            ip_key(&port.cluster_ip),
            internal_verdict,
        );
    }
    for ip in &port.external_ips {
        if chosen.any {
            element(
                Map::ServiceIps,
                ip_key(ip),
                format!("goto {}", names.external),
            );
        }
        if !has_external {
            element(
                Map::NoEndpointServices,
                ip_key(ip),
                external_verdict.clone(),
            );
        }
    }
    if let Some(node_port) = port.node_port {
        let key = format!("{protocol} . {node_port}");
        if chosen.any {
            element(
                Map::ServiceNodePorts,
                key.clone(),
                format!("goto {}", names.external),
            );
        }
        if !has_external {
            element(Map::NoEndpointNodePorts, key, external_verdict);
        }
    }

    let mut chains: Vec<(String, Vec<String>)> = Vec::new();
    if has_internal {
        // Traffic from outside this node's pods (the host itself, another
        // node routing the service range here) may come back another way:
        // masquerade it so that replies return through here.
        let mut rules = Vec::new();
        if let Some(cidr) = pod_cidr {
            rules.push(format!(
                "ip daddr {} {protocol} dport {} ip saddr != {cidr} jump {MARK_MASQ_CHAIN}",
                port.cluster_ip, port.port
            ));
        }
        chains.push((internal_chain.clone(), rules));
    }
    if chosen.any && port.externally_accessible() {
        let mut rules = Vec::new();
        if port.external_local {
            // Pods and the node itself reach the Service as if from inside
            // the cluster; only traffic from elsewhere keeps its source
            // address and is limited to this node's endpoints.
            if let Some(cidr) = pod_cidr {
                rules.push(format!("ip saddr {cidr} goto {}", names.cluster));
            }
            rules.push(format!("fib saddr type local jump {MARK_MASQ_CHAIN}"));
            rules.push(format!("fib saddr type local goto {}", names.cluster));
        } else {
            // The endpoint may be on another node: masquerade so that its
            // replies come back through this one.
            rules.push(format!("jump {MARK_MASQ_CHAIN}"));
        }
        if has_external {
            rules.push(format!("goto {external_policy_chain}"));
        }
        chains.push((names.external.clone(), rules));
    }
    let mut reachable: BTreeSet<&Endpoint> = BTreeSet::new();
    for (chain, endpoints) in [
        (&names.cluster, &chosen.cluster),
        (&names.local, &chosen.local),
    ] {
        if endpoints.is_empty() {
            continue;
        }
        reachable.extend(endpoints.iter().copied());
        let rules = match chains.iter_mut().find(|(name, _)| name == chain) {
            Some((_, rules)) => rules,
            None => {
                chains.push((chain.clone(), Vec::new()));
                &mut chains.last_mut().expect("just pushed").1
            }
        };
        balance(port, &names, endpoints, rules);
    }
    for endpoint in reachable {
        let chain = names.endpoint(endpoint);
        let mut rules = vec![
            // A pod reaching itself through its Service: without the
            // masquerade its reply would not pass the DNAT back.
            format!("ip saddr {} jump {MARK_MASQ_CHAIN}", endpoint.ip),
        ];
        if let Some(seconds) = port.affinity_seconds {
            let set = names.affinity(endpoint);
            rules.push(format!("update @{set} {{ ip saddr timeout {seconds}s }}"));
            contents.sets.insert(set);
        }
        rules.push(format!(
            "meta l4proto {protocol} dnat to {}:{}",
            endpoint.ip, endpoint.port
        ));
        chains.push((chain, rules));
    }
    for (name, rules) in chains {
        // A chain without endpoints is never referenced: leave it out.
        if !rules.is_empty() {
            contents.chains.insert(name, rules);
        }
    }
}

/// The rules that pick an endpoint: a client with affinity goes back to
/// its endpoint, others get one at random. Of `n` endpoints the first is
/// taken one time in `n`, else the next one time in `n - 1`, and so on (as
/// kube-proxy's iptables mode does): each endpoint equally often. Not one
/// `numgen random mod n vmap { ... }`: each such rule makes an anonymous
/// map, and the kernel's time to load them grows with the square of their
/// number (21 s of kernel time for 3,000 Services against 0.5 s this way).
fn balance(port: &ServicePort, names: &Names, endpoints: &[&Endpoint], rules: &mut Vec<String>) {
    if port.affinity_seconds.is_some() {
        for endpoint in endpoints {
            rules.push(format!(
                "ip saddr @{} goto {}",
                names.affinity(endpoint),
                names.endpoint(endpoint)
            ));
        }
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let goto = format!("goto {}", names.endpoint(endpoint));
        rules.push(match endpoints.len() - i {
            1 => goto,
            left => format!("numgen random mod {left} == 0 {goto}"),
        });
    }
}

/// The names of one Service port's chains and sets, as kube-proxy builds
/// them: a prefix, a hash of the rest (so that names differing in one digit
/// still look different), and `namespace/service/protocol/port`.
struct Names {
    base: String,
    cluster: String,
    local: String,
    external: String,
}

impl Names {
    fn new(port: &ServicePort) -> Self {
        let base = hashed(&port.name());
        Self {
            cluster: format!("service-{base}"),
            local: format!("local-{base}"),
            external: format!("external-{base}"),
            base,
        }
    }

    fn endpoint_base(&self, endpoint: &Endpoint) -> String {
        let (_, name) = self.base.split_once('-').expect("hashed names have a dash");
        hashed(&format!("{name}__{}/{}", endpoint.ip, endpoint.port))
    }

    fn endpoint(&self, endpoint: &Endpoint) -> String {
        format!("endpoint-{}", self.endpoint_base(endpoint))
    }

    fn affinity(&self, endpoint: &Endpoint) -> String {
        format!("affinity-{}", self.endpoint_base(endpoint))
    }
}

/// `HASH-name`, the hash eight hex digits of the name's SHA-256.
pub fn hashed(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02X}")).collect();
    format!("{hash}-{name}")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::proxy::model::Protocol;

    fn endpoint(last: u8, ready: bool, local: bool) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::new(10, 42, 0, last),
            port: 8080,
            ready,
            serving: ready,
            terminating: false,
            local,
        }
    }

    fn web(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            namespace: "ns".into(),
            service: "web".into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ip: Ipv4Addr::new(10, 43, 0, 5),
            port: 80,
            node_port: None,
            external_ips: Vec::new(),
            affinity_seconds: None,
            external_local: false,
            internal_local: false,
            endpoints,
        }
    }

    fn cidr() -> Option<Ipv4Net> {
        Some("10.42.0.0/24".parse().unwrap())
    }

    fn rendered(port: &ServicePort) -> Contents {
        let mut contents = Contents::default();
        render(port, cidr(), &mut contents);
        contents
    }

    /// The chain whose name starts with `prefix` and ends with `suffix`.
    fn chain<'a>(contents: &'a Contents, prefix: &str, suffix: &str) -> (&'a str, &'a [String]) {
        let (name, rules) = contents
            .chains
            .iter()
            .find(|(name, _)| name.starts_with(prefix) && name.ends_with(suffix))
            .unwrap_or_else(|| panic!("no chain {prefix}…{suffix} in {:?}", contents.chains));
        (name, rules)
    }

    fn element(contents: &Contents, map: Map, key: &str) -> Option<String> {
        contents.elements.get(&(map, key.to_owned())).cloned()
    }

    #[test]
    fn a_cluster_ip_balances_at_random_over_ready_endpoints_only() {
        let port = web(vec![
            endpoint(5, true, true),
            endpoint(6, false, true),
            endpoint(7, true, false),
        ]);
        let contents = rendered(&port);
        let (service, rules) = chain(&contents, "service-", "ns/web/tcp/http");
        assert_eq!(
            element(&contents, Map::ServiceIps, "10.43.0.5 . tcp . 80"),
            Some(format!("goto {service}"))
        );
        let (five, _) = chain(&contents, "endpoint-", "ns/web/tcp/http__10.42.0.5/8080");
        let (seven, seven_rules) = chain(&contents, "endpoint-", "ns/web/tcp/http__10.42.0.7/8080");
        assert_eq!(
            rules,
            [
                "ip daddr 10.43.0.5 tcp dport 80 ip saddr != 10.42.0.0/24 jump mark-for-masquerade"
                    .to_owned(),
                format!("numgen random mod 2 == 0 goto {five}"),
                format!("goto {seven}"),
            ]
        );
        assert_eq!(
            seven_rules,
            [
                "ip saddr 10.42.0.7 jump mark-for-masquerade",
                "meta l4proto tcp dnat to 10.42.0.7:8080"
            ]
        );
        assert!(
            !contents.chains.keys().any(|c| c.contains("10.42.0.6")),
            "the unready endpoint has no chain: {:?}",
            contents.chains.keys()
        );
        assert_eq!(contents.elements.len(), 1);
        assert!(contents.sets.is_empty());
    }

    #[test]
    fn no_endpoints_rejects_on_every_address_and_makes_no_chains() {
        let mut port = web(vec![endpoint(6, false, true)]);
        port.node_port = Some(30001);
        port.external_ips = vec![Ipv4Addr::new(192, 0, 2, 2)];
        let contents = rendered(&port);
        assert!(contents.chains.is_empty(), "{:?}", contents.chains);
        let reject = Some("goto reject-chain".to_owned());
        assert_eq!(
            element(&contents, Map::NoEndpointServices, "10.43.0.5 . tcp . 80"),
            reject
        );
        assert_eq!(
            element(&contents, Map::NoEndpointServices, "192.0.2.2 . tcp . 80"),
            reject
        );
        assert_eq!(
            element(&contents, Map::NoEndpointNodePorts, "tcp . 30001"),
            reject
        );
        assert_eq!(contents.elements.len(), 3);
    }

    #[test]
    fn node_ports_and_load_balancer_addresses_go_through_a_masquerading_external_chain() {
        let mut port = web(vec![endpoint(5, true, true)]);
        port.node_port = Some(30001);
        port.external_ips = vec![Ipv4Addr::new(192, 0, 2, 2)];
        let contents = rendered(&port);
        let (external, rules) = chain(&contents, "external-", "ns/web/tcp/http");
        let (service, _) = chain(&contents, "service-", "ns/web/tcp/http");
        let goto = Some(format!("goto {external}"));
        assert_eq!(
            element(&contents, Map::ServiceNodePorts, "tcp . 30001"),
            goto
        );
        assert_eq!(
            element(&contents, Map::ServiceIps, "192.0.2.2 . tcp . 80"),
            goto
        );
        assert_eq!(
            rules,
            [
                "jump mark-for-masquerade".to_owned(),
                format!("goto {service}")
            ]
        );
    }

    #[test]
    fn external_traffic_policy_local_keeps_sources_and_uses_local_endpoints() {
        let mut port = web(vec![endpoint(5, true, true), endpoint(7, true, false)]);
        port.node_port = Some(30001);
        port.external_local = true;
        let contents = rendered(&port);
        let (service, cluster_rules) = chain(&contents, "service-", "ns/web/tcp/http");
        let (local, local_rules) = chain(&contents, "local-", "ns/web/tcp/http");
        let (_, rules) = chain(&contents, "external-", "ns/web/tcp/http");
        assert_eq!(
            rules,
            [
                format!("ip saddr 10.42.0.0/24 goto {service}"),
                "fib saddr type local jump mark-for-masquerade".to_owned(),
                format!("fib saddr type local goto {service}"),
                format!("goto {local}"),
            ]
        );
        assert!(cluster_rules[1].starts_with("numgen random mod 2 == 0 goto "));
        assert_eq!(local_rules.len(), 1, "{local_rules:?}");
        assert!(local_rules[0].starts_with("goto endpoint-"));
        assert!(local_rules[0].ends_with("10.42.0.5/8080"));
    }

    #[test]
    fn local_policies_without_a_local_endpoint_drop_instead_of_reject() {
        let mut port = web(vec![endpoint(7, true, false)]);
        port.node_port = Some(30001);
        port.external_local = true;
        port.internal_local = true;
        let contents = rendered(&port);
        let drop = Some("drop".to_owned());
        assert_eq!(
            element(&contents, Map::NoEndpointServices, "10.43.0.5 . tcp . 80"),
            drop
        );
        assert_eq!(
            element(&contents, Map::NoEndpointNodePorts, "tcp . 30001"),
            drop
        );
        // Pods and the node still reach the remote endpoint by NodePort.
        let (service, _) = chain(&contents, "service-", "ns/web/tcp/http");
        assert!(
            element(&contents, Map::ServiceNodePorts, "tcp . 30001")
                .unwrap()
                .starts_with("goto external-")
        );
        assert!(contents.chains.keys().any(|c| c == service));
        assert!(element(&contents, Map::ServiceIps, "10.43.0.5 . tcp . 80").is_none());
    }

    #[test]
    fn client_ip_affinity_sends_known_clients_back_to_their_endpoint() {
        let mut port = web(vec![endpoint(5, true, true), endpoint(7, true, true)]);
        port.affinity_seconds = Some(60);
        let contents = rendered(&port);
        let (five, five_rules) = chain(&contents, "endpoint-", "__10.42.0.5/8080");
        let set = five.replacen("endpoint-", "affinity-", 1);
        assert!(contents.sets.contains(&set), "{:?}", contents.sets);
        assert_eq!(contents.sets.len(), 2);
        assert_eq!(
            five_rules[1],
            format!("update @{set} {{ ip saddr timeout 60s }}")
        );
        let (_, rules) = chain(&contents, "service-", "ns/web/tcp/http");
        assert_eq!(rules[1], format!("ip saddr @{set} goto {five}"));
        assert_eq!(rules[3], format!("numgen random mod 2 == 0 goto {five}"));
    }

    #[test]
    fn udp_ports_dnat_udp() {
        let mut port = web(vec![endpoint(5, true, true)]);
        port.protocol = Protocol::Udp;
        let contents = rendered(&port);
        assert!(
            contents
                .elements
                .contains_key(&(Map::ServiceIps, "10.43.0.5 . udp . 80".into()))
        );
        let (_, rules) = chain(&contents, "endpoint-", "ns/web/udp/http__10.42.0.5/8080");
        assert_eq!(rules[1], "meta l4proto udp dnat to 10.42.0.5:8080");
    }

    #[test]
    fn names_carry_a_hash_of_themselves() {
        assert_eq!(hashed("ns/web/tcp/http").len(), 9 + "ns/web/tcp/http".len());
        assert_ne!(
            hashed("ns/web/tcp/http__10.42.0.5/8080")[..8],
            hashed("ns/web/tcp/http__10.42.0.6/8080")[..8]
        );
    }
}
