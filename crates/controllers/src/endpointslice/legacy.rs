//! The legacy `Endpoints` object of a Service with a selector, as
//! Kubernetes' endpoints controller writes it from the same pod endpoints
//! as the slices: one subset per port set, ready addresses apart from not
//! ready ones, terminating pods left out unless `publishNotReadyAddresses`,
//! and at most `MAX_ADDRESSES` addresses.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::pod_endpoints::{PodEndpoint, Port};
use super::slices::TRIGGER_TIME_ANNOTATION;

/// Kubernetes' cap on the addresses of one Endpoints object.
const MAX_ADDRESSES: usize = 1000;
const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The Endpoints `service` should have for `endpoints`, or `None` when
/// `existing` already has its subsets and labels.
pub fn desired(
    service: &Service,
    endpoints: &[PodEndpoint],
    existing: Option<&Endpoints>,
    trigger_time: Option<String>,
) -> Option<Endpoints> {
    let spec = service.spec.clone().unwrap_or_default();
    let headless = matches!(spec.cluster_ip.as_deref(), None | Some("" | "None"));
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let portless = spec.ports.as_ref().is_none_or(Vec::is_empty);
    let mut groups: BTreeMap<&[Port], (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for endpoint in endpoints {
        // A pod that serves none of the ports is no address, except under
        // a headless Service without ports.
        let listed = !endpoint.ports.is_empty() || (portless && headless);
        if !listed || (endpoint.terminating && !publish_not_ready) {
            continue;
        }
        let (ready, not_ready) = groups.entry(&endpoint.ports).or_default();
        let address = EndpointAddress {
            ip: endpoint.address.clone(),
            hostname: endpoint.hostname.clone(),
            node_name: endpoint.node_name.clone(),
            target_ref: Some(endpoint.target_ref.clone()),
        };
        if endpoint.ready {
            ready.push(address);
        } else {
            not_ready.push(address);
        }
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| ports.iter().map(endpoint_port).collect()),
            }
        })
        .collect();
    let truncated = truncate(&mut subsets);
    let mut labels = service.labels().clone();
    if headless {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    let subsets = (!subsets.is_empty()).then_some(subsets);
    if let Some(existing) = existing {
        let flagged = existing
            .annotations()
            .contains_key(OVER_CAPACITY_ANNOTATION);
        if existing.subsets == subsets && existing.labels() == &labels && flagged == truncated {
            return None;
        }
    }
    let mut metadata = existing.map_or_else(
        || ObjectMeta {
            name: Some(service.name_any()),
            namespace: service.namespace(),
            ..ObjectMeta::default()
        },
        |e| e.metadata.clone(),
    );
    metadata.labels = Some(labels);
    let annotations = metadata.annotations.get_or_insert_default();
    match trigger_time {
        Some(time) => annotations.insert(TRIGGER_TIME_ANNOTATION.into(), time),
        None => annotations.remove(TRIGGER_TIME_ANNOTATION),
    };
    if truncated {
        annotations.insert(OVER_CAPACITY_ANNOTATION.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY_ANNOTATION);
    }
    Some(Endpoints { metadata, subsets })
}

fn endpoint_port(port: &Port) -> EndpointPort {
    EndpointPort {
        name: (!port.name.is_empty()).then(|| port.name.clone()),
        port: port.port,
        protocol: Some(port.protocol.clone()),
        app_protocol: port.app_protocol.clone(),
    }
}

/// Cuts the subsets down to `MAX_ADDRESSES` addresses, ready ones first;
/// true when some had to go.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |list: &Option<Vec<EndpointAddress>>| list.as_ref().map_or(0, Vec::len);
    let total: usize = subsets
        .iter()
        .map(|s| count(&s.addresses) + count(&s.not_ready_addresses))
        .sum();
    if total <= MAX_ADDRESSES {
        return false;
    }
    let mut room = MAX_ADDRESSES;
    for subset in subsets.iter_mut() {
        keep_at_most(&mut subset.addresses, &mut room);
    }
    for subset in subsets.iter_mut() {
        keep_at_most(&mut subset.not_ready_addresses, &mut room);
    }
    true
}

fn keep_at_most(list: &mut Option<Vec<EndpointAddress>>, room: &mut usize) {
    if let Some(addresses) = list {
        addresses.truncate(*room);
        *room -= addresses.len();
        if addresses.is_empty() {
            *list = None;
        }
    }
}
