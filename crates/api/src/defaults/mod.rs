//! Defaulting: the fields the Kubernetes API server fills in on create and
//! update (the `SetDefaults_*` functions of `pkg/apis/*/v1/defaults.go`, plus
//! the few values the pod admission plugins and registry strategies add), so
//! that what a client reads back matches a real cluster.
//!
//! Every default only fills a field the client left unset; a value the client
//! gave is never changed.

mod pod;
mod qos;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::Kind;

pub(crate) use pod::VOLUME_SOURCES;
pub use qos::pod_qos_class;
pub(crate) use qos::quantity_millis;

/// Fills in `obj`'s unset fields with the values Kubernetes defaults them to.
pub fn apply_defaults(kind: &Kind, obj: &mut Value) {
    if let Some(custom) = &kind.custom {
        crate::custom::apply_defaults(custom, obj);
        return;
    }
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match (kind.group, kind.kind) {
        ("", "Pod") => pod::default_pod(root),
        ("", "Service") => default_service(root),
        ("", "Namespace") => default_namespace(root),
        ("", "Secret") => default_secret(root),
        ("", "Node") => default_node(root),
        ("", "PersistentVolume") => default_persistent_volume(root),
        ("", "PersistentVolumeClaim") => default_claim(root),
        ("", "Endpoints") => default_endpoints(root),
        ("", "LimitRange") => default_limit_range(root),
        ("", "ReplicationController") => default_replication_controller(root),
        ("apps", "Deployment") => default_deployment(root),
        ("apps", "ReplicaSet") => default_replica_set(root),
        ("apps", "StatefulSet") => default_stateful_set(root),
        ("apps", "DaemonSet") => default_daemon_set(root),
        ("batch", "Job") => default_job(root),
        ("batch", "CronJob") => default_cron_job(root),
        ("discovery.k8s.io", "EndpointSlice") => default_endpoint_slice(root),
        ("networking.k8s.io", "NetworkPolicy") => default_network_policy(root),
        ("storage.k8s.io", "StorageClass") => default_storage_class(root),
        ("scheduling.k8s.io", "PriorityClass") => {
            default_field(root, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        _ => {}
    }
}

/// Sets `key` when absent or null: Go's nil pointers, maps and slices.
fn default_field(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_owned(), value);
    }
}

/// Sets `key` when absent, null, `""` or `0`: Go's zero values of plain
/// (non-pointer) strings and numbers, which Kubernetes treats as unset.
fn default_zero(m: &mut Map<String, Value>, key: &str, value: Value) {
    let unset = match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(_) => false,
    };
    if unset {
        m.insert(key.to_owned(), value);
    }
}

/// The object at `key`, created empty when absent or not an object.
fn object<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = m.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made an object")
}

/// The object at `key` if present; never creates it.
fn object_if_set<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// The objects in the list at `key`, if any.
fn items<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// The value at `path` below `m`.
fn lookup<'a>(m: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(m.get(*first)?, |v, key| v.get(key))
}

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `spec.template` of a workload: the pod template's spec gets the pod spec
/// defaults (but none of those only a real Pod gets).
fn default_pod_template(spec: &mut Map<String, Value>) {
    if let Some(template) = object_if_set(spec, "template") {
        pod::default_pod_spec(object(template, "spec"));
    }
}

fn default_deployment(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    default_field(spec, "replicas", json!(1));
    let strategy = object(spec, "strategy");
    default_zero(strategy, "type", json!("RollingUpdate"));
    if str_of(strategy, "type") == "RollingUpdate" {
        let rolling = object(strategy, "rollingUpdate");
        default_field(rolling, "maxUnavailable", json!("25%"));
        default_field(rolling, "maxSurge", json!("25%"));
    }
    default_field(spec, "revisionHistoryLimit", json!(10));
    default_field(spec, "progressDeadlineSeconds", json!(600));
    default_pod_template(spec);
}

fn default_replica_set(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    default_field(spec, "replicas", json!(1));
    default_pod_template(spec);
}

fn default_replication_controller(root: &mut Map<String, Value>) {
    let template_labels = lookup(root, &["spec", "template", "metadata", "labels"])
        .filter(|l| l.is_object())
        .cloned();
    let spec = object(root, "spec");
    default_field(spec, "replicas", json!(1));
    default_pod_template(spec);
    // An RC without a selector selects its own template's labels, and carries
    // them itself when it has none.
    if let Some(labels) = template_labels {
        if spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            spec.insert("selector".into(), labels.clone());
        }
        let meta = object(root, "metadata");
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            meta.insert("labels".into(), labels);
        }
    }
}

