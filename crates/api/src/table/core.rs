//! Printers of the core (`v1`) kinds, and of `events.k8s.io` Events, which
//! Kubernetes prints with the core Event printer.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1 as core;
use serde_json::{Value, json};

use super::format::{age, array, human_duration, int_at, labels, object, since, str_at, timestamp};
use super::{Column, doc};
use crate::meta;

pub fn pod_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        Column::new(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        Column::new(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        Column::age(),
        Column::new("IP", "string", doc::<core::PodStatus>("podIP")).wide(),
        Column::new("Node", "string", doc::<core::PodSpec>("nodeName")).wide(),
        Column::new(
            "Nominated Node",
            "string",
            doc::<core::PodStatus>("nominatedNodeName"),
        )
        .wide(),
        Column::new(
            "Readiness Gates",
            "string",
            doc::<core::PodSpec>("readinessGates"),
        )
        .wide(),
    ]
}

/// Finished pods carry a `Completed` row condition, as the printer sets it.
pub fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match str_at(pod, "/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

pub fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let summary = PodSummary::of(pod);
    let restarts = match summary.last_restart {
        Some(at) if summary.restarts != 0 => {
            format!(
                "{} ({} ago)",
                summary.restarts,
                human_duration(now.duration_since(at).as_secs())
            )
        }
        _ => summary.restarts.to_string(),
    };
    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_owned()
        } else {
            s.to_owned()
        }
    };
    let ip = array(Some(pod), "/status/podIPs")
        .first()
        .map(|ip| str_at(ip, "ip"))
        .unwrap_or_default();
    vec![
        json!(meta::name(pod)),
        json!(format!("{}/{}", summary.ready, summary.total)),
        json!(summary.reason),
        json!(restarts),
        json!(age(pod, now)),
        json!(or_none(ip)),
        json!(or_none(str_at(pod, "/spec/nodeName"))),
        json!(or_none(str_at(pod, "/status/nominatedNodeName"))),
        json!(readiness_gates(pod)),
    ]
}

/// What the READY, STATUS and RESTARTS cells of a pod are computed from.
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

impl PodSummary {
    /// Follows `printPod`: the phase, overridden by init container trouble,
    /// then by the last container's waiting or terminated reason, then by
    /// deletion.
    fn of(pod: &Value) -> PodSummary {
        let phase = str_at(pod, "/status/phase");
        let mut reason = match str_at(pod, "/status/reason") {
            "" => phase.to_owned(),
            r => r.to_owned(),
        };
        let conditions = array(Some(pod), "/status/conditions");
        if conditions.iter().any(|c| {
            str_at(c, "type") == "PodScheduled" && str_at(c, "reason") == "SchedulingGated"
        }) {
            reason = "SchedulingGated".into();
        }
        let init_specs = array(Some(pod), "/spec/initContainers");
        let is_sidecar = |name: &str| {
            init_specs
                .iter()
                .any(|c| str_at(c, "name") == name && str_at(c, "restartPolicy") == "Always")
        };
        let total = array(Some(pod), "/spec/containers").len()
            + init_specs
                .iter()
                .filter(|c| str_at(c, "restartPolicy") == "Always")
                .count();
        let mut ready = 0;
        let mut restarts = 0;
        let mut last_restart = None;
        let mut sidecar_restarts = 0;
        let mut last_sidecar_restart = None;

        let init_statuses = array(Some(pod), "/status/initContainerStatuses");
        let mut initializing = false;
        for (i, status) in init_statuses.iter().enumerate() {
            let name = str_at(status, "name");
            restarts += int_at(status, "restartCount");
            let finished = timestamp(status.pointer("/lastState/terminated/finishedAt"));
            last_restart = last_restart.max(finished);
            if is_sidecar(name) {
                sidecar_restarts += int_at(status, "restartCount");
                last_sidecar_restart = last_sidecar_restart.max(finished);
            }
            let terminated = status.pointer("/state/terminated");
            let waiting_reason = str_at(status, "/state/waiting/reason");
            if terminated.is_some_and(|t| int_at(t, "exitCode") == 0) {
                continue;
            }
            if is_sidecar(name) && status.get("started") == Some(&Value::Bool(true)) {
                if status.get("ready") == Some(&Value::Bool(true)) {
                    ready += 1;
                }
                continue;
            }
            reason = if let Some(t) = terminated {
                match (str_at(t, "reason"), int_at(t, "signal")) {
                    ("", 0) => format!("Init:ExitCode:{}", int_at(t, "exitCode")),
                    ("", signal) => format!("Init:Signal:{signal}"),
                    (r, _) => format!("Init:{r}"),
                }
            } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
                format!("Init:{waiting_reason}")
            } else {
                format!("Init:{i}/{}", init_specs.len())
            };
            initializing = true;
            break;
        }

