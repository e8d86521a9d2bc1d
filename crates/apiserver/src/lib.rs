//! The Kubernetes REST API over HTTPS.
//!
//! A map of this crate:
//! - [`server`]: the TLS listener, client-certificate authentication and startup.
//! - `routes`: the HTTP routes outside the resource tree (health, version, OpenAPI).
//! - `discovery`: `/api`, `/apis` and the resource lists kubectl discovers kinds from.
//! - `rest`: the one generic REST layer every kind goes through (create, read,
//!   update, patch, delete, watch, and the status and scale subresources).
//! - `objects`: how objects are kept in the store (JSON, resourceVersion = revision).
//! - `custom_resources`: serves the kinds CustomResourceDefinitions define
//!   (through the same `rest` layer), accepts their names, and deletes a
//!   deleted definition's objects.
//! - `watch_cache`: one store watch fanned out to every API watcher.
//! - `service_allocation`: Services' cluster IPs and node ports, held in the
//!   store beside the Services.
//! - [`system_services`]: Services the cluster keeps for itself (`kubernetes`,
//!   `kube-dns`) with their EndpointSlices and Endpoints.
//! - `compactor`: drops store history older than five minutes.
//! - [`pki`]: the cluster CA and certificates; the admin kubeconfig.
//! - `tokens`: service account tokens (JWTs) issued and checked.

mod body;
mod bootstrap;
mod compactor;
mod custom_resources;
mod discovery;
mod objects;
pub mod pki;
mod request;
mod rest;
mod routes;
pub mod server;
mod service_allocation;
pub mod system_services;
mod tokens;
mod watch_cache;

pub use server::{Config, Listening, listen};
pub use service_allocation::PortRange;
