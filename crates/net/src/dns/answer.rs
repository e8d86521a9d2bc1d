//! Answering a question about the cluster from the [`Index`], as the
//! Kubernetes DNS specification and CoreDNS' kubernetes plugin do: Service
//! and endpoint addresses, SRV for named ports, PTR for Service IPs and
//! endpoint addresses, CNAME for ExternalName Services, pod names,
//! NXDOMAIN for names that do not exist and an empty NOERROR for names
//! that exist with no record of the type asked (both with the zone's SOA,
//! so resolvers cache the answer). Until the index has the whole cluster,
//! a name it lacks gets SERVFAIL instead of NXDOMAIN, as CoreDNS answers
//! before its first sync: the name may exist, and a resolver would cache
//! its absence.

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::index::{Endpoint, Index, Kind, Port, ServiceKey, ServiceRecords};
use super::names::{self, ClusterName};

/// The version of the Kubernetes DNS schema served (`dns-version.<zone>`).
const SCHEMA_VERSION: &str = "1.1.0";

/// The cluster domain the DNS is the authority for.
pub struct Zone {
    /// `cluster.local.`, lower case and fully qualified.
    pub origin: Name,
    /// The TTL of every answer (CoreDNS' kubernetes plugin: 5 s).
    pub ttl: u32,
    /// The SOA serial: when this server started, so caches see a new one.
    pub serial: u32,
}

/// A reply made here.
#[derive(Debug, Default)]
pub struct Answer {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub additionals: Vec<Record>,
    /// The zone's SOA, in the authority section of a negative answer.
    pub soa: Option<Record>,
    /// An ExternalName's target, which the caller resolves upstream and
    /// adds after the CNAME.
    pub chase: Option<Name>,
}

impl Zone {
    /// The reply to `name`/`rtype`, or `None` when the name is not ours to
    /// answer (outside the zone, or a reverse name of no Service or
    /// endpoint) and goes upstream.
    pub fn answer(&self, index: &Index, name: &Name, rtype: RecordType) -> Option<Answer> {
        let answer = self.look_up(index, name, rtype)?;
        if answer.code == ResponseCode::NXDomain && !index.synced() {
            return Some(Answer {
                code: ResponseCode::ServFail,
                ..Answer::default()
            });
        }
        Some(answer)
    }