        let initialized = conditions
            .iter()
            .any(|c| str_at(c, "type") == "Initialized" && str_at(c, "status") == "True");
        if !initializing || initialized {
            restarts = sidecar_restarts;
            last_restart = last_sidecar_restart;
            let mut has_running = false;
            for status in array(Some(pod), "/status/containerStatuses").iter().rev() {
                restarts += int_at(status, "restartCount");
                let finished = timestamp(status.pointer("/lastState/terminated/finishedAt"));
                last_restart = last_restart.max(finished);
                let waiting = str_at(status, "/state/waiting/reason");
                let terminated = status.pointer("/state/terminated");
                if !waiting.is_empty() {
                    reason = waiting.to_owned();
                } else if let Some(t) = terminated {
                    reason = match (str_at(t, "reason"), int_at(t, "signal")) {
                        ("", 0) => format!("ExitCode:{}", int_at(t, "exitCode")),
                        ("", signal) => format!("Signal:{signal}"),
                        (r, _) => r.to_owned(),
                    };
                } else if status.get("ready") == Some(&Value::Bool(true))
                    && status.pointer("/state/running").is_some()
                {
                    has_running = true;
                    ready += 1;
                }
            }
            if reason == "Completed" && has_running {
                let pod_ready = conditions
                    .iter()
                    .any(|c| str_at(c, "type") == "Ready" && str_at(c, "status") == "True");
                reason = if pod_ready { "Running" } else { "NotReady" }.into();
            }
        }

        if meta::is_being_deleted(pod) {
            if str_at(pod, "/status/reason") == "NodeLost" {
                reason = "Unknown".into();
            } else if !matches!(phase, "Succeeded" | "Failed") {
                reason = "Terminating".into();
            }
        }
        PodSummary {
            ready,
            total,
            reason,
            restarts,
            last_restart,
        }
    }
}

/// `true/total` of the pod's readiness gates, `<none>` without any.
fn readiness_gates(pod: &Value) -> String {
    let gates = array(Some(pod), "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".into();
    }
    let conditions = array(Some(pod), "/status/conditions");
    let met = gates
        .iter()
        .filter(|g| {
            conditions
                .iter()
                .find(|c| str_at(c, "type") == str_at(g, "conditionType"))
                .is_some_and(|c| str_at(c, "status") == "True")
        })
        .count();
    format!("{met}/{}", gates.len())
}

pub fn namespace_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Status", "string", "The status of the namespace"),
        Column::age(),
    ]
}

pub fn namespace_cells(ns: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(meta::name(ns)),
        json!(str_at(ns, "/status/phase")),
        json!(age(ns, now)),
    ]
}

pub fn node_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Status", "string", "The status of the node"),
        Column::new("Roles", "string", "The roles of the node"),
        Column::age(),
        Column::new(
            "Version",
            "string",
            doc::<core::NodeSystemInfo>("kubeletVersion"),
        ),
        Column::new(
            "Internal-IP",
            "string",
            doc::<core::NodeStatus>("addresses"),
        )
        .wide(),
        Column::new(
            "External-IP",
            "string",
            doc::<core::NodeStatus>("addresses"),
        )
        .wide(),
        Column::new("OS-Image", "string", doc::<core::NodeSystemInfo>("osImage")).wide(),
        Column::new(
            "Kernel-Version",
            "string",
            doc::<core::NodeSystemInfo>("kernelVersion"),
        )
        .wide(),
        Column::new(
            "Container-Runtime",
            "string",
            doc::<core::NodeSystemInfo>("containerRuntimeVersion"),
        )
        .wide(),
    ]
}

