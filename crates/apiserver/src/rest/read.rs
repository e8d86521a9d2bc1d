//! Get and list: selectors, pagination with continue tokens, reads at a
//! resourceVersion, and Tables for `kubectl get`.

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tugboat_api::selector::{FieldSelector, LabelSelector};
use tugboat_api::{ApiError, ApiResult, Kind, meta, table};
use tugboat_store::{KeyRange, RangeOptions, Revision, StoreError};

use super::{Ctx, Output, json};
use crate::objects::{decode, store_error};

pub async fn get(ctx: &Ctx) -> ApiResult<Response> {
    let obj = ctx
        .objects
        .get(ctx.target.kind, &ctx.target.namespace, ctx.name())
        .await?;
    let body = match ctx.output()? {
        Output::Object => obj,
        Output::Table(include) => table::table(ctx.target.kind, &[obj], include),
    };
    Ok(json(StatusCode::OK, &body, &[]))
}

/// The selectors of a list or watch request.
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_request(ctx: &Ctx) -> ApiResult<Filter> {
        let labels = ctx
            .params
            .label_selector
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                LabelSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))
            })
            .transpose()?;
        let fields = ctx
            .params
            .field_selector
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| FieldSelector::parse(ctx.target.kind, s))
            .transpose()?;
        Ok(Filter { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels
            .as_ref()
            .is_none_or(|l| l.matches(meta::labels(obj)))
            && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }
}

/// Where a paginated list resumes: the revision it reads at and the next key.
#[derive(Serialize, Deserialize)]
struct ContinueToken {
    v: String,
    rv: Revision,
    start: String,
}

impl ContinueToken {
    fn encode(rv: Revision, start: String) -> String {
        let token = ContinueToken {
            v: "meta.k8s.io/v1".into(),
            rv,
            start,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("token serializes"))
    }

    fn decode(token: &str) -> ApiResult<ContinueToken> {
        let bad = || {
            ApiError::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            )
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// One page of a list.
pub struct Page {
    pub items: Vec<Value>,
    pub revision: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

pub async fn list(ctx: &Ctx) -> ApiResult<Response> {
    let kind = ctx.target.kind;
    let filter = Filter::from_request(ctx)?;
    let page = read_page(ctx, &filter).await?;
    let mut list_meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        list_meta["continue"] = token.clone().into();
    }
    if let Some(remaining) = page.remaining {
        list_meta["remainingItemCount"] = remaining.into();
    }
    let body = match ctx.output()? {
        Output::Object => json!({
            "kind": list_kind(kind),
            "apiVersion": kind.api_version(),
            "metadata": list_meta,
            "items": page.items,
        }),
        Output::Table(include) => {
            let mut t = table::table(kind, &page.items, include);
            t["metadata"] = list_meta;
            t
        }
    };
    Ok(json(StatusCode::OK, &body, &[]))
}

/// Reads the page the request asks for, at one revision throughout.
pub async fn read_page(ctx: &Ctx, filter: &Filter) -> ApiResult<Page> {
    let prefix = ctx.target.kind.namespace_prefix(&ctx.target.namespace);
    let limit = ctx.params.limit()?;
    let (mut revision, mut start) = match ctx
        .params
        .continue_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        Some(token) => {
            let token = ContinueToken::decode(token)?;
            (token.rv, format!("{prefix}{}", token.start))
        }
        None => (read_revision(ctx).await?, prefix.clone()),
    };
    let mut items = Vec::new();
    loop {
        let want = if limit == 0 { 0 } else { limit - items.len() };
        let opts = RangeOptions {
            limit: want,
            revision,
            count_only: false,
        };
        let range = KeyRange::PrefixFrom {
            prefix: prefix.clone(),
            start: start.clone(),
        };
        let resp = ctx
            .objects
            .store
            .range(range, opts)
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } if ctx.params.continue_token.is_some() => {
                    ApiError::expired(EXPIRED_CONTINUE)
                }
                other => store_error(other),
            })?;
        revision = resp.revision;
        for kv in &resp.kvs {
            let obj = ctx.target.kind.served(decode(kv)?);
            if filter.matches(&obj) {
                items.push(obj);
            }
        }
        if let Some(last) = resp.kvs.last() {
            start = format!("{}\0", last.key);
        }
        if !resp.more {
            return Ok(Page {
                items,
                revision,
                continue_token: None,
                remaining: None,
            });
        }
        if items.len() >= limit {
            let remaining = filter
                .is_empty()
                .then(|| resp.count.saturating_sub(resp.kvs.len()));
            let token = ContinueToken::encode(revision, start[prefix.len()..].to_owned());
            return Ok(Page {
                items,
                revision,
                continue_token: Some(token),
                remaining,
            });
        }
    }
}

/// The revision a list reads at: the newest, or the one asked for with
/// `resourceVersionMatch=Exact`. Asking for a revision the store has not
/// reached yet is 504, as Kubernetes answers after waiting for it.
async fn read_revision(ctx: &Ctx) -> ApiResult<Revision> {
    let Some(wanted) = ctx.params.revision()? else {
        return Ok(0);
    };
    match ctx.params.resource_version_match.as_deref() {
        Some("Exact") => Ok(wanted),
        None | Some("") | Some("NotOlderThan") => {
            let current = ctx
                .objects
                .store
                .current_revision()
                .await
                .map_err(store_error)?;
            if wanted > current {
                return Err(ApiError::timeout(format!(
                    "Too large resource version: {wanted}, current: {current}"
                )));
            }
            Ok(0)
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

/// A list of `kind` as its List kind names it.
pub fn list_kind(kind: &Kind) -> String {
    format!("{}List", kind.kind)
}
