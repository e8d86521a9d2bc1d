//! Pods and pod specs (`ValidatePodSpec`, `ValidatePodUpdate`): a pod spec is
//! checked the same wherever it sits, in a Pod or in a workload's template.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::meta::validate_annotations;
use super::names::{is_dns1123_label, is_env_var_name, is_valid_port_name, name_is_dns_subdomain};
use super::{
    array_of, check_non_negative, check_range, copy_field, field, is_set, object_of, str_of,
    validate_labels,
};
use crate::FieldError;
use crate::defaults::{VOLUME_SOURCES, quantity_millis};

const MAX_PORT: i64 = 65535;

/// What the API server answers for a quantity that does not parse.
const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// The fields a pod update may change, as Kubernetes lists them.
const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

pub(super) fn validate_pod(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = validate_pod_spec(spec, "spec");
    if let Some(old) = old {
        errs.extend(validate_pod_update(spec, field(old, "spec")));
    }
    errs
}

/// A workload's `spec.template` at `path`: its labels and annotations and its pod spec.
pub(super) fn validate_pod_template(template: &Value, path: &str) -> Vec<FieldError> {
    let meta = field(template, "metadata");
    let mut errs = validate_labels(
        object_of(meta, "labels"),
        &format!("{path}.metadata.labels"),
    );
    errs.extend(validate_annotations(
        meta,
        &format!("{path}.metadata.annotations"),
    ));
    errs.extend(validate_pod_spec(
        field(template, "spec"),
        &format!("{path}.spec"),
    ));
    errs
}

pub(super) fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let volumes = validate_volumes(spec, path, &mut errs);

    validate_containers(spec, path, &volumes, &mut errs);
    let restart_policy = str_of(spec, "restartPolicy");
    if !["Always", "OnFailure", "Never"].contains(&restart_policy) {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            restart_policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    let dns_policy = str_of(spec, "dnsPolicy");
    let dns_policies = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
    if !dns_policies.contains(&dns_policy) {
        errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            dns_policy,
            &dns_policies,
        ));
    }
    errs.extend(validate_labels(
        object_of(spec, "nodeSelector"),
        &format!("{path}.nodeSelector"),
    ));
    let service_account = str_of(spec, "serviceAccountName");
    if !service_account.is_empty() {
        for msg in name_is_dns_subdomain(service_account, false) {
            errs.push(FieldError::invalid(
                format!("{path}.serviceAccountName"),
                service_account,
                &msg,
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let value = str_of(spec, key);
        if !value.is_empty() {
            for msg in is_dns1123_label(value) {
                errs.push(FieldError::invalid(format!("{path}.{key}"), value, &msg));
            }
        }
    }
    if let Some(deadline) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        check_range(
            &mut errs,
            format!("{path}.activeDeadlineSeconds"),
            deadline,
            1,
            i64::from(i32::MAX),
        );
    }
    for (i, toleration) in array_of(spec, "tolerations").iter().enumerate() {
        validate_toleration(toleration, &format!("{path}.tolerations[{i}]"), &mut errs);
    }
    errs
}

/// The init and app containers: each valid, names unique across both, port
/// names unique across the pod.
fn validate_containers(
    spec: &Value,
    path: &str,
    volumes: &HashSet<&str>,
    errs: &mut Vec<FieldError>,
) {
    if array_of(spec, "containers").is_empty() {
        errs.push(FieldError::required(format!("{path}.containers")));
    }
    let mut container_names = HashSet::new();
    let mut port_names = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, container) in array_of(spec, list).iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            validate_container(container, &at, volumes, errs);
            let name = str_of(container, "name");
            if !name.is_empty() && !container_names.insert(name) {
                errs.push(FieldError::duplicate(format!("{at}.name"), name));
            }
            for (j, port) in array_of(container, "ports").iter().enumerate() {
                let port_name = str_of(port, "name");
                if !port_name.is_empty() && !port_names.insert(port_name) {
                    errs.push(FieldError::duplicate(
                        format!("{at}.ports[{j}].name"),
                        port_name,
                    ));
                }
            }
            let restart_policy = str_of(container, "restartPolicy");
            if list == "containers" && !restart_policy.is_empty() {
                errs.push(FieldError::forbidden(
                    format!("{at}.restartPolicy"),
                    "may not be set for non-init containers",
                ));
            }
            if list == "initContainers" && !["", "Always"].contains(&restart_policy) {
                errs.push(FieldError::not_supported(
                    format!("{at}.restartPolicy"),
                    restart_policy,
                    &["Always"],
                ));
            }
            if list == "initContainers" && restart_policy != "Always" {
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    if is_set(container, probe) {
                        errs.push(FieldError::forbidden(
                            format!("{at}.{probe}"),
                            "may not be set for init containers without restartPolicy=Always",
                        ));
                    }
                }
            }
        }
    }
}

