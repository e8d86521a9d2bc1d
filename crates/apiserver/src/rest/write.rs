//! Create, update and patch (including server-side apply and the status
//! subresource).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use tugboat_api::patch::{self, PatchType};
use tugboat_api::{ApiError, ApiResult, Kind, apply, meta};

use super::{
    Ctx, admit, ingress_admission, json, priority_admission, quota_admission,
    service_account_admission, storage_admission,
};
use crate::body::{self, FieldValidation};
use crate::objects::{Objects, revision_of};
use crate::service_allocation;

/// The alphabet of `generateName` suffixes: no vowels, no look-alikes.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub async fn create(ctx: &Ctx) -> ApiResult<Response> {
    let kind = ctx.target.kind;
    let mut input = body::decode_object(&ctx.headers, &ctx.body)?;
    admit::check_type(kind, &mut input)?;
    set_namespace(ctx, &mut input)?;
    name_from_generate_name(&mut input);
    let (mut obj, warnings) = admit::normalize(kind, input, field_validation(ctx)?)?;
    let now = admit::now();
    admit_new(ctx, &mut obj, &now).await?;
    admit::record_manager(None, &mut obj, ctx.field_manager().as_str().into(), &now);
    let created = store_new(ctx, obj).await?;
    Ok(json(StatusCode::CREATED, &created, &warnings))
}

/// What a new object goes through before it is stored, by create and by
/// an apply that creates: the server's fields and defaults, the admission
/// steps that fill in or refuse, validation, then the quotas.
async fn admit_new(ctx: &Ctx, obj: &mut Value, now: &str) -> ApiResult<()> {
    let (kind, objects) = (ctx.target.kind, &ctx.objects);
    admit::prepare_create(kind, obj, now);
    storage_admission::admit(objects, kind, obj).await?;
    ingress_admission::admit(objects, kind, obj).await?;
    priority_admission::admit(objects, kind, obj).await?;
    service_account_admission::copy_pull_secrets(objects, kind, obj).await?;
    quota_admission::limit_ranges(objects, kind, obj).await?;
    admit::validate(kind, obj, None)?;
    Ok(())
}

/// Checks the namespace exists and takes new objects and that the object
/// fits its quotas, then writes (unless dry run) with the quotas charged.
async fn store_new(ctx: &Ctx, mut obj: Value) -> ApiResult<Value> {
    let kind = ctx.target.kind;
    if kind.namespaced {
        let namespace = meta::namespace(&obj);
        let ns = ctx
            .objects
            .try_get(&format!("/registry/namespaces/{namespace}"))
            .await?
            .ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
        if meta::is_being_deleted(&ns) {
            return Err(ApiError::forbidden(
                kind.group,
                kind.plural,
                meta::name(&obj),
                &format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            ));
        }
    }
    if ctx.params.is_dry_run() {
        quota_admission::resource_quotas(&ctx.objects, kind, &obj).await?;
        let key = kind.key(meta::namespace(&obj), meta::name(&obj));
        if ctx.objects.try_get(&key).await?.is_some() {
            return Err(ApiError::already_exists(
                kind.group,
                kind.plural,
                meta::name(&obj),
            ));
        }
        if service_allocation::allocates(kind) {
            service_allocation::dry_run(&ctx.objects, &mut obj).await?;
        }
        return Ok(obj);
    }
    // A quota that changed between counting and writing (another object
    // charged to it) is counted again.
    loop {
        let charges = quota_admission::resource_quotas(&ctx.objects, kind, &obj).await?;
        if let Some(created) = ctx.objects.create_charged(kind, &obj, charges).await? {
            return Ok(created);
        }
    }
}

/// The request's namespace goes into the object; a different one in the body is 400.
fn set_namespace(ctx: &Ctx, obj: &mut Value) -> ApiResult<()> {
    if !ctx.target.kind.namespaced {
        meta::set(obj, "namespace", Value::Null);
        return Ok(());
    }
    let in_body = meta::namespace(obj);
    if !in_body.is_empty() && in_body != ctx.target.namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let namespace = ctx.target.namespace.clone();
    meta::set(obj, "namespace", namespace.into());
    Ok(())
}

