//! Tugboat's networking, in three rooms: [`cni`] (pod networks), [`proxy`]
//! (Services in nftables) and [`dns`] (the cluster DNS).
//!
//! [`cni`]: each pod's network namespace gets its interface, address and host
//! ports from the CNI plugins of the node.
//!
//! ```text
//! let cni = Cni::new(CniConfig { conf_dir, bin_dirs, pod_cidr, cache_dir })?;
//! //   an empty conf_dir gets 10-tugboat.conflist: bridge tug0, host-local
//! //   IPAM on pod_cidr, portmap, loopback
//! let pod = PodNetwork { netns: sandbox.netns_path, container_id, namespace, name, uid,
//!                        port_mappings: vec![PortMapping { host_port, container_port, protocol, host_ip }] };
//! //   container_id: the sandbox's, never reused for another sandbox
//! let address = cni.add(&pod)?;   // PodAddress { ip, gateway, interface }; again: the same address
//! cni.check(&pod)?;               // the plugins' CHECK of what add made
//! cni.del(&pod)?;                 // before the sandbox goes; again, or with the netns gone: fine
//! ```
//!
//! Every call runs plugin processes and waits for them (tens of
//! milliseconds); an async caller runs them on a blocking thread. `Cni` is
//! `Send + Sync`: pods are attached concurrently, as the plugins expect
//! (host-local and iptables take their own locks).
//!
//! `hostNetwork` pods have no netns of their own and are not attached at all.
//!
//! [`dns`] is the cluster DNS `tug server` runs (`dns::start(client,
//! DnsConfig { address, ports, domain, upstreams })`): the Kubernetes DNS
//! names answered from watched Services and EndpointSlices, others forwarded.
//!
//! [`proxy`] is the service proxy beside each node agent: Services and
//! EndpointSlices become DNAT rules in an nftables table of the node's own
//! (`proxy::run(client, proxy::Config { node_name, pod_cidr, agent_dir })`).

pub mod cni;
pub mod dns;
mod error;
pub mod proxy;

pub use cni::{Cni, CniConfig, PodAddress, PodNetwork, PortMapping, Protocol};
pub use error::{Error, Result};
pub use ipnet::IpNet;