    /// The answer as the index stands, whether it has the whole cluster
    /// or not.
    fn look_up(&self, index: &Index, name: &Name, rtype: RecordType) -> Option<Answer> {
        if let Some(ip) = names::reverse(name) {
            let (key, label) = index.reverse(&ip)?;
            let target = self.service_name(key, label.as_deref());
            return Some(match rtype {
                RecordType::PTR => self.records(vec![self.record(name, RData::PTR(PTR(target)))]),
                _ => self.no_data(),
            });
        }
        let asked = names::parse(name, &self.origin)?;
        Some(match asked {
            ClusterName::Apex => match rtype {
                RecordType::SOA => self.records(vec![self.soa_record()]),
                _ => self.no_data(),
            },
            ClusterName::DnsVersion => match rtype {
                RecordType::TXT => self.records(vec![
                    self.record(name, RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()]))),
                ]),
                _ => self.no_data(),
            },
            ClusterName::Services | ClusterName::Pods | ClusterName::PodNamespace { .. } => {
                self.no_data()
            }
            ClusterName::Namespace { namespace } if index.has_namespace(&namespace) => {
                self.no_data()
            }
            ClusterName::Service { namespace, service } => {
                let key = ServiceKey {
                    namespace,
                    name: service,
                };
                match index.service(&key) {
                    Some(records) => self.service(name, &key, records, rtype),
                    None => self.nx_domain(),
                }
            }
            ClusterName::Endpoint {
                namespace,
                service,
                hostname,
            } => {
                let key = ServiceKey {
                    namespace,
                    name: service,
                };
                let endpoints: Vec<&Endpoint> = index
                    .service(&key)
                    .iter()
                    .flat_map(|s| &s.endpoints)
                    .filter(|e| e.hostname == hostname)
                    .collect();
                if endpoints.is_empty() {
                    self.nx_domain()
                } else {
                    let addresses = endpoints.iter().flat_map(|e| &e.addresses);
                    self.addresses(name, addresses, rtype)
                }
            }
            ClusterName::Port {
                namespace,
                service,
                port,
                protocol,
            } => {
                let key = ServiceKey {
                    namespace,
                    name: service,
                };
                let wanted = |p: &Port| p.name == port && p.protocol == protocol;
                let answer = index
                    .service(&key)
                    .map(|records| self.srv(name, &key, records, wanted))
                    .filter(|answer| !answer.answers.is_empty());
                match answer {
                    Some(answer) if rtype == RecordType::SRV => answer,
                    Some(_) => self.no_data(),
                    None => self.nx_domain(),
                }
            }
            ClusterName::Pod { ip, .. } => self.addresses(name, [ip].iter(), rtype),
            ClusterName::Namespace { .. } | ClusterName::Unknown => self.nx_domain(),
        })
    }

    /// The records of a Service's own name.
    fn service(
        &self,
        name: &Name,
        key: &ServiceKey,
        records: &ServiceRecords,
        rtype: RecordType,
    ) -> Answer {
        match &records.kind {
            Kind::ExternalName(target) => {
                let Ok(target) = Name::from_ascii(target).map(|mut t| {
                    t.set_fqdn(true);
                    t
                }) else {
                    return self.nx_domain();
                };
                let cname = self.record(name, RData::CNAME(CNAME(target.clone())));
                let mut answer = self.records(vec![cname]);
                if rtype != RecordType::CNAME {
                    answer.chase = Some(target);
                }
                answer
            }
            _ if rtype == RecordType::SRV => self.srv(name, key, records, |_| true),
            Kind::ClusterIp(ips) => self.addresses(name, ips.iter(), rtype),
            // A headless Service with no ready endpoint has no name at all.
            Kind::Headless if records.endpoints.is_empty() => self.nx_domain(),
            Kind::Headless => {
                let addresses = records.endpoints.iter().flat_map(|e| &e.addresses);
                self.addresses(name, addresses, rtype)
            }
        }
    }

    /// SRV records for the Service's named ports `wanted` picks: one
    /// pointing at the Service's name for a ClusterIP Service, one per
    /// ready endpoint (with the endpoint's port) for a headless one, and the
    /// targets' addresses as additional records.
    fn srv(
        &self,
        name: &Name,
        key: &ServiceKey,
        records: &ServiceRecords,
        wanted: impl Fn(&Port) -> bool,
    ) -> Answer {
        // A port served over UDP and TCP appears once per protocol: one
        // record for both.
        let mut targets: Vec<(u16, Name, &[IpAddr])> = Vec::new();
        match &records.kind {
            Kind::ClusterIp(ips) => {
                let target = self.service_name(key, None);
                for port in records.ports.iter().filter(|p| wanted(p)) {
                    targets.push((port.port, target.clone(), ips));
                }
            }
            Kind::Headless => {
                for endpoint in &records.endpoints {
                    let target = self.service_name(key, Some(&endpoint.hostname));
                    for port in endpoint.ports.iter().filter(|p| wanted(p)) {
                        targets.push((port.port, target.clone(), &endpoint.addresses));
                    }
                }
            }
            Kind::ExternalName(_) => {}
        }
        targets.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        // Equal shares of 100, as CoreDNS weighs them.
        let weight = u16::try_from(100 / targets.len().max(1))
            .unwrap_or(1)
            .max(1);
        let mut answer = self.records(Vec::new());
        for (port, target, addresses) in targets {
            let srv = SRV::new(0, weight, port, target.clone());
            answer.answers.push(self.record(name, RData::SRV(srv)));
            for ip in addresses {
                let extra = self.record(&target, address_data(ip));
                if !answer.additionals.contains(&extra) {
                    answer.additionals.push(extra);
                }
            }
        }
        answer
    }

    /// A or AAAA records of the `addresses` of that family; an empty
    /// NOERROR for another type or when none is of that family.
    fn addresses<'a>(
        &self,
        name: &Name,
        addresses: impl Iterator<Item = &'a IpAddr>,
        rtype: RecordType,
    ) -> Answer {
        let records: Vec<Record> = addresses
            .map(address_data)
            .filter(|data| data.record_type() == rtype)
            .map(|data| self.record(name, data))
            .collect();
        if records.is_empty() {
            self.no_data()
        } else {
            self.records(records)
        }
    }

    /// `<label>.<svc>.<ns>.svc.<zone>`, or `<svc>.<ns>.svc.<zone>`.
    fn service_name(&self, key: &ServiceKey, label: Option<&str>) -> Name {
        let relative = match label {
            Some(label) => format!("{label}.{}.{}.svc", key.name, key.namespace),
            None => format!("{}.{}.svc", key.name, key.namespace),
        };
        Name::from_ascii(relative)
            .and_then(|n| n.append_domain(&self.origin))
            .unwrap_or_else(|_| self.origin.clone())
    }

    fn record(&self, name: &Name, data: RData) -> Record {
        Record::from_rdata(name.clone(), self.ttl, data)
    }

    fn soa_record(&self) -> Record {
        let prepend = |label: &str| {
            Name::from_ascii(label)
                .and_then(|n| n.append_domain(&self.origin))
                .unwrap_or_else(|_| self.origin.clone())
        };
        let soa = SOA::new(
            prepend("ns.dns"),
            prepend("hostmaster"),
            self.serial,
            7200,
            1800,
            86400,
            self.ttl,
        );
        self.record(&self.origin, RData::SOA(soa))
    }

    fn records(&self, answers: Vec<Record>) -> Answer {
        Answer {
            answers,
            ..Answer::default()
        }
    }

    fn no_data(&self) -> Answer {
        Answer {
            soa: Some(self.soa_record()),
            ..Answer::default()
        }
    }

    fn nx_domain(&self) -> Answer {
        Answer {
            code: ResponseCode::NXDomain,
            soa: Some(self.soa_record()),
            ..Answer::default()
        }
    }
}

