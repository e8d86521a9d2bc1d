//! ResourceQuotas' scopes (`ValidateResourceQuotaSpec` in
//! `pkg/apis/core/validation`): known scopes, each applied only to the
//! resources it can count, no pair of opposites, and scope selector
//! expressions whose operator and values fit.

use serde_json::Value;

use super::{array_of, field, go_format, str_of};
use crate::FieldError;

const SCOPES: [&str; 6] = [
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// Scopes that can only say whether a pod has them (operator `Exists`).
const PRESENCE_SCOPES: [&str; 5] = [
    "BestEffort",
    "NotBestEffort",
    "Terminating",
    "NotTerminating",
    "CrossNamespacePodAffinity",
];

const OPPOSITES: [[&str; 2]; 2] = [
    ["BestEffort", "NotBestEffort"],
    ["Terminating", "NotTerminating"],
];

/// The quota resource names Kubernetes knows (`standardQuotaResources`);
/// scopes are checked against these only.
const STANDARD_RESOURCES: [&str; 19] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.storage",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "persistentvolumeclaims",
    "configmaps",
    "services.nodeports",
    "services.loadbalancers",
];

/// What pod scopes can count besides `pods`: CPU and memory.
const POD_COMPUTE_RESOURCES: [&str; 6] = [
    "cpu",
    "memory",
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

pub(super) fn validate_resource_quota(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = field(obj, "spec");
    let mut errs = Vec::new();
    validate_scopes(spec, &mut errs);
    if spec.get("scopeSelector").is_some_and(Value::is_object) {
        validate_scope_selector(spec, &mut errs);
    }
    if let Some(old) = old {
        let (mut new_scopes, mut old_scopes) = (scopes_of(spec), scopes_of(field(old, "spec")));
        let shown = scope_list(&new_scopes);
        new_scopes.sort_unstable();
        new_scopes.dedup();
        old_scopes.sort_unstable();
        old_scopes.dedup();
        if new_scopes != old_scopes {
            errs.push(FieldError::invalid_unquoted(
                "spec.scopes",
                shown,
                "field is immutable",
            ));
        }
    }
    errs
}

fn scopes_of(spec: &Value) -> Vec<&str> {
    array_of(spec, "scopes")
        .iter()
        .map(|s| s.as_str().unwrap_or_default())
        .collect()
}

fn validate_scopes(spec: &Value, errs: &mut Vec<FieldError>) {
    let scopes = scopes_of(spec);
    if scopes.is_empty() {
        return;
    }
    const PATH: &str = "spec.scopes";
    let shown = scope_list(&scopes);
    for scope in &scopes {
        if !SCOPES.contains(scope) {
            errs.push(FieldError::invalid_unquoted(
                PATH,
                &shown,
                "unsupported scope",
            ));
        }
        for _ in unfit_resources(spec, scope) {
            errs.push(FieldError::invalid_unquoted(
                PATH,
                &shown,
                "unsupported scope applied to resource",
            ));
        }
    }
    if has_opposites(&scopes) {
        errs.push(FieldError::invalid_unquoted(
            PATH,
            &shown,
            "conflicting scopes",
        ));
    }
}

fn validate_scope_selector(spec: &Value, errs: &mut Vec<FieldError>) {
    const PATH: &str = "spec.scopeSelector.matchExpressions";
    let selector = &spec["scopeSelector"];
    let expressions = array_of(selector, "matchExpressions");
    let mut scopes = Vec::new();
    for expression in expressions {
        let scope = str_of(expression, "scopeName");
        let operator = str_of(expression, "operator");
        if !SCOPES.contains(&scope) {
            errs.push(FieldError::invalid(
                format!("{PATH}.scopeName"),
                scope,
                "unsupported scope",
            ));
        }
        for _ in unfit_resources(spec, scope) {
            errs.push(FieldError::invalid_unquoted(
                PATH,
                scope_selector(expressions),
                "unsupported scope applied to resource",
            ));
        }
        if PRESENCE_SCOPES.contains(&scope) && operator != "Exists" {
            errs.push(FieldError::invalid(
                format!("{PATH}.operator"),
                operator,
                "must be 'Exists' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
            ));
        }
        let values = array_of(expression, "values");
        match operator {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required_because(
                format!("{PATH}.values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errs.push(FieldError::invalid_unquoted(
                    format!("{PATH}.values"),
                    go_format::string_slice(expression.get("values")),
                    "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                ))
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                format!("{PATH}.operator"),
                other,
                "not a valid selector operator",
            )),
        }
        scopes.push(scope);
    }
    if has_opposites(&scopes) {
        // Kubernetes shows `spec.scopes` here, whatever it holds.
        errs.push(FieldError::invalid_unquoted(
            PATH,
            scope_list(&scopes_of(spec)),
            "conflicting scopes",
        ));
    }
}

/// The standard resources of the quota's `hard` that `scope` cannot
/// count (`IsResourceQuotaScopeValidForResource`), one per error Kubernetes
/// reports.
fn unfit_resources<'a>(spec: &'a Value, scope: &str) -> Vec<&'a String> {
    let fits = |resource: &str| match scope {
        "BestEffort" => resource == "pods",
        "Terminating"
        | "NotTerminating"
        | "NotBestEffort"
        | "PriorityClass"
        | "CrossNamespacePodAffinity" => {
            resource == "pods" || POD_COMPUTE_RESOURCES.contains(&resource)
        }
        _ => true,
    };
    spec["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name)
        .filter(|name| is_standard(name) && !fits(name))
        .collect()
}

fn is_standard(resource: &str) -> bool {
    STANDARD_RESOURCES.contains(&resource) || resource.starts_with("requests.hugepages-")
}

fn has_opposites(scopes: &[&str]) -> bool {
    OPPOSITES
        .iter()
        .any(|pair| pair.iter().all(|s| scopes.contains(s)))
}

/// `[]core.ResourceQuotaScope{"BestEffort"}`, as Go prints the list.
fn scope_list(scopes: &[&str]) -> String {
    if scopes.is_empty() {
        return "[]core.ResourceQuotaScope(nil)".to_owned();
    }
    let inner: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
    format!("[]core.ResourceQuotaScope{{{}}}", inner.join(", "))
}

/// The `*core.ScopeSelector` as Go's `%#v` prints it.
fn scope_selector(expressions: &[Value]) -> String {
    let inner: Vec<String> = expressions
        .iter()
        .map(|e| {
            format!(
                "core.ScopedResourceSelectorRequirement{{ScopeName:{:?}, Operator:{:?}, Values:{}}}",
                str_of(e, "scopeName"),
                str_of(e, "operator"),
                go_format::string_slice(e.get("values")),
            )
        })
        .collect();
    format!(
        "core.ScopeSelector{{MatchExpressions:[]core.ScopedResourceSelectorRequirement{{{}}}}}",
        inner.join(", ")
    )
}
