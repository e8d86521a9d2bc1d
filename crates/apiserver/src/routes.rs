//! The HTTP routes: health, version, discovery, OpenAPI and the resource tree.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::Value;
use tugboat_api::{ApiError, openapi};

use crate::discovery;
use crate::objects::Objects;
use crate::rest;
use crate::rest::kubelet_proxy::{self, Kubelets};
use crate::rest::token_request;
use crate::tokens::Tokens;

/// Kubernetes refuses request bodies over 3 MiB.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Set on each request by the listener: did the client show a certificate
/// signed by the cluster CA?
#[derive(Clone, Copy)]
pub struct Authenticated(pub bool);

pub fn router(objects: Arc<Objects>, kubelets: Arc<Kubelets>, tokens: Arc<Tokens>) -> Router {
    Router::new()
        .merge(kubelet_proxy::routes())
        .merge(token_request::routes())
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/version", get(|| async { object(discovery::version()) }))
        .route("/api", get(|| async { object(discovery::core_versions()) }))
        .route(
            "/apis",
            get(|State(objects): State<Arc<Objects>>| async move {
                object(discovery::groups(&objects.kinds))
            }),
        )
        .route("/openapi/v2", get(openapi_v2))
        .route("/swagger-2.0.0.pb-v1", get(openapi_v2_protobuf))
        .route(
            "/openapi/v3",
            get(|State(objects): State<Arc<Objects>>| async move {
                object(openapi::v3_index(&objects.kinds.all()))
            }),
        )
        .route("/openapi/v3/{*path}", get(openapi_v3))
        .route("/api/{*rest}", any(resource))
        .route("/apis/{*rest}", any(resource))
        .fallback(|uri: Uri| async move { rest::error(&ApiError::no_route(uri.path())) })
        .layer(Extension(kubelets))
        .layer(Extension(tokens.clone()))
        .layer(middleware::from_fn_with_state(
            (objects.clone(), tokens),
            authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY * 2))
        .with_state(objects)
}

/// Everything but health and version needs a client certificate signed by
/// the cluster CA or a service account token.
async fn authenticate(
    State((objects, tokens)): State<(Arc<Objects>, Arc<Tokens>)>,
    request: Request,
    next: Next,
) -> Response {
    let open = matches!(
        request.uri().path(),
        "/healthz" | "/livez" | "/readyz" | "/version"
    );
    let certified = request
        .extensions()
        .get::<Authenticated>()
        .is_some_and(|a| a.0);
    if open || certified || has_valid_token(&objects, &tokens, request.headers()).await {
        next.run(request).await
    } else {
        rest::error(&ApiError::unauthorized())
    }
}

async fn has_valid_token(objects: &Objects, tokens: &Tokens, headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(claims) =
        bearer.and_then(|t| tokens.verify(t.trim(), jiff::Timestamp::now().as_second()))
    else {
        return false;
    };
    token_request::still_bound(objects, &claims).await
}

async fn ok() -> &'static str {
    "ok"
}

fn object(value: Value) -> Response {
    rest::json(StatusCode::OK, &value, &[])
}

/// The OpenAPI v2 document: JSON, or the protobuf form that kubectl 1.27 and
/// 1.28 insist on (they validate against it before every create and apply).
async fn openapi_v2(headers: HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if accept.contains("protobuf") {
        openapi_v2_protobuf().await
    } else {
        object(openapi::v2_document())
    }
}

async fn openapi_v2_protobuf() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )],
        openapi::v2_protobuf(),
    )
        .into_response()
}

async fn openapi_v3(State(objects): State<Arc<Objects>>, Path(path): Path<String>) -> Response {
    match openapi::v3_document(&path, &objects.kinds.all()) {
        Some(doc) => object(doc),
        None => rest::error(&ApiError::no_route(&format!("/openapi/v3/{path}"))),
    }
}

/// Everything under `/api` (the core group, "legacy") and `/apis` (named groups).
async fn resource(
    State(objects): State<Arc<Objects>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        let e = ApiError::too_large(format!("Request entity too large: limit is {MAX_BODY}"));
        return rest::error(&e).into_response();
    }
    let path = uri.path();
    let (legacy, rest_path) = match path.strip_prefix("/apis/") {
        Some(rest) => (false, rest),
        None => (true, path.strip_prefix("/api/").unwrap_or(path)),
    };
    rest::handle(
        objects,
        legacy,
        method,
        rest_path,
        uri.query(),
        headers,
        body,
    )
    .await
}
