//! Objects every cluster has from its first start.

use std::net::IpAddr;

use serde_json::json;
use tugboat_api::registry;
use tugboat_api::validation::scheduling::SYSTEM_PRIORITY_CLASSES;

use crate::objects::Objects;
use crate::rest;
use crate::system_services::{self, SystemPort, SystemService};

/// The namespaces Kubernetes creates: `default` for users, `kube-system` for
/// the cluster's own workloads, `kube-public` readable by all, and
/// `kube-node-lease` for node heartbeats.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

pub async fn create_system_namespaces(objects: &Objects) -> anyhow::Result<()> {
    let kind = registry::by_kind("v1", "Namespace").expect("namespaces are served");
    for name in SYSTEM_NAMESPACES {
        if objects.try_get(&kind.key("", name)).await?.is_none() {
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            rest::create_internal(objects, kind, ns).await?;
        }
    }
    Ok(())
}

/// The `kubernetes` Service in `default`: the first address of the service
/// CIDR, port `https` 443 to the API server at `address`:`port`, labelled
/// as kube-apiserver labels it.
pub async fn keep_kubernetes_service(
    objects: &Objects,
    address: IpAddr,
    port: u16,
) -> anyhow::Result<()> {
    let service = SystemService {
        namespace: "default".into(),
        name: "kubernetes".into(),
        labels: [
            ("component".into(), "apiserver".into()),
            ("provider".into(), "kubernetes".into()),
        ]
        .into(),
        cluster_ip: objects.service_ranges.ips.first(),
        ports: vec![SystemPort {
            name: "https".into(),
            protocol: "TCP".into(),
            port: 443,
            target_port: port,
        }],
        address,
    };
    system_services::keep(objects, &service)
        .await
        .map_err(|e| anyhow::anyhow!("keeping the kubernetes Service: {}", e.message))
}

/// The system's PriorityClasses, made unless they exist.
pub async fn create_system_priority_classes(objects: &Objects) -> anyhow::Result<()> {
    let kind = rest::priority_admission::class_kind();
    for (name, value, description) in SYSTEM_PRIORITY_CLASSES {
        if objects.try_get(&kind.key("", name)).await?.is_none() {
            let class = json!({
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
                "description": description,
            });
            rest::create_internal(objects, kind, class).await?;
        }
    }
    Ok(())
}
