//! The three patch formats kubectl and the client libraries send:
//! JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes'
//! strategic merge patch. Server-side apply is in [`crate::apply`].

mod strategic;

use serde_json::Value;

use crate::{ApiError, ApiResult};

/// A patch's format, from the request's Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        match media_type {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Applies a JSON, merge or strategic merge patch (`patch` is the raw
/// body) to `original`. A body that is not a patch is 400; a patch that
/// cannot apply (a failed `test`, a missing path) is 422, as Kubernetes answers.
pub fn apply_patch(patch_type: PatchType, original: &Value, patch: &[u8]) -> ApiResult<Value> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch =
                serde_json::from_slice(patch).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let mut doc = original.clone();
            json_patch::patch(&mut doc, &ops.0).map_err(|_| unprocessable())?;
            Ok(doc)
        }
        PatchType::Merge => {
            let patch = patch_object(patch)?;
            let mut doc = original.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        PatchType::StrategicMerge => {
            let patch = patch_object(patch)?;
            strategic::merge(original, &patch)
        }
        PatchType::Apply => Err(ApiError::bad_request(
            "server-side apply is not a patch to apply here",
        )),
    }
}

fn patch_object(patch: &[u8]) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(patch)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "error decoding patch: the patch must be a JSON object",
        ));
    }
    Ok(value)
}

/// 422 for a well-formed JSON patch that does not apply (a failed `test`, a
/// missing path). The apiserver answers with a generic 422 whose message
/// drops the reason, and kubectl shows exactly this text.
fn unprocessable() -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message: "the server rejected our request due to an error in our request".to_owned(),
        details: Some(Box::default()),
    }
}

#[cfg(test)]
mod tests;
