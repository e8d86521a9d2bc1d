//! Amounts of resources: what a pod requests and what a node can give, in
//! the units the scheduler compares them in (millicores, bytes, counts).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tugboat_api::quantity;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources (`example.com/gpu`) and hugepages, in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `requests`, `allocatable` or `overhead` map; names the
    /// scheduler does not count (`pods` among them) are left out.
    pub fn from_map(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut out = Resources::default();
        for (name, amount) in map.into_iter().flatten() {
            let text = amount.0.as_str();
            match name.as_str() {
                "cpu" => out.milli_cpu = clamp(quantity::milli_value(text)),
                "memory" => out.memory = clamp(quantity::value(text)),
                "ephemeral-storage" => out.ephemeral_storage = clamp(quantity::value(text)),
                other if is_scalar(other) => {
                    out.scalar
                        .insert(other.to_owned(), clamp(quantity::value(text)));
                }
                _ => {}
            }
        }
        out
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (name, amount) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() += amount;
        }
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (name, amount) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() -= amount;
        }
    }

    /// Each resource at the larger of the two amounts.
    fn raise_to(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, amount) in &other.scalar {
            let mine = self.scalar.entry(name.clone()).or_default();
            *mine = (*mine).max(*amount);
        }
    }

    /// The scalar resource `name`, 0 when absent.
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or_default()
    }
}

/// Extended resources (a domain outside `kubernetes.io/`) and hugepages.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-") || (name.contains('/') && !name.contains("kubernetes.io/"))
}

fn clamp(value: Option<i128>) -> i64 {
    value
        .unwrap_or_default()
        .clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// What a pod asks of its node, as kube-scheduler computes it: app containers
/// and sidecars (restartable init containers) run together; each ordinary
/// init container runs alone beside the sidecars started before it; the
/// pod needs the larger of the two, plus its overhead.
pub fn pod_requests(spec: &PodSpec) -> Resources {
    let mut total = Resources::default();
    for container in &spec.containers {
        total.add(&container_requests(container));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let requests = container_requests(container);
        if container.restart_policy.as_deref() == Some("Always") {
            total.add(&requests);
            sidecars.add(&requests);
            init_peak.raise_to(&sidecars);
        } else {
            let mut alone = sidecars.clone();
            alone.add(&requests);
            init_peak.raise_to(&alone);
        }
    }
    total.raise_to(&init_peak);
    total.add(&Resources::from_map(spec.overhead.as_ref()));
    total
}

fn container_requests(container: &Container) -> Resources {
    Resources::from_map(
        container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref()),
    )
}

/// What a node offers pods: `status.allocatable`, or its capacity when it
/// reports no allocatable; and how many pods it takes.
pub fn node_allocatable(node: &Node) -> (Resources, i64) {
    let status = node.status.as_ref();
    let map = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    let pods = map
        .and_then(|m| m.get("pods"))
        .map_or(0, |q| clamp(quantity::value(&q.0)));
    (Resources::from_map(map), pods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).expect("a pod spec")
    }

    #[test]
    fn init_containers_run_alone_and_sidecars_add_up() {
        let spec = spec(json!({
            "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
            "initContainers": [
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "1", "example.com/gpu": "2"}}},
            ],
        }));
        let requests = pod_requests(&spec);
        assert_eq!(requests.milli_cpu, 1100);
        assert_eq!(requests.memory, 1 << 30);
        assert_eq!(requests.scalar("example.com/gpu"), 2);
    }
}