pub fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let ready = array(Some(node), "/status/conditions")
        .iter()
        .find(|c| str_at(c, "type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push("SchedulingDisabled");
    }
    let address = |kind: &str| {
        array(Some(node), "/status/addresses")
            .iter()
            .find(|a| str_at(a, "type") == kind)
            .map(|a| str_at(a, "address").to_owned())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = |field: &str| match str_at(node, &format!("/status/nodeInfo/{field}")) {
        "" => "<unknown>".to_owned(),
        v => v.to_owned(),
    };
    vec![
        json!(meta::name(node)),
        json!(status.join(",")),
        json!(node_roles(node)),
        json!(age(node, now)),
        json!(str_at(node, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
fn node_roles(node: &Value) -> String {
    let roles: BTreeSet<&str> = meta::labels(node)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role),
            Some(_) => None,
            None if k == "kubernetes.io/role" => v.as_str().filter(|v| !v.is_empty()),
            None => None,
        })
        .collect();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

pub fn service_columns() -> Vec<Column> {
    let spec = doc::<core::ServiceSpec>;
    vec![
        Column::name(),
        Column::new("Type", "string", spec("type")),
        Column::new("Cluster-IP", "string", spec("clusterIP")),
        Column::new("External-IP", "string", spec("externalIPs")),
        Column::new("Port(s)", "string", spec("ports")),
        Column::age(),
        Column::new("Selector", "string", spec("selector")).wide(),
    ]
}

pub fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let cluster_ip = array(Some(svc), "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let ports: Vec<String> = array(Some(svc), "/spec/ports")
        .iter()
        .map(|p| {
            let (port, protocol) = (int_at(p, "port"), str_at(p, "protocol"));
            match int_at(p, "nodePort") {
                0 => format!("{port}/{protocol}"),
                node_port => format!("{port}:{node_port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    vec![
        json!(meta::name(svc)),
        json!(str_at(svc, "/spec/type")),
        json!(cluster_ip),
        json!(service_external_ip(svc)),
        json!(ports),
        json!(age(svc, now)),
        json!(labels(svc.pointer("/spec/selector"))),
    ]
}

/// `getServiceExternalIP`, wide (never clipped).
fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = array(Some(svc), "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match str_at(svc, "/spec/type") {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut all = load_balancer_addresses(svc.pointer("/status/loadBalancer"));
            all.extend(external.iter().map(|s| s.to_string()));
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_owned(),
        _ => "<unknown>".into(),
    }
}

/// The distinct ingress IPs (or hostnames) of a load balancer status, sorted.
pub fn load_balancer_addresses(status: Option<&Value>) -> Vec<String> {
    let set: BTreeSet<&str> = array(status, "ingress")
        .iter()
        .filter_map(|i| match (str_at(i, "ip"), str_at(i, "hostname")) {
            ("", "") => None,
            ("", host) => Some(host),
            (ip, _) => Some(ip),
        })
        .collect();
    set.into_iter().map(str::to_owned).collect()
}

pub fn endpoints_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Endpoints", "string", doc::<core::Endpoints>("subsets")),
        Column::age(),
    ]
}

pub fn endpoints_cells(ep: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(meta::name(ep)),
        json!(format_endpoints(ep)),
        json!(age(ep, now)),
    ]
}

/// `formatEndpoints`: up to three `ip:port` pairs, then `+ N more...`.
fn format_endpoints(ep: &Value) -> String {
    let subsets = array(Some(ep), "subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut all = Vec::new();
    for subset in subsets {
        let ips = array(Some(subset), "addresses")
            .iter()
            .map(|a| str_at(a, "ip"));
        let ports = array(Some(subset), "ports");
        if ports.is_empty() {
            all.extend(ips.map(str::to_owned));
            continue;
        }
        for port in ports {
            let port = int_at(port, "port");
            for ip in ips.clone() {
                all.push(if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                });
            }
        }
    }
    if all.len() > 3 {
        format!("{} + {} more...", all[..3].join(","), all.len() - 3)
    } else {
        all.join(",")
    }
}

pub fn config_map_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Data", "string", doc::<core::ConfigMap>("data")),
        Column::age(),
    ]
}

pub fn config_map_cells(cm: &Value, now: Timestamp) -> Vec<Value> {
    let count = |field| object(cm, field).map_or(0, |m| m.len());
    vec![
        json!(meta::name(cm)),
        json!(count("data") + count("binaryData")),
        json!(age(cm, now)),
    ]
}

pub fn secret_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Type", "string", doc::<core::Secret>("type")),
        Column::new("Data", "string", doc::<core::Secret>("data")),
        Column::age(),
    ]
}

