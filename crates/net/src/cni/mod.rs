//! Attaching pods to the node's network with CNI plugins, as kubelet and
//! containerd do through libcni: spec 1.0 lists, and 0.3 and 0.4 ones.
//!
//! - The network is a configuration list read from the config dir
//!   ([`conflist`]); an empty dir gets Tugboat's default.
//! - ADD runs the list's plugins in order ([`plugin`]), each given the
//!   result of the one before as `prevResult`, and plugins that declare a
//!   capability (`portMappings`) get the pod's value in `runtimeConfig`.
//!   The final result gives the pod's address ([`result`]).
//! - What ADD did is kept ([`attachment`]); DEL runs the same list in
//!   reverse with that result as `prevResult`, and CHECK runs it in order.
//! - An ADD that fails is undone (DEL of the whole list), so a failed pod
//!   holds no address. A DEL whose namespace is gone ([`netns`]) passes an
//!   empty `CNI_NETNS`, as containerd does: plugins then free what lives
//!   outside the namespace. The bridge plugin finds the address its
//!   masquerade rule names inside the namespace, so call DEL before the
//!   sandbox goes.

mod attachment;
mod conflist;
mod netns;
mod plugin;
mod result;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use attachment::{Attachment, Attachments};
use conflist::{NetworkList, SpecVersion};
use plugin::{Operation, Request};

/// The pod's interface, as Kubernetes names it.
pub const IFNAME: &str = "eth0";

/// Where the node's networks and plugins are.
#[derive(Clone, Debug)]
pub struct CniConfig {
    /// The network configuration: the first `.conflist`, `.conf` or `.json`
    /// file here in lexical order.
    pub conf_dir: PathBuf,
    /// Where plugin binaries are looked for, in order (`CNI_PATH`).
    pub bin_dirs: Vec<PathBuf>,
    /// The node's pod CIDR; only the default network uses it.
    pub pod_cidr: IpNet,
    /// What ADD did for each pod, and the default network's address leases
    /// (`networks/`): this must outlive agent restarts.
    pub cache_dir: PathBuf,
}

impl Default for CniConfig {
    /// The usual places: `/etc/cni/net.d`, plugins in `/opt/cni/bin` then
    /// `/usr/lib/cni` (Debian's `containernetworking-plugins`), the cache in
    /// `/var/lib/cni`, and pods in 10.42.0.0/24.
    fn default() -> Self {
        Self {
            conf_dir: "/etc/cni/net.d".into(),
            bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            pod_cidr: IpNet::V4(
                Ipv4Net::new(Ipv4Addr::new(10, 42, 0, 0), 24).expect("24 is a prefix length"),
            ),
            cache_dir: "/var/lib/cni".into(),
        }
    }
}

/// A pod to attach: its network namespace and who it is.
#[derive(Clone, Debug)]
pub struct PodNetwork {
    /// The pod's network namespace file (`Sandbox::netns_path`).
    pub netns: PathBuf,
    /// The sandbox's ID (`CNI_CONTAINERID`), never used for another
    /// sandbox: plugins name host state after it, and the bridge plugin
    /// cannot remove its masquerade rule once the namespace is gone
    /// (containernetworking/plugins#810), which a later attachment under
    /// the same ID would trip over.
    pub container_id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The pod's `hostPort`s.
    pub port_mappings: Vec<PortMapping>,
}

/// A `hostPort`: traffic to the node's `host_port` goes to the pod's
/// `container_port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only traffic to this node address; `None` is any.
    pub host_ip: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// As the portmap plugin reads it.
    fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// Where the pod is on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodAddress {
    /// The pod IP.
    pub ip: IpAddr,
    /// The pod's default gateway, when the network has one.
    pub gateway: Option<IpAddr>,
    /// The pod's interface.
    pub interface: String,
}

/// The node's CNI network. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cni {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    cni_path: OsString,
    attachments: Attachments,
}

