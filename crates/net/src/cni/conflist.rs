//! Network configuration lists: the one the node uses, which is the first
//! file of the config dir in lexical order (as kubelet and containerd pick
//! it), and the default Tugboat writes into an empty config dir.

use std::fmt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::error::{Context, Error, Result};

/// The file the default list is written to: sorts before most others, as
/// distributions number theirs.
pub(crate) const DEFAULT_FILE: &str = "10-tugboat.conflist";
/// What libcni reads: lists, and single plugin configurations.
const EXTENSIONS: [&str; 3] = ["conflist", "conf", "json"];

/// A network configuration list, its plugins' objects kept as written so
/// that every key a plugin knows reaches it.
#[derive(Clone, Debug)]
pub(crate) struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub version: SpecVersion,
    pub disable_check: bool,
    pub plugins: Vec<Map<String, Value>>,
    /// The whole list as a `.conflist` document, for the attachment cache.
    pub document: Value,
}

impl NetworkList {
    /// Reads a list document; a single plugin configuration (`.conf`)
    /// becomes a list of one, as libcni does.
    pub fn parse(document: Value, origin: &Path) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidConfig {
            path: origin.to_owned(),
            reason,
        };
        let Value::Object(mut object) = document else {
            return Err(invalid("not a JSON object".into()));
        };
        if !object.contains_key("plugins") {
            let name = object.get("name").cloned().unwrap_or(Value::Null);
            let version = object.get("cniVersion").cloned().unwrap_or(Value::Null);
            object = Map::from_iter([
                ("name".to_owned(), name),
                ("cniVersion".to_owned(), version),
                (
                    "plugins".to_owned(),
                    Value::Array(vec![Value::Object(object)]),
                ),
            ]);
        }
        let name = string(&object, "name").ok_or_else(|| invalid("no \"name\"".into()))?;
        let cni_version =
            string(&object, "cniVersion").ok_or_else(|| invalid("no \"cniVersion\"".into()))?;
        let version = SpecVersion::parse(&cni_version)
            .ok_or_else(|| invalid(format!("cniVersion {cni_version:?} is not a version")))?;
        if version < SpecVersion::OLDEST {
            // Older results (ip4 and ip6 objects) have another shape.
            return Err(invalid(format!(
                "cniVersion {cni_version} is older than {}, the oldest supported",
                SpecVersion::OLDEST
            )));
        }
        let disable_check = matches!(object.get("disableCheck"), Some(Value::Bool(true)))
            || matches!(object.get("disableCheck"), Some(Value::String(s)) if s == "true");
        let plugins = match object.get("plugins") {
            Some(Value::Array(plugins)) if !plugins.is_empty() => plugins,
            _ => return Err(invalid("\"plugins\" is not a list of plugins".into())),
        };
        let plugins = plugins
            .iter()
            .map(|plugin| match plugin {
                Value::Object(plugin) => match string(plugin, "type") {
                    Some(kind) if !kind.is_empty() && !kind.contains('/') => Ok(plugin.clone()),
                    _ => Err(invalid("a plugin has no valid \"type\"".into())),
                },
                _ => Err(invalid("a plugin is not a JSON object".into())),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            name,
            cni_version,
            version,
            disable_check,
            plugins,
            document: Value::Object(object),
        })
    }
}

fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The node's network list: the first configuration file in `dir`.
pub(crate) fn load(dir: &Path) -> Result<NetworkList> {
    let path = first_file(dir)?.ok_or_else(|| Error::InvalidConfig {
        path: dir.to_owned(),
        reason: "no network configuration (.conflist, .conf or .json)".into(),
    })?;
    let bytes = std::fs::read(&path).context(|| format!("reading {}", path.display()))?;
    let document = serde_json::from_slice(&bytes).map_err(|err| Error::InvalidConfig {
        path: path.clone(),
        reason: err.to_string(),
    })?;
    NetworkList::parse(document, &path)
}

fn first_file(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).context(|| format!("reading {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .context(|| format!("reading {}", dir.display()))?
            .path();
        let known = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| EXTENSIONS.contains(&ext));
        if known && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files.into_iter().next())
}

/// Writes `list` as [`DEFAULT_FILE`] when `dir` has no configuration yet;
/// one the administrator put there always wins.
pub(crate) fn write_default_if_none(dir: &Path, list: &Value) -> Result<()> {
    std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    if first_file(dir)?.is_some() {
        return Ok(());
    }
    let path = dir.join(DEFAULT_FILE);
    // Renamed into place, so that nobody reading the dir (another agent,
    // a CNI tool) sees half a file.
    let partial = dir.join(format!(".{DEFAULT_FILE}.partial"));
    let text = serde_json::to_string_pretty(list).map_err(std::io::Error::other);
    text.and_then(|text| std::fs::write(&partial, text + "\n"))
        .and_then(|()| std::fs::rename(&partial, &path))
        .context(|| format!("writing {}", path.display()))
}

