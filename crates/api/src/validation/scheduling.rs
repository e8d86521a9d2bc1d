//! PriorityClasses (`ValidatePriorityClass` and its update).

use serde_json::Value;

use super::{check_immutable, str_of};
use crate::FieldError;

/// The highest value a class not made by the system may have.
const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

/// The prefix of the classes the cluster makes itself.
const SYSTEM_PREFIX: &str = "system-";

/// The classes every cluster has: name, value, description.
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

const PREEMPTION_POLICIES: [&str; 2] = ["Never", "PreemptLowerPriority"];

pub(super) fn validate_priority_class(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = crate::meta::name(obj);
    let value = obj["value"].as_i64().unwrap_or(0);
    if name.starts_with(SYSTEM_PREFIX) {
        if let Err(why) = known_system_class(name, value, obj["globalDefault"] == true) {
            errs.push(FieldError::forbidden(
                "metadata.name",
                &format!(
                    "priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {why}"
                ),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(FieldError::forbidden(
            "value",
            &format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        ));
    }
    let policy = str_of(obj, "preemptionPolicy");
    if !PREEMPTION_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(
            "preemptionPolicy",
            policy,
            &PREEMPTION_POLICIES,
        ));
    }
    if let Some(old) = old {
        if obj["value"] != old["value"] {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        check_immutable(
            &mut errs,
            &obj["preemptionPolicy"],
            &old["preemptionPolicy"],
            "preemptionPolicy",
            format!("\"{policy}\""),
        );
    }
    errs
}

/// Whether `name` is one of the system's classes, with its value and not
/// the global default, as `IsKnownSystemPriorityClass` words it.
fn known_system_class(name: &str, value: i64, global_default: bool) -> Result<(), String> {
    let Some((_, known, _)) = SYSTEM_PRIORITY_CLASSES.iter().find(|(n, ..)| *n == name) else {
        return Err(format!("{name} is not a known system priority class"));
    };
    if value != *known {
        return Err(format!("value of {name} PriorityClass must be {known}"));
    }
    if global_default {
        return Err(format!(
            "globalDefault of {name} PriorityClass must be false"
        ));
    }
    Ok(())
}
