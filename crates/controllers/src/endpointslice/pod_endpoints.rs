//! The one computation both endpoint kinds come from: which of the pods a
//! Service selects are its endpoints, in what condition, and on which
//! ports, as Kubernetes' endpoint controllers judge them.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::pods;

/// A pod as an endpoint of one Service.
#[derive(Clone, Debug, PartialEq)]
pub struct PodEndpoint {
    /// The pod's IPv4 address.
    pub address: String,
    /// Ready to take new traffic: serving and not terminating, or always
    /// with `publishNotReadyAddresses`.
    pub ready: bool,
    /// The pod is Ready, whether or not it is terminating.
    pub serving: bool,
    /// The pod is being deleted.
    pub terminating: bool,
    pub node_name: Option<String>,
    /// Its DNS hostname under a headless Service named as its subdomain.
    pub hostname: Option<String>,
    pub target_ref: ObjectReference,
    /// The Service's ports as this pod serves them: a named target port the
    /// pod lacks is left out, so pods may differ in their ports.
    pub ports: Vec<Port>,
}

/// One Service port resolved to a pod's port number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub name: String,
    pub port: i32,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

/// Whether the controllers keep this Service's endpoints: only a Service
/// with a selector (an empty one counts as none, as the API documents) that
/// is not an ExternalName.
pub fn is_managed(service: &Service) -> bool {
    let Some(spec) = &service.spec else {
        return false;
    };
    spec.type_.as_deref() != Some("ExternalName")
        && spec.selector.as_ref().is_some_and(|s| !s.is_empty())
}

/// The endpoint `pod` makes for `service`, if it makes one: a pod counts
/// once it has an IPv4 address and until it finishes, terminating or not.
pub fn endpoint_of(service: &Service, pod: &Pod) -> Option<PodEndpoint> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let address = ipv4_of(pod)?;
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let spec = service.spec.as_ref()?;
    let serving = pods::is_ready(pod);
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let pod_spec = pod.spec.as_ref();
    let hostname = pod_spec
        .filter(|s| s.subdomain.as_deref() == Some(&service.name_any()))
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    Some(PodEndpoint {
        address,
        ready: publish_not_ready || (serving && !terminating),
        serving,
        terminating,
        node_name: pod_spec.and_then(|s| s.node_name.clone()),
        hostname,
        target_ref: ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: Some(pod.name_any()),
            uid: pod.uid(),
            ..ObjectReference::default()
        },
        ports: spec
            .ports
            .iter()
            .flatten()
            .filter_map(|port| resolve(port, pod))
            .collect(),
    })
}

/// The pod's first IPv4 address.
fn ipv4_of(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.iter().flatten().map(|ip| ip.ip.as_str());
    status
        .pod_ip
        .as_deref()
        .into_iter()
        .chain(listed)
        .find(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .map(str::to_owned)
}

/// The Service port as `pod` serves it: a number as given (the Service
/// port when unset), a name looked up among the ports of the pod's
/// containers and sidecars with the same protocol; `None` when the pod has
/// no such port.
fn resolve(port: &ServicePort, pod: &Pod) -> Option<Port> {
    let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
    let number = match &port.target_port {
        None => port.port,
        Some(IntOrString::Int(0)) => port.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => named_port(pod, name, &protocol)?,
    };
    Some(Port {
        name: port.name.clone().unwrap_or_default(),
        port: number,
        protocol,
        app_protocol: port.app_protocol.clone(),
    })
}

fn named_port(pod: &Pod, name: &str, protocol: &str) -> Option<i32> {
    let spec = pod.spec.as_ref()?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol
        })
        .map(|p| p.container_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(extra: serde_json::Value) -> Pod {
        let mut pod = json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
            ]}]},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "conditions": [
                {"type": "Ready", "status": "True"},
            ]},
        });
        json_patch(&mut pod, extra);
        serde_json::from_value(pod).unwrap()
    }

    fn json_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
        match (target, patch) {
            (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    json_patch(t.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (t, p) => *t = p,
        }
    }

    #[test]
    fn named_ports_resolve_per_pod_and_protocol() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [
            {"name": "a", "port": 80, "targetPort": "http"},
            {"name": "b", "port": 53, "targetPort": "dns", "protocol": "UDP"},
            {"name": "c", "port": 54, "targetPort": "dns"},
            {"name": "d", "port": 90},
        ]}));
        let ep = endpoint_of(&svc, &pod(json!({}))).unwrap();
        let ports: Vec<(&str, i32)> = ep.ports.iter().map(|p| (p.name.as_str(), p.port)).collect();
        assert_eq!(ports, [("a", 8080), ("b", 5353), ("d", 90)]);
    }

    #[test]
    fn conditions_follow_readiness_and_termination() {
        let svc = service(json!({"selector": {"app": "web"}}));
        let terminating = pod(json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        let ep = endpoint_of(&svc, &terminating).unwrap();
        assert_eq!((ep.ready, ep.serving, ep.terminating), (false, true, true));

        let not_ready =
            pod(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        let ep = endpoint_of(&svc, &not_ready).unwrap();
        assert_eq!(
            (ep.ready, ep.serving, ep.terminating),
            (false, false, false)
        );

        let publish =
            service(json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true}));
        assert!(endpoint_of(&publish, &not_ready).unwrap().ready);

        let finished = pod(json!({"status": {"phase": "Succeeded"}}));
        assert!(endpoint_of(&svc, &finished).is_none());
        let no_ip = pod(json!({"status": {"podIP": null}}));
        assert!(endpoint_of(&svc, &no_ip).is_none());
    }

    #[test]
    fn hostname_only_under_the_subdomain_service() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let named =
            |subdomain: &str| pod(json!({"spec": {"hostname": "web-0", "subdomain": subdomain}}));
        let ep = endpoint_of(&svc, &named("web")).unwrap();
        assert_eq!(ep.hostname.as_deref(), Some("web-0"));
        assert_eq!(endpoint_of(&svc, &named("other")).unwrap().hostname, None);
    }
}