pub fn secret_cells(secret: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(meta::name(secret)),
        json!(str_at(secret, "type")),
        json!(object(secret, "data").map_or(0, |m| m.len())),
        json!(age(secret, now)),
    ]
}

pub fn service_account_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Secrets", "string", doc::<core::ServiceAccount>("secrets")),
        Column::age(),
    ]
}

pub fn service_account_cells(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(meta::name(sa)),
        json!(array(Some(sa), "secrets").len()),
        json!(age(sa, now)),
    ]
}

pub fn event_columns() -> Vec<Column> {
    let event = doc::<core::Event>;
    vec![
        Column::new("Last Seen", "string", event("lastTimestamp")),
        Column::new("Type", "string", event("type")),
        Column::new("Reason", "string", event("reason")),
        Column::new("Object", "string", event("involvedObject")),
        Column::new(
            "Subobject",
            "string",
            doc::<core::ObjectReference>("fieldPath"),
        )
        .wide(),
        Column::new("Source", "string", event("source")).wide(),
        Column::new("Message", "string", event("message")),
        Column::new("First Seen", "string", event("firstTimestamp")).wide(),
        Column::new("Count", "string", event("count")).wide(),
        Column {
            priority: 1,
            ..Column::name()
        },
    ]
}

/// Where an Event's fields live: core/v1 and events.k8s.io/v1 name them differently.
struct EventFields {
    first_timestamp: &'static str,
    last_timestamp: &'static str,
    count: &'static str,
    regarding: &'static str,
    source: &'static str,
    reporting_controller: &'static str,
    message: &'static str,
}

pub fn core_event_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    event_cells(
        event,
        now,
        &EventFields {
            first_timestamp: "firstTimestamp",
            last_timestamp: "lastTimestamp",
            count: "count",
            regarding: "involvedObject",
            source: "source",
            reporting_controller: "reportingComponent",
            message: "message",
        },
    )
}

pub fn events_api_event_cells(event: &Value, now: Timestamp) -> Vec<Value> {
    event_cells(
        event,
        now,
        &EventFields {
            first_timestamp: "deprecatedFirstTimestamp",
            last_timestamp: "deprecatedLastTimestamp",
            count: "deprecatedCount",
            regarding: "regarding",
            source: "deprecatedSource",
            reporting_controller: "reportingController",
            message: "note",
        },
    )
}

/// `printEvent`, wide.
fn event_cells(event: &Value, now: Timestamp, fields: &EventFields) -> Vec<Value> {
    let first = match event.get(fields.first_timestamp) {
        Some(t) if timestamp(Some(t)).is_some() => since(Some(t), now),
        _ => since(event.get("eventTime"), now),
    };
    let mut last = match event.get(fields.last_timestamp) {
        Some(t) if timestamp(Some(t)).is_some() => since(Some(t), now),
        _ => first.clone(),
    };
    let mut count = int_at(event, fields.count);
    if let Some(series) = event.get("series").filter(|s| s.is_object()) {
        last = since(series.get("lastObservedTime"), now);
        count = int_at(series, "count");
    } else if count == 0 {
        count = 1;
    }
    let regarding = event.get(fields.regarding).unwrap_or(&Value::Null);
    let kind = str_at(regarding, "kind").to_lowercase();
    let target = match str_at(regarding, "name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let first_non_empty = |a: &str, b: &'static str| {
        let a = str_at(event, a);
        if a.is_empty() {
            str_at(event, b).to_owned()
        } else {
            a.to_owned()
        }
    };
    let component = first_non_empty(
        &format!("/{}/component", fields.source),
        fields.reporting_controller,
    );
    let host = first_non_empty(&format!("/{}/host", fields.source), "reportingInstance");
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(str_at(event, "type")),
        json!(str_at(event, "reason")),
        json!(target),
        json!(str_at(regarding, "fieldPath")),
        json!(source),
        json!(str_at(event, fields.message).trim()),
        json!(first),
        json!(count),
        json!(meta::name(event)),
    ]
}