impl Cni {
    /// Writes the default network into an empty config dir and reads the
    /// configuration once, so that a broken one is known at start.
    pub fn new(config: CniConfig) -> Result<Self> {
        let default = conflist::default_list(config.pod_cidr, &config.cache_dir.join("networks"));
        conflist::write_default_if_none(&config.conf_dir, &default)?;
        conflist::load(&config.conf_dir)?;
        let cni_path =
            std::env::join_paths(&config.bin_dirs).map_err(|err| Error::InvalidConfig {
                path: config.conf_dir.clone(),
                reason: format!("plugin dirs {:?}: {err}", config.bin_dirs),
            })?;
        Ok(Self {
            conf_dir: config.conf_dir,
            bin_dirs: config.bin_dirs,
            cni_path,
            attachments: Attachments::new(config.cache_dir),
        })
    }

    /// Attaches the pod: its interface, address and host ports. A pod
    /// already attached in this namespace gets its address again (an agent
    /// that restarted asks again). A container ID attached in another
    /// namespace is refused: see [`PodNetwork::container_id`].
    pub fn add(&self, pod: &PodNetwork) -> Result<PodAddress> {
        check_container_id(&pod.container_id)?;
        let live =
            netns::identify(&pod.netns).ok_or_else(|| Error::NotANamespace(pod.netns.clone()))?;
        if let Some(attached) = self.attachments.load(&pod.container_id, IFNAME)? {
            if attached.netns != live {
                return Err(Error::AttachedElsewhere(pod.container_id.clone()));
            }
            let list = self.cached_list(&attached)?;
            return address(&list, pod, &attached.result);
        }
        let list = conflist::load(&self.conf_dir)?;
        let capability_args = capability_args(pod);
        let attached = self
            .run_add(&list, pod, &capability_args)
            .and_then(|result| {
                let address = address(&list, pod, &result)?;
                self.attachments.save(&Attachment {
                    container_id: pod.container_id.clone(),
                    if_name: IFNAME.to_owned(),
                    netns: live,
                    capability_args: capability_args.clone(),
                    config: list.document.clone(),
                    result,
                })?;
                Ok(address)
            });
        if let Err(err) = &attached {
            let netns = pod.netns.clone().into_os_string();
            if let Err(undo) = self.run_del(&list, pod, &capability_args, None, netns) {
                tracing::warn!(container_id = pod.container_id, error = %undo,
                    "undoing a failed CNI ADD ({err}) failed too");
            }
        }
        attached
    }

    /// Runs the plugins' CHECK on what `add` made.
    pub fn check(&self, pod: &PodNetwork) -> Result<()> {
        check_container_id(&pod.container_id)?;
        let attached = self
            .attachments
            .load(&pod.container_id, IFNAME)?
            .ok_or_else(|| Error::NotAttached(pod.container_id.clone()))?;
        let list = self.cached_list(&attached)?;
        if list.version < SpecVersion::CHECK {
            return Err(Error::CheckUnsupported {
                network: list.name,
                version: list.cni_version,
            });
        }
        if list.disable_check {
            return Ok(());
        }
        let request = self.request(Operation::Check, pod, pod.netns.clone().into_os_string());
        for plugin in &list.plugins {
            let config = plugin_config(
                &list,
                plugin,
                Some(&attached.result),
                &attached.capability_args,
            );
            plugin::run(&request, plugin_type(plugin), &config)?;
        }
        Ok(())
    }

