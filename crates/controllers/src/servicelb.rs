//! The built-in service load balancer, as k3s' servicelb: a Service of
//! type LoadBalancer (with no `loadBalancerClass`, or ours) gets the
//! InternalIPs of the Ready nodes as `status.loadBalancer.ingress`, and the
//! service proxy on every node carries what is sent to them on the
//! Service's ports. The addresses follow the nodes as they come, go, and
//! turn Ready or not; a Service that stops being a LoadBalancer loses them.
//! Events are worded as Kubernetes' service controller words them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tugboat_events::{Recorder, Type};

/// The `loadBalancerClass` this controller serves (besides none at all).
pub const LOAD_BALANCER_CLASS: &str = "tugboat.io/servicelb";

struct Context {
    client: Client,
    nodes: Store<Node>,
    events: Recorder,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let (nodes, writer) = reflector::store();
    // Every Service is looked at again only when the set of addresses
    // changes, not on each node heartbeat.
    let mut last: Option<Vec<String>> = None;
    let reader = nodes.clone();
    let address_changes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .filter_map(move |_| {
            let now = ready_addresses(&reader.state());
            let changed = last.as_ref() != Some(&now);
            last = Some(now);
            futures::future::ready(changed.then_some(()))
        });
    let context = Arc::new(Context {
        events: Recorder::new(client.clone(), "service-controller", None),
        client: client.clone(),
        nodes,
    });
    Controller::new(Api::<Service>::all(client), watcher::Config::default())
        .reconcile_all_on(address_changes)
        .run(reconcile, retry, context)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn retry(_: Arc<Service>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!("service load balancer: {error}");
    Action::requeue(Duration::from_secs(2))
}

/// The InternalIPs of the Ready nodes, sorted.
fn ready_addresses(nodes: &[Arc<Node>]) -> Vec<String> {
    let mut addresses: Vec<String> = nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none() && is_ready(n))
        .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Whether this controller balances the Service.
fn is_ours(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|spec| {
        spec.type_.as_deref() == Some("LoadBalancer")
            && spec
                .load_balancer_class
                .as_deref()
                .is_none_or(|class| class == LOAD_BALANCER_CLASS)
    })
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    if ctx.nodes.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let current: Vec<LoadBalancerIngress> = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default();
    let other_class = service
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref())
        .is_some_and(|class| class != LOAD_BALANCER_CLASS);
    let desired: Vec<LoadBalancerIngress> = if is_ours(&service) {
        ready_addresses(&ctx.nodes.state())
            .into_iter()
            .map(|ip| LoadBalancerIngress {
                ip: Some(ip),
                ip_mode: Some("VIP".into()),
                ..LoadBalancerIngress::default()
            })
            .collect()
    } else {
        Vec::new()
    };
    if current == desired || other_class {
        return Ok(Action::await_change());
    }
    let (before, after) = match (current.is_empty(), desired.is_empty()) {
        (true, _) => (
            Some(("EnsuringLoadBalancer", "Ensuring load balancer")),
            ("EnsuredLoadBalancer", "Ensured load balancer"),
        ),
        (false, false) => (
            None,
            (
                "UpdatedLoadBalancer",
                "Updated load balancer with new hosts",
            ),
        ),
        (false, true) if is_ours(&service) => (
            None,
            (
                "UpdatedLoadBalancer",
                "Updated load balancer with new hosts",
            ),
        ),
        (false, true) => (
            Some(("DeletingLoadBalancer", "Deleting load balancer")),
            ("DeletedLoadBalancer", "Deleted load balancer"),
        ),
    };
    if let Some((reason, message)) = before {
        ctx.events
            .record(service.as_ref(), Type::Normal, reason, message.into())
            .await;
    }
    let ingress = (!desired.is_empty()).then_some(desired);
    Api::<Service>::namespaced(ctx.client.clone(), &service.namespace().unwrap_or_default())
        .patch_status(
            &service.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": ingress}}})),
        )
        .await?;
    let (reason, message) = after;
    ctx.events
        .record(service.as_ref(), Type::Normal, reason, message.into())
        .await;
    Ok(Action::await_change())
}