fn name_from_generate_name(obj: &mut Value) {
    let prefix = meta::str_field(obj, "generateName").to_owned();
    if meta::name(obj).is_empty() && !prefix.is_empty() {
        use rand::RngExt;
        let mut rng = rand::rng();
        let suffix: String = (0..5)
            .map(|_| SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())] as char)
            .collect();
        meta::set(obj, "name", format!("{prefix}{suffix}").into());
    }
}

fn field_validation(ctx: &Ctx) -> ApiResult<FieldValidation> {
    FieldValidation::parse(ctx.params.field_validation.as_deref())
}

/// PUT: replaces the object (or its status), optimistic on resourceVersion.
pub async fn update(ctx: &Ctx) -> ApiResult<Response> {
    let kind = ctx.target.kind;
    let mut input = body::decode_object(&ctx.headers, &ctx.body)?;
    admit::check_type(kind, &mut input)?;
    if meta::name(&input) != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta::name(&input),
            ctx.name()
        )));
    }
    set_namespace(ctx, &mut input)?;
    let (input, warnings) = admit::normalize(kind, input, field_validation(ctx)?)?;
    let updated = guaranteed_update(ctx, |_| Ok(input.clone())).await?;
    Ok(json(StatusCode::OK, &updated, &warnings))
}

/// PATCH: JSON patch, merge patch, strategic merge patch or server-side apply.
pub async fn patch(ctx: &Ctx) -> ApiResult<Response> {
    let content_type = body::content_type(&ctx.headers);
    let patch_type = PatchType::from_content_type(content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
    // Strategic merge patch needs the list strategies of Go structs, which
    // custom resources have not.
    if patch_type == PatchType::StrategicMerge && ctx.target.kind.custom.is_some() {
        return Err(ApiError::unsupported_patch_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ]));
    }
    if patch_type == PatchType::Apply {
        return server_side_apply(ctx).await;
    }
    let validation = field_validation(ctx)?;
    let mut warnings = Vec::new();
    let patched = guaranteed_update(ctx, |old| {
        let mut patched = patch::apply_patch(patch_type, old, &ctx.body)?;
        admit::check_type(ctx.target.kind, &mut patched)?;
        let (patched, w) = admit::normalize(ctx.target.kind, patched, validation)?;
        warnings = w;
        Ok(patched)
    })
    .await?;
    Ok(json(StatusCode::OK, &patched, &warnings))
}

/// Server-side apply: creates the object if missing, else merges the applied
/// configuration into it, tracking field ownership per manager.
async fn server_side_apply(ctx: &Ctx) -> ApiResult<Response> {
    let kind = ctx.target.kind;
    let manager = ctx
        .params
        .field_manager
        .clone()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requests must have a fieldManager",
            )
        })?;
    let mut config = body::decode_yaml(&ctx.body)?;
    admit::check_type(kind, &mut config)?;
    set_namespace(ctx, &mut config)?;
    if meta::name(&config) != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta::name(&config),
            ctx.name()
        )));
    }
    let (config, warnings) = admit::normalize(kind, config, field_validation(ctx)?)?;
    let force = ctx.params.force();
    let now = admit::now();
    let writer = ctx.writer(&manager);
    // Applying to a subresource changes an existing object only.
    let status_only = writer.subresource == "status";
    let key = kind.key(&ctx.target.namespace, ctx.name());
    if writer.subresource.is_empty() && ctx.objects.try_get(&key).await?.is_none() {
        let mut obj = apply::server_side_apply(None, &config, writer, force, &now)?;
        admit_new(ctx, &mut obj, &now).await?;
        match store_new(ctx, obj).await {
            Ok(created) => return Ok(json(StatusCode::CREATED, &created, &warnings)),
            Err(e) if e.reason != "AlreadyExists" => return Err(e),
            Err(_) => {}
        }
    }
    let applied = guaranteed_write(ctx, status_only, |old| {
        apply::server_side_apply(Some(old), &config, writer, force, &now)
    })
    .await?;
    Ok(json(StatusCode::OK, &applied, &warnings))
}