    /// Detaches the pod: frees its address, host ports and interface. A
    /// pod not attached, or detached already, is detached again harmlessly.
    /// DEL runs with what ADD used, in the namespace ADD used if it is still
    /// the one at the pod's path, else with no namespace.
    pub fn del(&self, pod: &PodNetwork) -> Result<()> {
        check_container_id(&pod.container_id)?;
        let live = netns::identify(&pod.netns);
        let attached = self.attachments.load(&pod.container_id, IFNAME)?;
        let in_namespace = match &attached {
            Some(attached) => live.as_ref() == Some(&attached.netns),
            None => live.is_some(),
        };
        let netns = if in_namespace {
            pod.netns.clone().into_os_string()
        } else {
            OsString::new()
        };
        match &attached {
            Some(attached) => {
                let list = self.cached_list(attached)?;
                let prev_result = Some(&attached.result);
                self.run_del(&list, pod, &attached.capability_args, prev_result, netns)?;
            }
            None => {
                let list = conflist::load(&self.conf_dir)?;
                self.run_del(&list, pod, &capability_args(pod), None, netns)?;
            }
        }
        self.attachments.remove(&pod.container_id, IFNAME)
    }

    fn cached_list(&self, attached: &Attachment) -> Result<NetworkList> {
        let origin = self
            .attachments
            .path(&attached.container_id, &attached.if_name);
        NetworkList::parse(attached.config.clone(), &origin)
    }

    fn run_add(
        &self,
        list: &NetworkList,
        pod: &PodNetwork,
        capability_args: &Map<String, Value>,
    ) -> Result<Value> {
        let request = self.request(Operation::Add, pod, pod.netns.clone().into_os_string());
        let mut result = Value::Null;
        for plugin in &list.plugins {
            let prev_result = Some(&result).filter(|result| !result.is_null());
            let config = plugin_config(list, plugin, prev_result, capability_args);
            result = plugin::run(&request, plugin_type(plugin), &config)?;
        }
        Ok(result)
    }

    fn run_del(
        &self,
        list: &NetworkList,
        pod: &PodNetwork,
        capability_args: &Map<String, Value>,
        prev_result: Option<&Value>,
        netns: OsString,
    ) -> Result<()> {
        // Before 0.4.0, DEL had no prevResult.
        let prev_result = prev_result.filter(|_| list.version >= SpecVersion::CHECK);
        let request = self.request(Operation::Del, pod, netns);
        for plugin in list.plugins.iter().rev() {
            let config = plugin_config(list, plugin, prev_result, capability_args);
            plugin::run(&request, plugin_type(plugin), &config)?;
        }
        Ok(())
    }

    fn request<'a>(
        &'a self,
        operation: Operation,
        pod: &'a PodNetwork,
        netns: OsString,
    ) -> Request<'a> {
        Request {
            operation,
            container_id: &pod.container_id,
            netns,
            ifname: IFNAME,
            args: cni_args(pod),
            bin_dirs: &self.bin_dirs,
            cni_path: &self.cni_path,
        }
    }
}

/// The pod's address in the final result of `list`.
fn address(list: &NetworkList, pod: &PodNetwork, result: &Value) -> Result<PodAddress> {
    match result::pod_address(result, IFNAME) {
        Ok(Some(address)) => Ok(address),
        Ok(None) => Err(Error::NoAddress {
            network: list.name.clone(),
            container_id: pod.container_id.clone(),
        }),
        Err(reason) => Err(Error::InvalidResult {
            plugin: list
                .plugins
                .last()
                .map(plugin_type)
                .unwrap_or_default()
                .to_owned(),
            command: "ADD",
            reason,
        }),
    }
}

/// `NetworkList::parse` made sure every plugin has a string `type`.
fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin["type"].as_str().unwrap_or_default()
}

