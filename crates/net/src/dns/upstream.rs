//! Names outside the cluster: asked of the host's resolvers (those of
//! `/etc/resolv.conf` when the server starts, or the ones it is told),
//! through hickory-resolver, which caches answers for their TTL.

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};

use super::answer::Answer;

/// The resolvers other names go to.
pub struct Upstream {
    resolver: Resolver<TokioRuntimeProvider>,
}

/// The name servers `/etc/resolv.conf` lists, each on its port.
pub fn host_resolvers() -> Result<Vec<SocketAddr>, NetError> {
    let (config, _) = hickory_resolver::system_conf::read_system_conf()?;
    Ok(config
        .name_servers()
        .iter()
        .filter_map(|server| {
            let port = server.connections.first()?.port;
            Some(SocketAddr::new(server.ip, port))
        })
        .collect())
}

impl Upstream {
    /// A resolver asking `servers` (over UDP, and TCP for long answers).
    pub fn new(servers: &[SocketAddr]) -> Result<Upstream, NetError> {
        let name_servers = servers
            .iter()
            .map(|server| {
                let mut config = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut config.connections {
                    connection.port = server.port();
                }
                config
            })
            .collect();
        let mut options = ResolverOpts::default();
        // A forwarder passes CNAME chains on, and answers only what the
        // upstream says (not this host's /etc/hosts).
        options.preserve_intermediates = true;
        options.use_hosts_file = ResolveHosts::Never;
        let config = ResolverConfig::from_name_servers(name_servers);
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()?;
        Ok(Upstream { resolver })
    }

    /// What the upstream resolvers answer for `name`/`rtype`: its records,
    /// its NXDOMAIN or empty answer (with the SOA it gave), SERVFAIL when
    /// none of them answers.
    pub async fn answer(&self, name: Name, rtype: RecordType) -> Answer {
        let mut name = name;
        name.set_fqdn(true);
        match self.resolver.lookup(name.clone(), rtype).await {
            Ok(lookup) => Answer {
                answers: lookup.answers().to_vec(),
                ..Answer::default()
            },
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => Answer {
                code: none.response_code,
                soa: none.soa.map(|soa| soa.into_record_of_rdata()),
                ..Answer::default()
            },
            Err(e) => {
                tracing::debug!("cluster DNS: no upstream answer for {name} {rtype}: {e}");
                Answer {
                    code: ResponseCode::ServFail,
                    ..Answer::default()
                }
            }
        }
    }
}
