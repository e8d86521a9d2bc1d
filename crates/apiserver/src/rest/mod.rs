//! The generic REST layer: every kind is served by the same handlers, which
//! read what differs between kinds (scope, subresources, schema, defaults,
//! validation, printing) from its entry in the kind registry.
//!
//! - `read`: get and list (selectors, pagination, consistent revisions).
//! - `watch`: watch streams on top of the watch cache.
//! - `write`: create, update, patch, server-side apply, status and scale.
//! - `binding`: a scheduler's assignment of a pod to a node.
//! - `delete`: delete with grace periods, preconditions and finalizers; deletecollection.
//! - `admit`: the steps every write shares (schema, defaults, validation).
//! - `storage_admission`: new claims' default StorageClass; claims' and volumes' protection.
//! - `quota_admission`: LimitRange defaults and bounds, ResourceQuota limits.
//! - `ingress_admission`: new Ingresses' default IngressClass.
//! - `priority_admission`: pods' priority from their PriorityClass; one default class.
//! - `kubelet_proxy`: the subresources the node's kubelet serves (log, exec,
//!   attach, portforward, node proxy).
//! - `service_account_admission`: service account credentials mounted into new pods.
//! - `token_request`: `serviceaccounts/token`, service account tokens.

mod admit;
mod binding;
mod delete;
mod ingress_admission;
pub mod kubelet_proxy;
pub mod priority_admission;
mod quota_admission;
mod read;
mod scale;
mod service_account_admission;
mod storage_admission;
pub mod token_request;
mod watch;
mod write;

pub use admit::now;
pub use write::{create_internal, put_internal};

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tugboat_api::table::IncludeObject;
use tugboat_api::{ApiError, ApiResult, apply};

use crate::discovery;
use crate::objects::Objects;
use crate::request::{self, Params, Route, Target};

/// One resource request, parsed.
pub struct Ctx {
    pub objects: Arc<Objects>,
    pub target: Target,
    pub params: Params,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Ctx {
    /// The URL's object name (the router only sends named verbs here).
    pub fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    /// Who is writing, for managedFields: `?fieldManager=` or, as Kubernetes
    /// does, the client's user agent up to its first `/`.
    /// The field manager with the subresource it writes through.
    pub fn writer<'a>(&'a self, manager: &'a str) -> apply::Writer<'a> {
        apply::Writer {
            manager,
            subresource: self.target.subresource.as_deref().unwrap_or(""),
        }
    }

    pub fn field_manager(&self) -> String {
        if let Some(manager) = self
            .params
            .field_manager
            .as_deref()
            .filter(|m| !m.is_empty())
        {
            return manager.to_owned();
        }
        self.headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|ua| !ua.is_empty())
            .unwrap_or("unknown")
            .to_owned()
    }

    /// What the client asked to get back: objects, or Tables (`kubectl get`).
    pub fn output(&self) -> ApiResult<Output> {
        let accept = self
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let wants_table = accept
            .split(',')
            .next()
            .is_some_and(|first| first.replace(' ', "").contains("as=Table"));
        if wants_table {
            Ok(Output::Table(IncludeObject::parse(
                self.params.include_object.as_deref(),
            )?))
        } else {
            Ok(Output::Object)
        }
    }
}

#[derive(Clone, Copy)]
pub enum Output {
    Object,
    Table(IncludeObject),
}

/// Serves a request under `/api/...` (`legacy`) or `/apis/...`.
pub async fn handle(
    objects: Arc<Objects>,
    legacy: bool,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match dispatch(objects, legacy, method, path, query, headers, body).await {
        Ok(response) => response,
        Err(e) => error(&e),
    }
}

async fn dispatch(
    objects: Arc<Objects>,
    legacy: bool,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let target = match request::route(&objects.kinds, legacy, &segments)? {
        Route::ResourceList { group, version } if method == Method::GET => {
            return Ok(json(
                StatusCode::OK,
                &discovery::resource_list(&objects.kinds, &group, &version),
                &[],
            ));
        }
        Route::ResourceList { .. } => return Err(not_allowed(&method)),
        Route::Resource(target) => target,
    };
    let ctx = Ctx {
        objects,
        target,
        params: Params::parse(query)?,
        headers,
        body,
    };
    let named = ctx.target.name.is_some();
    let sub = ctx.target.subresource.as_deref();
    match (&method, named, sub) {
        (&Method::POST, true, Some("binding")) => binding::create(&ctx).await,
        (_, _, Some("binding")) => Err(not_allowed(&method)),
        (&Method::GET, false, _) if ctx.params.is_watch() => watch::watch(&ctx).await,
        (&Method::GET, false, _) => read::list(&ctx).await,
        (&Method::GET, true, Some("scale")) => scale::get(&ctx).await,
        (&Method::GET, true, _) => read::get(&ctx).await,
        (&Method::POST, false, None) => write::create(&ctx).await,
        (&Method::PUT, true, Some("scale")) => scale::update(&ctx).await,
        (&Method::PUT, true, Some("finalize")) => write::finalize(&ctx).await,
        (&Method::PUT, true, _) => write::update(&ctx).await,
        (&Method::PATCH, true, Some("scale")) => scale::patch(&ctx).await,
        (&Method::PATCH, true, _) => write::patch(&ctx).await,
        (&Method::DELETE, true, None) => delete::delete(&ctx).await,
        (&Method::DELETE, false, None) => delete::delete_collection(&ctx).await,
        _ => Err(not_allowed(&method)),
    }
}

fn not_allowed(method: &Method) -> ApiError {
    ApiError::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({method})"
    ))
}

/// A JSON response, with `Warning` headers as Kubernetes sends them.
pub fn json(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).expect("JSON values serialize"),
    )
        .into_response();
    for warning in warnings {
        let text = format!("299 - {}", serde_json::Value::from(warning.as_str()));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// An error as a `Status` object with its HTTP code.
pub fn error(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, &e.to_json(), &[])
}

/// A streamed response (watch).
pub fn stream(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response()
}
