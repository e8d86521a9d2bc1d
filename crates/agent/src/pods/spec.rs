//! A pod's container, as the runtime is to run it: the command line, the
//! environment, the user, limits and security resolved from the pod spec and
//! the image's config as the kubelet resolves them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, SecurityContext};
use tugboat_api::quantity;
use tugboat_images::ImageConfig;
use tugboat_runtime::{ContainerSpec, Mount, Resources, Security};

use super::tokens::Tokens;

/// Why a container cannot be made from its spec: the kubelet's
/// `CreateContainerConfigError`, with its message.
#[derive(Debug)]
pub struct ConfigError(pub String);

/// Values the spec refers to that live elsewhere: ConfigMap and Secret keys
/// (already fetched) and the pod's own fields.
pub struct References<'a> {
    pub pod: &'a Pod,
    pub config_maps: &'a BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: &'a BTreeMap<String, BTreeMap<String, String>>,
    pub tokens: &'a Tokens,
    pub host_ip: &'a str,
}

/// What differs per start of a container.
pub struct Placement<'a> {
    pub attempt: u32,
    pub rootfs_lowers: Vec<PathBuf>,
    pub mounts: Vec<Mount>,
    pub log_path: &'a Path,
}

pub fn container_spec(
    container: &Container,
    image: &ImageConfig,
    refs: &References,
    placement: Placement,
) -> Result<ContainerSpec, ConfigError> {
    let env = environment(container, image, refs)?;
    let expand_all =
        |words: &[String]| -> Vec<String> { words.iter().map(|w| expand(w, &env)).collect() };
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    // Kubernetes' rule: `command` replaces the entrypoint and drops the
    // image's cmd; `args` alone replaces only the cmd.
    let mut argv = if command.is_empty() {
        image.entrypoint.clone()
    } else {
        expand_all(&command)
    };
    if !args.is_empty() {
        argv.extend(expand_all(&args));
    } else if command.is_empty() {
        argv.extend(image.cmd.iter().cloned());
    }
    if argv.is_empty() {
        return Err(ConfigError(format!(
            "no command specified for container {:?} and its image has none",
            container.name
        )));
    }
    let pod_spec = refs.pod.spec.as_ref();
    let pod_security = pod_spec.and_then(|s| s.security_context.as_ref());
    let security = container.security_context.as_ref();
    verify_run_as_non_root(security, pod_security, image, refs.pod, &container.name)?;
    let user = user(security, pod_security, image, &placement.rootfs_lowers)?;
    Ok(ContainerSpec {
        pod_uid: refs.pod.metadata.uid.clone().unwrap_or_default(),
        name: container.name.clone(),
        attempt: placement.attempt,
        rootfs_lowers: placement.rootfs_lowers,
        args: argv,
        env,
        working_dir: container
            .working_dir
            .clone()
            .or_else(|| image.working_dir.clone())
            .filter(|d| !d.is_empty()),
        user: Some(user),
        mounts: placement.mounts,
        resources: resources(container),
        security: security_of(security),
        tty: container.tty.unwrap_or(false),
        stdin: container.stdin.unwrap_or(false),
        log_path: placement.log_path.to_owned(),
        log_rotation: Default::default(),
        share_pid_with_sandbox: pod_spec
            .and_then(|s| s.share_process_namespace)
            .unwrap_or(false),
    })
}

/// The image's environment, then the container's `envFrom`, then its `env`,
/// later names overriding earlier ones; `$(NAME)` in a value refers to
/// variables defined before it.
fn environment(
    container: &Container,
    image: &ImageConfig,
    refs: &References,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (data, name, optional) = if let Some(cm) = &source.config_map_ref {
            (refs.config_maps.get(&cm.name), &cm.name, cm.optional)
        } else if let Some(secret) = &source.secret_ref {
            (
                refs.secrets.get(&secret.name),
                &secret.name,
                secret.optional,
            )
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (key, value) in data {
                    set(&mut env, format!("{prefix}{key}"), value.clone());
                }
            }
            None if optional == Some(true) => {}
            None => {
                return Err(ConfigError(format!(
                    "configmap or secret {name:?} not found"
                )));
            }
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = env_value(var, container, refs, &env)? {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
    match env.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    }
}

