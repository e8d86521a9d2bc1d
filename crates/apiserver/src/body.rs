//! Request bodies: JSON, YAML or Kubernetes protobuf objects, and the fields a
//! schema does not know.

use axum::http::{HeaderMap, header};
use serde_json::Value;
use tugboat_api::{ApiError, ApiResult};

/// The media type of the body, without parameters (`application/json`).
pub fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("application/json")
}

/// An object from a create or update body; malformed input is 400 BadRequest.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let value: Value = match content_type(headers) {
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("json parse error: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body)?,
        // What client-go's typed clients (kubectl create, run, expose) send.
        "application/vnd.kubernetes.protobuf" => tugboat_api::protobuf::decode(body)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a single object",
        ));
    }
    Ok(value)
}

/// YAML as Kubernetes reads it: one document, turned into JSON.
pub fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("yaml parse error: the body is not UTF-8"))?;
    serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("yaml parse error: {e}")))
}

/// How to treat fields the schema does not know (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(value: Option<&str>) -> ApiResult<FieldValidation> {
        match value.unwrap_or("Warn") {
            "Ignore" | "" => Ok(FieldValidation::Ignore),
            "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }

    /// The warnings to send, or the 400 Strict gives, for `unknown` fields.
    pub fn check(self, unknown: Vec<String>) -> ApiResult<Vec<String>> {
        let messages: Vec<String> = unknown
            .into_iter()
            .map(|path| format!("unknown field {path:?}"))
            .collect();
        match self {
            FieldValidation::Ignore => Ok(Vec::new()),
            FieldValidation::Warn => Ok(messages),
            FieldValidation::Strict if messages.is_empty() => Ok(messages),
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                messages.join(", ")
            ))),
        }
    }
}

/// Paths (`spec.containers[0].imagee`) present in `input` but dropped by
/// decoding it through the kind's schema, which gave `normalized`.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_unknown(input, normalized, String::new(), &mut out);
    out
}

fn collect_unknown(input: &Value, known: &Value, path: String, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (key, value) in input {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match known.get(key) {
                    Some(k) => collect_unknown(value, k, child, out),
                    None if !value.is_null() => out.push(child),
                    None => {}
                }
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, k)) in input.iter().zip(known).enumerate() {
                collect_unknown(value, k, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_misspelled_field_is_reported_by_its_path() {
        let input = json!({"spec": {"containers": [{"name": "a", "imagee": "x"}]}});
        let known = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            unknown_fields(&input, &known),
            vec!["spec.containers[0].imagee"]
        );
    }

    #[test]
    fn unknown_metadata_fields_are_found() {
        let input = json!({"metadata": {"name": "a", "label": "x"}});
        let known = json!({"metadata": {"name": "a"}});
        assert_eq!(unknown_fields(&input, &known), vec!["metadata.label"]);
    }

    #[test]
    fn null_fields_are_not_unknown() {
        let input = json!({"metadata": {"creationTimestamp": null, "name": "a"}});
        let known = json!({"metadata": {"name": "a"}});
        assert!(unknown_fields(&input, &known).is_empty());
    }

    #[test]
    fn strict_refuses_and_warn_warns() {
        let unknown = vec!["spec.foo".to_owned()];
        assert_eq!(
            FieldValidation::Strict
                .check(unknown.clone())
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            FieldValidation::Warn.check(unknown).unwrap(),
            vec![r#"unknown field "spec.foo""#]
        );
    }
}
