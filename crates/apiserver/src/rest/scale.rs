//! The `/scale` subresource: an `autoscaling/v1` Scale view of a workload's
//! `spec.replicas`, which `kubectl scale` and autoscalers write through.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tugboat_api::patch::{self, PatchType};
use tugboat_api::{ApiError, ApiResult, meta, selector::LabelSelector};

use super::write::guaranteed_update;
use super::{Ctx, json};
use crate::body;

pub async fn get(ctx: &Ctx) -> ApiResult<Response> {
    let obj = ctx
        .objects
        .get(ctx.target.kind, &ctx.target.namespace, ctx.name())
        .await?;
    Ok(json(StatusCode::OK, &scale_of(&obj), &[]))
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
        Ok(with_replicas(old, replicas))
    })
    .await?;
    Ok(json(StatusCode::OK, &scale_of(&updated), &[]))
}

pub async fn patch(ctx: &Ctx) -> ApiResult<Response> {
    let content_type = body::content_type(&ctx.headers);
    let patch_type = PatchType::from_content_type(content_type)
        .filter(|t| *t != PatchType::Apply)
        .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
    let updated = guaranteed_update(ctx, |old| {
        let scale = patch::apply_patch(patch_type, &scale_of(old), &ctx.body)?;
        Ok(with_replicas(old, replicas_of(&scale)?))
    })
    .await?;
    Ok(json(StatusCode::OK, &scale_of(&updated), &[]))
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

fn with_replicas(obj: &Value, replicas: i64) -> Value {
    let mut new = obj.clone();
    new["spec"]["replicas"] = replicas.into();
    new
}

/// The Scale object of a workload.
pub fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
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
        .unwrap_or_default();
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
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(0.into())},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(0.into()),
            "selector": selector,
        },
    })
}