/// One `env` entry's value; `None` for an optional reference that is absent.
fn env_value(
    var: &EnvVar,
    container: &Container,
    refs: &References,
    env: &[(String, String)],
) -> Result<Option<String>, ConfigError> {
    let Some(from) = &var.value_from else {
        return Ok(Some(expand(var.value.as_deref().unwrap_or(""), env)));
    };
    let key_of = |store: &BTreeMap<String, BTreeMap<String, String>>,
                  what: &str,
                  name: &str,
                  key: &str,
                  optional: Option<bool>| {
        match store.get(name).and_then(|data| data.get(key)) {
            Some(value) => Ok(Some(value.clone())),
            None if optional == Some(true) => Ok(None),
            None => Err(ConfigError(format!(
                "couldn't find key {key} in {what} {}/{name}",
                refs.pod.metadata.namespace.as_deref().unwrap_or("default")
            ))),
        }
    };
    if let Some(r) = &from.config_map_key_ref {
        return key_of(refs.config_maps, "ConfigMap", &r.name, &r.key, r.optional);
    }
    if let Some(r) = &from.secret_key_ref {
        return key_of(refs.secrets, "Secret", &r.name, &r.key, r.optional);
    }
    if let Some(r) = &from.field_ref {
        return field_value(&r.field_path, refs).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        return Ok(Some(resource_field(
            container,
            &r.resource,
            r.divisor.as_ref(),
        )));
    }
    Ok(None)
}

/// The downward API's pod fields.
pub fn field_value(path: &str, refs: &References) -> Result<String, ConfigError> {
    let pod = refs.pod;
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let map_entry = |map: &Option<BTreeMap<String, String>>, prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(|key| {
                map.as_ref()
                    .and_then(|m| m.get(key))
                    .cloned()
                    .unwrap_or_default()
            })
    };
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.hostIP" => Some(refs.host_ip.to_owned()),
        "status.hostIPs" => Some(refs.host_ip.to_owned()),
        "status.podIP" | "status.podIPs" => status.and_then(|s| s.pod_ip.clone()),
        "metadata.labels" => Some(format_map(&meta.labels)),
        "metadata.annotations" => Some(format_map(&meta.annotations)),
        _ => map_entry(&meta.labels, "metadata.labels['")
            .or_else(|| map_entry(&meta.annotations, "metadata.annotations['")),
    };
    value.ok_or_else(|| ConfigError(format!("unsupported fieldRef fieldPath {path:?}")))
}

