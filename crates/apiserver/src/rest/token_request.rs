//! `serviceaccounts/{name}/token`: the TokenRequest API, as `kubectl create
//! token` and the node agent (for the tokens it mounts into pods) call it.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};
use tugboat_api::{ApiError, ApiResult, FieldError, Kind, meta, registry};

use crate::body;
use crate::objects::Objects;
use crate::tokens::{Bound, Claims, ISSUER, Named, Tokens};

/// Kubernetes' bounds on `spec.expirationSeconds`: at least 10 minutes, at
/// most 2^32 seconds; one hour when not asked.
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;
const DEFAULT_EXPIRATION: i64 = 3600;

pub fn routes() -> Router<Arc<Objects>> {
    Router::new().route(
        "/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        post(create),
    )
}

async fn create(
    State(objects): State<Arc<Objects>>,
    Extension(tokens): Extension<Arc<Tokens>>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match issue(&objects, &tokens, &namespace, &name, &headers, &body).await {
        Ok(request) => super::json(StatusCode::CREATED, &request, &[]),
        Err(e) => super::error(&e),
    }
}

async fn issue(
    objects: &Objects,
    tokens: &Tokens,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Value> {
    let mut request = body::decode_object(headers, body)?;
    let account = objects
        .get(core("serviceaccounts"), namespace, name)
        .await?;
    let spec = request.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_EXPIRATION);
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(ISSUER.to_owned());
    }
    check_expiration(name, expiration)?;
    let mut bound = Bound {
        namespace: namespace.to_owned(),
        serviceaccount: named(&account),
        pod: None,
        secret: None,
        node: None,
    };
    if let Some(reference) = spec.get("boundObjectRef").filter(|r| !r.is_null()) {
        bind(objects, namespace, name, reference, &mut bound).await?;
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        iss: ISSUER.to_owned(),
        sub: format!("system:serviceaccount:{namespace}:{name}"),
        aud: audiences.clone(),
        exp: now + expiration,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: bound,
    };
    let token = tokens
        .issue(&claims)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    request["apiVersion"] = "authentication.k8s.io/v1".into();
    request["kind"] = "TokenRequest".into();
    request["metadata"] = json!({"name": name, "namespace": namespace, "creationTimestamp": null});
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = expiration.into();
    request["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(request)
}

fn check_expiration(name: &str, seconds: i64) -> ApiResult<()> {
    let why = if seconds < MIN_EXPIRATION {
        "may not specify a duration less than 10 minutes"
    } else if seconds > MAX_EXPIRATION {
        "may not specify a duration larger than 2^32 seconds"
    } else {
        return Ok(());
    };
    Err(ApiError::invalid(
        "authentication.k8s.io",
        "TokenRequest",
        name,
        vec![FieldError::invalid_unquoted(
            "spec.expirationSeconds",
            seconds,
            why,
        )],
    ))
}

/// Ties the token to a pod, secret or node that must exist (with the uid
/// given, if one is), so that the token dies with it.
async fn bind(
    objects: &Objects,
    namespace: &str,
    name: &str,
    reference: &Value,
    bound: &mut Bound,
) -> ApiResult<()> {
    let field = |f: &str| reference.get(f).and_then(Value::as_str).unwrap_or_default();
    let (plural, scope) = match field("kind") {
        "Pod" => ("pods", namespace),
        "Secret" => ("secrets", namespace),
        "Node" => ("nodes", ""),
        other => {
            return Err(ApiError::invalid(
                "authentication.k8s.io",
                "TokenRequest",
                name,
                vec![FieldError::not_supported(
                    "spec.boundObjectRef.kind",
                    other,
                    &["Pod", "Secret", "Node"],
                )],
            ));
        }
    };
    let object = objects.get(core(plural), scope, field("name")).await?;
    let uid = field("uid");
    if !uid.is_empty() && uid != meta::uid(&object) {
        return Err(ApiError::conflict(
            "",
            plural,
            field("name"),
            &format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    let slot = match plural {
        "pods" => &mut bound.pod,
        "secrets" => &mut bound.secret,
        _ => &mut bound.node,
    };
    *slot = Some(named(&object));
    Ok(())
}

fn named(object: &Value) -> Named {
    Named {
        name: meta::name(object).to_owned(),
        uid: meta::uid(object).to_owned(),
    }
}

/// Deleted for good: a pod in its grace period still has a valid token, so
/// its preStop hook can reach the API, as in Kubernetes.
fn past_deletion(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t < jiff::Timestamp::now())
}

pub fn core(plural: &str) -> &'static Kind {
    registry::by_plural("", "v1", plural).expect("the core kinds are registered")
}

/// True while what the token's claims name still exists with the same uid:
/// a deleted service account (or the pod a token was bound to) takes its
/// tokens with it, as in Kubernetes.
pub async fn still_bound(objects: &Objects, claims: &Claims) -> bool {
    let b = &claims.kubernetes;
    let alive = |plural: &'static str, scope: &str, named: &Named| {
        let (scope, named) = (scope.to_owned(), named.clone());
        async move {
            objects
                .get(core(plural), &scope, &named.name)
                .await
                .is_ok_and(|o| meta::uid(&o) == named.uid && !past_deletion(&o))
        }
    };
    alive("serviceaccounts", &b.namespace, &b.serviceaccount).await
        && match &b.pod {
            Some(pod) => alive("pods", &b.namespace, pod).await,
            None => true,
        }
        && match &b.secret {
            Some(secret) => alive("secrets", &b.namespace, secret).await,
            None => true,
        }
        && match &b.node {
            Some(node) => alive("nodes", "", node).await,
            None => true,
        }
}
