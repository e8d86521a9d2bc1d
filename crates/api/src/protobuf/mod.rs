//! Request bodies in Kubernetes' protobuf encoding, as client-go sends them
//! for typed objects (`kubectl create deployment`, `kubectl run`, ...), decoded
//! into the JSON form everything else in Tugboat works on.
//!
//! The field numbers live in `schema.rs`, generated from the `k8s-pb` crate by
//! `cargo run -p tugboat-api --example gen_protobuf_schema`.

mod decode;
mod schema;
mod table;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use decode::string;
use wire::{Records, WireValue, malformed};

/// Every Kubernetes protobuf body starts with these bytes.
const MAGIC: &[u8] = b"k8s\0";

/// Decodes a Kubernetes protobuf body (the magic `k8s\0`, then a
/// `runtime.Unknown` holding the object's apiVersion and kind and its encoded
/// fields) into the object's JSON form, with `apiVersion` and `kind` set.
///
/// A malformed body, or one of a kind Tugboat does not serve, is a bad request.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| malformed("it does not start with the Kubernetes protobuf magic"))?;
    let envelope = Envelope::read(unknown)?;
    let index = schema::KINDS
        .iter()
        .find(|(api_version, kind, _)| {
            *api_version == envelope.api_version && *kind == envelope.kind
        })
        .map(|(_, _, index)| *index)
        .or((envelope.kind == "DeleteOptions").then_some(schema::DELETE_OPTIONS))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no protobuf decoding for apiVersion {:?}, kind {:?}",
                envelope.api_version, envelope.kind
            ))
        })?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(envelope.api_version));
    object.insert("kind".into(), Value::String(envelope.kind));
    object.extend(decode::message(index, envelope.raw, 0)?);
    Ok(Value::Object(object))
}

/// The `runtime.Unknown` around every object: `typeMeta` = 1 (`apiVersion` =
/// 1, `kind` = 2), `raw` = 2, `contentEncoding` = 3, `contentType` = 4.
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
}

impl<'a> Envelope<'a> {
    fn read(unknown: &'a [u8]) -> ApiResult<Self> {
        let mut envelope = Envelope {
            api_version: String::new(),
            kind: String::new(),
            raw: &[],
        };
        for record in Records::new(unknown) {
            match record? {
                (1, WireValue::Bytes(type_meta)) => {
                    for record in Records::new(type_meta) {
                        match record? {
                            (1, value) => envelope.api_version = string(value)?,
                            (2, value) => envelope.kind = string(value)?,
                            _ => {}
                        }
                    }
                }
                (2, WireValue::Bytes(raw)) => envelope.raw = raw,
                (3, value) => {
                    let encoding = string(value)?;
                    if !encoding.is_empty() {
                        return Err(ApiError::bad_request(format!(
                            "unsupported protobuf content encoding {encoding:?}"
                        )));
                    }
                }
                (1 | 2, _) => {
                    return Err(malformed("the envelope's fields have the wrong wire types"));
                }
                _ => {}
            }
        }
        Ok(envelope)
    }
}