fn address_data(ip: &IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(*v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    fn zone() -> Zone {
        Zone {
            origin: Name::from_ascii("cluster.local.").unwrap(),
            ttl: 5,
            serial: 1,
        }
    }

    fn index() -> Index {
        let mut index = Index::default();
        index.mark_synced();
        let add = |index: &mut Index, svc: serde_json::Value, slices: Vec<serde_json::Value>| {
            let svc: Service = serde_json::from_value(svc).unwrap();
            let slices: Vec<EndpointSlice> = slices
                .into_iter()
                .map(|s| serde_json::from_value(s).unwrap())
                .collect();
            let meta = &svc.metadata;
            let key = ServiceKey::new(
                meta.namespace.as_deref().unwrap(),
                meta.name.as_deref().unwrap(),
            );
            index.set(key, Some(ServiceRecords::new(&svc, &slices)));
        };
        add(
            &mut index,
            serde_json::json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.43.0.20", "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"port": 81}
                ]}
            }),
            vec![],
        );
        add(
            &mut index,
            serde_json::json!({
                "metadata": {"name": "db", "namespace": "apps"},
                "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
            }),
            vec![serde_json::json!({
                "metadata": {"name": "db-1", "namespace": "apps"},
                "addressType": "IPv4",
                "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                "endpoints": [
                    {"addresses": ["10.42.0.5"], "hostname": "db-0"},
                    {"addresses": ["10.42.0.6"], "hostname": "db-1"}
                ]
            })],
        );
        add(
            &mut index,
            serde_json::json!({
                "metadata": {"name": "empty", "namespace": "apps"},
                "spec": {"clusterIP": "None"}
            }),
            vec![],
        );
        add(
            &mut index,
            serde_json::json!({
                "metadata": {"name": "out", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "example.com"}
            }),
            vec![],
        );
        index
    }

    fn ask(name: &str, rtype: RecordType) -> Option<Answer> {
        zone().answer(&index(), &Name::from_ascii(name).unwrap(), rtype)
    }

    fn data(answer: &Answer) -> Vec<String> {
        answer.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn a_cluster_ip_service() {
        let answer = ask("web.default.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(answer.code, ResponseCode::NoError);
        assert_eq!(data(&answer), ["10.43.0.20"]);
        assert_eq!(answer.answers[0].ttl, 5);
        let aaaa = ask("web.default.svc.cluster.local.", RecordType::AAAA).unwrap();
        assert_eq!(aaaa.code, ResponseCode::NoError);
        assert!(aaaa.answers.is_empty());
        assert!(aaaa.soa.is_some());
    }

    #[test]
    fn srv_for_named_ports_only() {
        let answer = ask("_http._tcp.web.default.svc.cluster.local.", RecordType::SRV).unwrap();
        assert_eq!(data(&answer), ["0 100 80 web.default.svc.cluster.local."]);
        assert_eq!(answer.additionals.len(), 1);
        let udp = ask("_http._udp.web.default.svc.cluster.local.", RecordType::SRV).unwrap();
        assert_eq!(udp.code, ResponseCode::NXDomain);
    }

    #[test]
    fn headless_services_answer_with_their_endpoints() {
        let answer = ask("db.apps.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(data(&answer), ["10.42.0.5", "10.42.0.6"]);
        let pet = ask("db-1.db.apps.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(data(&pet), ["10.42.0.6"]);
        let srv = ask("_pg._tcp.db.apps.svc.cluster.local.", RecordType::SRV).unwrap();
        assert_eq!(
            data(&srv),
            [
                "0 50 5432 db-0.db.apps.svc.cluster.local.",
                "0 50 5432 db-1.db.apps.svc.cluster.local."
            ]
        );
        let empty = ask("empty.apps.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(empty.code, ResponseCode::NXDomain);
    }

    #[test]
    fn reverse_names_of_services_and_endpoints() {
        let svc = ask("20.0.43.10.in-addr.arpa.", RecordType::PTR).unwrap();
        assert_eq!(data(&svc), ["web.default.svc.cluster.local."]);
        let pet = ask("5.0.42.10.in-addr.arpa.", RecordType::PTR).unwrap();
        assert_eq!(data(&pet), ["db-0.db.apps.svc.cluster.local."]);
        assert!(ask("9.9.9.9.in-addr.arpa.", RecordType::PTR).is_none());
    }

    #[test]
    fn external_names_are_cnames_to_chase() {
        let answer = ask("out.default.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(data(&answer), ["example.com."]);
        assert_eq!(
            answer.chase,
            Some(Name::from_ascii("example.com.").unwrap())
        );
    }

    #[test]
    fn missing_names_and_other_zones() {
        for missing in [
            "nope.default.svc.cluster.local.",
            "web.default.svc.cluster.local.default.svc.cluster.local.",
            "nowhere.svc.cluster.local.",
            "x.cluster.local.",
        ] {
            let answer = ask(missing, RecordType::A).unwrap();
            assert_eq!(answer.code, ResponseCode::NXDomain, "{missing}");
            assert!(answer.soa.is_some());
        }
        let ns = ask("default.svc.cluster.local.", RecordType::A).unwrap();
        assert_eq!(ns.code, ResponseCode::NoError);
        assert!(ask("example.com.", RecordType::A).is_none());
    }

    #[test]
    fn before_the_first_sync_a_missing_name_is_a_server_failure_not_nxdomain() {
        let unsynced = Index::default();
        let ask =
            |name: &str| zone().answer(&unsynced, &Name::from_ascii(name).unwrap(), RecordType::A);
        let answer = ask("web.default.svc.cluster.local.").unwrap();
        assert_eq!(answer.code, ResponseCode::ServFail);
        assert!(answer.soa.is_none() && answer.answers.is_empty());
        // What needs no index is answered, and other zones still go upstream.
        let pod = ask("10-42-0-9.default.pod.cluster.local.").unwrap();
        assert_eq!(data(&pod), ["10.42.0.9"]);
        assert!(ask("example.com.").is_none());
    }

    #[test]
    fn pods_and_the_schema_version() {
        let pod = ask("10-42-0-9.default.pod.cluster.local.", RecordType::A).unwrap();
        assert_eq!(data(&pod), ["10.42.0.9"]);
        let version = ask("dns-version.cluster.local.", RecordType::TXT).unwrap();
        assert_eq!(data(&version), ["1.1.0"]);
    }
}
