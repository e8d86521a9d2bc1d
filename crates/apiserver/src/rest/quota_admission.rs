//! The ResourceQuota and LimitRanger admission steps for new objects, as
//! kube-apiserver's plugins of those names:
//! - a pod's containers get the defaults of their namespace's LimitRanges
//!   (`default` limits, `defaultRequest` requests) and are refused (403)
//!   outside their `min` and `max`;
//! - an object that would take its namespace past a ResourceQuota's `hard`
//!   amounts is refused (403) with what it asked, what is used and the limit;
//!   a quota with scopes counts and limits only the pods its scopes match.
//!
//! Use is counted from the store when the object comes, so admission does
//! not wait for the quota controller's `status.used`.

use serde_json::{Map, Value};
use tugboat_api::quota::{self, Usage};
use tugboat_api::{ApiError, ApiResult, Kind, quantity, registry};

use crate::objects::Objects;

/// The containers of a pod that limit ranges apply to.
const CONTAINER_LISTS: [&str; 2] = ["containers", "initContainers"];

/// Applies limit range defaults to a new pod and checks its containers.
pub async fn limit_ranges(objects: &Objects, kind: &Kind, pod: &mut Value) -> ApiResult<()> {
    if kind.kind != "Pod" {
        return Ok(());
    }
    let namespace = tugboat_api::meta::namespace(pod).to_owned();
    let items: Vec<Value> = list(objects, "LimitRange", &namespace)
        .await?
        .iter()
        .flat_map(|range| {
            range
                .pointer("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter(|item| item["type"] == "Container")
        .map(with_item_defaults)
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    for item in &items {
        for container in containers_mut(pod) {
            let resources = container
                .entry("resources")
                .or_insert_with(|| Value::Object(Map::new()));
            for (from, to) in [("default", "limits"), ("defaultRequest", "requests")] {
                for (name, amount) in item[from].as_object().into_iter().flatten() {
                    let set = resources
                        .as_object_mut()
                        .expect("resources is an object")
                        .entry(to)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(set) = set.as_object_mut() {
                        set.entry(name.clone()).or_insert_with(|| amount.clone());
                    }
                }
            }
        }
    }
    let mut problems = Vec::new();
    for item in &items {
        for container in containers_mut(pod) {
            problems.extend(out_of_range(item, &Value::Object(container.clone())));
        }
    }
    match problems.len() {
        0 => Ok(()),
        1 => Err(forbidden(kind, pod, &problems[0])),
        _ => Err(forbidden(kind, pod, &format!("[{}]", problems.join(", ")))),
    }
}

/// Refuses a new object that would exceed one of its namespace's quotas.
/// Returns the quotas it is charged to, each with its key and with the
/// object's use added to `status.used`, to be written with the object on
/// condition that they did not change meanwhile (Kubernetes' quota
/// admission likewise updates the quota before the object is stored).
pub async fn resource_quotas(
    objects: &Objects,
    kind: &Kind,
    obj: &Value,
) -> ApiResult<Vec<(String, Value)>> {
    if !kind.namespaced {
        return Ok(Vec::new());
    }
    let namespace = tugboat_api::meta::namespace(obj);
    // The quotas are read before use is counted: an object stored after
    // this read changed its quotas, which fails the charged write.
    let mut quotas = list(objects, "ResourceQuota", namespace).await?;
    if quotas.is_empty() {
        return Ok(Vec::new());
    }
    let requested = quota::usage(kind, obj);
    quotas.sort_by(|a, b| tugboat_api::meta::name(a).cmp(tugboat_api::meta::name(b)));
    let mut charges = Vec::new();
    for q in &quotas {
        if !quota::covers(&q["spec"], kind, obj) {
            continue;
        }
        let hard: Usage = amounts(q.pointer("/spec/hard"));
        let asked: Usage = requested
            .iter()
            .filter(|(name, _)| hard.contains_key(*name))
            .map(|(name, amount)| (name.clone(), *amount))
            .collect();
        if asked.is_empty() {
            continue;
        }
        let used = used_in(objects, namespace, &q["spec"], asked.keys()).await?;
        let exceeded: Vec<&String> = asked
            .iter()
            .filter(|(name, amount)| used.get(*name).copied().unwrap_or(0) + **amount > hard[*name])
            .map(|(name, _)| name)
            .collect();
        if exceeded.is_empty() {
            charges.push(charged(q, &asked, &used));
            continue;
        }
        let only = |usage: &Usage| -> Usage {
            exceeded
                .iter()
                .map(|name| ((*name).clone(), usage.get(*name).copied().unwrap_or(0)))
                .collect()
        };
        return Err(forbidden(
            kind,
            obj,
            &format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                tugboat_api::meta::name(q),
                quota::describe(&only(&asked)),
                quota::describe(&only(&used)),
                quota::describe(&only(&hard)),
            ),
        ));
    }
    Ok(charges)
}

/// The quota's key and the quota with `asked` added to what is `used`.
fn charged(q: &Value, asked: &Usage, used: &Usage) -> (String, Value) {
    let mut q = q.clone();
    if !q["status"]["used"].is_object() {
        q["status"]["used"] = Value::Object(Map::new());
    }
    for (name, amount) in asked {
        q["status"]["used"][name] =
            Value::String(quota::format(used.get(name).copied().unwrap_or(0) + amount));
    }
    let key = served("ResourceQuota").key(
        tugboat_api::meta::namespace(&q),
        tugboat_api::meta::name(&q),
    );
    (key, q)
}

/// What the namespace's objects the quota with `spec` covers use now of
/// each of `names`.
async fn used_in(
    objects: &Objects,
    namespace: &str,
    spec: &Value,
    names: impl Iterator<Item = &String>,
) -> ApiResult<Usage> {
    let names: Vec<&String> = names.collect();
    let mut kinds: Vec<&'static Kind> = names
        .iter()
        .filter_map(|n| quota::counted_kind(n))
        .collect();
    kinds.sort_by_key(|k| (k.group, k.plural));
    kinds.dedup_by_key(|k| (k.group, k.plural));
    let mut used = Usage::new();
    for kind in kinds {
        let covered = list(objects, kind.kind, namespace).await?;
        for obj in covered.iter().filter(|o| quota::covers(spec, kind, o)) {
            for (name, amount) in quota::usage(kind, obj) {
                if names.contains(&&name) {
                    *used.entry(name).or_insert(0) += amount;
                }
            }
        }
    }
    Ok(used)
}

/// The objects of the core or named kind in `namespace`.
async fn list(objects: &Objects, kind: &str, namespace: &str) -> ApiResult<Vec<Value>> {
    objects.list(served(kind), namespace).await
}

fn served(kind: &str) -> &'static Kind {
    registry::KINDS
        .iter()
        .find(|k| k.kind == kind)
        .expect("a served kind")
}

/// A LimitRange item as Kubernetes defaults it: `default` from `max`,
/// `defaultRequest` from `default`.
fn with_item_defaults(mut item: Value) -> Value {
    for (from, to) in [("max", "default"), ("default", "defaultRequest")] {
        for (name, amount) in item[from].as_object().cloned().unwrap_or_default() {
            if !item[to].is_object() {
                item[to] = Value::Object(Map::new());
            }
            item[to]
                .as_object_mut()
                .expect("just made an object")
                .entry(name)
                .or_insert(amount);
        }
    }
    item
}

/// Why a container is outside the item's `min` and `max`, in Kubernetes' words.
fn out_of_range(item: &Value, container: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let amount = |list: &str, name: &str| {
        container
            .pointer(&format!("/resources/{list}/{name}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    for (name, min) in item["min"].as_object().into_iter().flatten() {
        let min = min.as_str().unwrap_or_default();
        match amount("requests", name) {
            None => problems.push(format!(
                "minimum {name} usage per Container is {min}.  No request is specified"
            )),
            Some(request) if milli(&request) < milli(min) => problems.push(format!(
                "minimum {name} usage per Container is {min}, but request is {request}"
            )),
            Some(_) => {}
        }
    }
    for (name, max) in item["max"].as_object().into_iter().flatten() {
        let max = max.as_str().unwrap_or_default();
        match amount("limits", name) {
            None => problems.push(format!(
                "maximum {name} usage per Container is {max}.  No limit is specified"
            )),
            Some(limit) if milli(&limit) > milli(max) => problems.push(format!(
                "maximum {name} usage per Container is {max}, but limit is {limit}"
            )),
            Some(_) => {}
        }
    }
    problems
}

fn milli(text: &str) -> i128 {
    quantity::milli_value(text).unwrap_or(0)
}

fn amounts(list: Option<&Value>) -> Usage {
    list.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), quantity::milli_value(q.as_str()?)?)))
        .collect()
}

fn containers_mut(pod: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    let spec = pod.get_mut("spec").and_then(Value::as_object_mut);
    spec.into_iter()
        .flat_map(|spec| spec.iter_mut())
        .filter(|(field, _)| CONTAINER_LISTS.contains(&field.as_str()))
        .filter_map(|(_, list)| list.as_array_mut())
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn forbidden(kind: &Kind, obj: &Value, why: &str) -> ApiError {
    ApiError::forbidden(kind.group, kind.plural, tugboat_api::meta::name(obj), why)
}
