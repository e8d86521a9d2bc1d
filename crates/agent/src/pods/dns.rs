//! A pod's `/etc/resolv.conf` and its own line of `/etc/hosts`, as the
//! kubelet writes them (pkg/kubelet/network/dns): the cluster DNS for
//! `ClusterFirst` pods, the host's resolvers for `Default` (and host-network
//! `ClusterFirst`) pods, nothing but `dnsConfig` for `None`, with `dnsConfig`
//! merged into the first two.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

/// The cluster DNS pods are pointed at (the kubelet's `--cluster-dns` and
/// `--cluster-domain`).
#[derive(Clone, Debug)]
pub struct ClusterDns {
    pub servers: Vec<IpAddr>,
    pub domain: String,
}

/// The options every `ClusterFirst` pod gets: names with fewer than five
/// dots try the search domains first, so `web` and `web.ns` find Services.
const CLUSTER_OPTIONS: &[&str] = &["ndots:5"];

/// The most name servers a resolver reads (glibc's MAXNS), and the most
/// search domains the kubelet writes.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The three settings of a resolv.conf.
#[derive(Debug, Default, PartialEq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads a resolv.conf as the kubelet does: every `nameserver`, the
    /// last `search` line, every `options` line; comments dropped.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => conf.nameservers.extend(fields.next().map(str::to_owned)),
                Some("search") => conf.searches = fields.map(str::to_owned).collect(),
                Some("options") => conf.options.extend(fields.map(str::to_owned)),
                _ => {}
            }
        }
        conf
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        if !self.searches.is_empty() {
            text.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.nameservers {
            text.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            text.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        text
    }
}

/// Where a pod's names are resolved, by its `dnsPolicy`.
#[derive(Debug, PartialEq)]
enum Policy {
    Cluster,
    Host,
    None,
}

fn policy(pod: &Pod, cluster: &ClusterDns) -> Policy {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => Policy::None,
        Some("ClusterFirstWithHostNet") => Policy::Cluster,
        Some("Default") => Policy::Host,
        // ClusterFirst, the default: a host-network pod shares the host's
        // resolvers, as with Default.
        _ if host_network => Policy::Host,
        _ => Policy::Cluster,
    };
    // With no cluster DNS known, the kubelet falls back to the host's.
    if policy == Policy::Cluster && cluster.servers.is_empty() {
        Policy::Host
    } else {
        policy
    }
}

/// The pod's resolv.conf, from the host's (`host`) and the cluster's DNS.
pub fn resolv_conf(pod: &Pod, host: ResolvConf, cluster: &ClusterDns) -> ResolvConf {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut conf = match policy(pod, cluster) {
        Policy::Host => host,
        Policy::None => ResolvConf::default(),
        Policy::Cluster => {
            let domain = cluster.domain.trim_end_matches('.');
            let mut searches = if domain.is_empty() {
                Vec::new()
            } else {
                vec![
                    format!("{namespace}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.to_owned(),
                ]
            };
            searches.extend(host.searches);
            ResolvConf {
                nameservers: cluster.servers.iter().map(IpAddr::to_string).collect(),
                searches,
                options: CLUSTER_OPTIONS.iter().map(|o| (*o).to_owned()).collect(),
            }
        }
    };
    if let Some(config) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        merge(&mut conf, config);
    }
    conf.nameservers = distinct(conf.nameservers);
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches = distinct(conf.searches);
    conf.searches.truncate(MAX_SEARCHES);
    conf
}

/// Adds the pod's `dnsConfig`: its name servers and searches after those
/// already there, its options replacing those of the same name.
fn merge(conf: &mut ResolvConf, config: &PodDNSConfig) {
    conf.nameservers
        .extend(config.nameservers.iter().flatten().cloned());
    conf.searches
        .extend(config.searches.iter().flatten().cloned());
    for option in config.options.iter().flatten() {
        let Some(name) = option.name.as_deref() else {
            continue;
        };
        let text = match &option.value {
            Some(value) => format!("{name}:{value}"),
            None => name.to_owned(),
        };
        let same = |o: &String| o.split(':').next() == Some(name);
        match conf.options.iter_mut().find(|o| same(o)) {
            Some(existing) => *existing = text,
            None => conf.options.push(text),
        }
    }
}