/// Checks the volumes and returns their names, for the mounts to refer to.
fn validate_volumes<'a>(
    spec: &'a Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, volume) in array_of(spec, "volumes").iter().enumerate() {
        let at = format!("{path}.volumes[{i}]");
        let name = str_of(volume, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{at}.name")));
        } else {
            for msg in is_dns1123_label(name) {
                errs.push(FieldError::invalid(format!("{at}.name"), name, &msg));
            }
            if !names.insert(name) {
                errs.push(FieldError::duplicate(format!("{at}.name"), name));
            }
        }
        let sources: Vec<&str> = VOLUME_SOURCES
            .iter()
            .copied()
            .filter(|s| is_set(volume, s))
            .collect();
        match sources.as_slice() {
            [] => errs.push(FieldError::required_because(
                &at,
                "must specify a volume type",
            )),
            [source] => validate_volume_source(volume, source, &at, errs),
            [_, second, ..] => errs.push(FieldError::forbidden(
                format!("{at}.{second}"),
                "may not specify more than 1 volume type",
            )),
        }
    }
    names
}

/// The one field each common volume source cannot do without.
fn validate_volume_source(volume: &Value, source: &str, at: &str, errs: &mut Vec<FieldError>) {
    let required = match source {
        "configMap" => "name",
        "secret" => "secretName",
        "persistentVolumeClaim" => "claimName",
        "hostPath" | "nfs" => "path",
        _ => return,
    };
    if str_of(&volume[source], required).is_empty() {
        errs.push(FieldError::required(format!("{at}.{source}.{required}")));
    }
}

fn validate_container(c: &Value, at: &str, volumes: &HashSet<&str>, errs: &mut Vec<FieldError>) {
    let name = str_of(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{at}.name")));
    } else {
        for msg in is_dns1123_label(name) {
            errs.push(FieldError::invalid(format!("{at}.name"), name, &msg));
        }
    }
    let image = str_of(c, "image");
    if image.is_empty() {
        errs.push(FieldError::required(format!("{at}.image")));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            format!("{at}.image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    check_supported(
        c,
        "imagePullPolicy",
        at,
        &["Always", "IfNotPresent", "Never"],
        errs,
    );
    check_supported(
        c,
        "terminationMessagePolicy",
        at,
        &["File", "FallbackToLogsOnError"],
        errs,
    );

    for (j, port) in array_of(c, "ports").iter().enumerate() {
        validate_container_port(port, &format!("{at}.ports[{j}]"), errs);
    }
    for (j, env) in array_of(c, "env").iter().enumerate() {
        let env_name = str_of(env, "name");
        let field = format!("{at}.env[{j}].name");
        if env_name.is_empty() {
            errs.push(FieldError::required(field));
        } else {
            for msg in is_env_var_name(env_name) {
                errs.push(FieldError::invalid(&field, env_name, &msg));
            }
        }
    }
    let mut mount_paths = HashSet::new();
    for (j, mount) in array_of(c, "volumeMounts").iter().enumerate() {
        let mount_at = format!("{at}.volumeMounts[{j}]");
        let volume = str_of(mount, "name");
        if volume.is_empty() {
            errs.push(FieldError::required(format!("{mount_at}.name")));
        } else if !volumes.contains(volume) {
            errs.push(FieldError::not_found(format!("{mount_at}.name"), volume));
        }
        let mount_path = str_of(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(format!("{mount_at}.mountPath")));
        } else if !mount_paths.insert(mount_path) {
            errs.push(FieldError::invalid(
                format!("{mount_at}.mountPath"),
                mount_path,
                "must be unique",
            ));
        }
    }
    if let Some(resources) = c.get("resources") {
        validate_resources(resources, &format!("{at}.resources"), errs);
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get(probe).filter(|p| p.is_object()) {
            validate_probe(p, probe, &format!("{at}.{probe}"), errs);
        }
    }
}

