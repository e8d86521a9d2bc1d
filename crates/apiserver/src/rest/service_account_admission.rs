//! The ServiceAccount admission step for new pods: unless the pod opts out
//! (`automountServiceAccountToken: false`) or mounts something of its own
//! there, every container gets its service account's credentials at
//! `/var/run/secrets/kubernetes.io/serviceaccount` (token, ca.crt,
//! namespace) through a `kube-api-access-xxxxx` projected volume, exactly as
//! Kubernetes adds it, so in-cluster clients work unchanged. A pod naming no
//! `imagePullSecrets` gets its service account's.

use rand::RngExt;
use serde_json::{Value, json};
use tugboat_api::{ApiResult, Kind, meta, registry};

use crate::objects::Objects;

pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Kubernetes asks for tokens valid 3607 s: the odd 7 s mark tokens that a
/// kubelet refreshes (at 80% of their life) as the bound kind.
const TOKEN_SECONDS: i64 = 3607;

/// The characters Kubernetes' `utilrand.String` draws from (no vowels, no
/// look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The pod spec containers of every sort the volume is mounted into.
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

pub fn mount_token(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    if spec.get("automountServiceAccountToken") == Some(&Value::Bool(false))
        || mounts_own_credentials(spec)
    {
        return;
    }
    let name = volume_name();
    let volume = json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{
                    "path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                }]}},
            ],
        },
    });
    push(spec, "volumes", volume);
    for list in CONTAINER_LISTS {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut() {
            push(
                container,
                "volumeMounts",
                json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH}),
            );
        }
    }
}

/// A new pod without `imagePullSecrets` takes its service account's, as
/// Kubernetes' ServiceAccount admission plugin copies them; an account that
/// does not exist (yet) gives none.
pub async fn copy_pull_secrets(objects: &Objects, kind: &Kind, pod: &mut Value) -> ApiResult<()> {
    if (kind.group, kind.kind) != ("", "Pod") {
        return Ok(());
    }
    let spec = &pod["spec"];
    if spec["imagePullSecrets"]
        .as_array()
        .is_some_and(|own| !own.is_empty())
    {
        return Ok(());
    }
    let accounts = registry::by_kind("v1", "ServiceAccount").expect("service accounts are served");
    let name = spec["serviceAccountName"].as_str().unwrap_or("default");
    let key = accounts.key(meta::namespace(pod), name);
    let Some(account) = objects.try_get(&key).await? else {
        return Ok(());
    };
    let secrets: Vec<Value> = account["imagePullSecrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|secret| secret.get("name"))
        .map(|name| json!({"name": name}))
        .collect();
    if !secrets.is_empty() {
        pod["spec"]["imagePullSecrets"] = secrets.into();
    }
    Ok(())
}

/// A container already mounting something at the credentials' path keeps it.
fn mounts_own_credentials(spec: &Value) -> bool {
    CONTAINER_LISTS
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("volumeMounts").and_then(Value::as_array))
        .flatten()
        .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
}

fn push(object: &mut Value, field: &str, item: Value) {
    match object.get_mut(field).and_then(Value::as_array_mut) {
        Some(items) => items.push(item),
        None => object[field] = json!([item]),
    }
}

fn volume_name() -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("kube-api-access-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn every_container_gets_the_credentials_volume() {
        let mut p = pod(json!({
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}, {"name": "b"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }));
        mount_token(&mut p);
        let volumes = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        let name = volumes[1]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        let sources = &volumes[1]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(sources[2]["downwardAPI"]["items"][0]["path"], "namespace");
        for c in ["initContainers", "containers"] {
            for container in p["spec"][c].as_array().unwrap() {
                let mounts = container["volumeMounts"].as_array().unwrap();
                let last = mounts.last().unwrap();
                assert_eq!(last["name"], name);
                assert_eq!(last["mountPath"], MOUNT_PATH);
                assert_eq!(last["readOnly"], true);
            }
        }
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "data"
        );
    }

    #[test]
    fn pods_that_opt_out_or_mount_their_own_are_left_alone() {
        let spec = json!({"automountServiceAccountToken": false, "containers": [{"name": "a"}]});
        let mut p = pod(spec.clone());
        mount_token(&mut p);
        assert_eq!(p["spec"], spec);

        let spec = json!({"containers": [{"name": "a", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]}],
                          "volumes": [{"name": "mine", "secret": {"secretName": "s"}}]});
        let mut p = pod(spec.clone());
        mount_token(&mut p);
        assert_eq!(p["spec"], spec);
    }
}
