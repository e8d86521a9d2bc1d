//! Objects every cluster has from its first start.

use serde_json::json;
use tugboat_api::registry;

use crate::objects::Objects;
use crate::rest;

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
