//! Services (`ValidateService`, `ValidateServiceUpdate`).

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use super::names::{is_dns1123_label, is_dns1123_subdomain, is_qualified_name};
use super::pod::{check_port_num_or_name, check_protocol};
use super::{array_of, check_range, field, object_of, str_of, validate_labels};
use crate::FieldError;

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

pub(super) fn validate_service(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    let service_type = str_of(spec, "type");
    let ports = array_of(spec, "ports");

    if ports.is_empty() && !is_headless(spec) && service_type != "ExternalName" {
        errs.push(FieldError::required("spec.ports"));
    }
    if service_type == "ExternalName" {
        validate_external_name(spec, &mut errs);
    } else {
        validate_cluster_ip(spec, service_type, &mut errs);
    }

    let mut names = HashSet::new();
    let mut port_keys = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        validate_service_port(port, &at, ports.len() > 1, &mut names, &mut errs);
        let protocol = str_of(port, "protocol");
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !port_keys.insert((protocol, number)) {
            errs.push(FieldError {
                reason: "FieldValueDuplicate",
                field: at.clone(),
                message: format!("Duplicate value: {}", go_service_port_key(protocol, number)),
            });
        }
        let node_port = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 {
            if service_type == "ClusterIP" {
                errs.push(FieldError::forbidden(
                    format!("{at}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
            if !node_ports.insert((protocol, node_port)) {
                errs.push(FieldError {
                    reason: "FieldValueDuplicate",
                    field: format!("{at}.nodePort"),
                    message: format!("Duplicate value: {node_port}"),
                });
            }
        }
    }

    errs.extend(validate_labels(
        object_of(spec, "selector"),
        "spec.selector",
    ));
    match str_of(spec, "sessionAffinity") {
        "" => errs.push(FieldError::required("spec.sessionAffinity")),
        "ClientIP" | "None" => {}
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    if service_type.is_empty() {
        errs.push(FieldError::required("spec.type"));
    } else if !SERVICE_TYPES.contains(&service_type) {
        errs.push(FieldError::not_supported(
            "spec.type",
            service_type,
            &SERVICE_TYPES,
        ));
    }
    if let Some(old) = old {
        validate_cluster_ip_update(spec, field(old, "spec"), &mut errs);
    }
    errs
}

/// `clusterIP: None`: a Service without a virtual IP, whose name resolves
/// to its pods.
fn is_headless(spec: &Value) -> bool {
    primary_cluster_ip(spec) == "None"
}

/// The Service's first cluster IP, from `clusterIPs` or the older `clusterIP`.
fn primary_cluster_ip(spec: &Value) -> &str {
    array_of(spec, "clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_of(spec, "clusterIP"))
}

/// An ExternalName Service is a DNS alias: a name and nothing of the IP kind.
fn validate_external_name(spec: &Value, errs: &mut Vec<FieldError>) {
    for key in ["clusterIPs", "ipFamilies"] {
        if !array_of(spec, key).is_empty() {
            errs.push(FieldError::forbidden(
                format!("spec.{key}"),
                "may not be set for ExternalName services",
            ));
        }
    }
    if spec.get("ipFamilyPolicy").is_some_and(|p| !p.is_null()) {
        errs.push(FieldError::forbidden(
            "spec.ipFamilyPolicy",
            "may not be set for ExternalName services",
        ));
    }
    // The name may end in a dot to mark it fully qualified.
    let cname = str_of(spec, "externalName");
    let cname = cname.strip_suffix('.').unwrap_or(cname);
    if cname.is_empty() {
        errs.push(FieldError::required("spec.externalName"));
    } else {
        for msg in is_dns1123_subdomain(cname) {
            errs.push(FieldError::invalid("spec.externalName", cname, &msg));
        }
    }
}

/// A cluster IP is left to the allocator, `None` (headless; not for the
/// types that need a virtual IP) or an address.
fn validate_cluster_ip(spec: &Value, service_type: &str, errs: &mut Vec<FieldError>) {
    let ip = primary_cluster_ip(spec);
    if ip == "None" {
        if matches!(service_type, "NodePort" | "LoadBalancer") {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                ip,
                &format!("may not be set to 'None' for {service_type} services"),
            ));
        }
    } else if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
}

fn validate_service_port<'a>(
    port: &'a Value,
    at: &str,
    require_name: bool,
    names: &mut HashSet<&'a str>,
    errs: &mut Vec<FieldError>,
) {
    let name = str_of(port, "name");
    if name.is_empty() {
        if require_name {
            errs.push(FieldError::required(format!("{at}.name")));
        }
    } else {
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid(format!("{at}.name"), name, &msg));
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(format!("{at}.name"), name));
        }
    }
    let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
    check_range(errs, format!("{at}.port"), number, 1, 65535);
    if str_of(port, "protocol").is_empty() {
        errs.push(FieldError::required(format!("{at}.protocol")));
    } else {
        check_protocol(port, at, errs);
    }
    check_port_num_or_name(port.get("targetPort"), format!("{at}.targetPort"), errs);
    let app_protocol = str_of(port, "appProtocol");
    if !app_protocol.is_empty() {
        for msg in is_qualified_name(app_protocol) {
            errs.push(FieldError::invalid(
                format!("{at}.appProtocol"),
                app_protocol,
                &msg,
            ));
        }
    }
}

/// The `(protocol, port)` pair Kubernetes reports a duplicate port as.
fn go_service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{protocol:?}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
    )
}

/// A cluster IP, once allocated, stays. An update that leaves it out keeps
/// the allocated one (the registry copies it over), so only a different
/// value is an error.
fn validate_cluster_ip_update(spec: &Value, old_spec: &Value, errs: &mut Vec<FieldError>) {
    if [spec, old_spec]
        .iter()
        .any(|s| str_of(s, "type") == "ExternalName")
    {
        return;
    }
    let (new, old) = (primary_cluster_ip(spec), primary_cluster_ip(old_spec));
    if !new.is_empty() && !old.is_empty() && new != old {
        errs.push(FieldError::invalid_unquoted(
            "spec.clusterIPs[0]",
            format!("[]string{{{new:?}}}"),
            "may not change once set",
        ));
    }
}
