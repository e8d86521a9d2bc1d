//! Backends: an Ingress's Service and port, resolved to the addresses of the
//! Service's ready endpoints from its EndpointSlices (the slices' port of the
//! same name as the Service port, so named target ports resolve per pod, as
//! the service proxy resolves them).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{IngressServiceBackend, ServiceBackendPort};

/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Where a rule sends requests: the backend, and how long its Ingress lets
/// an endpoint take to answer. Rules of several Ingresses share a backend
/// (one turn order over its endpoints), each with its own timeout.
#[derive(Clone, Debug)]
pub struct Target {
    pub backend: Arc<Backend>,
    pub read_timeout: Duration,
}

/// One Service port that requests are forwarded to.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for messages.
    pub name: String,
    /// The ready endpoints, or why there can be none (no such Service or port).
    pub endpoints: Result<Vec<SocketAddr>, String>,
    /// Where the next request starts: requests go round the endpoints.
    next: AtomicUsize,
}

impl Backend {
    pub fn new(name: String, endpoints: Result<Vec<SocketAddr>, String>) -> Backend {
        Backend {
            name,
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The endpoints in the order one request tries them: each request
    /// starts one further than the last, and goes on to the others only
    /// when one refuses.
    pub fn attempt_order(&self) -> Vec<SocketAddr> {
        let endpoints = self.endpoints.as_deref().unwrap_or_default();
        if endpoints.is_empty() {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        endpoints[start..]
            .iter()
            .chain(&endpoints[..start])
            .copied()
            .collect()
    }
}

/// The Services and slices of the cluster, indexed for resolving backends.
pub struct Resolver<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    /// Slices by namespace and the Service they belong to.
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl<'a> Resolver<'a> {
    pub fn new(services: &'a [Arc<Service>], slices: &'a [Arc<EndpointSlice>]) -> Resolver<'a> {
        let services = services
            .iter()
            .filter_map(|s| {
                let key = (
                    s.metadata.namespace.as_deref()?,
                    s.metadata.name.as_deref()?,
                );
                Some((key, s.as_ref()))
            })
            .collect();
        let mut by_service: HashMap<_, Vec<_>> = HashMap::new();
        for slice in slices {
            let namespace = slice.metadata.namespace.as_deref();
            let service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(namespace), Some(service)) = (namespace, service) {
                by_service
                    .entry((namespace, service.as_str()))
                    .or_default()
                    .push(slice.as_ref());
            }
        }
        Resolver {
            services,
            slices: by_service,
        }
    }

    /// The backend an Ingress in `namespace` names.
    pub fn resolve(&self, namespace: &str, backend: &IngressServiceBackend) -> Backend {
        let name = backend_name(namespace, backend);
        let endpoints = self
            .service_port(namespace, &backend.name, backend)
            .map(|port| self.endpoints(namespace, &backend.name, port));
        Backend::new(name, endpoints)
    }

    fn service_port(
        &self,
        namespace: &str,
        service: &str,
        backend: &IngressServiceBackend,
    ) -> Result<&'a ServicePort, String> {
        let found = self
            .services
            .get(&(namespace, service))
            .ok_or_else(|| format!("service \"{namespace}/{service}\" not found"))?;
        let wanted = backend.port.as_ref();
        let ports = found.spec.as_ref().and_then(|s| s.ports.as_ref());
        ports
            .into_iter()
            .flatten()
            .find(|p| match wanted {
                Some(w) if w.number.is_some() => w.number == Some(p.port),
                Some(w) => w.name.is_some() && w.name == p.name,
                None => false,
            })
            .ok_or_else(|| {
                format!(
                    "service \"{namespace}/{service}\" has no port {}",
                    port_text(wanted)
                )
            })
    }

