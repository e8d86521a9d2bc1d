//! A pod's quality-of-service class, which the API server records in
//! `status.qosClass` on create and the node agent uses to rank pods for
//! eviction.

use std::collections::BTreeMap;

use serde_json::Value;

/// Only CPU and memory decide the class.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// `Guaranteed`, `Burstable` or `BestEffort`, computed as Kubernetes'
/// `ComputePodQOS`: from the containers' and init containers' requests and
/// limits (after requests were defaulted from limits).
pub fn pod_qos_class(pod: &Value) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .into_iter()
        .filter_map(|list| {
            pod.pointer(&format!("/spec/{list}"))
                .and_then(Value::as_array)
        })
        .flatten();
    for container in containers {
        sum_positive(container.pointer("/resources/requests"), &mut requests);
        let limited = sum_positive(container.pointer("/resources/limits"), &mut limits);
        if !QOS_RESOURCES.iter().all(|r| limited.contains(r)) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    let requests_equal_limits = requests
        .iter()
        .all(|(name, req)| limits.get(name) == Some(req));
    if guaranteed && requests_equal_limits && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Adds the positive CPU and memory quantities of a resource list to
/// `totals`; returns the resources it found.
fn sum_positive<'a>(list: Option<&'a Value>, totals: &mut BTreeMap<&'a str, i128>) -> Vec<&'a str> {
    let mut found = Vec::new();
    for (name, quantity) in list.and_then(Value::as_object).into_iter().flatten() {
        if !QOS_RESOURCES.contains(&name.as_str()) {
            continue;
        }
        let Some(millis) = quantity
            .as_str()
            .and_then(quantity_millis)
            .filter(|m| *m > 0)
        else {
            continue;
        };
        *totals.entry(name.as_str()).or_default() += millis;
        found.push(name.as_str());
    }
    found
}

/// A Kubernetes quantity (`500m`, `1.5`, `128Mi`, `1e3`) in thousandths,
/// rounded up as the API server rounds quantities to milli scale.
pub(crate) fn quantity_millis(s: &str) -> Option<i128> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let number_end = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let (binary_power, decimal_exponent): (u32, i32) = match suffix {
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        exp => exp
            .strip_prefix(['e', 'E'])?
            .parse::<i32>()
            .map(|e| (0, e))
            .ok()?,
    };
    let digits: i128 = format!("{whole}{fraction}").parse().ok()?;
    let mut value = digits.checked_mul(1024i128.checked_pow(binary_power)?)?;
    // Thousandths: shift the decimal point by the exponent, less the fraction digits, plus three.
    let shift = decimal_exponent + 3 - i32::try_from(fraction.len()).ok()?;
    if shift >= 0 {
        value = value.checked_mul(10i128.checked_pow(shift.unsigned_abs())?)?;
    } else {
        let divisor = 10i128.checked_pow(shift.unsigned_abs())?;
        value = (value + divisor - 1) / divisor;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn quantities_in_thousandths() {
        assert_eq!(quantity_millis("1"), Some(1000));
        assert_eq!(quantity_millis("100m"), Some(100));
        assert_eq!(quantity_millis("0.1"), Some(100));
        assert_eq!(quantity_millis("1.5"), Some(1500));
        assert_eq!(quantity_millis("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(quantity_millis("1G"), Some(1_000_000_000_000));
        assert_eq!(quantity_millis("1e3"), Some(1_000_000));
        assert_eq!(quantity_millis("1n"), Some(1));
        assert_eq!(quantity_millis("abc"), None);
        assert_eq!(quantity_millis("1Xi"), None);
    }

    fn pod(containers: Value) -> Value {
        json!({"spec": {"containers": containers}})
    }

    #[test]
    fn no_resources_is_best_effort() {
        assert_eq!(
            pod_qos_class(&pod(json!([{"name": "a", "resources": {}}]))),
            "BestEffort"
        );
    }

    #[test]
    fn equal_cpu_and_memory_limits_and_requests_is_guaranteed() {
        let r = json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0.5", "memory": "128Mi"}});
        assert_eq!(
            pod_qos_class(&pod(json!([{"name": "a", "resources": r}]))),
            "Guaranteed"
        );
    }

    #[test]
    fn requests_below_limits_or_missing_memory_limit_is_burstable() {
        let lower = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}});
        assert_eq!(
            pod_qos_class(&pod(json!([{"name": "a", "resources": lower}]))),
            "Burstable"
        );
        let cpu_only = json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}});
        assert_eq!(
            pod_qos_class(&pod(json!([{"name": "a", "resources": cpu_only}]))),
            "Burstable"
        );
        let guaranteed = json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}});
        let mixed = json!([{"name": "a", "resources": guaranteed}, {"name": "b", "resources": {}}]);
        assert_eq!(pod_qos_class(&pod(mixed)), "Burstable");
    }
}