/// Quantities that parse and are not negative, and no request above its limit.
fn validate_resources(resources: &Value, at: &str, errs: &mut Vec<FieldError>) {
    let mut limits = HashMap::new();
    for list in ["limits", "requests"] {
        for (name, quantity) in object_of(resources, list).into_iter().flatten() {
            let field = format!("{at}.{list}[{name}]");
            let text = quantity.as_str().unwrap_or_default();
            let Some(millis) = quantity_millis(text) else {
                errs.push(FieldError::invalid(field, text, QUANTITY_FORMAT));
                continue;
            };
            if millis < 0 {
                errs.push(FieldError::invalid(
                    field,
                    text,
                    "must be greater than or equal to 0",
                ));
            } else if list == "limits" {
                limits.insert(name, (millis, text));
            } else if let Some((limit, limit_text)) = limits.get(name)
                && millis > *limit
            {
                errs.push(FieldError::invalid(
                    format!("{at}.requests"),
                    text,
                    &format!("must be less than or equal to {name} limit of {limit_text}"),
                ));
            }
        }
    }
}

/// A value that must be one of a fixed set, when set.
fn check_supported(v: &Value, key: &str, at: &str, supported: &[&str], errs: &mut Vec<FieldError>) {
    let value = str_of(v, key);
    if !value.is_empty() && !supported.contains(&value) {
        errs.push(FieldError::not_supported(
            format!("{at}.{key}"),
            value,
            supported,
        ));
    }
}

fn validate_container_port(port: &Value, at: &str, errs: &mut Vec<FieldError>) {
    match port.get("containerPort").and_then(Value::as_i64) {
        Some(n) => check_range(errs, format!("{at}.containerPort"), n, 1, MAX_PORT),
        None => errs.push(FieldError::required(format!("{at}.containerPort"))),
    }
    if let Some(n) = port.get("hostPort").and_then(Value::as_i64)
        && n != 0
    {
        check_range(errs, format!("{at}.hostPort"), n, 1, MAX_PORT);
    }
    let name = str_of(port, "name");
    if !name.is_empty() {
        for msg in is_valid_port_name(name) {
            errs.push(FieldError::invalid(format!("{at}.name"), name, &msg));
        }
    }
    check_protocol(port, at, errs);
}

/// `protocol` of a port: TCP, UDP or SCTP.
pub(super) fn check_protocol(port: &Value, at: &str, errs: &mut Vec<FieldError>) {
    let protocol = str_of(port, "protocol");
    if !["TCP", "UDP", "SCTP"].contains(&protocol) {
        errs.push(FieldError::not_supported(
            format!("{at}.protocol"),
            protocol,
            &["SCTP", "TCP", "UDP"],
        ));
    }
}

/// A port given as a number (1-65535) or by name.
pub(super) fn check_port_num_or_name(
    port: Option<&Value>,
    field: String,
    errs: &mut Vec<FieldError>,
) {
    match port {
        Some(Value::Number(n)) => check_range(errs, field, n.as_i64().unwrap_or(0), 1, MAX_PORT),
        Some(Value::String(name)) => {
            for msg in is_valid_port_name(name) {
                errs.push(FieldError::invalid(&field, name, &msg));
            }
        }
        // An unset port is Go's zero value, port 0.
        _ => check_range(errs, field, 0, 1, MAX_PORT),
    }
}

const PROBE_HANDLERS: [&str; 4] = ["exec", "httpGet", "tcpSocket", "grpc"];

fn validate_probe(probe: &Value, kind: &str, at: &str, errs: &mut Vec<FieldError>) {
    let handlers: Vec<&str> = PROBE_HANDLERS
        .into_iter()
        .filter(|h| is_set(probe, h))
        .collect();
    match handlers.as_slice() {
        [] => errs.push(FieldError::required_because(
            at,
            "must specify a handler type",
        )),
        [handler] => validate_handler(probe, handler, at, errs),
        [_, second, ..] => errs.push(FieldError::forbidden(
            format!("{at}.{second}"),
            "may not specify more than 1 handler type",
        )),
    }
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
        "terminationGracePeriodSeconds",
    ] {
        check_non_negative(errs, probe, key, at);
    }
    // Only readiness may ask for several successes in a row.
    if kind != "readinessProbe"
        && let Some(n) = probe.get("successThreshold").and_then(Value::as_i64)
        && n != 1
    {
        errs.push(FieldError::invalid_unquoted(
            format!("{at}.successThreshold"),
            n,
            "must be 1",
        ));
    }
}

