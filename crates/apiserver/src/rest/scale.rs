//! The `/scale` subresource: an `autoscaling/v1` Scale view of a workload's
//! `spec.replicas`, which `kubectl scale` and autoscalers write through. A
//! custom resource's definition says where its replicas and selector are
//! (`subresources.scale`).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tugboat_api::patch::{self, PatchType};
use tugboat_api::{ApiError, ApiResult, Kind, meta, selector::LabelSelector};

use super::write::guaranteed_update;
use super::{Ctx, json};
use crate::body;

pub async fn get(ctx: &Ctx) -> ApiResult<Response> {
    let obj = ctx
        .objects
        .get(ctx.target.kind, &ctx.target.namespace, ctx.name())
        .await?;
    Ok(json(StatusCode::OK, &scale_of(ctx.target.kind, &obj), &[]))
}

pub async fn update(ctx: &Ctx) -> ApiResult<Response> {
    let scale = body::decode_object(&ctx.headers, &ctx.body)?;
    let replicas = replicas_of(&scale)?;
    let rv = meta::resource_version(&scale).to_owned();
    let updated = guaranteed_update(ctx, |old| {
        if !rv.is_empty() && rv != meta::resource_version(old) {
            return Err(ApiError::stale(
                ctx.target.kind.group,
                ctx.target.kind.plural,
                ctx.name(),
            ));
        }
        Ok(with_replicas(ctx.target.kind, old, replicas))
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &scale_of(ctx.target.kind, &updated),
        &[],
    ))
}

pub async fn patch(ctx: &Ctx) -> ApiResult<Response> {
    let content_type = body::content_type(&ctx.headers);
    let patch_type = PatchType::from_content_type(content_type)
        .filter(|t| *t != PatchType::Apply)
        .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
    let updated = guaranteed_update(ctx, |old| {
        let scale = patch::apply_patch(patch_type, &scale_of(ctx.target.kind, old), &ctx.body)?;
        Ok(with_replicas(ctx.target.kind, old, replicas_of(&scale)?))
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &scale_of(ctx.target.kind, &updated),
        &[],
    ))
}

fn replicas_of(scale: &Value) -> ApiResult<i64> {
    match scale.pointer("/spec/replicas") {
        None => Ok(0),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::bad_request("spec.replicas must be a non-negative integer")),
    }
}

/// Where `kind` keeps its desired and current replicas (JSON pointers) and,
/// for a custom resource, its selector string (built-in workloads keep a
/// label selector in `spec.selector`).
struct Paths {
    spec_replicas: String,
    status_replicas: String,
    selector: Option<String>,
}

fn paths(kind: &Kind) -> Paths {
    let Some(scale) = kind.custom.as_ref().and_then(|c| c.scale.as_ref()) else {
        return Paths {
            spec_replicas: "/spec/replicas".into(),
            status_replicas: "/status/replicas".into(),
            selector: None,
        };
    };
    // The definition's paths are simple: `.spec.replicas`.
    let pointer = |field: &str| scale[field].as_str().map(|p| p.replace('.', "/"));
    Paths {
        spec_replicas: pointer("specReplicasPath").unwrap_or_default(),
        status_replicas: pointer("statusReplicasPath").unwrap_or_default(),
        selector: Some(pointer("labelSelectorPath").unwrap_or_default()),
    }
}

fn with_replicas(kind: &Kind, obj: &Value, replicas: i64) -> Value {
    let mut new = obj.clone();
    let mut at = &mut new;
    for field in paths(kind)
        .spec_replicas
        .split('/')
        .filter(|f| !f.is_empty())
    {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[field];
    }
    *at = replicas.into();
    new
}

/// The Scale object of a workload.
pub fn scale_of(kind: &Kind, obj: &Value) -> Value {
    let paths = paths(kind);
    let selector = match &paths.selector {
        // A custom resource keeps its selector as the string a Scale shows.
        Some(pointer) => obj
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        None => workload_selector(obj),
    };
    let metadata = obj.get("metadata").cloned().unwrap_or_default();
    let keep = [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ];
    let metadata: serde_json::Map<String, Value> = metadata
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer(&paths.spec_replicas).cloned().unwrap_or(0.into())},
        "status": {
            "replicas": obj.pointer(&paths.status_replicas).cloned().unwrap_or(0.into()),
            "selector": selector,
        },
    })
}

/// A built-in workload's `spec.selector` as a selector string.
fn workload_selector(obj: &Value) -> String {
    obj.pointer("/spec/selector")
        .map(|s| {
            // ReplicationControllers have a plain map selector, the apps kinds a LabelSelector.
            if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                LabelSelector::from_object(s)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            } else {
                LabelSelector::from_object(&json!({"matchLabels": s}))
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            }
        })
        .unwrap_or_default()
}