/// Tugboat's default network: Debian's standard plugins. Pods hang off the
/// `tug0` bridge, which is their gateway and masquerades their traffic out;
/// host-local hands out `pod_cidr` (keeping its leases under `ipam_dir`);
/// portmap gives hostPorts, reachable from the node itself too (snat); and
/// loopback brings `lo` up in the pod.
pub(crate) fn default_list(pod_cidr: IpNet, ipam_dir: &Path) -> Value {
    let default_route = match pod_cidr {
        IpNet::V4(_) => "0.0.0.0/0",
        IpNet::V6(_) => "::/0",
    };
    json!({
        "cniVersion": "1.0.0",
        "name": "tugboat",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "tug0",
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr.trunc().to_string() }]],
                    "routes": [{ "dst": default_route }],
                    "dataDir": ipam_dir,
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
            { "type": "loopback" },
        ],
    })
}

/// A CNI spec version, compared numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SpecVersion(u32, u32, u32);

impl SpecVersion {
    /// The first version whose results this crate reads.
    pub const OLDEST: Self = Self(0, 3, 0);
    /// The first version with CHECK, and with prevResult on DEL.
    pub const CHECK: Self = Self(0, 4, 0);

    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.').map(|part| part.parse::<u32>().ok());
        let version = Self(
            parts.next()??,
            parts.next()??,
            parts.next().unwrap_or(Some(0))?,
        );
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(document: Value) -> Result<NetworkList> {
        NetworkList::parse(document, Path::new("test.conflist"))
    }

    #[test]
    fn the_first_file_in_lexical_order_is_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let list = |name: &str| json!({"cniVersion": "1.0.0", "name": name, "plugins": [{"type": "bridge"}]});
        std::fs::write(dir.path().join("README"), "not a network").unwrap();
        std::fs::write(dir.path().join("20-b.conflist"), list("b").to_string()).unwrap();
        std::fs::write(dir.path().join("10-a.conflist"), list("a").to_string()).unwrap();
        std::fs::write(dir.path().join("99-c.conflist"), list("c").to_string()).unwrap();
        assert_eq!(load(dir.path()).unwrap().name, "a");
    }

    #[test]
    fn the_default_is_written_only_into_an_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cidr: IpNet = "10.42.0.0/24".parse().unwrap();
        write_default_if_none(dir.path(), &default_list(cidr, Path::new("/ipam"))).unwrap();
        let list = load(dir.path()).unwrap();
        assert_eq!(list.name, "tugboat");
        let types: Vec<_> = list.plugins.iter().map(|p| p["type"].clone()).collect();
        assert_eq!(types, ["bridge", "portmap", "loopback"]);
        assert_eq!(
            list.plugins[0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.0.0/24"
        );

        let other = tempfile::tempdir().unwrap();
        let own = json!({"cniVersion": "0.4.0", "name": "own", "type": "ptp"});
        std::fs::write(other.path().join("50-own.conf"), own.to_string()).unwrap();
        write_default_if_none(other.path(), &default_list(cidr, Path::new("/ipam"))).unwrap();
        assert!(!other.path().join(DEFAULT_FILE).exists());
        assert_eq!(load(other.path()).unwrap().name, "own");
    }

    #[test]
    fn a_default_for_an_ipv6_cidr_routes_ipv6() {
        let list = default_list("fd00:42::/64".parse().unwrap(), Path::new("/ipam"));
        assert_eq!(list["plugins"][0]["ipam"]["routes"][0]["dst"], "::/0");
    }

    #[test]
    fn a_single_plugin_configuration_is_a_list_of_one() {
        let list =
            parse(json!({"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "b0"}))
                .unwrap();
        assert_eq!(list.name, "n");
        assert_eq!(list.version, SpecVersion(0, 4, 0));
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.plugins[0]["bridge"], "b0");
        assert_eq!(list.document["plugins"][0]["type"], "bridge");
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        let reason = |document: Value| match parse(document) {
            Err(Error::InvalidConfig { reason, .. }) => reason,
            other => panic!("expected an invalid configuration, got {other:?}"),
        };
        assert!(
            reason(json!({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}))
                .contains("name")
        );
        assert!(
            reason(json!({"cniVersion": "0.2.0", "name": "n", "plugins": [{"type": "bridge"}]}))
                .contains("older")
        );
        assert!(
            reason(json!({"cniVersion": "one", "name": "n", "plugins": [{"type": "bridge"}]}))
                .contains("not a version")
        );
        assert!(
            reason(json!({"cniVersion": "1.0.0", "name": "n", "plugins": []})).contains("plugins")
        );
        assert!(
            reason(json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../x"}]}))
                .contains("type")
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(SpecVersion::parse("0.10.0").unwrap() > SpecVersion::parse("0.4.0").unwrap());
        assert_eq!(SpecVersion::parse("1.0"), Some(SpecVersion(1, 0, 0)));
        assert_eq!(SpecVersion::parse("1.0.0.1"), None);
        assert_eq!(SpecVersion::parse(""), None);
    }
}