fn default_stateful_set(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    default_zero(spec, "podManagementPolicy", json!("OrderedReady"));
    let strategy = object(spec, "updateStrategy");
    if str_of(strategy, "type").is_empty() {
        strategy.insert("type".into(), json!("RollingUpdate"));
        default_field(strategy, "rollingUpdate", json!({}));
    }
    if str_of(strategy, "type") == "RollingUpdate"
        && let Some(rolling) = object_if_set(strategy, "rollingUpdate")
    {
        default_field(rolling, "partition", json!(0));
    }
    let retention = object(spec, "persistentVolumeClaimRetentionPolicy");
    default_zero(retention, "whenDeleted", json!("Retain"));
    default_zero(retention, "whenScaled", json!("Retain"));
    default_field(spec, "replicas", json!(1));
    default_field(spec, "revisionHistoryLimit", json!(10));
    default_pod_template(spec);
    for claim in items(spec, "volumeClaimTemplates") {
        default_claim(claim);
    }
}

fn default_daemon_set(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    let strategy = object(spec, "updateStrategy");
    default_zero(strategy, "type", json!("RollingUpdate"));
    if str_of(strategy, "type") == "RollingUpdate" {
        let rolling = object(strategy, "rollingUpdate");
        default_field(rolling, "maxUnavailable", json!(1));
        default_field(rolling, "maxSurge", json!(0));
    }
    default_field(spec, "revisionHistoryLimit", json!(10));
    default_pod_template(spec);
}

fn default_job(root: &mut Map<String, Value>) {
    let template_labels = lookup(root, &["spec", "template", "metadata", "labels"])
        .filter(|l| l.is_object())
        .cloned();
    let spec = object(root, "spec");
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), json!(1));
    }
    default_field(spec, "parallelism", json!(1));
    let backoff = if spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null())
    {
        i32::MAX
    } else {
        6
    };
    default_field(spec, "backoffLimit", json!(backoff));
    default_field(spec, "completionMode", json!("NonIndexed"));
    default_field(spec, "suspend", json!(false));
    let has_failure_policy = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
    if let Some(policy) = object_if_set(spec, "podFailurePolicy") {
        for rule in items(policy, "rules") {
            for pattern in items(rule, "onPodConditions") {
                default_zero(pattern, "status", json!("True"));
            }
        }
    }
    let replacement = if has_failure_policy {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    default_field(spec, "podReplacementPolicy", json!(replacement));
    default_pod_template(spec);
    if let Some(labels) = template_labels {
        let meta = object(root, "metadata");
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            meta.insert("labels".into(), labels);
        }
    }
    generate_job_selector(root);
}

