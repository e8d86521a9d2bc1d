//! A Service's EndpointSlices: the writes that bring the slices it has to
//! the endpoints it should have, as few as Kubernetes' reconciler makes.
//! Endpoints are grouped by their port set (pods may resolve a named port
//! differently), at most `MAX_ENDPOINTS` to a slice. A slice whose
//! endpoints and metadata are unchanged is never rewritten; new endpoints
//! go first into slices that are rewritten anyway, then into ones with
//! room, then into slices that would otherwise be deleted, and only then
//! into new slices. A Service with no endpoints keeps one empty
//! placeholder slice, as in Kubernetes.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::pod_endpoints::{PodEndpoint, Port};
use crate::claim::owner_reference;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who keeps a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The value of `MANAGED_BY_LABEL` on the slices this controller keeps.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The label a headless Service's slices carry (with an empty value).
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// When the change that last made the controller write an endpoint list
/// happened (what proxies measure their programming latency from).
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Kubernetes' default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS: usize = 100;
const ADDRESS_TYPE: &str = "IPv4";

/// The writes that bring a Service's slices to what they should be.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices, named by the API server from their `generateName`.
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new content, carrying the resourceVersion read.
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<Arc<EndpointSlice>>,
}

/// What every slice of one Service carries besides its endpoints.
struct Template<'a> {
    service: &'a Service,
    labels: BTreeMap<String, String>,
    trigger_time: Option<String>,
}

impl Template<'_> {
    fn matches(&self, slice: &EndpointSlice) -> bool {
        slice.metadata.labels.as_ref() == Some(&self.labels)
            && slice.metadata.owner_references.as_deref()
                == Some(&[owner_reference(self.service)][..])
    }

    /// `slice` (an existing one, or a new one when `None`) holding
    /// `endpoints` on `ports`.
    fn slice(
        &self,
        slice: Option<&EndpointSlice>,
        ports: &[Port],
        endpoints: Vec<Endpoint>,
    ) -> EndpointSlice {
        let service = self.service;
        let mut metadata = match slice {
            Some(slice) => slice.metadata.clone(),
            None => ObjectMeta {
                generate_name: Some(format!("{}-", service.name_any())),
                namespace: service.namespace(),
                ..ObjectMeta::default()
            },
        };
        metadata.labels = Some(self.labels.clone());
        metadata.owner_references = Some(vec![owner_reference(service)]);
        if let Some(time) = &self.trigger_time {
            metadata
                .annotations
                .get_or_insert_default()
                .insert(TRIGGER_TIME_ANNOTATION.into(), time.clone());
        }
        EndpointSlice {
            metadata,
            address_type: ADDRESS_TYPE.into(),
            endpoints,
            ports: Some(ports.iter().map(slice_port).collect()),
        }
    }
}

/// The writes that make `existing` (the slices this controller keeps for
/// `service`) list `endpoints`. `zone_of` gives a node's zone;
/// `trigger_time` goes on the slices written.
pub fn plan(
    service: &Service,
    endpoints: &[PodEndpoint],
    zone_of: impl Fn(&str) -> Option<String>,
    existing: &[Arc<EndpointSlice>],
    trigger_time: Option<String>,
) -> Plan {
    let template = Template {
        service,
        labels: labels(service),
        trigger_time,
    };
    let mut wanted: BTreeMap<Vec<Port>, BTreeMap<String, Endpoint>> = BTreeMap::new();
    for endpoint in endpoints {
        let zone = endpoint.node_name.as_deref().and_then(&zone_of);
        wanted
            .entry(endpoint.ports.clone())
            .or_default()
            .insert(endpoint.address.clone(), slice_endpoint(endpoint, zone));
    }
    // A slice's address type cannot change: one of another type goes.
    let (existing, other): (Vec<_>, Vec<_>) = existing
        .iter()
        .cloned()
        .partition(|s| s.address_type == ADDRESS_TYPE);
    let mut plan = if wanted.is_empty() {
        placeholder(&template, &existing)
    } else {
        spread(&template, wanted, existing)
    };
    plan.delete.extend(other);
    plan
}

