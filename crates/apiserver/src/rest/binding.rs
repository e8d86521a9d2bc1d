//! The `pods/{name}/binding` subresource: a scheduler assigns a pod to a node
//! by POSTing a `Binding`, as kube-apiserver's BindingREST takes it. The pod
//! gets `spec.nodeName` (which no ordinary update may change) and the
//! PodScheduled=True condition; a pod already on a node is a 409 Conflict.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tugboat_api::{ApiError, ApiResult, FieldError, meta};

use super::{Ctx, admit, json};
use crate::body;
use crate::objects::revision_of;

/// What `pods/binding` errors name as their resource.
const RESOURCE: &str = "pods/binding";

pub async fn create(ctx: &Ctx) -> ApiResult<Response> {
    let binding = body::decode_object(&ctx.headers, &ctx.body)?;
    let name = ctx.name();
    if meta::name(&binding) != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let namespace = meta::namespace(&binding);
    if !namespace.is_empty() && namespace != ctx.target.namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let node = target_node(&binding, name)?;
    let uid = meta::uid(&binding);
    let annotations = binding
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let kind = ctx.target.kind;
    loop {
        let old = ctx.objects.get(kind, &ctx.target.namespace, name).await?;
        if !uid.is_empty() && uid != meta::uid(&old) {
            return Err(conflict(
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&old)
                ),
            ));
        }
        let mut pod = assigned(&old, name, node)?;
        let pod_annotations = meta::metadata_mut(&mut pod)
            .entry("annotations")
            .or_insert_with(|| json!({}));
        for (key, value) in &annotations {
            pod_annotations[key] = value.clone();
        }
        if ctx.params.is_dry_run() {
            break;
        }
        if ctx
            .objects
            .replace(kind, &pod, revision_of(&old))
            .await?
            .is_some()
        {
            break;
        }
    }
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }),
        &[],
    ))
}

/// The node a Binding names; its target must be a Node (or of no kind).
fn target_node<'a>(binding: &'a Value, name: &str) -> ApiResult<&'a str> {
    let target_kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut errors = Vec::new();
    if !target_kind.is_empty() && target_kind != "Node" {
        errors.push(FieldError::not_supported(
            "target.kind",
            target_kind,
            &["Node", "<empty>"],
        ));
    }
    if node.is_empty() {
        errors.push(FieldError::required("target.name"));
    }
    if errors.is_empty() {
        Ok(node)
    } else {
        Err(ApiError::invalid("", "Binding", name, errors))
    }
}

/// The pod as bound to `node`, or why it cannot be.
fn assigned(old: &Value, name: &str, node: &str) -> ApiResult<Value> {
    if meta::is_being_deleted(old) {
        return Err(conflict(
            name,
            &format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    let current = old
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !current.is_empty() {
        return Err(conflict(
            name,
            &format!("pod {name} is already assigned to node {current:?}"),
        ));
    }
    if old
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|gates| !gates.is_empty())
    {
        return Err(conflict(
            name,
            &format!("pod {name} has non-empty .spec.schedulingGates"),
        ));
    }
    let mut pod = old.clone();
    pod["spec"]["nodeName"] = node.into();
    set_scheduled(&mut pod);
    Ok(pod)
}

/// PodScheduled=True, replacing a False left by failed attempts; its
/// transition time is now unless it was already True.
fn set_scheduled(pod: &mut Value) {
    let status = pod
        .as_object_mut()
        .expect("a stored pod is an object")
        .entry("status")
        .or_insert_with(|| json!({}));
    let conditions = status
        .as_object_mut()
        .expect("a pod's status is an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    let Some(conditions) = conditions.as_array_mut() else {
        return;
    };
    let existing = conditions.iter().position(|c| c["type"] == "PodScheduled");
    let transition = match existing.map(|i| &conditions[i]) {
        Some(c) if c["status"] == "True" => c["lastTransitionTime"].clone(),
        _ => admit::now().into(),
    };
    let condition = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": transition,
    });
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

fn conflict(name: &str, why: &str) -> ApiError {
    ApiError::conflict("", RESOURCE, name, why)
}