/// `key="value"` lines, as the downward API writes label and annotation maps.
fn format_map(map: &Option<BTreeMap<String, String>>) -> String {
    map.iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `limits.cpu`, `requests.memory`, ...: the container's value divided by
/// the divisor (1 by default), rounded up; unset reads as 0.
fn resource_field(
    container: &Container,
    resource: &str,
    divisor: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> String {
    let resources = container.resources.as_ref();
    let (list, name) = match resource.split_once('.') {
        Some(("limits", name)) => (resources.and_then(|r| r.limits.as_ref()), name),
        Some(("requests", name)) => (resources.and_then(|r| r.requests.as_ref()), name),
        _ => return String::new(),
    };
    let milli = list
        .and_then(|l| l.get(name))
        .and_then(|q| quantity::milli_value(&q.0))
        .unwrap_or(0);
    let divisor = divisor
        .and_then(|d| quantity::milli_value(&d.0))
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    ((milli + divisor - 1) / divisor).to_string()
}

/// Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` escapes a
/// dollar, anything else is kept as written.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, value)) = env.iter().rev().find(|(k, _)| *k == inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// uid and gid: the container's securityContext, else the pod's, else the
/// image's `User` (numbers, or names looked up in the image's /etc/passwd).
fn user(
    container: Option<&SecurityContext>,
    pod: Option<&k8s_openapi::api::core::v1::PodSecurityContext>,
    image: &ImageConfig,
    lowers: &[PathBuf],
) -> Result<(u32, u32), ConfigError> {
    let run_as_user = container
        .and_then(|s| s.run_as_user)
        .or_else(|| pod.and_then(|p| p.run_as_user));
    let run_as_group = container
        .and_then(|s| s.run_as_group)
        .or_else(|| pod.and_then(|p| p.run_as_group));
    let (image_uid, image_gid) = image_user(image.user.as_deref().unwrap_or(""), lowers)?;
    let uid = run_as_user.map(|u| u as u32).unwrap_or(image_uid);
    let gid = run_as_group.map(|g| g as u32).unwrap_or(image_gid);
    Ok((uid, gid))
}

/// The kubelet's `runAsNonRoot` check: an explicit `runAsUser` must not be 0;
/// without one, the image's user must be a number other than 0 (a name
/// cannot be verified, no user is root). Refusals end naming the pod and
/// container, as the kubelet's do.
fn verify_run_as_non_root(
    container: Option<&SecurityContext>,
    pod: Option<&k8s_openapi::api::core::v1::PodSecurityContext>,
    image: &ImageConfig,
    owner: &Pod,
    container_name: &str,
) -> Result<(), ConfigError> {
    let non_root = container
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    if !non_root {
        return Ok(());
    }
    let run_as_user = container
        .and_then(|s| s.run_as_user)
        .or_else(|| pod.and_then(|p| p.run_as_user));
    let refusal = match run_as_user {
        Some(0) => "container's runAsUser breaks non-root policy".to_owned(),
        Some(_) => return Ok(()),
        None => {
            let user = image.user.as_deref().unwrap_or("");
            let name = user.split_once(':').map_or(user, |(name, _)| name);
            let root = || "container has runAsNonRoot and image will run as root".to_owned();
            match name.parse::<u32>() {
                Ok(0) => root(),
                Ok(_) => return Ok(()),
                Err(_) if name.is_empty() => root(),
                Err(_) => format!(
                    "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root"
                ),
            }
        }
    };
    // The kubelet names a pod `name_namespace(uid)`.
    let meta = &owner.metadata;
    Err(ConfigError(format!(
        "{refusal} (pod: \"{}_{}({})\", container: {container_name})",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default()
    )))
}

fn image_user(user: &str, lowers: &[PathBuf]) -> Result<(u32, u32), ConfigError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (name, group) = user.split_once(':').unwrap_or((user, ""));
    let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
        // The top-most layer with the file holds the image's copy of it.
        let text = lowers
            .iter()
            .rev()
            .find_map(|dir| std::fs::read_to_string(dir.join(file)).ok())?;
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    let (uid, primary_gid) = match name.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => lookup("etc/passwd", name).ok_or_else(|| {
            ConfigError(format!(
                "unable to find user {name}: no matching entries in passwd file"
            ))
        })?,
    };
    let gid = if group.is_empty() {
        primary_gid
    } else {
        match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup("etc/group", group)
                .map(|(gid, _)| gid)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "unable to find group {group}: no matching entries in group file"
                    ))
                })?,
        }
    };
    Ok((uid, gid))
}

/// Limits as cgroup settings; requests as CPU shares, as the kubelet maps them.
fn resources(container: &Container) -> Resources {
    let resources = container.resources.as_ref();
    let get = |list: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               name: &str| {
        list.and_then(|l| l.get(name))
            .and_then(|q| quantity::milli_value(&q.0))
    };
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let cpu_request = get(requests, "cpu").or_else(|| get(limits, "cpu"));
    Resources {
        cpu_quota_millis: get(limits, "cpu").map(|m| m.max(1) as u64),
        // 1024 shares per CPU, at least the kernel's minimum of 2.
        cpu_shares: Some(cpu_request.map_or(2, |m| (m * 1024 / 1000).max(2) as u64)),
        memory_limit_bytes: get(limits, "memory").map(|m| (m / 1000) as i64),
        pids_limit: None,
    }
}

