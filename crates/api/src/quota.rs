//! What an object counts against a ResourceQuota, as Kubernetes' quota
//! evaluators reckon it: `count/<resource>[.<group>]` for every kind, the
//! standard object counts (`pods`, `services`, `configmaps`...), and for
//! pods that have not finished their compute requests and limits
//! (`requests.cpu`, `limits.memory`, `cpu`...); and which objects a quota
//! with scopes covers ([`covers`]). Used by the API server's quota
//! admission and by the quota controller that keeps `status.used`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity;
use crate::registry::{self, Kind};

/// Amounts by quota resource name, in thousandths (as `quantity::milli_value`).
pub type Usage = BTreeMap<String, i128>;

/// Compute resources quotas also know by their bare name (`cpu` for
/// `requests.cpu`).
const BARE_REQUESTS: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];
/// Kinds counted under their plural alone (`pods`, not only `count/pods`).
const STANDARD_COUNTS: [&str; 7] = [
    "pods",
    "services",
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
    "persistentvolumeclaims",
];

/// What `obj`, an object of `kind`, counts against a quota.
pub fn usage(kind: &Kind, obj: &Value) -> Usage {
    let mut usage = Usage::new();
    if kind.kind == "Pod" && is_finished(obj) {
        return usage;
    }
    usage.insert(count_name(kind), 1000);
    if kind.group.is_empty() && STANDARD_COUNTS.contains(&kind.plural) {
        usage.insert(kind.plural.to_owned(), 1000);
    }
    match kind.kind {
        "Pod" => pod_usage(obj, &mut usage),
        "Service" => service_usage(obj, &mut usage),
        "PersistentVolumeClaim" => {
            if let Some(storage) = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(quantity::milli_value)
            {
                usage.insert("requests.storage".to_owned(), storage);
            }
        }
        _ => {}
    }
    usage
}

/// Whether a quota with `spec` covers `obj`, an object of `kind`. A quota
/// without scopes covers everything; one with `scopes` or a
/// `scopeSelector` covers only the pods every one of them matches (the
/// pod quota evaluator's rules), and no object of another kind.
pub fn covers(spec: &Value, kind: &Kind, obj: &Value) -> bool {
    let requirements = scope_requirements(spec);
    requirements.is_empty()
        || (kind.group.is_empty()
            && kind.kind == "Pod"
            && requirements.iter().all(|r| r.matches(obj)))
}

/// One condition on a pod: a scope of `spec.scopes` (operator `Exists`)
/// or a `scopeSelector` match expression.
struct ScopeRequirement<'a> {
    scope: &'a str,
    operator: &'a str,
    values: Vec<&'a str>,
}

fn scope_requirements(spec: &Value) -> Vec<ScopeRequirement<'_>> {
    let scopes = spec
        .get("scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|scope| ScopeRequirement {
            scope: scope.as_str().unwrap_or_default(),
            operator: "Exists",
            values: Vec::new(),
        });
    let expressions = spec
        .pointer("/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| ScopeRequirement {
            scope: e["scopeName"].as_str().unwrap_or_default(),
            operator: e["operator"].as_str().unwrap_or_default(),
            values: e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect(),
        });
    scopes.chain(expressions).collect()
}

impl ScopeRequirement<'_> {
    fn matches(&self, pod: &Value) -> bool {
        let spec = &pod["spec"];
        match self.scope {
            "Terminating" => is_terminating(spec),
            "NotTerminating" => !is_terminating(spec),
            "BestEffort" => crate::defaults::pod_qos_class(pod) == "BestEffort",
            "NotBestEffort" => crate::defaults::pod_qos_class(pod) != "BestEffort",
            "PriorityClass" => self.selects(spec["priorityClassName"].as_str().unwrap_or_default()),
            "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(spec),
            _ => false,
        }
    }

    /// The requirement as a label selector on the one label
    /// `PriorityClass=<class>`, which a pod without a class lacks.
    fn selects(&self, class: &str) -> bool {
        let named = !class.is_empty() && self.values.contains(&class);
        match self.operator {
            "In" => named,
            "NotIn" => !named,
            "Exists" => !class.is_empty(),
            "DoesNotExist" => class.is_empty(),
            _ => false,
        }
    }
}

