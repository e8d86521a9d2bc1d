//! Ingresses (`ValidateIngressSpec`): hosts, paths and backends.

use serde_json::Value;

use super::names::{is_dns1035_label, is_dns1123_subdomain, is_valid_port_name};
use super::{array_of, check_range, field, is_set, str_of};
use crate::FieldError;

const PATH_TYPES: [&str; 3] = ["Exact", "ImplementationSpecific", "Prefix"];

pub(super) fn validate_ingress(obj: &Value) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    let rules = array_of(spec, "rules");
    match spec.get("defaultBackend").filter(|b| !b.is_null()) {
        Some(backend) => validate_backend(backend, "spec.defaultBackend", &mut errs),
        None if rules.is_empty() => errs.push(FieldError::invalid_unquoted(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        )),
        None => {}
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        let host = str_of(rule, "host");
        if !host.is_empty() {
            // `*.example.com` covers one level of subdomains.
            let name = host.strip_prefix("*.").unwrap_or(host);
            for msg in is_dns1123_subdomain(name) {
                errs.push(FieldError::invalid(format!("{at}.host"), host, &msg));
            }
        }
        if let Some(http) = rule.get("http").filter(|h| h.is_object()) {
            let paths = array_of(http, "paths");
            if paths.is_empty() {
                errs.push(FieldError::required(format!("{at}.http.paths")));
            }
            for (j, path) in paths.iter().enumerate() {
                validate_path(path, &format!("{at}.http.paths[{j}]"), &mut errs);
            }
        }
    }
    errs
}

fn validate_path(path: &Value, at: &str, errs: &mut Vec<FieldError>) {
    let path_type = str_of(path, "pathType");
    let value = str_of(path, "path");
    if path_type.is_empty() {
        errs.push(FieldError::required_because(
            format!("{at}.pathType"),
            "pathType must be specified",
        ));
    } else if !PATH_TYPES.contains(&path_type) {
        errs.push(FieldError::not_supported(
            format!("{at}.pathType"),
            path_type,
            &PATH_TYPES,
        ));
    } else if path_type != "ImplementationSpecific" && !value.starts_with('/') {
        errs.push(FieldError::invalid(
            format!("{at}.path"),
            value,
            "must be an absolute path",
        ));
    }
    match path.get("backend").filter(|b| b.is_object()) {
        Some(backend) => validate_backend(backend, &format!("{at}.backend"), errs),
        None => errs.push(FieldError::required(format!("{at}.backend"))),
    }
}

/// A backend is a Service port or another resource, never both.
fn validate_backend(backend: &Value, at: &str, errs: &mut Vec<FieldError>) {
    let has_service = is_set(backend, "service");
    if has_service && is_set(backend, "resource") {
        errs.push(FieldError::invalid_unquoted(
            at,
            backend.to_string(),
            "cannot set both service and resource backends",
        ));
        return;
    }
    if !has_service {
        if !is_set(backend, "resource") {
            errs.push(FieldError::invalid_unquoted(
                at,
                backend.to_string(),
                "resource or service backend is required",
            ));
        }
        return;
    }
    let service = &backend["service"];
    let name = str_of(service, "name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{at}.service.name")));
    } else {
        for msg in is_dns1035_label(name) {
            errs.push(FieldError::invalid(
                format!("{at}.service.name"),
                name,
                &msg,
            ));
        }
    }
    let port = field(service, "port");
    let port_at = format!("{at}.service.port");
    let port_name = str_of(port, "name");
    match port.get("number").and_then(Value::as_i64) {
        Some(_) if !port_name.is_empty() => errs.push(FieldError::invalid_unquoted(
            &port_at,
            port.to_string(),
            "cannot set both port name & port number",
        )),
        Some(number) => check_range(errs, format!("{port_at}.number"), number, 1, 65535),
        None if port_name.is_empty() => errs.push(FieldError::required_because(
            &port_at,
            "port name or number is required",
        )),
        None => {
            for msg in is_valid_port_name(port_name) {
                errs.push(FieldError::invalid(
                    format!("{port_at}.name"),
                    port_name,
                    &msg,
                ));
            }
        }
    }
}
