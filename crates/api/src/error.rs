//! Errors as Kubernetes reports them: a `Status` object with an HTTP code, a
//! machine-readable reason and, for invalid objects, the causes by field.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// A failed API request. Turned into a `Status` body by the API server.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// `StatusReason` in Kubernetes: `NotFound`, `AlreadyExists`, `Invalid`, ...
    pub reason: &'static str,
    pub message: String,
    /// Boxed: errors travel in every `Result` of the request path, and the
    /// details are large and rare.
    pub details: Option<Box<StatusDetails>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

/// A field-level problem found by validation, as Kubernetes' `field.Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueTooLong`, `FieldValueForbidden`.
    pub reason: &'static str,
    /// The JSON path of the field, e.g. `spec.containers[0].image`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// An invalid value, worded as Kubernetes does: `Invalid value: "x": why`.
    pub fn invalid(field: impl Into<String>, value: &str, why: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value:?}: {why}"),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {value:?}: supported values: {list}"),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        FieldError {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {value:?}"),
        }
    }

    pub fn forbidden(field: impl Into<String>, why: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {why}"),
        }
    }

    /// `Required value: why`.
    pub fn required_because(field: impl Into<String>, why: &str) -> Self {
        FieldError {
            message: format!("Required value: {why}"),
            ..Self::required(field)
        }
    }

    /// An invalid value Go prints without quotes (a number, a boolean, a
    /// struct), given already formatted: `Invalid value: 70000: why`.
    pub fn invalid_unquoted(
        field: impl Into<String>,
        shown: impl std::fmt::Display,
        why: &str,
    ) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {why}"),
        }
    }

    /// A reference to something that does not exist, e.g. a volume mount
    /// naming no volume: `Not found: "x"`.
    pub fn not_found(field: impl Into<String>, value: &str) -> Self {
        FieldError {
            reason: "FieldValueNotFound",
            field: field.into(),
            message: format!("Not found: {value:?}"),
        }
    }

    /// A value over its size limit in bytes.
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        FieldError {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max_bytes} bytes"),
        }
    }

    /// How the error reads inside the aggregated message: `field: message`.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

fn details(group: &str, kind: &str, name: &str) -> Option<Box<StatusDetails>> {
    Some(Box::new(StatusDetails {
        group: (!group.is_empty()).then(|| group.to_owned()),
        kind: Some(kind.to_owned()),
        name: (!name.is_empty()).then(|| name.to_owned()),
        ..Default::default()
    }))
}

/// `pods "x"` or `deployments.apps "x"`, as Kubernetes names a resource in messages.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            details: details(group, resource, name),
            ..Self::new(
                404,
                "NotFound",
                format!("{} {name:?} not found", qualified(group, resource)),
            )
        }
    }

    /// A path that names no resource at all (unknown group, version or plural).
    pub fn no_route(path: &str) -> Self {
        ApiError {
            details: Some(Box::default()),
            ..Self::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({path})"),
            )
        }
    }

    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        ApiError {
            details: details(group, resource, name),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} {name:?} already exists", qualified(group, resource)),
            )
        }
    }

    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError {
            details: details(group, resource, name),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} {name:?}: {why}",
                    qualified(group, resource)
                ),
            )
        }
    }

    /// The optimistic-concurrency failure of an update with a stale resourceVersion.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422: the object failed validation. `kind` is the object's Kind (`Pod`).
    pub fn invalid(group: &str, kind: &str, name: &str, errors: Vec<FieldError>) -> Self {
        let summary = match errors.as_slice() {
            [one] => one.summary(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(FieldError::summary)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let causes = errors
            .into_iter()
            .map(|e| StatusCause {
                field: Some(e.field),
                message: Some(e.message),
                reason: Some(e.reason.to_owned()),
            })
            .collect();
        let mut d = details(group, kind, name).unwrap_or_default();
        d.causes = Some(causes);
        ApiError {
            details: Some(d),
            ..Self::new(
                422,
                "Invalid",
                format!("{} {name:?} is invalid: {summary}", qualified(group, kind)),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    /// 415 for a patch type the resource does not take, naming those it
    /// does (custom resources take no strategic merge patch).
    pub fn unsupported_patch_type(accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 410: a watch or continue token older than the compacted history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message)
    }

    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        ApiError {
            details: details(group, resource, name),
            ..Self::new(
                403,
                "Forbidden",
                format!(
                    "{} {name:?} is forbidden: {why}",
                    qualified(group, resource)
                ),
            )
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn to_status(&self) -> Status {
        Status {
            code: Some(self.code.into()),
            details: self.details.as_deref().cloned(),
            message: Some(self.message.clone()),
            metadata: Default::default(),
            reason: Some(self.reason.to_owned()),
            status: Some("Failure".to_owned()),
        }
    }

    /// The `Status` as the JSON body Kubernetes sends (with `kind` and `apiVersion`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self.to_status()).expect("Status serializes");
        v["kind"] = "Status".into();
        v["apiVersion"] = "v1".into();
        v
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
