//! What a name asked about means: which part of the cluster domain it
//! names (`<svc>.<ns>.svc.<zone>`, `<a-b-c-d>.<ns>.pod.<zone>`, ...), or
//! which address a reverse name (`d.c.b.a.in-addr.arpa`) stands for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

/// A name inside the cluster domain, by the labels under the zone
/// (all lower case: DNS names compare without case).
#[derive(Debug, PartialEq, Eq)]
pub enum ClusterName {
    /// The zone itself (`cluster.local`).
    Apex,
    /// `dns-version.<zone>`: the schema version the spec asks for.
    DnsVersion,
    /// `svc.<zone>`.
    Services,
    /// `<ns>.svc.<zone>`.
    Namespace { namespace: String },
    /// `<service>.<ns>.svc.<zone>`.
    Service { namespace: String, service: String },
    /// `<hostname>.<service>.<ns>.svc.<zone>`: one endpoint of a Service.
    Endpoint {
        namespace: String,
        service: String,
        hostname: String,
    },
    /// `_<port>._<proto>.<service>.<ns>.svc.<zone>`: a named port (SRV).
    Port {
        namespace: String,
        service: String,
        port: String,
        protocol: String,
    },
    /// `pod.<zone>`.
    Pods,
    /// `<ns>.pod.<zone>`.
    PodNamespace { namespace: String },
    /// `<a-b-c-d>.<ns>.pod.<zone>`: the address written in the name.
    Pod { namespace: String, ip: IpAddr },
    /// Anything else under the zone: it does not exist.
    Unknown,
}

/// What `name` names under `zone`, or `None` when it is outside the zone.
pub fn parse(name: &Name, zone: &Name) -> Option<ClusterName> {
    if !zone.zone_of(name) {
        return None;
    }
    let depth = usize::from(name.num_labels() - zone.num_labels());
    let labels: Vec<String> = name
        .iter()
        .take(depth)
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let owned = |s: &str| s.to_owned();
    Some(match labels.as_slice() {
        [] => ClusterName::Apex,
        ["dns-version"] => ClusterName::DnsVersion,
        ["svc"] => ClusterName::Services,
        [ns, "svc"] => ClusterName::Namespace {
            namespace: owned(ns),
        },
        [svc, ns, "svc"] => ClusterName::Service {
            namespace: owned(ns),
            service: owned(svc),
        },
        [host, svc, ns, "svc"] => ClusterName::Endpoint {
            namespace: owned(ns),
            service: owned(svc),
            hostname: owned(host),
        },
        [port, proto, svc, ns, "svc"] => match (port.strip_prefix('_'), proto.strip_prefix('_')) {
            (Some(port), Some(protocol)) => ClusterName::Port {
                namespace: owned(ns),
                service: owned(svc),
                port: owned(port),
                protocol: owned(protocol),
            },
            _ => ClusterName::Unknown,
        },
        ["pod"] => ClusterName::Pods,
        [ns, "pod"] => ClusterName::PodNamespace {
            namespace: owned(ns),
        },
        [dashed, ns, "pod"] => match dashed_ip(dashed) {
            Some(ip) => ClusterName::Pod {
                namespace: owned(ns),
                ip,
            },
            None => ClusterName::Unknown,
        },
        _ => ClusterName::Unknown,
    })
}

/// The address of a reverse name (`4.3.2.1.in-addr.arpa.` is 1.2.3.4,
/// `ip6.arpa.` names nibble by nibble), `None` for any other name or a
/// partial one (a network, not one address).
pub fn reverse(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// The address a pod's or an endpoint's dashed label spells: `10-42-0-5`
/// is 10.42.0.5, `fd00--5` is fd00::5.
pub fn dashed_ip(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The label an endpoint without a hostname is known by: its address with
/// dashes (`10-42-0-5`), as CoreDNS names it.
pub fn dashed_label(ip: &IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn zone() -> Name {
        name("cluster.local.")
    }

    #[test]
    fn names_outside_the_zone_are_not_ours() {
        assert_eq!(parse(&name("example.com."), &zone()), None);
        assert_eq!(parse(&name("local."), &zone()), None);
    }

    #[test]
    fn services_endpoints_and_ports() {
        assert_eq!(
            parse(&name("Web.Default.svc.cluster.local."), &zone()),
            Some(ClusterName::Service {
                namespace: "default".into(),
                service: "web".into()
            })
        );
        assert_eq!(
            parse(&name("web-0.web.apps.svc.cluster.local."), &zone()),
            Some(ClusterName::Endpoint {
                namespace: "apps".into(),
                service: "web".into(),
                hostname: "web-0".into()
            })
        );
        assert_eq!(
            parse(&name("_http._tcp.web.apps.svc.cluster.local."), &zone()),
            Some(ClusterName::Port {
                namespace: "apps".into(),
                service: "web".into(),
                port: "http".into(),
                protocol: "tcp".into()
            })
        );
        assert_eq!(
            parse(&name("http.tcp.web.apps.svc.cluster.local."), &zone()),
            Some(ClusterName::Unknown)
        );
        assert_eq!(
            parse(&name("apps.svc.cluster.local."), &zone()),
            Some(ClusterName::Namespace {
                namespace: "apps".into()
            })
        );
        assert_eq!(
            parse(&name("cluster.local."), &zone()),
            Some(ClusterName::Apex)
        );
        assert_eq!(
            parse(&name("a.b.c.d.e.f.svc.cluster.local."), &zone()),
            Some(ClusterName::Unknown)
        );
    }

    #[test]
    fn pods_by_dashed_address() {
        assert_eq!(
            parse(&name("10-42-0-7.default.pod.cluster.local."), &zone()),
            Some(ClusterName::Pod {
                namespace: "default".into(),
                ip: "10.42.0.7".parse().unwrap()
            })
        );
        assert_eq!(
            parse(&name("not-an-ip.default.pod.cluster.local."), &zone()),
            Some(ClusterName::Unknown)
        );
        assert_eq!(dashed_ip("fd00--5"), Some("fd00::5".parse().unwrap()));
        assert_eq!(dashed_label(&"fd00::5".parse().unwrap()), "fd00--5");
        assert_eq!(dashed_label(&"10.42.0.5".parse().unwrap()), "10-42-0-5");
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse(&name("10.0.43.10.in-addr.arpa.")),
            Some("10.43.0.10".parse().unwrap())
        );
        assert_eq!(reverse(&name("0.43.10.in-addr.arpa.")), None);
        assert_eq!(reverse(&name("example.com.")), None);
    }
}