pub fn pv_columns() -> Vec<Column> {
    let spec = doc::<core::PersistentVolumeSpec>;
    vec![
        Column::name(),
        Column::new("Capacity", "string", spec("capacity")),
        Column::new("Access Modes", "string", spec("accessModes")),
        Column::new(
            "Reclaim Policy",
            "string",
            spec("persistentVolumeReclaimPolicy"),
        ),
        Column::new(
            "Status",
            "string",
            doc::<core::PersistentVolumeStatus>("phase"),
        ),
        Column::new("Claim", "string", spec("claimRef")),
        Column::new("StorageClass", "string", "StorageClass of the pv"),
        Column::new(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pv",
        ),
        Column::new(
            "Reason",
            "string",
            doc::<core::PersistentVolumeStatus>("reason"),
        ),
        Column::age(),
        Column::new("VolumeMode", "string", spec("volumeMode")).wide(),
    ]
}

pub fn pv_cells(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match pv.pointer("/spec/claimRef") {
        Some(r) => format!("{}/{}", str_at(r, "namespace"), str_at(r, "name")),
        None => String::new(),
    };
    let class = match annotation(pv, BETA_STORAGE_CLASS) {
        Some(class) => class,
        None => str_at(pv, "/spec/storageClassName"),
    };
    vec![
        json!(meta::name(pv)),
        json!(quantity(pv.pointer("/spec/capacity/storage"))),
        json!(access_modes(array(Some(pv), "/spec/accessModes"))),
        json!(str_at(pv, "/spec/persistentVolumeReclaimPolicy")),
        json!(volume_phase(pv)),
        json!(claim),
        json!(class),
        json!(unset_if_empty(str_at(
            pv,
            "/spec/volumeAttributesClassName"
        ))),
        json!(str_at(pv, "/status/reason")),
        json!(age(pv, now)),
        json!(unset_if_empty(str_at(pv, "/spec/volumeMode"))),
    ]
}

pub fn pvc_columns() -> Vec<Column> {
    let status = doc::<core::PersistentVolumeClaimStatus>;
    vec![
        Column::name(),
        Column::new("Status", "string", status("phase")),
        Column::new(
            "Volume",
            "string",
            doc::<core::PersistentVolumeClaimSpec>("volumeName"),
        ),
        Column::new("Capacity", "string", status("capacity")),
        Column::new("Access Modes", "string", status("accessModes")),
        Column::new("StorageClass", "string", "StorageClass of the pvc"),
        Column::new(
            "VolumeAttributesClass",
            "string",
            "VolumeAttributesClass of the pvc",
        ),
        Column::age(),
        Column::new(
            "VolumeMode",
            "string",
            doc::<core::PersistentVolumeClaimSpec>("volumeMode"),
        )
        .wide(),
    ]
}

pub fn pvc_cells(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let volume = str_at(pvc, "/spec/volumeName");
    // Capacity and access modes are only known once the claim is bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(pvc.pointer("/status/capacity/storage")),
            access_modes(array(Some(pvc), "/status/accessModes")),
        )
    };
    let class = match annotation(pvc, BETA_STORAGE_CLASS) {
        Some(class) => class,
        None => str_at(pvc, "/spec/storageClassName"),
    };
    vec![
        json!(meta::name(pvc)),
        json!(volume_phase(pvc)),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(class),
        json!(unset_if_empty(str_at(
            pvc,
            "/spec/volumeAttributesClassName"
        ))),
        json!(age(pvc, now)),
        json!(unset_if_empty(str_at(pvc, "/spec/volumeMode"))),
    ]
}

const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn volume_phase(obj: &Value) -> &str {
    if meta::is_being_deleted(obj) {
        "Terminating"
    } else {
        str_at(obj, "/status/phase")
    }
}

fn unset_if_empty(s: &str) -> &str {
    if s.is_empty() { "<unset>" } else { s }
}

/// A zero `resource.Quantity` prints as `0`.
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

pub fn quota_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Request",
            "string",
            "Request represents a minimum amount of cpu/memory that a container may consume.",
        ),
        Column::new(
            "Limit",
            "string",
            "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        ),
        Column::age(),
    ]
}

pub fn quota_cells(quota: &Value, now: Timestamp) -> Vec<Value> {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    let mut resources: Vec<&String> = object(quota, "/status/hard")
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    resources.sort();
    for resource in resources {
        let used = quantity(quota.pointer(&format!("/status/used/{resource}")));
        let hard = quantity(quota.pointer(&format!("/status/hard/{resource}")));
        let entry = format!("{resource}: {used}/{hard}");
        if resource.starts_with("limits.") {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        json!(meta::name(quota)),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
        json!(age(quota, now)),
    ]
}