/// A pod with an active deadline, which ends on its own.
fn is_terminating(spec: &Value) -> bool {
    spec["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|s| s >= 0)
}

/// Whether a pod (anti-)affinity term of the pod names other namespaces
/// or selects them.
fn uses_cross_namespace_affinity(spec: &Value) -> bool {
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let affinity = &spec["affinity"][kind];
        let required = affinity["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten();
        let preferred = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|weighted| &weighted["podAffinityTerm"]);
        required.chain(preferred).any(|term| {
            term["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                || !term["namespaceSelector"].is_null()
        })
    })
}

/// The kind whose objects count towards the quota resource `resource`.
pub fn counted_kind(resource: &str) -> Option<&'static Kind> {
    let core = |plural| registry::by_plural("", "v1", plural);
    if let Some(counted) = resource.strip_prefix("count/") {
        let (plural, group) = counted.split_once('.').unwrap_or((counted, ""));
        return registry::group_versions()
            .into_iter()
            .filter(|(g, _)| *g == group)
            .find_map(|(g, v)| registry::by_plural(g, v, plural));
    }
    if STANDARD_COUNTS.contains(&resource) {
        return core(resource);
    }
    if resource.starts_with("services.") {
        return core("services");
    }
    if resource == "requests.storage" {
        return core("persistentvolumeclaims");
    }
    if resource.starts_with("requests.")
        || resource.starts_with("limits.")
        || BARE_REQUESTS.contains(&resource)
    {
        return core("pods");
    }
    None
}

/// An amount as Kubernetes prints it: whole units when whole (`2`,
/// `1Gi` for a power-of-two multiple of a byte), else thousandths (`500m`).
pub fn format(milli: i128) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let units = milli / 1000;
    for (suffix, size) in [
        ("Ei", 1i128 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if units != 0 && units % size == 0 {
            return format!("{}{suffix}", units / size);
        }
    }
    units.to_string()
}

/// `name=amount,...` in name order, as quota messages list resources.
pub fn describe(usage: &Usage) -> String {
    usage
        .iter()
        .map(|(name, amount)| format!("{name}={}", format(*amount)))
        .collect::<Vec<_>>()
        .join(",")
}

fn count_name(kind: &Kind) -> String {
    if kind.group.is_empty() {
        format!("count/{}", kind.plural)
    } else {
        format!("count/{}.{}", kind.plural, kind.group)
    }
}

/// Succeeded and Failed pods use nothing.
fn is_finished(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// A pod's requests and limits: the larger of its containers' sum and its
/// largest init container, plus its overhead, per resource.
fn pod_usage(pod: &Value, usage: &mut Usage) {
    for (field, prefix) in [("requests", "requests."), ("limits", "limits.")] {
        let amounts = |list: &str| -> Vec<BTreeMap<String, i128>> {
            pod.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| resources(c.pointer(&format!("/resources/{field}"))))
                .collect()
        };
        let mut total = BTreeMap::new();
        for container in amounts("containers") {
            for (name, amount) in container {
                *total.entry(name).or_insert(0) += amount;
            }
        }
        for init in amounts("initContainers") {
            for (name, amount) in init {
                let entry = total.entry(name).or_insert(0);
                *entry = (*entry).max(amount);
            }
        }
        for (name, amount) in resources(pod.pointer("/spec/overhead")) {
            *total.entry(name).or_insert(0) += amount;
        }
        for (name, amount) in total {
            if field == "requests" && BARE_REQUESTS.contains(&name.as_str()) {
                usage.insert(name.clone(), amount);
            }
            usage.insert(format!("{prefix}{name}"), amount);
        }
    }
}

fn resources(list: Option<&Value>) -> BTreeMap<String, i128> {
    list.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), quantity::milli_value(q.as_str()?)?)))
        .collect()
}

