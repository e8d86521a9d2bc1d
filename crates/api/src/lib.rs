//! The Kubernetes resource model as Tugboat serves it.
//!
//! Everything here works on objects as `serde_json::Value` in Kubernetes' wire
//! format, checked against the typed `k8s-openapi` structs where a schema is
//! needed. Nothing here does I/O: the API server (`tugboat-apiserver`) calls
//! in to decode, default, validate, patch and print objects.

pub mod apply;
pub mod custom;
pub mod defaults;
pub mod error;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod quota;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod table;
pub mod validation;

pub use error::{ApiError, ApiResult, FieldError};
pub use registry::Kind;