/// PUT `namespaces/{name}/finalize`: the namespace controller hands back a
/// namespace whose content is gone; only its `spec.finalizers` is taken.
pub async fn finalize(ctx: &Ctx) -> ApiResult<Response> {
    let input = body::decode_object(&ctx.headers, &ctx.body)?;
    let finalizers = input
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let updated = guaranteed_update(ctx, |old| {
        let mut new = old.clone();
        new["spec"]["finalizers"] = finalizers.clone();
        Ok(new)
    })
    .await?;
    Ok(json(StatusCode::OK, &updated, &[]))
}

/// Nothing holds a deleted object any more: no finalizers in its metadata
/// and, for a namespace, none left in its spec.
pub fn is_finalized(obj: &Value) -> bool {
    meta::finalizers(obj).is_empty()
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

/// Reads the live object, lets `change` say what it should become, and writes
/// that with compare-and-swap, starting again when another write got in
/// between. A `change` that pins a resourceVersion fails with 409 then.
pub async fn guaranteed_update(
    ctx: &Ctx,
    mut change: impl FnMut(&Value) -> ApiResult<Value>,
) -> ApiResult<Value> {
    let status_only = ctx.target.subresource.as_deref() == Some("status");
    let manager = ctx.field_manager();
    let writer = ctx.writer(&manager);
    guaranteed_write(ctx, status_only, |old| {
        let mut new = change(old)?;
        admit::record_manager(Some(old), &mut new, writer, &admit::now());
        Ok(new)
    })
    .await
}

async fn guaranteed_write(
    ctx: &Ctx,
    status_only: bool,
    mut change: impl FnMut(&Value) -> ApiResult<Value>,
) -> ApiResult<Value> {
    let kind = ctx.target.kind;
    loop {
        let old = ctx
            .objects
            .get(kind, &ctx.target.namespace, ctx.name())
            .await?;
        let desired = change(&old)?;
        let new = admit::prepare_update(kind, status_only, &old, desired)?;
        if admit::same_object(&new, &old) {
            return Ok(old);
        }
        admit::validate(kind, &new, Some(&old))?;
        priority_admission::admit_update(&ctx.objects, kind, &new, &old).await?;
        if ctx.params.is_dry_run() {
            return Ok(new);
        }
        // A pod whose grace period runs goes when its kubelet deletes it,
        // not when its last finalizer does (kube-apiserver's
        // ShouldDeleteDuringUpdate).
        let written = if meta::is_being_deleted(&new)
            && is_finalized(&new)
            && !super::delete::is_pending_graceful(&old)
        {
            ctx.objects.remove(kind, &new, revision_of(&old)).await?
        } else {
            ctx.objects.replace(kind, &new, revision_of(&old)).await?
        };
        if let Some(written) = written {
            return Ok(written);
        }
    }
}

/// Creates an object on the server's own behalf (the system namespaces).
pub async fn create_internal(objects: &Objects, kind: &Kind, mut obj: Value) -> ApiResult<Value> {
    let now = admit::now();
    admit::prepare_create(kind, &mut obj, &now);
    admit::validate(kind, &obj, None)?;
    admit::record_manager(None, &mut obj, "tug".into(), &now);
    objects.create(kind, &obj).await
}

/// Makes an object the server keeps (a system Service and its endpoints)
/// what `desired` says: created if missing, else updated where it differs.
pub async fn put_internal(objects: &Objects, kind: &Kind, desired: Value) -> ApiResult<Value> {
    let key = kind.key(meta::namespace(&desired), meta::name(&desired));
    loop {
        let Some(old) = objects.try_get(&key).await? else {
            match create_internal(objects, kind, desired.clone()).await {
                Err(e) if e.reason == "AlreadyExists" => continue,
                created => return created,
            }
        };
        let mut new = admit::prepare_update(kind, false, &old, desired.clone())?;
        if admit::same_object(&new, &old) {
            return Ok(old);
        }
        admit::validate(kind, &new, Some(&old))?;
        admit::record_manager(Some(&old), &mut new, "tug".into(), &admit::now());
        if let Some(written) = objects.replace(kind, &new, revision_of(&old)).await? {
            return Ok(written);
        }
    }
}