fn service_usage(service: &Value, usage: &mut Usage) {
    let kind = service.pointer("/spec/type").and_then(Value::as_str);
    if kind == Some("LoadBalancer") {
        usage.insert("services.loadbalancers".to_owned(), 1000);
    }
    if matches!(kind, Some("NodePort" | "LoadBalancer")) {
        let ports = service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        usage.insert(
            "services.nodeports".to_owned(),
            i128::try_from(ports).unwrap_or(0) * 1000,
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_pod_counts_its_requests_limits_and_itself() {
        let pods = registry::by_plural("", "v1", "pods").unwrap();
        let pod = json!({"spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
                {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "2"}}}],
        }});
        let usage = usage(pods, &pod);
        assert_eq!(usage["pods"], 1000);
        assert_eq!(usage["count/pods"], 1000);
        assert_eq!(
            usage["requests.cpu"], 2000,
            "the init container's larger request"
        );
        assert_eq!(usage["cpu"], 2000);
        assert_eq!(format(usage["requests.memory"]), "128Mi");
        assert_eq!(format(usage["limits.cpu"]), "1");
        let done = json!({"spec": pod["spec"], "status": {"phase": "Succeeded"}});
        assert!(super::usage(pods, &done).is_empty());
    }

    #[test]
    fn scopes_pick_the_pods_a_quota_covers() {
        let pods = registry::by_plural("", "v1", "pods").unwrap();
        let best_effort = json!({"spec": {"containers": [{}]}});
        let burstable = json!({"spec": {
            "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
            "activeDeadlineSeconds": 30,
            "priorityClassName": "high",
        }});
        let covers = |spec: Value, pod: &Value| covers(&spec, pods, pod);
        assert!(covers(json!({"hard": {"pods": "1"}}), &best_effort));
        assert!(covers(json!({"scopes": ["BestEffort"]}), &best_effort));
        assert!(!covers(json!({"scopes": ["BestEffort"]}), &burstable));
        assert!(covers(
            json!({"scopes": ["NotBestEffort", "Terminating"]}),
            &burstable
        ));
        assert!(!covers(json!({"scopes": ["Terminating"]}), &best_effort));
        let selector = |operator: &str, values: Value| {
            json!({"scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": operator, "values": values}]}})
        };
        assert!(covers(selector("In", json!(["high"])), &burstable));
        assert!(!covers(selector("In", json!(["high"])), &best_effort));
        assert!(covers(selector("NotIn", json!(["high"])), &best_effort));
        assert!(!covers(
            selector("NotIn", json!(["high", "low"])),
            &burstable
        ));
        assert!(covers(selector("Exists", json!(null)), &burstable));
        assert!(covers(selector("DoesNotExist", json!(null)), &best_effort));
        let affinity = json!({"spec": {"affinity": {"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "podAffinityTerm": {"namespaceSelector": {}, "topologyKey": "x"}}]}}}});
        let cross = json!({"scopes": ["CrossNamespacePodAffinity"]});
        assert!(covers(cross.clone(), &affinity));
        assert!(!covers(cross, &best_effort));
        let configmaps = registry::by_plural("", "v1", "configmaps").unwrap();
        assert!(!super::covers(
            &json!({"scopes": ["NotTerminating"]}),
            configmaps,
            &json!({})
        ));
    }

    #[test]
    fn quota_names_lead_to_the_kinds_they_count() {
        assert_eq!(counted_kind("pods").unwrap().kind, "Pod");
        assert_eq!(counted_kind("limits.memory").unwrap().kind, "Pod");
        assert_eq!(
            counted_kind("count/deployments.apps").unwrap().kind,
            "Deployment"
        );
        assert_eq!(counted_kind("count/configmaps").unwrap().kind, "ConfigMap");
        assert_eq!(counted_kind("services.nodeports").unwrap().kind, "Service");
        assert!(counted_kind("count/nothings.example.com").is_none());
    }

    #[test]
    fn amounts_print_as_kubernetes_prints_them() {
        assert_eq!(format(500), "500m");
        assert_eq!(format(2000), "2");
        assert_eq!(format(1000 * (1 << 30)), "1Gi");
        let usage = Usage::from([("pods".to_owned(), 2000), ("limits.cpu".to_owned(), 1500)]);
        assert_eq!(describe(&usage), "limits.cpu=1500m,pods=2");
    }
}
