//! The part of an ADD result the node needs: the pod's address. Results of
//! spec 0.3.0 to 1.x share this shape (0.3 and 0.4 add an IP `version`,
//! which is ignored).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::PodAddress;

#[derive(Deserialize)]
struct AddResult {
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
}

#[derive(Deserialize)]
struct Interface {
    name: String,
    /// The namespace the interface is in; none for the host's.
    #[serde(default)]
    sandbox: Option<String>,
}

#[derive(Deserialize)]
struct IpConfig {
    address: IpNet,
    #[serde(default)]
    gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default)]
    interface: Option<usize>,
}

/// The pod's address in a result: the first IP on an interface inside the
/// pod (the bridge's own address may be listed too), or else the first IP
/// of all when the plugins did not say where they put them. `Err` says why
/// there is none.
pub(crate) fn pod_address(result: &Value, ifname: &str) -> Result<Option<PodAddress>, String> {
    let result = AddResult::deserialize(result).map_err(|err| err.to_string())?;
    let in_pod = |ip: &&IpConfig| {
        ip.interface
            .and_then(|index| result.interfaces.get(index))
            .is_some_and(|interface| interface.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
    };
    let chosen = result
        .ips
        .iter()
        .find(in_pod)
        .or_else(|| result.ips.first());
    Ok(chosen.map(|ip| PodAddress {
        ip: ip.address.addr(),
        gateway: ip.gateway,
        interface: ip
            .interface
            .and_then(|index| result.interfaces.get(index))
            .map_or_else(|| ifname.to_owned(), |interface| interface.name.clone()),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_address_on_the_pods_interface_is_chosen() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "tug0", "mac": "7e:2a:0d:e6:a7:06"},
                {"name": "veth13014af6", "mac": "76:93:61:92:c2:e0"},
                {"name": "eth0", "mac": "3e:82:fc:c3:96:02", "sandbox": "/run/netns/pod"}
            ],
            "ips": [
                {"interface": 0, "address": "10.42.0.1/24"},
                {"interface": 2, "address": "10.42.0.7/24", "gateway": "10.42.0.1"}
            ],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        let address = pod_address(&result, "eth0").unwrap().unwrap();
        assert_eq!(address.ip, "10.42.0.7".parse::<IpAddr>().unwrap());
        assert_eq!(address.gateway, Some("10.42.0.1".parse().unwrap()));
        assert_eq!(address.interface, "eth0");
    }

    #[test]
    fn a_0_4_0_result_without_interfaces_gives_its_first_ip() {
        let result = json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "6", "address": "fd00::5/64", "gateway": "fd00::1"}]
        });
        let address = pod_address(&result, "net1").unwrap().unwrap();
        assert_eq!(address.ip, "fd00::5".parse::<IpAddr>().unwrap());
        assert_eq!(address.interface, "net1");
    }

    #[test]
    fn no_ips_is_no_address_and_garbage_is_an_error() {
        assert!(
            pod_address(&json!({"cniVersion": "1.0.0"}), "eth0")
                .unwrap()
                .is_none()
        );
        assert!(pod_address(&json!({"ips": [{"address": "nowhere"}]}), "eth0").is_err());
    }
}
