//! Pod defaults: those of every pod spec (also inside workload templates),
//! and those only a Pod object gets, from `SetDefaults_Pod` and the admission
//! plugins every cluster runs (ServiceAccount, Priority,
//! DefaultTolerationSeconds).

use serde_json::{Map, Value, json};

use super::{default_field, default_zero, items, object, object_if_set, qos, str_of};

/// Pods tolerate a not-ready or unreachable node this long before eviction.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// File mode of files projected from Secrets, ConfigMaps and the downward API: 0644.
const DEFAULT_VOLUME_MODE: i64 = 0o644;

pub(super) fn default_pod(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    default_pod_spec(spec);
    for list in ["containers", "initContainers"] {
        for container in items(spec, list) {
            default_requests_to_limits(container);
        }
    }
    default_field(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork") == Some(&json!(true)) {
        default_host_ports(spec);
    }
    default_zero(spec, "serviceAccountName", json!("default"));
    spec.insert("serviceAccount".into(), spec["serviceAccountName"].clone());
    default_tolerations(spec);

    let qos_class = qos::pod_qos_class(&Value::Object(root.clone()));
    let status = object(root, "status");
    default_zero(status, "phase", json!("Pending"));
    default_zero(status, "qosClass", json!(qos_class));
}

/// `SetDefaults_PodSpec` and the defaults of everything a pod spec holds.
pub(super) fn default_pod_spec(spec: &mut Map<String, Value>) {
    default_zero(spec, "dnsPolicy", json!("ClusterFirst"));
    default_zero(spec, "restartPolicy", json!("Always"));
    default_field(spec, "securityContext", json!({}));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_zero(spec, "schedulerName", json!("default-scheduler"));
    mirror_service_account(spec);
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in items(spec, list) {
            default_container(container);
        }
    }
    for volume in items(spec, "volumes") {
        default_volume(volume);
    }
}

/// `serviceAccount` is the deprecated spelling of `serviceAccountName`; the
/// API server keeps the two equal, the newer one winning.
fn mirror_service_account(spec: &mut Map<String, Value>) {
    let name = match (
        str_of(spec, "serviceAccountName"),
        str_of(spec, "serviceAccount"),
    ) {
        ("", "") => return,
        ("", old) => old.to_owned(),
        (new, _) => new.to_owned(),
    };
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
}

