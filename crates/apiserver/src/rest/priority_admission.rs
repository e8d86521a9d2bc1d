//! The Priority admission step, as kube-apiserver's plugin of that name:
//! - a new pod takes its `priority` and `preemptionPolicy` from the
//!   PriorityClass it names, or from the global default class, or 0 and
//!   `PreemptLowerPriority` when there is none; a class that does not exist,
//!   or a priority the pod sets itself that differs, is refused (403);
//! - only one PriorityClass may be the global default, on create and on
//!   update.
//!
//! The system classes (`system-node-critical`, `system-cluster-critical`,
//! made by `bootstrap`) cannot be deleted.

use serde_json::{Value, json};
use tugboat_api::validation::scheduling::SYSTEM_PRIORITY_CLASSES;
use tugboat_api::{ApiError, ApiResult, Kind, meta, registry};

use crate::objects::Objects;

/// Admits a new pod or PriorityClass.
pub async fn admit(objects: &Objects, kind: &Kind, obj: &mut Value) -> ApiResult<()> {
    match (kind.group, kind.kind) {
        ("", "Pod") => set_pod_priority(objects, obj).await,
        ("scheduling.k8s.io", "PriorityClass") => only_one_default(objects, kind, obj).await,
        _ => Ok(()),
    }
}

/// Admits a changed PriorityClass: one made the default while another is
/// the default is refused.
pub async fn admit_update(
    objects: &Objects,
    kind: &Kind,
    new: &Value,
    old: &Value,
) -> ApiResult<()> {
    if kind.group == "scheduling.k8s.io" && old["globalDefault"] != true {
        only_one_default(objects, kind, new).await?;
    }
    Ok(())
}

async fn only_one_default(objects: &Objects, kind: &Kind, class: &Value) -> ApiResult<()> {
    if class["globalDefault"] != true {
        return Ok(());
    }
    match default_class(objects).await? {
        Some(other) if meta::name(&other) != meta::name(class) => Err(forbidden(
            kind,
            class,
            &format!(
                "PriorityClass {} is already marked as default. Only one default can exist",
                meta::name(&other)
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses to delete a class the system made.
pub fn check_delete(kind: &Kind, name: &str) -> ApiResult<()> {
    let system = SYSTEM_PRIORITY_CLASSES.iter().any(|(n, ..)| *n == name);
    if kind.group == "scheduling.k8s.io" && system {
        return Err(ApiError::forbidden(
            kind.group,
            kind.plural,
            name,
            "this is a system priority class and cannot be deleted",
        ));
    }
    Ok(())
}

async fn set_pod_priority(objects: &Objects, pod: &mut Value) -> ApiResult<()> {
    let pods = registry::by_kind("v1", "Pod").expect("pods are served");
    let named = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let class = if named.is_empty() {
        default_class(objects).await?
    } else {
        let class = objects.try_get(&class_kind().key("", &named)).await?;
        let missing = format!("no PriorityClass with name {named} was found");
        Some(class.ok_or_else(|| forbidden(pods, pod, &missing))?)
    };
    let priority = class
        .as_ref()
        .map_or(0, |c| c["value"].as_i64().unwrap_or(0));
    let policy = class
        .as_ref()
        .and_then(|c| c["preemptionPolicy"].as_str())
        .unwrap_or("PreemptLowerPriority")
        .to_owned();
    let spec = &pod["spec"];
    if let Some(given) = spec["priority"].as_i64()
        && given != priority
    {
        let why = format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
        );
        return Err(forbidden(pods, pod, &why));
    }
    if let Some(given) = spec["preemptionPolicy"].as_str()
        && given != policy
    {
        let why = format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
        );
        return Err(forbidden(pods, pod, &why));
    }
    if let Some(spec) = pod["spec"].as_object_mut() {
        if let Some(class) = &class {
            spec.insert("priorityClassName".into(), json!(meta::name(class)));
        }
        spec.insert("priority".into(), json!(priority));
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// The global default class; when a race made several, the lowest, as
/// Kubernetes picks it.
async fn default_class(objects: &Objects) -> ApiResult<Option<Value>> {
    Ok(objects
        .list(class_kind(), "")
        .await?
        .into_iter()
        .filter(|c| c["globalDefault"] == true)
        .min_by_key(|c| c["value"].as_i64().unwrap_or(0)))
}

pub fn class_kind() -> &'static Kind {
    registry::by_kind("scheduling.k8s.io/v1", "PriorityClass").expect("priority classes are served")
}

fn forbidden(kind: &Kind, obj: &Value, why: &str) -> ApiError {
    ApiError::forbidden(kind.group, kind.plural, meta::name(obj), why)
}