    /// The ready endpoints of the Service port: each slice's port of the same
    /// name (and protocol) with the addresses of its ready endpoints.
    fn endpoints(&self, namespace: &str, service: &str, port: &ServicePort) -> Vec<SocketAddr> {
        let port_name = port.name.as_deref().unwrap_or_default();
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let mut addresses = Vec::new();
        for slice in self.slices.get(&(namespace, service)).into_iter().flatten() {
            let Some(number) = slice.ports.iter().flatten().find_map(|p| {
                let same = p.name.as_deref().unwrap_or_default() == port_name
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol;
                same.then_some(p.port).flatten()
            }) else {
                continue;
            };
            let Ok(number) = u16::try_from(number) else {
                continue;
            };
            for endpoint in &slice.endpoints {
                // An endpoint whose readiness is unknown counts as ready, as
                // the API documents for `conditions.ready`.
                if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                addresses.extend(
                    endpoint
                        .addresses
                        .iter()
                        .filter_map(|a| a.parse::<IpAddr>().ok())
                        .map(|ip| SocketAddr::new(ip, number)),
                );
            }
        }
        addresses.sort();
        addresses.dedup();
        addresses
    }
}

/// `namespace/service:port`, with the port as the Ingress names it: what
/// tells backends apart.
pub fn backend_name(namespace: &str, backend: &IngressServiceBackend) -> String {
    format!(
        "{namespace}/{}:{}",
        backend.name,
        port_text(backend.port.as_ref())
    )
}

/// A backend's port as the Ingress names it: its name or its number.
fn port_text(port: Option<&ServiceBackendPort>) -> String {
    port.and_then(|p| p.name.clone().or(p.number.map(|n| n.to_string())))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "web", "namespace": "ns"},
                "spec": {"ports": [
                    {"name": "http", "port": 80, "targetPort": "web"},
                    {"name": "admin", "port": 9000},
                ]},
            }))
            .unwrap(),
        )
    }

    fn slice(name: &str, port: i32, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns",
                             "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                "endpoints": endpoints,
            }))
            .unwrap(),
        )
    }

    fn by_port(port: serde_json::Value) -> IngressServiceBackend {
        serde_json::from_value(json!({"name": "web", "port": port})).unwrap()
    }

    #[test]
    fn ready_endpoints_of_the_named_slice_port() {
        let services = [service()];
        let slices = [
            slice(
                "a",
                8080,
                json!([
                    {"addresses": ["10.42.0.5"], "conditions": {"ready": true}},
                    {"addresses": ["10.42.0.6"], "conditions": {"ready": false}},
                    {"addresses": ["10.42.0.7"]},
                ]),
            ),
            slice("b", 8081, json!([{"addresses": ["10.42.0.8"]}])),
        ];
        let resolver = Resolver::new(&services, &slices);
        let expected: Vec<SocketAddr> = vec![
            "10.42.0.5:8080".parse().unwrap(),
            "10.42.0.7:8080".parse().unwrap(),
            "10.42.0.8:8081".parse().unwrap(),
        ];
        let by_number = resolver.resolve("ns", &by_port(json!({"number": 80})));
        assert_eq!(by_number.name, "ns/web:80");
        assert_eq!(by_number.endpoints, Ok(expected.clone()));
        let by_name = resolver.resolve("ns", &by_port(json!({"name": "http"})));
        assert_eq!(by_name.endpoints, Ok(expected));
        // No slice has a port named "admin".
        let admin = resolver.resolve("ns", &by_port(json!({"number": 9000})));
        assert_eq!(admin.endpoints, Ok(vec![]));
    }

    #[test]
    fn missing_services_and_ports_say_so() {
        let services = [service()];
        let resolver = Resolver::new(&services, &[]);
        let port = resolver.resolve("ns", &by_port(json!({"number": 81})));
        assert_eq!(
            port.endpoints,
            Err("service \"ns/web\" has no port 81".to_owned())
        );
        let other_namespace = resolver.resolve("other", &by_port(json!({"number": 80})));
        assert_eq!(
            other_namespace.endpoints,
            Err("service \"other/web\" not found".to_owned())
        );
    }

    #[test]
    fn each_request_starts_at_the_next_endpoint() {
        let endpoints: Vec<SocketAddr> = vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
            "10.0.0.3:80".parse().unwrap(),
        ];
        let backend = Backend::new("b".into(), Ok(endpoints.clone()));
        assert_eq!(backend.attempt_order(), endpoints);
        assert_eq!(
            backend.attempt_order(),
            vec![endpoints[1], endpoints[2], endpoints[0]]
        );
        assert_eq!(
            backend.attempt_order(),
            vec![endpoints[2], endpoints[0], endpoints[1]]
        );
    }
}
