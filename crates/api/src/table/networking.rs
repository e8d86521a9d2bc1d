//! Printers of the networking, discovery, coordination and storage kinds.

use jiff::Timestamp;
use k8s_openapi::api::{
    coordination::v1 as coordination, discovery::v1 as discovery, networking::v1 as networking,
    storage::v1 as storage,
};
use serde_json::{Value, json};

use super::core::load_balancer_addresses;
use super::format::{age, array, label_selector, list_with_more, str_at};
use super::{Column, doc};
use crate::meta;

pub fn ingress_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Class",
            "string",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        Column::new(
            "Hosts",
            "string",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        Column::new(
            "Address",
            "string",
            "Address is a list containing ingress points for the load-balancer",
        ),
        Column::new("Ports", "string", "Ports of TLS configurations that open"),
        Column::age(),
    ]
}

pub fn ingress_cells(ing: &Value, now: Timestamp) -> Vec<Value> {
    let class = match str_at(ing, "/spec/ingressClassName") {
        "" => "<none>",
        c => c,
    };
    let ports = if array(Some(ing), "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        json!(meta::name(ing)),
        json!(class),
        json!(ingress_hosts(array(Some(ing), "/spec/rules"))),
        json!(load_balancer_addresses(ing.pointer("/status/loadBalancer")).join(",")),
        json!(ports),
        json!(age(ing, now)),
    ]
}

/// `formatHosts`: the first three rule hosts, `*` when none names a host.
fn ingress_hosts(rules: &[Value]) -> String {
    let hosts: Vec<&str> = rules
        .iter()
        .take(3)
        .map(|r| str_at(r, "host"))
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return "*".into();
    }
    if rules.len() > 3 {
        format!("{} + {} more...", hosts.join(","), rules.len() - 3)
    } else {
        hosts.join(",")
    }
}

pub fn ingress_class_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        Column::new(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        Column::age(),
    ]
}

pub fn ingress_class_cells(class: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match class.pointer("/spec/parameters") {
        Some(p) if p.is_object() => {
            let kind = match str_at(p, "apiGroup") {
                "" => str_at(p, "kind").to_owned(),
                group => format!("{}.{group}", str_at(p, "kind")),
            };
            format!("{kind}/{}", str_at(p, "name"))
        }
        _ => "<none>".into(),
    };
    vec![
        json!(meta::name(class)),
        json!(str_at(class, "/spec/controller")),
        json!(parameters),
        json!(age(class, now)),
    ]
}

pub fn network_policy_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Pod-Selector",
            "string",
            doc::<networking::NetworkPolicySpec>("podSelector"),
        ),
        Column::age(),
    ]
}

pub fn network_policy_cells(policy: &Value, now: Timestamp) -> Vec<Value> {
    // podSelector is a required struct: absent means empty, never null.
    let empty = json!({});
    let selector = policy.pointer("/spec/podSelector").unwrap_or(&empty);
    vec![
        json!(meta::name(policy)),
        json!(label_selector(Some(selector))),
        json!(age(policy, now)),
    ]
}

pub fn endpoint_slice_columns() -> Vec<Column> {
    let slice = doc::<discovery::EndpointSlice>;
    vec![
        Column::name(),
        Column::new("AddressType", "string", slice("addressType")),
        Column::new("Ports", "string", slice("ports")),
        Column::new("Endpoints", "string", slice("endpoints")),
        Column::age(),
    ]
}

pub fn endpoint_slice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = array(Some(slice), "ports")
        .iter()
        .map(
            |p| match (p.get("port").and_then(Value::as_i64), str_at(p, "name")) {
                (Some(port), _) => port.to_string(),
                (None, name) if p.get("name").is_some() => name.to_owned(),
                _ => "*".into(),
            },
        )
        .collect();
    let addresses: Vec<String> = array(Some(slice), "endpoints")
        .iter()
        .flat_map(|e| array(Some(e), "addresses"))
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    vec![
        json!(meta::name(slice)),
        json!(str_at(slice, "addressType")),
        json!(list_with_more(&ports, 3)),
        json!(list_with_more(&addresses, 3)),
        json!(age(slice, now)),
    ]
}

pub fn lease_columns() -> Vec<Column> {
    vec![
        Column::name(),
        Column::new(
            "Holder",
            "string",
            doc::<coordination::LeaseSpec>("holderIdentity"),
        ),
        Column::age(),
    ]
}

pub fn lease_cells(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(meta::name(lease)),
        json!(str_at(lease, "/spec/holderIdentity")),
        json!(age(lease, now)),
    ]
}

pub fn storage_class_columns() -> Vec<Column> {
    let class = doc::<storage::StorageClass>;
    vec![
        Column::name(),
        Column::new("Provisioner", "string", class("provisioner")),
        Column::new("ReclaimPolicy", "string", class("reclaimPolicy")),
        Column::new("VolumeBindingMode", "string", class("volumeBindingMode")),
        Column::new(
            "AllowVolumeExpansion",
            "string",
            class("allowVolumeExpansion"),
        ),
        Column::age(),
    ]
}

pub fn storage_class_cells(class: &Value, now: Timestamp) -> Vec<Value> {
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|key| {
        class
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(*key))
            .and_then(Value::as_str)
            == Some("true")
    });
    let name = if is_default {
        format!("{} (default)", meta::name(class))
    } else {
        meta::name(class).to_owned()
    };
    let or = |field: &str, default: &'static str| match str_at(class, field) {
        "" => default.to_owned(),
        v => v.to_owned(),
    };
    vec![
        json!(name),
        json!(str_at(class, "provisioner")),
        json!(or("reclaimPolicy", "Delete")),
        json!(or("volumeBindingMode", "Immediate")),
        json!(
            class
                .get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
        json!(age(class, now)),
    ]
}