fn security_of(security: Option<&SecurityContext>) -> Security {
    let caps = security.and_then(|s| s.capabilities.as_ref());
    Security {
        privileged: security.and_then(|s| s.privileged).unwrap_or(false),
        read_only_rootfs: security
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        capabilities_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        no_new_privileges: security.and_then(|s| s.allow_privilege_escalation) == Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = env(&[("A", "1"), ("B", "two")]);
        assert_eq!(expand("$(A)-$(B)", &vars), "1-two");
        assert_eq!(expand("$(MISSING) $$(A) $", &vars), "$(MISSING) $(A) $");
        assert_eq!(expand("echo $(A", &vars), "echo $(A");
    }

    fn container(yaml: serde_json::Value) -> Container {
        serde_json::from_value(yaml).unwrap()
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": []}
        }))
        .unwrap()
    }

    fn resolve(c: &Container, image: &ImageConfig) -> Result<ContainerSpec, ConfigError> {
        let empty = BTreeMap::new();
        let config_maps = BTreeMap::from([(
            "settings".to_owned(),
            BTreeMap::from([("mode".to_owned(), "fast".to_owned())]),
        )]);
        let pod = pod();
        let refs = References {
            pod: &pod,
            config_maps: &config_maps,
            secrets: &empty,
            tokens: &Tokens::new(),
            host_ip: "10.0.0.5",
        };
        let placement = Placement {
            attempt: 0,
            rootfs_lowers: Vec::new(),
            mounts: Vec::new(),
            log_path: Path::new("/tmp/log"),
        };
        container_spec(c, image, &refs, placement)
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| (*s).to_owned()).collect(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
            env: vec!["PATH=/bin".to_owned()],
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_combine_with_the_image_as_kubernetes_does() {
        let img = image(&["/entry"], &["default"]);
        let argv = |c: serde_json::Value| resolve(&container(c), &img).unwrap().args;
        assert_eq!(
            argv(serde_json::json!({"name": "c"})),
            ["/entry", "default"]
        );
        assert_eq!(
            argv(serde_json::json!({"name": "c", "args": ["x"]})),
            ["/entry", "x"]
        );
        assert_eq!(
            argv(serde_json::json!({"name": "c", "command": ["sh"]})),
            ["sh"]
        );
        assert_eq!(
            argv(
                serde_json::json!({"name": "c", "command": ["sh"], "args": ["-c", "$(GREETING)"],
                "env": [{"name": "GREETING", "value": "hi"}]})
            ),
            ["sh", "-c", "hi"]
        );
    }

    #[test]
    fn environment_merges_image_env_from_and_value_from() {
        let c = container(serde_json::json!({"name": "c", "command": ["sh"],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "PATH", "value": "$(PATH):/usr/bin"}
        ]}));
        let spec = resolve(&c, &image(&[], &[])).unwrap();
        let get = |k: &str| {
            spec.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("CFG_mode"), Some("fast"));
        assert_eq!(get("POD"), Some("web"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("HOST"), Some("10.0.0.5"));
        assert_eq!(get("MODE"), Some("fast"));
        assert_eq!(get("PATH"), Some("/bin:/usr/bin"));
    }

    #[test]
    fn a_missing_key_or_root_under_run_as_non_root_is_a_config_error() {
        let missing = container(serde_json::json!({"name": "c", "command": ["sh"], "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}));
        let err = resolve(&missing, &image(&[], &[])).unwrap_err();
        assert_eq!(err.0, "couldn't find key k in Secret shop/nope");
        let non_root = |security: serde_json::Value, user: &str| {
            let c = container(serde_json::json!({"name": "c", "command": ["sh"],
                "securityContext": security}));
            let img = ImageConfig {
                user: Some(user.to_owned()),
                ..image(&[], &[])
            };
            resolve(&c, &img).err().map(|e| e.0)
        };
        let who = "(pod: \"web_shop(u-1)\", container: c)";
        assert_eq!(
            non_root(serde_json::json!({"runAsNonRoot": true}), "").unwrap(),
            format!("container has runAsNonRoot and image will run as root {who}")
        );
        assert_eq!(
            non_root(serde_json::json!({"runAsNonRoot": true}), "0:10").unwrap(),
            format!("container has runAsNonRoot and image will run as root {who}")
        );
        assert_eq!(
            non_root(
                serde_json::json!({"runAsNonRoot": true, "runAsUser": 0}),
                "1000"
            )
            .unwrap(),
            format!("container's runAsUser breaks non-root policy {who}")
        );
        assert_eq!(
            non_root(serde_json::json!({"runAsNonRoot": true}), "app").unwrap(),
            format!(
                "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root {who}"
            )
        );
        assert_eq!(
            non_root(serde_json::json!({"runAsNonRoot": true}), "1000"),
            None
        );
        assert_eq!(
            non_root(
                serde_json::json!({"runAsNonRoot": true, "runAsUser": 7}),
                ""
            ),
            None
        );
        assert_eq!(non_root(serde_json::json!({}), ""), None);
    }

    #[test]
    fn limits_become_cgroup_settings() {
        let c = container(serde_json::json!({"name": "c", "command": ["sh"],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}}));
        let spec = resolve(&c, &image(&[], &[])).unwrap();
        assert_eq!(spec.resources.cpu_quota_millis, Some(500));
        assert_eq!(spec.resources.cpu_shares, Some(256));
        assert_eq!(spec.resources.memory_limit_bytes, Some(64 << 20));
    }
}
