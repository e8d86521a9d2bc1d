//! Delete and deletecollection: preconditions, grace periods, finalizers (the
//! garbage collector's for `propagationPolicy` among them) and
//! `metadata.deletionTimestamp`.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tugboat_api::{ApiError, ApiResult, meta};

use super::read::{Filter, read_page};
use super::write::is_finalized;
use super::{Ctx, json, priority_admission};
use crate::body;
use crate::objects::revision_of;

/// `DeleteOptions`, from the body or the query.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    grace_period_seconds: Option<i64>,
    preconditions: Option<Preconditions>,
    propagation_policy: Option<String>,
    #[serde(default)]
    dry_run: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

impl DeleteOptions {
    fn from_request(ctx: &Ctx) -> ApiResult<DeleteOptions> {
        let mut opts: DeleteOptions = if ctx.body.iter().all(u8::is_ascii_whitespace) {
            DeleteOptions::default()
        } else {
            let value = body::decode_object(&ctx.headers, &ctx.body)?;
            serde_json::from_value(value)
                .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
        };
        if let Some(grace) = ctx.params.grace_period_seconds()? {
            opts.grace_period_seconds = Some(grace);
        }
        if ctx.params.orphan_dependents.as_deref() == Some("true") {
            opts.propagation_policy = Some("Orphan".into());
        }
        if let Some(policy) = &ctx.params.propagation_policy {
            opts.propagation_policy = Some(policy.clone());
        }
        match opts.propagation_policy.as_deref() {
            None | Some("Orphan" | "Background" | "Foreground") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        if ctx.params.is_dry_run() {
            opts.dry_run = vec!["All".into()];
        }
        Ok(opts)
    }

    fn check_preconditions(&self, ctx: &Ctx, obj: &Value) -> ApiResult<()> {
        let Some(pre) = &self.preconditions else {
            return Ok(());
        };
        let kind = ctx.target.kind;
        if let Some(uid) = &pre.uid
            && uid != meta::uid(obj)
        {
            return Err(ApiError::conflict(
                kind.group,
                kind.plural,
                meta::name(obj),
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(obj)
                ),
            ));
        }
        if let Some(rv) = &pre.resource_version
            && rv != meta::resource_version(obj)
        {
            return Err(ApiError::conflict(
                kind.group,
                kind.plural,
                meta::name(obj),
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta::resource_version(obj)
                ),
            ));
        }
        Ok(())
    }
}

pub async fn delete(ctx: &Ctx) -> ApiResult<Response> {
    let opts = DeleteOptions::from_request(ctx)?;
    let obj = delete_one(ctx, ctx.name(), &opts).await?;
    Ok(json(StatusCode::OK, &obj, &[]))
}

pub async fn delete_collection(ctx: &Ctx) -> ApiResult<Response> {
    let opts = DeleteOptions::from_request(ctx)?;
    let filter = Filter::from_request(ctx)?;
    let page = read_page(ctx, &filter).await?;
    let mut deleted = Vec::new();
    for obj in page.items {
        match delete_one(ctx, meta::name(&obj), &opts).await {
            Ok(obj) => deleted.push(obj),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let kind = ctx.target.kind;
    let body = json!({
        "kind": super::read::list_kind(kind),
        "apiVersion": kind.api_version(),
        "metadata": {},
        "items": deleted,
    });
    Ok(json(StatusCode::OK, &body, &[]))
}

/// The finalizer by which the garbage collector deletes an object's
/// dependents before the object itself (`propagationPolicy: Foreground`).
const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer by which the garbage collector frees an object's dependents
/// of their owner reference before the object goes (`Orphan`).
const ORPHAN: &str = "orphan";

/// Deletes one object, or marks it for deletion when finalizers, a grace
/// period or (for namespaces) its content must go first. Returns the object.
async fn delete_one(ctx: &Ctx, name: &str, opts: &DeleteOptions) -> ApiResult<Value> {
    let kind = ctx.target.kind;
    priority_admission::check_delete(kind, name)?;
    loop {
        let old = ctx.objects.get(kind, &ctx.target.namespace, name).await?;
        opts.check_preconditions(ctx, &old)?;
        let grace = grace_period(ctx, &old, opts);
        let mut marked = old.clone();
        // As in kube-apiserver, a deletion whose grace period is running
        // keeps the finalizers it started with.
        if !is_pending_graceful(&old) {
            set_propagation_finalizers(&mut marked, opts.propagation_policy.as_deref());
        }
        let must_wait = grace > 0 || !is_finalized(&marked);
        let dry_run = !opts.dry_run.is_empty();
        if !must_wait {
            if dry_run {
                return Ok(old);
            }
            match ctx.objects.remove(kind, &old, revision_of(&old)).await? {
                Some(gone) => return Ok(gone),
                None => continue,
            }
        }
        if meta::is_being_deleted(&old) {
            // A deletion already under way may only be hurried.
            if grace < deletion_grace(&old) {
                set_deletion(&mut marked, grace);
            }
            if marked == old {
                return Ok(old);
            }
        } else {
            set_deletion(&mut marked, grace);
            if kind.kind == "Namespace" {
                marked["status"]["phase"] = "Terminating".into();
            }
        }
        if dry_run {
            return Ok(marked);
        }
        if let Some(written) = ctx
            .objects
            .replace(kind, &marked, revision_of(&old))
            .await?
        {
            return Ok(written);
        }
    }
}

/// Marks the object deleted, to go once `grace` seconds have passed.
fn set_deletion(obj: &mut Value, grace: i64) {
    let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
    let when = when.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    meta::set(obj, "deletionTimestamp", when.into());
    meta::set(obj, "deletionGracePeriodSeconds", grace.into());
}

/// The grace period a deletion under way was given.
fn deletion_grace(obj: &Value) -> i64 {
    obj.pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Being deleted with a grace period still running (a pod on its node).
pub fn is_pending_graceful(obj: &Value) -> bool {
    meta::is_being_deleted(obj) && deletion_grace(obj) > 0
}

/// Gives the object the garbage collector's finalizer for `policy`:
/// `Foreground` and `Orphan` set theirs (and drop the other), `Background`
/// drops both, and no policy keeps what the object already asked for.
fn set_propagation_finalizers(obj: &mut Value, policy: Option<&str>) {
    let Some(policy) = policy else {
        return;
    };
    let old: Vec<String> = meta::finalizers(obj)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut new: Vec<String> = old
        .iter()
        .filter(|f| *f != FOREGROUND && *f != ORPHAN)
        .cloned()
        .collect();
    match policy {
        "Foreground" => new.push(FOREGROUND.to_owned()),
        "Orphan" => new.push(ORPHAN.to_owned()),
        _ => {}
    }
    let unchanged = new.len() == old.len() && new.iter().all(|f| old.contains(f));
    if !unchanged {
        let value = if new.is_empty() {
            Value::Null
        } else {
            new.into()
        };
        meta::set(obj, "finalizers", value);
    }
}

/// Seconds a pod running on a node gets to stop; 0 (immediate) for everything
/// else, for pods no node has taken yet and for pods whose containers have
/// all finished (Succeeded or Failed), as kube-apiserver's pod strategy says.
fn grace_period(ctx: &Ctx, obj: &Value, opts: &DeleteOptions) -> i64 {
    let finished = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if ctx.target.kind.kind != "Pod"
        || finished
        || obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return 0;
    }
    let default = obj
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    opts.grace_period_seconds.unwrap_or(default).max(0)
}
