//! Services the cluster keeps for itself: `default/kubernetes`, pointing at
//! the API server, and whatever else the server runs, such as
//! `kube-system/kube-dns`.
//!
//! Each is a Service without selector at a fixed cluster IP, with the
//! EndpointSlice (named as the Service) and the legacy Endpoints the server
//! writes itself; the endpointslice controller leaves Services without
//! selector alone. [`SystemServices::keep`] creates them or puts them back
//! as they should be, so a user who deletes or edits one gets it back at the
//! next start (or the next `keep`).
//!
//! ```text
//! let services = listening.system_services();   // before Listening::serve
//! services.keep(&SystemService {
//!     namespace: "kube-system".into(), name: "kube-dns".into(),
//!     labels: [("k8s-app".into(), "kube-dns".into())].into(),
//!     cluster_ip: "10.43.0.10".parse()?,
//!     ports: vec![SystemPort { name: "dns".into(), protocol: "UDP".into(), port: 53, target_port: bound_port }],
//!     address: advertise_address,
//! }).await?;
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tugboat_api::{ApiResult, Kind, registry};

use crate::objects::{Objects, revision_of};
use crate::rest;

/// The label telling the endpointslice controller (and readers) who keeps a slice.
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Who keeps the slices of system Services.
pub const MANAGER: &str = "apiserver.tugboat.io";

/// A selector-less Service the server keeps, and where its traffic goes.
#[derive(Clone, Debug)]
pub struct SystemService {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Must be inside the service CIDR and not held by another Service.
    pub cluster_ip: IpAddr,
    pub ports: Vec<SystemPort>,
    /// The address that serves the ports (the endpoint).
    pub address: IpAddr,
}

#[derive(Clone, Debug)]
pub struct SystemPort {
    pub name: String,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// The Service's port.
    pub port: u16,
    /// The port `address` serves it on.
    pub target_port: u16,
}

/// A handle for keeping system Services, usable once the API server has
/// started listening.
#[derive(Clone)]
pub struct SystemServices {
    objects: Arc<Objects>,
}

impl SystemServices {
    pub(crate) fn new(objects: Arc<Objects>) -> SystemServices {
        SystemServices { objects }
    }

    /// Creates the Service, its EndpointSlice and its Endpoints, or makes
    /// them what `service` says.
    pub async fn keep(&self, service: &SystemService) -> anyhow::Result<()> {
        keep(&self.objects, service).await.map_err(|e| {
            anyhow::anyhow!(
                "keeping the Service {}/{}: {}",
                service.namespace,
                service.name,
                e.message
            )
        })
    }
}

pub(crate) async fn keep(objects: &Objects, service: &SystemService) -> ApiResult<()> {
    keep_service(objects, service).await?;
    let slice = kind("discovery.k8s.io/v1", "EndpointSlice");
    rest::put_internal(objects, slice, endpoint_slice(service)).await?;
    let endpoints = kind("v1", "Endpoints");
    rest::put_internal(objects, endpoints, legacy_endpoints(service)).await?;
    Ok(())
}

fn kind(api_version: &str, kind: &str) -> &'static Kind {
    registry::by_kind(api_version, kind).expect("system service kinds are served")
}

/// The Service; one found at another cluster IP is made again, since a
/// cluster IP never changes.
async fn keep_service(objects: &Objects, service: &SystemService) -> ApiResult<()> {
    let kind = kind("v1", "Service");
    let key = kind.key(&service.namespace, &service.name);
    if let Some(old) = objects.try_get(&key).await?
        && old.pointer("/spec/clusterIP").and_then(Value::as_str)
            != Some(service.cluster_ip.to_string().as_str())
    {
        tracing::info!(
            "the Service {}/{} moves to {}",
            service.namespace,
            service.name,
            service.cluster_ip
        );
        objects.remove(kind, &old, revision_of(&old)).await?;
    }
    rest::put_internal(objects, kind, service_object(service)).await?;
    Ok(())
}

fn service_object(service: &SystemService) -> Value {
    let ports: Vec<Value> = service
        .ports
        .iter()
        .map(|p| {
            json!({"name": p.name, "protocol": p.protocol, "port": p.port, "targetPort": p.target_port})
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service.name,
            "namespace": service.namespace,
            "labels": service.labels,
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": service.cluster_ip.to_string(),
            "clusterIPs": [service.cluster_ip.to_string()],
            "ports": ports,
        },
    })
}

fn address_type(address: IpAddr) -> &'static str {
    if address.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn endpoint_ports(service: &SystemService) -> Vec<Value> {
    service
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "protocol": p.protocol, "port": p.target_port}))
        .collect()
}

fn endpoint_slice(service: &SystemService) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": service.name,
            "namespace": service.namespace,
            "labels": {
                "kubernetes.io/service-name": service.name,
                MANAGED_BY: MANAGER,
            },
        },
        "addressType": address_type(service.address),
        "endpoints": [{
            "addresses": [service.address.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
        }],
        "ports": endpoint_ports(service),
    })
}

/// The Endpoints older clients read; marked so that no mirroring
/// controller makes a second slice of it.
fn legacy_endpoints(service: &SystemService) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": service.name,
            "namespace": service.namespace,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{
            "addresses": [{"ip": service.address.to_string()}],
            "ports": endpoint_ports(service),
        }],
    })
}
