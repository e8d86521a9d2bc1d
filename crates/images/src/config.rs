//! What the runtime needs from an image's config.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, json};

/// The parts of an image config a container is made from. Empty fields mean
/// the image did not set them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` strings, in the image's order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, as the image says it.
    pub user: Option<String>,
    /// `8080/tcp` style, sorted.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub os: String,
    pub architecture: String,
}

/// The OCI / Docker config file; every member optional, as real images vary.
#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    config: Option<ContainerConfig>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    exposed_ports: Option<BTreeMap<String, serde::de::IgnoredAny>>,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: Option<String>,
}

impl ImageConfig {
    pub(crate) fn parse(bytes: &[u8]) -> Result<ImageConfig> {
        let file: ConfigFile = json("image config", bytes)?;
        let config = file.config.unwrap_or_default();
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(ImageConfig {
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
            env: config.env.unwrap_or_default(),
            working_dir: non_empty(config.working_dir),
            user: non_empty(config.user),
            exposed_ports: config
                .exposed_ports
                .unwrap_or_default()
                .into_keys()
                .collect(),
            labels: config.labels.unwrap_or_default(),
            stop_signal: non_empty(config.stop_signal),
            os: file.os,
            architecture: file.architecture,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_style_config() {
        let config = ImageConfig::parse(
            br#"{"architecture":"amd64","os":"linux","config":{
                "Entrypoint":["/bin/busybox","httpd"],"Cmd":null,
                "Env":["PATH=/bin","A=b"],"WorkingDir":"/www","User":"",
                "ExposedPorts":{"8080/tcp":{},"53/udp":{}},
                "Labels":{"k":"v"}},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        assert_eq!(config.entrypoint, ["/bin/busybox", "httpd"]);
        assert!(config.cmd.is_empty());
        assert_eq!(config.env, ["PATH=/bin", "A=b"]);
        assert_eq!(config.working_dir.as_deref(), Some("/www"));
        assert_eq!(config.user, None);
        assert_eq!(config.exposed_ports, ["53/udp", "8080/tcp"]);
        assert_eq!(config.labels["k"], "v");
    }

    #[test]
    fn a_config_without_container_config_is_empty() {
        let config = ImageConfig::parse(br#"{"architecture":"arm64","os":"linux"}"#).unwrap();
        assert_eq!(config.architecture, "arm64");
        assert!(config.entrypoint.is_empty() && config.env.is_empty());
    }
}