/// Kubernetes gives a Job (unless `manualSelector`) a selector on its own
/// uid and puts the matching labels on its pod template, so that pods of
/// different Jobs never mix. Needs `metadata.uid`, which is set on create.
fn generate_job_selector(root: &mut Map<String, Value>) {
    let uid = lookup(root, &["metadata", "uid"])
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let name = lookup(root, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let spec = object(root, "spec");
    if uid.is_empty()
        || spec.get("manualSelector") == Some(&json!(true))
        || spec.get("selector").is_some_and(|s| !s.is_null())
    {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let labels = object(object(object(spec, "template"), "metadata"), "labels");
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        default_field(labels, key, json!(value));
    }
}

fn default_cron_job(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    default_zero(spec, "concurrencyPolicy", json!("Allow"));
    default_field(spec, "suspend", json!(false));
    default_field(spec, "successfulJobsHistoryLimit", json!(3));
    default_field(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) =
        object_if_set(spec, "jobTemplate").and_then(|t| object_if_set(t, "spec"))
    {
        default_pod_template(job_spec);
    }
}

fn default_service(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    default_zero(spec, "sessionAffinity", json!("None"));
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let timeout = lookup(
                spec,
                &["sessionAffinityConfig", "clientIP", "timeoutSeconds"],
            );
            if timeout.is_none_or(Value::is_null) {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default_zero(spec, "type", json!("ClusterIP"));
    for port in items(spec, "ports") {
        default_zero(port, "protocol", json!("TCP"));
        if let Some(number) = port.get("port").cloned() {
            default_zero(port, "targetPort", number);
        }
    }
    let service_type = str_of(spec, "type").to_owned();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible = matches!(service_type.as_str(), "NodePort" | "LoadBalancer")
        || (service_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_zero(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        default_field(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    default_ip_families(spec, &service_type);
}

/// The IP family fields the service registry fills in on a single-stack IPv4
/// cluster. A headless Service without selector may have endpoints of any
/// family, so Kubernetes makes it `RequireDualStack`.
fn default_ip_families(spec: &mut Map<String, Value>, service_type: &str) {
    if service_type == "ExternalName" {
        return;
    }
    let headless = str_of(spec, "clusterIP") == "None";
    let has_selector = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_some_and(|s| !s.is_empty());
    let policy = if headless && !has_selector {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    default_field(spec, "ipFamilyPolicy", json!(policy));
    default_field(spec, "ipFamilies", json!(["IPv4"]));
}

/// `stringData` is a write-only convenience: its plain values are stored
/// base64-encoded in `data`, overriding keys there.
fn default_secret(root: &mut Map<String, Value>) {
    default_zero(root, "type", json!("Opaque"));
    let Some(Value::Object(plain)) = root.remove("stringData") else {
        return;
    };
    let data = object(root, "data");
    for (key, value) in plain {
        let encoded = STANDARD.encode(value.as_str().unwrap_or_default());
        data.insert(key, json!(encoded));
    }
}

fn default_namespace(root: &mut Map<String, Value>) {
    let name = lookup(root, &["metadata", "name"])
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !name.is_empty() {
        let labels = object(object(root, "metadata"), "labels");
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    default_field(object(root, "spec"), "finalizers", json!(["kubernetes"]));
    default_zero(object(root, "status"), "phase", json!("Active"));
}

fn default_node(root: &mut Map<String, Value>) {
    let Some(status) = object_if_set(root, "status") else {
        return;
    };
    if let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned() {
        default_field(status, "allocatable", capacity);
    }
}

fn default_persistent_volume(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    default_zero(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
    default_field(spec, "volumeMode", json!("Filesystem"));
    default_zero(object(root, "status"), "phase", json!("Pending"));
}

fn default_claim(root: &mut Map<String, Value>) {
    default_field(object(root, "spec"), "volumeMode", json!("Filesystem"));
    default_zero(object(root, "status"), "phase", json!("Pending"));
}

fn default_endpoints(root: &mut Map<String, Value>) {
    for subset in items(root, "subsets") {
        for port in items(subset, "ports") {
            default_zero(port, "protocol", json!("TCP"));
        }
    }
}

fn default_endpoint_slice(root: &mut Map<String, Value>) {
    for port in items(root, "ports") {
        default_field(port, "name", json!(""));
        default_field(port, "protocol", json!("TCP"));
    }
}

fn default_limit_range(root: &mut Map<String, Value>) {
    let Some(spec) = object_if_set(root, "spec") else {
        return;
    };
    for item in items(spec, "limits").filter(|i| str_of(i, "type") == "Container") {
        fill_missing_resources(item, "default", "max");
        fill_missing_resources(item, "defaultRequest", "default");
        fill_missing_resources(item, "defaultRequest", "min");
    }
}

/// Copies into the resource list `target` each resource of `source` it lacks.
fn fill_missing_resources(item: &mut Map<String, Value>, target: &str, source: &str) {
    let Some(source) = item.get(source).and_then(Value::as_object).cloned() else {
        return;
    };
    let target = object(item, target);
    for (resource, quantity) in source {
        target.entry(resource).or_insert(quantity);
    }
}

fn default_network_policy(root: &mut Map<String, Value>) {
    let spec = object(root, "spec");
    for direction in ["ingress", "egress"] {
        for rule in items(spec, direction) {
            for port in items(rule, "ports") {
                default_field(port, "protocol", json!("TCP"));
            }
        }
    }
    // Every policy restricts ingress; egress only when it has egress rules.
    if spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let has_egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if has_egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
}

fn default_storage_class(root: &mut Map<String, Value>) {
    default_field(root, "reclaimPolicy", json!("Delete"));
    default_field(root, "volumeBindingMode", json!("Immediate"));
}

#[cfg(test)]
mod tests;