/// The writes that spread `wanted` (endpoints by port set) over the slices.
fn spread(
    template: &Template,
    wanted: BTreeMap<Vec<Port>, BTreeMap<String, Endpoint>>,
    existing: Vec<Arc<EndpointSlice>>,
) -> Plan {
    let mut have: BTreeMap<Vec<Port>, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in existing {
        have.entry(ports_of(&slice)).or_default().push(slice);
    }
    let mut plan = Plan::default();
    // Slices left without endpoints: reused for new endpoints before new
    // slices are made, deleted otherwise.
    let mut spare: Vec<Arc<EndpointSlice>> = Vec::new();
    have.retain(|ports, slices| {
        let keep = wanted.contains_key(ports);
        if !keep {
            spare.append(slices);
        }
        keep
    });
    for (ports, mut desired) in wanted {
        let mut rewritten: Vec<EndpointSlice> = Vec::new();
        let mut unchanged: Vec<Arc<EndpointSlice>> = Vec::new();
        for slice in have.remove(&ports).unwrap_or_default() {
            let mut kept = Vec::new();
            let mut changed = false;
            for endpoint in &slice.endpoints {
                match endpoint.addresses.first().and_then(|a| desired.remove(a)) {
                    Some(new) => {
                        changed |= new != *endpoint;
                        kept.push(new);
                    }
                    None => changed = true,
                }
            }
            if kept.is_empty() {
                spare.push(slice);
            } else if changed || !template.matches(&slice) {
                rewritten.push(template.slice(Some(&slice), &ports, kept));
            } else {
                unchanged.push(slice);
            }
        }
        let mut rest = desired.into_values().peekable();
        for slice in &mut rewritten {
            fill(slice, &mut rest);
        }
        for slice in unchanged {
            if rest.peek().is_some() && slice.endpoints.len() < MAX_ENDPOINTS {
                let mut slice = template.slice(Some(&slice), &ports, slice.endpoints.clone());
                fill(&mut slice, &mut rest);
                rewritten.push(slice);
            }
        }
        while rest.peek().is_some() {
            let chunk: Vec<Endpoint> = rest.by_ref().take(MAX_ENDPOINTS).collect();
            match spare.pop() {
                Some(old) => rewritten.push(template.slice(Some(&old), &ports, chunk)),
                None => plan.create.push(template.slice(None, &ports, chunk)),
            }
        }
        plan.update.extend(rewritten);
    }
    plan.delete = spare;
    plan
}

/// The writes that leave one empty slice with no ports.
fn placeholder(template: &Template, existing: &[Arc<EndpointSlice>]) -> Plan {
    let is_placeholder = |s: &EndpointSlice| {
        s.endpoints.is_empty() && s.ports.as_ref().is_none_or(Vec::is_empty) && template.matches(s)
    };
    let mut plan = Plan::default();
    let kept = existing
        .iter()
        .position(|s| is_placeholder(s))
        .or((!existing.is_empty()).then_some(0));
    match kept {
        Some(index) if !is_placeholder(&existing[index]) => {
            plan.update
                .push(template.slice(Some(&existing[index]), &[], Vec::new()))
        }
        Some(_) => {}
        None => plan.create.push(template.slice(None, &[], Vec::new())),
    }
    plan.delete = existing
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != kept)
        .map(|(_, s)| s.clone())
        .collect();
    plan
}

/// Moves endpoints from `rest` into `slice` until it is full.
fn fill(slice: &mut EndpointSlice, rest: &mut impl Iterator<Item = Endpoint>) {
    let room = MAX_ENDPOINTS.saturating_sub(slice.endpoints.len());
    slice.endpoints.extend(rest.take(room));
}

/// A slice's labels: the Service's, then the controller's own.
fn labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.labels().clone();
    labels.remove(HEADLESS_LABEL);
    labels.insert(SERVICE_NAME_LABEL.into(), service.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    let headless = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

fn slice_endpoint(endpoint: &PodEndpoint, zone: Option<String>) -> Endpoint {
    Endpoint {
        addresses: vec![endpoint.address.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(endpoint.ready),
            serving: Some(endpoint.serving),
            terminating: Some(endpoint.terminating),
        }),
        hostname: endpoint.hostname.clone(),
        node_name: endpoint.node_name.clone(),
        target_ref: Some(endpoint.target_ref.clone()),
        zone,
        ..Endpoint::default()
    }
}

fn slice_port(port: &Port) -> EndpointPort {
    EndpointPort {
        name: Some(port.name.clone()),
        port: Some(port.port),
        protocol: Some(port.protocol.clone()),
        app_protocol: port.app_protocol.clone(),
    }
}