/// One plugin's stdin: its object from the list, with the list's name and
/// version, the previous result, and the runtime values of the
/// capabilities it declares (and only those, as libcni gives them).
fn plugin_config(
    list: &NetworkList,
    plugin: &Map<String, Value>,
    prev_result: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Value {
    let mut config = plugin.clone();
    config.insert("cniVersion".into(), list.cni_version.clone().into());
    config.insert("name".into(), list.name.clone().into());
    if let Some(prev_result) = prev_result {
        config.insert("prevResult".into(), prev_result.clone());
    }
    let declared = |capability: &str| {
        plugin
            .get("capabilities")
            .and_then(|capabilities| capabilities.get(capability))
            == Some(&Value::Bool(true))
    };
    let runtime_config: Map<String, Value> = capability_args
        .iter()
        .filter(|(capability, _)| declared(capability))
        .map(|(capability, value)| (capability.clone(), value.clone()))
        .collect();
    if !runtime_config.is_empty() {
        config.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    Value::Object(config)
}

/// What the pod asks of plugins with capabilities: its host ports.
fn capability_args(pod: &PodNetwork) -> Map<String, Value> {
    let mut args = Map::new();
    if !pod.port_mappings.is_empty() {
        let mappings = pod.port_mappings.iter().map(|mapping| {
            let mut entry = json!({
                "hostPort": mapping.host_port,
                "containerPort": mapping.container_port,
                "protocol": mapping.protocol.as_str(),
            });
            if let Some(host_ip) = mapping.host_ip {
                entry["hostIP"] = host_ip.to_string().into();
            }
            entry
        });
        args.insert("portMappings".into(), mappings.collect());
    }
    args
}

/// `CNI_ARGS` as kubelet and containerd set them; `IgnoreUnknown` keeps
/// plugins that know none of these keys from refusing them.
fn cni_args(pod: &PodNetwork) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        pod.namespace, pod.name, pod.container_id, pod.uid
    )
}

/// The CNI spec's rule, which also keeps the ID a plain file name.
fn check_container_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidContainerId(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn pod(port_mappings: Vec<PortMapping>) -> PodNetwork {
        PodNetwork {
            netns: "/run/netns/pod".into(),
            container_id: "0123abcd".into(),
            namespace: "default".into(),
            name: "web".into(),
            uid: "5c8e2e4a-0000-4000-8000-000000000001".into(),
            port_mappings,
        }
    }

    fn list() -> NetworkList {
        let document = json!({
            "cniVersion": "1.0.0",
            "name": "net",
            "plugins": [
                {"type": "bridge", "bridge": "b0"},
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
            ],
        });
        NetworkList::parse(document, Path::new("test.conflist")).unwrap()
    }

    #[test]
    fn each_plugin_gets_the_lists_name_and_version_and_its_own_keys() {
        let list = list();
        let config = plugin_config(&list, &list.plugins[0], None, &Map::new());
        assert_eq!(
            config,
            json!({"cniVersion": "1.0.0", "name": "net", "type": "bridge", "bridge": "b0"})
        );
    }

    #[test]
    fn port_mappings_reach_only_plugins_that_declare_them() {
        let list = list();
        let web = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        };
        let dns = PortMapping {
            host_port: 5353,
            container_port: 53,
            protocol: Protocol::Udp,
            host_ip: Some("192.0.2.2".parse().unwrap()),
        };
        let args = capability_args(&pod(vec![web, dns]));
        let prev = json!({"cniVersion": "1.0.0", "ips": []});

        let bridge = plugin_config(&list, &list.plugins[0], None, &args);
        assert_eq!(bridge.get("runtimeConfig"), None);
        let portmap = plugin_config(&list, &list.plugins[1], Some(&prev), &args);
        assert_eq!(portmap["prevResult"], prev);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.2"},
            ]})
        );
        assert!(capability_args(&pod(Vec::new())).is_empty());
    }

    #[test]
    fn cni_args_name_the_pod_as_kubelet_does() {
        assert_eq!(
            cni_args(&pod(Vec::new())),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;\
             K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=5c8e2e4a-0000-4000-8000-000000000001"
        );
    }

    #[test]
    fn container_ids_follow_the_spec() {
        for good in [
            "abc",
            "0123abcd",
            "a_b.c-d",
            "5c8e2e4a-0000-4000-8000-000000000001",
        ] {
            assert!(check_container_id(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "../etc", "a/b", "a b", "é"] {
            assert!(check_container_id(bad).is_err(), "{bad}");
        }
    }
}