fn validate_handler(probe: &Value, handler: &str, at: &str, errs: &mut Vec<FieldError>) {
    let action = &probe[handler];
    let at = format!("{at}.{handler}");
    match handler {
        "httpGet" => {
            check_port_num_or_name(action.get("port"), format!("{at}.port"), errs);
            let scheme = str_of(action, "scheme");
            if !["HTTP", "HTTPS"].contains(&scheme) {
                errs.push(FieldError::not_supported(
                    format!("{at}.scheme"),
                    scheme,
                    &["HTTP", "HTTPS"],
                ));
            }
        }
        "tcpSocket" => check_port_num_or_name(action.get("port"), format!("{at}.port"), errs),
        "exec" if array_of(action, "command").is_empty() => {
            errs.push(FieldError::required(format!("{at}.command")));
        }
        "grpc" => match action.get("port").and_then(Value::as_i64) {
            Some(n) => check_range(errs, format!("{at}.port"), n, 1, MAX_PORT),
            None => errs.push(FieldError::required(format!("{at}.port"))),
        },
        _ => {}
    }
}

fn validate_toleration(t: &Value, at: &str, errs: &mut Vec<FieldError>) {
    let key = str_of(t, "key");
    let operator = str_of(t, "operator");
    if !key.is_empty() {
        for msg in super::names::is_qualified_name(key) {
            errs.push(FieldError::invalid(format!("{at}.key"), key, &msg));
        }
    }
    if key.is_empty() && operator != "Exists" {
        errs.push(FieldError::invalid(
            format!("{at}.operator"),
            operator,
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    match operator {
        "" | "Equal" => {}
        "Exists" => {
            let value = str_of(t, "value");
            if !value.is_empty() {
                errs.push(FieldError::invalid(
                    format!("{at}.operator"),
                    value,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            format!("{at}.operator"),
            other,
            &["Equal", "Exists"],
        )),
    }
    let effect = str_of(t, "effect");
    if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        errs.push(FieldError::not_supported(
            format!("{at}.effect"),
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
    if is_set(t, "tolerationSeconds") && effect != "NoExecute" {
        errs.push(FieldError::invalid(
            format!("{at}.effect"),
            effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
}

/// A running pod's spec is fixed except for images, the active deadline,
/// added tolerations and a negative grace period turned into 1.
fn validate_pod_update(new: &Value, old: &Value) -> Vec<FieldError> {
    for list in ["containers", "initContainers"] {
        if array_of(new, list).len() != array_of(old, list).len() {
            return vec![FieldError::forbidden(
                format!("spec.{list}"),
                "pod updates may not add or remove containers",
            )];
        }
    }
    let mut errs = Vec::new();
    let old_tolerations = array_of(old, "tolerations");
    let new_tolerations = array_of(new, "tolerations");
    let same_toleration = |a: &Value, b: &Value| {
        ["key", "operator", "value", "effect"]
            .iter()
            .all(|k| str_of(a, k) == str_of(b, k))
    };
    if !old_tolerations
        .iter()
        .all(|o| new_tolerations.iter().any(|n| same_toleration(o, n)))
    {
        errs.push(FieldError::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }

    // The old spec with everything a pod update may change taken from the
    // new one must equal the new spec.
    let mut allowed = old.clone();
    for list in ["containers", "initContainers"] {
        let old_containers = allowed.get_mut(list).and_then(Value::as_array_mut);
        for (container, was) in array_of(new, list)
            .iter()
            .zip(old_containers.into_iter().flatten())
        {
            copy_field(container, was, "image");
        }
    }
    for key in [
        "activeDeadlineSeconds",
        "tolerations",
        "ephemeralContainers",
    ] {
        copy_field(new, &mut allowed, key);
    }
    let grace = "terminationGracePeriodSeconds";
    let was_negative = old
        .get(grace)
        .and_then(Value::as_i64)
        .is_some_and(|g| g < 0);
    if was_negative && new.get(grace).and_then(Value::as_i64) == Some(1) {
        copy_field(new, &mut allowed, grace);
    }
    if &allowed != new {
        errs.push(FieldError::forbidden("spec", POD_UPDATE_FORBIDDEN));
    }
    errs
}