/// A slice's ports as the endpoints computation names them.
fn ports_of(slice: &EndpointSlice) -> Vec<Port> {
    slice
        .ports
        .iter()
        .flatten()
        .map(|p| Port {
            name: p.name.clone().unwrap_or_default(),
            port: p.port.unwrap_or_default(),
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            app_protocol: p.app_protocol.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use serde_json::json;

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }))
        .unwrap()
    }

    fn endpoint(i: usize, port: i32, ready: bool) -> PodEndpoint {
        PodEndpoint {
            address: format!("10.42.{}.{}", i / 250, i % 250),
            ready,
            serving: ready,
            terminating: false,
            node_name: Some("n1".into()),
            hostname: None,
            target_ref: ObjectReference {
                kind: Some("Pod".into()),
                name: Some(format!("p{i}")),
                ..ObjectReference::default()
            },
            ports: vec![Port {
                name: String::new(),
                port,
                protocol: "TCP".into(),
                app_protocol: None,
            }],
        }
    }

    fn plan_for(endpoints: &[PodEndpoint], existing: &[Arc<EndpointSlice>]) -> Plan {
        plan(&service(), endpoints, |_| None, existing, None)
    }

    /// The slices after the plan's writes, named as the API server would.
    fn apply(existing: &[Arc<EndpointSlice>], plan: Plan) -> Vec<Arc<EndpointSlice>> {
        let deleted: Vec<String> = plan.delete.iter().map(|s| s.name_any()).collect();
        let updated: Vec<String> = plan.update.iter().map(|s| s.name_any()).collect();
        let mut slices: Vec<Arc<EndpointSlice>> = existing
            .iter()
            .filter(|s| !deleted.contains(&s.name_any()) && !updated.contains(&s.name_any()))
            .cloned()
            .collect();
        slices.extend(plan.update.into_iter().map(Arc::new));
        for (i, mut slice) in plan.create.into_iter().enumerate() {
            slice.metadata.name = Some(format!("web-{}{i}", existing.len()));
            slices.push(Arc::new(slice));
        }
        slices
    }

    fn counts(plan: &Plan) -> (usize, usize, usize) {
        (plan.create.len(), plan.update.len(), plan.delete.len())
    }

    #[test]
    fn unchanged_endpoints_write_nothing() {
        let endpoints: Vec<PodEndpoint> = (0..150).map(|i| endpoint(i, 80, true)).collect();
        let first = plan_for(&endpoints, &[]);
        assert_eq!(counts(&first), (2, 0, 0));
        let sizes: Vec<usize> = first.create.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, [100, 50]);
        let slices = apply(&[], first);
        assert_eq!(counts(&plan_for(&endpoints, &slices)), (0, 0, 0));
    }

    #[test]
    fn one_changed_endpoint_rewrites_only_its_slice() {
        let mut endpoints: Vec<PodEndpoint> = (0..150).map(|i| endpoint(i, 80, true)).collect();
        let slices = apply(&[], plan_for(&endpoints, &[]));
        endpoints[120].ready = false;
        let plan = plan_for(&endpoints, &slices);
        assert_eq!(counts(&plan), (0, 1, 0));
        let address = &endpoints[120].address;
        assert!(
            plan.update[0]
                .endpoints
                .iter()
                .any(|e| &e.addresses[0] == address)
        );
    }

    #[test]
    fn a_replaced_pod_takes_the_place_of_the_one_gone() {
        let mut endpoints: Vec<PodEndpoint> = (0..150).map(|i| endpoint(i, 80, true)).collect();
        let slices = apply(&[], plan_for(&endpoints, &[]));
        endpoints.remove(3);
        endpoints.push(endpoint(200, 80, true));
        let plan = plan_for(&endpoints, &slices);
        assert_eq!(counts(&plan), (0, 1, 0));
        let slices = apply(&slices, plan);
        assert_eq!(counts(&plan_for(&endpoints, &slices)), (0, 0, 0));
    }

    #[test]
    fn a_new_port_set_reuses_the_old_slices() {
        let endpoints: Vec<PodEndpoint> = (0..10).map(|i| endpoint(i, 80, true)).collect();
        let slices = apply(&[], plan_for(&endpoints, &[]));
        let moved: Vec<PodEndpoint> = (0..10).map(|i| endpoint(i, 8080, true)).collect();
        let plan = plan_for(&moved, &slices);
        assert_eq!(counts(&plan), (0, 1, 0));
        assert_eq!(plan.update[0].ports.as_ref().unwrap()[0].port, Some(8080));
    }

    #[test]
    fn no_endpoints_leave_one_empty_slice() {
        let endpoints: Vec<PodEndpoint> = (0..150).map(|i| endpoint(i, 80, true)).collect();
        let slices = apply(&[], plan_for(&endpoints, &[]));
        let plan = plan_for(&[], &slices);
        assert_eq!(counts(&plan), (0, 1, 1));
        assert!(plan.update[0].endpoints.is_empty());
        assert_eq!(plan.update[0].ports, Some(Vec::new()));
        let slices = apply(&slices, plan);
        assert_eq!(counts(&plan_for(&[], &slices)), (0, 0, 0));
        assert_eq!(counts(&plan_for(&[], &[])), (1, 0, 0));
    }
}