fn distinct(items: Vec<String>) -> Vec<String> {
    let mut seen = Vec::with_capacity(items.len());
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// The pod's own `/etc/hosts` line: its address, then its fully qualified
/// name when it has a `subdomain` (`<hostname>.<subdomain>.<ns>.svc.<domain>`,
/// which a headless Service of that name makes resolvable), then its
/// hostname.
pub fn hosts_line(pod: &Pod, ip: &str, hostname: &str, cluster: &ClusterDns) -> String {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let subdomain = pod
        .spec
        .as_ref()
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty());
    let domain = cluster.domain.trim_end_matches('.');
    match subdomain {
        Some(subdomain) if !domain.is_empty() => {
            format!("{ip}\t{hostname}.{subdomain}.{namespace}.svc.{domain}\t{hostname}\n")
        }
        _ => format!("{ip}\t{hostname}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "apps"},
            "spec": spec
        }))
        .unwrap()
    }

    fn cluster() -> ClusterDns {
        ClusterDns {
            servers: vec!["10.43.0.10".parse().unwrap()],
            domain: "cluster.local".into(),
        }
    }

    fn host() -> ResolvConf {
        ResolvConf::parse(
            "# generated\nnameserver 192.0.2.53\nsearch old.example\nsearch corp.example\noptions edns0 ndots:2 ; trailing\n",
        )
    }

    #[test]
    fn the_host_file_is_read_as_the_kubelet_reads_it() {
        assert_eq!(
            host(),
            ResolvConf {
                nameservers: vec!["192.0.2.53".into()],
                searches: vec!["corp.example".into()],
                options: vec!["edns0".into(), "ndots:2".into()],
            }
        );
    }

    #[test]
    fn cluster_first_points_at_the_cluster_dns() {
        let conf = resolv_conf(&pod(serde_json::json!({})), host(), &cluster());
        assert_eq!(
            conf.render(),
            "search apps.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn host_network_pods_keep_the_host_unless_they_ask() {
        let hostnet = pod(serde_json::json!({"hostNetwork": true}));
        assert_eq!(resolv_conf(&hostnet, host(), &cluster()), host());
        let with_host_net = pod(serde_json::json!({
            "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"
        }));
        let conf = resolv_conf(&with_host_net, host(), &cluster());
        assert_eq!(conf.nameservers, ["10.43.0.10"]);
        let default = pod(serde_json::json!({"dnsPolicy": "Default"}));
        assert_eq!(resolv_conf(&default, host(), &cluster()), host());
    }

    #[test]
    fn none_takes_only_dns_config_and_dns_config_merges() {
        let none = pod(serde_json::json!({
            "dnsPolicy": "None",
            "dnsConfig": {
                "nameservers": ["1.1.1.1"],
                "searches": ["a.example"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
            }
        }));
        assert_eq!(
            resolv_conf(&none, host(), &cluster()).render(),
            "search a.example\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
        );
        let merged = pod(serde_json::json!({
            "dnsConfig": {
                "nameservers": ["10.43.0.10", "1.1.1.1"],
                "searches": ["svc.cluster.local", "b.example"],
                "options": [{"name": "ndots", "value": "1"}]
            }
        }));
        let conf = resolv_conf(&merged, host(), &cluster());
        assert_eq!(conf.nameservers, ["10.43.0.10", "1.1.1.1"]);
        assert_eq!(
            conf.searches,
            [
                "apps.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "b.example"
            ]
        );
        assert_eq!(conf.options, ["ndots:1"]);
    }

    #[test]
    fn hosts_line_has_the_fqdn_with_a_subdomain() {
        let plain = pod(serde_json::json!({}));
        assert_eq!(
            hosts_line(&plain, "10.42.0.5", "p", &cluster()),
            "10.42.0.5\tp\n"
        );
        let pet = pod(serde_json::json!({"hostname": "db-0", "subdomain": "db"}));
        assert_eq!(
            hosts_line(&pet, "10.42.0.5", "db-0", &cluster()),
            "10.42.0.5\tdb-0.db.apps.svc.cluster.local\tdb-0\n"
        );
    }
}
