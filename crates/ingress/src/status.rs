//! `status.loadBalancer.ingress` of the Ingresses: where they are served,
//! which is the InternalIP of each node whose ingress serves them (k3s shows
//! its nodes' addresses for Traefik's Ingresses the same way), so `kubectl
//! get ingress` prints it as ADDRESS. Each node adds its own address to the
//! Ingresses it serves and takes it off those it no longer serves; the
//! other entries belong to other nodes and stay.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

pub struct Status {
    client: Client,
    address: String,
}

impl Status {
    pub fn new(client: Client, address: IpAddr) -> Status {
        Status {
            client,
            address: address.to_string(),
        }
    }

    /// Brings the status of each Ingress in line with whether `serves` says
    /// it is ours. A write that fails is logged; the next rebuild (at the
    /// latest the periodic one) tries again.
    pub async fn update(&self, ingresses: &[Arc<Ingress>], serves: impl Fn(&Ingress) -> bool) {
        for ingress in ingresses {
            let current = ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_deref())
                .unwrap_or_default();
            let Some(entries) = changed_entries(current, &self.address, serves(ingress)) else {
                continue;
            };
            let api: Api<Ingress> = Api::namespaced(
                self.client.clone(),
                &ingress.namespace().unwrap_or_default(),
            );
            let patch = json!({"status": {"loadBalancer": {"ingress": entries}}});
            if let Err(e) = api
                .patch_status(
                    &ingress.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                tracing::warn!(
                    "cannot write the status of Ingress {}/{}: {e}",
                    ingress.namespace().unwrap_or_default(),
                    ingress.name_any()
                );
            }
        }
    }
}

/// The entries `current` should become, with this node's `address` in them
/// or not; `None` when they already are so.
fn changed_entries(
    current: &[IngressLoadBalancerIngress],
    address: &str,
    served: bool,
) -> Option<Vec<IngressLoadBalancerIngress>> {
    let ours = |e: &IngressLoadBalancerIngress| e.ip.as_deref() == Some(address);
    let listed = current.iter().any(ours);
    if listed == served {
        return None;
    }
    let mut entries: Vec<_> = current.iter().filter(|e| !ours(e)).cloned().collect();
    if served {
        entries.push(IngressLoadBalancerIngress {
            ip: Some(address.to_owned()),
            ..Default::default()
        });
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ip: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress {
            ip: Some(ip.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn a_served_ingress_gets_this_nodes_address_once() {
        let other = entry("192.0.2.2");
        assert_eq!(
            changed_entries(std::slice::from_ref(&other), "192.0.2.1", true),
            Some(vec![other.clone(), entry("192.0.2.1")])
        );
        assert_eq!(
            changed_entries(&[other.clone(), entry("192.0.2.1")], "192.0.2.1", true),
            None
        );
    }

    #[test]
    fn an_ingress_no_longer_served_loses_only_this_nodes_address() {
        let other = entry("192.0.2.2");
        assert_eq!(
            changed_entries(&[entry("192.0.2.1"), other.clone()], "192.0.2.1", false),
            Some(vec![other.clone()])
        );
        assert_eq!(changed_entries(&[other], "192.0.2.1", false), None);
    }
}
