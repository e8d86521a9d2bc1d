//! Simulated nodes: Node objects with the capacity, labels, taints and
//! conditions a test asks for, and a Lease in `kube-node-lease` renewed
//! every few seconds from a thread, as a live kubelet's would be, until the
//! node is dropped or told to stop (a node lost). No pod runs on them: with
//! `tug server --disable-agent` they are what the scheduler and the node
//! lifecycle controller see.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use super::{KUBECTL, Server};

/// How often the lease is renewed (the kubelet renews every 10 s; the
/// lease lasts 40 s).
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// What a simulated node is made with; `SimulatedNode::start` makes it.
#[derive(Clone)]
pub struct NodeSpec {
    name: String,
    labels: Vec<(String, String)>,
    taints: Vec<Value>,
    unschedulable: bool,
    /// `status.capacity` and `status.allocatable` (the same here).
    resources: Vec<(String, String)>,
    images: Vec<Value>,
    /// The Ready condition's status: "True", "False" or "Unknown".
    ready: String,
}

impl NodeSpec {
    /// A Ready node with 4 cpus, 8 GiB of memory, 100 GiB of ephemeral
    /// storage, room for 110 pods, and the well-known labels.
    pub fn new(name: &str) -> NodeSpec {
        NodeSpec {
            name: name.to_owned(),
            labels: vec![
                ("kubernetes.io/hostname".into(), name.into()),
                ("kubernetes.io/os".into(), "linux".into()),
                ("kubernetes.io/arch".into(), "amd64".into()),
            ],
            taints: Vec::new(),
            unschedulable: false,
            resources: vec![
                ("cpu".into(), "4".into()),
                ("memory".into(), "8Gi".into()),
                ("ephemeral-storage".into(), "100Gi".into()),
                ("pods".into(), "110".into()),
            ],
            images: Vec::new(),
            ready: "True".into(),
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> NodeSpec {
        self.labels.retain(|(k, _)| k != key);
        self.labels.push((key.into(), value.into()));
        self
    }

    /// A taint; `effect` is NoSchedule, PreferNoSchedule or NoExecute.
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> NodeSpec {
        let mut taint = json!({"key": key, "effect": effect});
        if !value.is_empty() {
            taint["value"] = value.into();
        }
        self.taints.push(taint);
        self
    }

    /// Cordoned, as `kubectl cordon` leaves it.
    pub fn unschedulable(mut self) -> NodeSpec {
        self.unschedulable = true;
        self
    }

    /// Sets one resource's capacity and allocatable (`cpu`, `memory`,
    /// `pods`, `example.com/gpu`...).
    pub fn resource(mut self, name: &str, amount: &str) -> NodeSpec {
        self.resources.retain(|(n, _)| n != name);
        self.resources.push((name.into(), amount.into()));
        self
    }

    /// An image the node holds (`status.images`), under `names`.
    pub fn image(mut self, names: &[&str], size_bytes: i64) -> NodeSpec {
        self.images
            .push(json!({"names": names, "sizeBytes": size_bytes}));
        self
    }

    /// The Ready condition's status ("True", "False", "Unknown").
    pub fn ready(mut self, status: &str) -> NodeSpec {
        self.ready = status.into();
        self
    }

    fn object(&self) -> Value {
        let labels: serde_json::Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let resources: serde_json::Map<String, Value> = self
            .resources
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let now = now();
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {"taints": self.taints, "unschedulable": self.unschedulable},
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [{
                    "type": "Ready",
                    "status": self.ready,
                    "reason": if self.ready == "True" { "KubeletReady" } else { "KubeletNotReady" },
                    "message": "simulated node",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }],
                "images": self.images,
                "addresses": [{"type": "Hostname", "address": self.name}],
                "nodeInfo": {
                    "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "simulated",
                    "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "v1.33.0",
                    "machineID": "", "operatingSystem": "linux", "osImage": "simulated", "systemUUID": "",
                },
            },
        })
    }
}

/// A node that exists while this lives; its lease is renewed until
/// [`SimulatedNode::stop_lease`] or drop.
pub struct SimulatedNode {
    name: String,
    renewing: Arc<AtomicBool>,
    renewer: Option<JoinHandle<()>>,
}

impl SimulatedNode {
    /// Creates the Node and its Lease on `server` and starts renewing it.
    pub fn start(server: &Server, spec: NodeSpec) -> SimulatedNode {
        server
            .kubectl_stdin(&["create", "-f", "-"], &spec.object().to_string())
            .ok();
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": spec.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": spec.name, "leaseDurationSeconds": 40, "renewTime": now()},
        });
        server
            .kubectl_stdin(&["create", "-f", "-"], &lease.to_string())
            .ok();
        let renewing = Arc::new(AtomicBool::new(true));
        let renewer = {
            let (name, renewing) = (spec.name.clone(), renewing.clone());
            let kubeconfig = server.kubeconfig();
            std::thread::spawn(move || renew(&kubeconfig, &name, &renewing))
        };
        SimulatedNode {
            name: spec.name,
            renewing,
            renewer: Some(renewer),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops renewing the lease, as a node that lost power or network.
    pub fn stop_lease(&mut self) {
        self.renewing.store(false, Ordering::SeqCst);
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
    }
}

impl Drop for SimulatedNode {
    fn drop(&mut self) {
        self.stop_lease();
    }
}

/// A Node with no kubelet behind it, for pods a test binds to it by name
/// (a pod bound to a node that does not exist is deleted by the pod
/// garbage collector); unschedulable, so nothing else lands there.
pub fn node_without_kubelet(server: &Server, name: &str) {
    let node = NodeSpec::new(name).unschedulable().object();
    server
        .kubectl_stdin(&["apply", "-f", "-"], &node.to_string())
        .ok();
}

/// Starts `count` nodes named `{prefix}-1`..., each from `spec` under its own name.
pub fn start_nodes(
    server: &Server,
    prefix: &str,
    count: usize,
    spec: impl Fn(&str) -> NodeSpec,
) -> Vec<SimulatedNode> {
    (1..=count)
        .map(|i| SimulatedNode::start(server, spec(&format!("{prefix}-{i}"))))
        .collect()
}

fn renew(kubeconfig: &PathBuf, name: &str, renewing: &AtomicBool) {
    let step = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    while renewing.load(Ordering::SeqCst) {
        if waited >= RENEW_EVERY {
            waited = Duration::ZERO;
            let patch = json!({"spec": {"renewTime": now()}}).to_string();
            // A failed renewal is what a flaky node does; the next one may work.
            let _ = Command::new(KUBECTL)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args([
                    "patch",
                    "lease",
                    name,
                    "-n",
                    "kube-node-lease",
                    "--type=merge",
                    "-p",
                    &patch,
                ])
                .output();
        }
        std::thread::sleep(step);
        waited += step;
    }
}

/// Now as a MicroTime (`2026-01-02T03:04:05.000000Z`).
fn now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