fn default_container(c: &mut Map<String, Value>) {
    default_pull_policy(c, "imagePullPolicy", "image");
    default_zero(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_zero(c, "terminationMessagePolicy", json!("File"));
    default_field(c, "resources", json!({}));
    for port in items(c, "ports") {
        default_zero(port, "protocol", json!("TCP"));
    }
    for env in items(c, "env") {
        if let Some(field_ref) = env
            .get_mut("valueFrom")
            .and_then(Value::as_object_mut)
            .and_then(|v| object_if_set(v, "fieldRef"))
        {
            default_zero(field_ref, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = object_if_set(c, probe) {
            default_probe(probe);
        }
    }
    if let Some(lifecycle) = object_if_set(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = object_if_set(lifecycle, hook) {
                default_handler(handler);
            }
        }
    }
}

/// Pull policy `Always` for the `latest` tag, else `IfNotPresent`.
fn default_pull_policy(m: &mut Map<String, Value>, policy_key: &str, image_key: &str) {
    if str_of(m, policy_key).is_empty() {
        let policy = if image_tag_is_latest(str_of(m, image_key)) {
            "Always"
        } else {
            "IfNotPresent"
        };
        m.insert(policy_key.into(), json!(policy));
    }
}

/// Whether the image names the `latest` tag, explicitly or by naming no tag
/// and no digest. Unparseable references count as not latest, as in Kubernetes.
fn image_tag_is_latest(image: &str) -> bool {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    // Docker references keep the path after the registry host lowercase.
    let path = match repository.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => path,
        _ => repository,
    };
    if repository.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    match tag {
        Some(tag) => tag == "latest",
        None => digest.is_none(),
    }
}

fn default_probe(probe: &mut Map<String, Value>) {
    default_zero(probe, "timeoutSeconds", json!(1));
    default_zero(probe, "periodSeconds", json!(10));
    default_zero(probe, "successThreshold", json!(1));
    default_zero(probe, "failureThreshold", json!(3));
    default_handler(probe);
    if let Some(grpc) = object_if_set(probe, "grpc") {
        default_field(grpc, "service", json!(""));
    }
}

/// A probe's or lifecycle hook's action.
fn default_handler(handler: &mut Map<String, Value>) {
    if let Some(http) = object_if_set(handler, "httpGet") {
        default_zero(http, "path", json!("/"));
        default_zero(http, "scheme", json!("HTTP"));
    }
}

/// Volume sources Kubernetes knows: a volume names exactly one (validation);
/// a volume naming none is an emptyDir (defaulting).
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

fn default_volume(volume: &mut Map<String, Value>) {
    if !VOLUME_SOURCES
        .iter()
        .any(|s| volume.get(*s).is_some_and(|v| !v.is_null()))
    {
        volume.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = object_if_set(volume, source) {
            default_field(source, "defaultMode", json!(DEFAULT_VOLUME_MODE));
        }
    }
    if let Some(downward) = object_if_set(volume, "downwardAPI") {
        default_downward_items(downward);
    }
    if let Some(projected) = object_if_set(volume, "projected") {
        for source in items(projected, "sources") {
            if let Some(token) = object_if_set(source, "serviceAccountToken") {
                default_field(token, "expirationSeconds", json!(3600));
            }
            if let Some(downward) = object_if_set(source, "downwardAPI") {
                default_downward_items(downward);
            }
        }
    }
    if let Some(host_path) = object_if_set(volume, "hostPath") {
        default_field(host_path, "type", json!(""));
    }
    if let Some(image) = object_if_set(volume, "image") {
        default_pull_policy(image, "pullPolicy", "reference");
    }
    let claim_spec = volume
        .get_mut("ephemeral")
        .and_then(Value::as_object_mut)
        .and_then(|e| object_if_set(e, "volumeClaimTemplate"))
        .and_then(|t| object_if_set(t, "spec"));
    if let Some(claim_spec) = claim_spec {
        default_field(claim_spec, "volumeMode", json!("Filesystem"));
    }
}

fn default_downward_items(downward: &mut Map<String, Value>) {
    for item in items(downward, "items") {
        if let Some(field_ref) = object_if_set(item, "fieldRef") {
            default_zero(field_ref, "apiVersion", json!("v1"));
        }
    }
}

/// A container with limits but no request for a resource requests its limit.
fn default_requests_to_limits(container: &mut Map<String, Value>) {
    let resources = object(container, "resources");
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let requests = object(resources, "requests");
    for (resource, quantity) in limits {
        requests.entry(resource).or_insert(quantity);
    }
}

/// On the host network a container port is a host port.
fn default_host_ports(spec: &mut Map<String, Value>) {
    for list in ["containers", "initContainers"] {
        for container in items(spec, list) {
            for port in items(container, "ports") {
                if let Some(number) = port.get("containerPort").cloned() {
                    default_zero(port, "hostPort", number);
                }
            }
        }
    }
}

/// The DefaultTolerationSeconds admission plugin: pods stay five minutes on
/// a node that became not-ready or unreachable, unless they say otherwise.
fn default_tolerations(spec: &mut Map<String, Value>) {
    let tolerations = spec
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let tolerates = |taint: &str| {
        tolerations.iter().any(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    };
    let mut added = Vec::new();
    for taint in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerates(taint) {
            added.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
    if !added.is_empty() {
        let mut all = tolerations;
        all.extend(added);
        spec.insert("tolerations".into(), Value::Array(all));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert!(image_tag_is_latest("nginx"));
        assert!(image_tag_is_latest("nginx:latest"));
        assert!(image_tag_is_latest("localhost:5000/busybox"));
        assert!(image_tag_is_latest("registry.example.com:5000/team/app"));
        assert!(!image_tag_is_latest("localhost:5000/busybox:1.36"));
        assert!(!image_tag_is_latest("nginx:1.25"));
        assert!(!image_tag_is_latest(
            "nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        ));
        assert!(image_tag_is_latest("nginx:latest@sha256:0123"));
        assert!(!image_tag_is_latest("Nginx"));
        assert!(!image_tag_is_latest(""));
    }
}
