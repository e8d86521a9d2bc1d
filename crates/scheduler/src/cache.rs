//! The scheduler's picture of the cluster: every node with the pods bound
//! to it and what they request, kept from the watches. Pods the scheduler
//! has chosen a node for but whose binding is not yet seen are "assumed"
//! on that node, so the next pod does not take the same room.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::pod::PodInfo;
use crate::resources::{Resources, node_allocatable};

#[derive(Clone)]
pub struct NodeInfo {
    /// `None` while pods name a node the watch has not shown (or no longer shows).
    pub node: Option<Arc<Node>>,
    pub allocatable: Resources,
    /// How many pods the node takes.
    pub allowed_pods: i64,
    pub pods: BTreeMap<String, Arc<PodInfo>>,
    /// The keys of those with required anti-affinity terms, which every
    /// incoming pod must be checked against.
    pub pods_with_anti_affinity: BTreeSet<String>,
    /// The keys of those with any pod affinity or anti-affinity, which
    /// scores read even for an incoming pod with no terms of its own.
    pub pods_with_affinity: BTreeSet<String>,
    /// How many of `pods` each controller (by uid) has here, for spreading
    /// a controller's pods without looking at every pod.
    pub by_controller: HashMap<String, i64>,
    /// The sum of the requests of `pods`.
    pub requested: Resources,
    /// The sum of their requests as scores count them (cpu, memory).
    pub scoring_requested: (i64, i64),
}

impl NodeInfo {
    fn empty() -> NodeInfo {
        NodeInfo {
            node: None,
            allocatable: Resources::default(),
            allowed_pods: 0,
            pods: BTreeMap::new(),
            pods_with_anti_affinity: BTreeSet::new(),
            pods_with_affinity: BTreeSet::new(),
            by_controller: HashMap::new(),
            requested: Resources::default(),
            scoring_requested: (0, 0),
        }
    }

    pub fn name(&self) -> &str {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The Node; only nodes the watch shows are handed to filters and scores.
    pub fn object(&self) -> &Node {
        self.node.as_deref().expect("a node the watch shows")
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.scoring_requested.0 += pod.scoring_requests.0;
        self.scoring_requested.1 += pod.scoring_requests.1;
        if !pod.required_terms().1.is_empty() {
            self.pods_with_anti_affinity.insert(pod.key.clone());
        }
        if pod.has_pod_affinity() {
            self.pods_with_affinity.insert(pod.key.clone());
        }
        if let Some(uid) = pod.controller_uid() {
            *self.by_controller.entry(uid.to_owned()).or_default() += 1;
        }
        if let Some(old) = self.pods.insert(pod.key.clone(), pod) {
            self.forget_requests(&old);
        }
    }

    pub fn remove_pod(&mut self, key: &str) {
        self.pods_with_anti_affinity.remove(key);
        self.pods_with_affinity.remove(key);
        if let Some(old) = self.pods.remove(key) {
            self.forget_requests(&old);
        }
    }

    fn forget_requests(&mut self, pod: &PodInfo) {
        if let Some(uid) = pod.controller_uid()
            && let Some(count) = self.by_controller.get_mut(uid)
        {
            *count -= 1;
            if *count == 0 {
                self.by_controller.remove(uid);
            }
        }
        self.requested.subtract(&pod.requests);
        self.scoring_requested.0 -= pod.scoring_requests.0;
        self.scoring_requested.1 -= pod.scoring_requests.1;
    }
}

struct Placement {
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    placements: HashMap<String, Placement>,
    /// Preemptors and the node their victims are leaving, by pod key: the
    /// room is theirs, not a lower-priority pod's that comes first.
    nominated: HashMap<String, (String, Arc<PodInfo>)>,
}

impl Cache {
    /// A node added or changed; true when the change may let pods fit
    /// that did not (not a mere heartbeat).
    pub fn set_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = self.nodes.entry(name).or_insert_with(NodeInfo::empty);
        let changed = info
            .node
            .as_deref()
            .is_none_or(|old| scheduling_view(old) != scheduling_view(&node));
        (info.allocatable, info.allowed_pods) = node_allocatable(&node);
        info.node = Some(Arc::new(node));
        changed
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(info) = self.nodes.get_mut(name) else {
            return;
        };
        if info.pods.is_empty() {
            self.nodes.remove(name);
        } else {
            info.node = None;
        }
    }

    /// The nodes pods can go to, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values().filter(|n| n.node.is_some())
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes().map(|n| n.name().to_owned()).collect()
    }

    /// A pod bound to a node (as the watch shows it), replacing what the
    /// cache held for it, assumed or not.
    /// True when the pod was not known bound before.
    pub fn set_pod(&mut self, pod: Arc<PodInfo>, node: &str) -> bool {
        let newly = self.placements.get(&pod.key).is_none_or(|p| p.assumed);
        self.place(pod, node, false);
        newly
    }

    /// A pod the scheduler has chosen `node` for, before its binding is seen.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.place(pod, node, true);
    }

    /// Holds room on `node` for a preemptor until it is placed or gone.
    pub fn nominate(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.nominated
            .insert(pod.key.clone(), (node.to_owned(), pod));
    }

    /// `node` as `pod` must see it: with the pods nominated to it that
    /// outrank or equal it (other than itself) counted as there.
    pub fn with_nominated<'a>(
        &self,
        pod: &PodInfo,
        node: &'a NodeInfo,
    ) -> std::borrow::Cow<'a, NodeInfo> {
        let claims: Vec<&Arc<PodInfo>> = self
            .nominated
            .iter()
            .filter(|(key, (on, other))| {
                **key != pod.key && on == node.name() && other.priority >= pod.priority
            })
            .map(|(_, (_, other))| other)
            .collect();
        if claims.is_empty() {
            return std::borrow::Cow::Borrowed(node);
        }
        let mut node = node.clone();
        for claim in claims {
            node.add_pod(claim.clone());
        }
        std::borrow::Cow::Owned(node)
    }

    fn place(&mut self, pod: Arc<PodInfo>, node: &str, assumed: bool) {
        self.remove_pod(&pod.key);
        self.placements.insert(
            pod.key.clone(),
            Placement {
                node: node.to_owned(),
                assumed,
            },
        );
        self.nodes
            .entry(node.to_owned())
            .or_insert_with(NodeInfo::empty)
            .add_pod(pod);
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.placements.get(key).is_some_and(|p| p.assumed)
    }

    /// Takes back an assumption whose binding failed.
    pub fn forget(&mut self, key: &str) {
        if self.is_assumed(key) {
            self.remove_pod(key);
        }
    }

    /// Forgets a pod; true if it was on a node.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        self.nominated.remove(key);
        let Some(placement) = self.placements.remove(key) else {
            return false;
        };
        if let Some(info) = self.nodes.get_mut(&placement.node) {
            info.remove_pod(key);
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(&placement.node);
            }
        }
        true
    }

    /// The keys of the pods the watch has shown bound (not merely assumed).
    pub fn bound_pod_keys(&self) -> Vec<String> {
        self.placements
            .iter()
            .filter(|(_, p)| !p.assumed)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// What of a node scheduling reads: labels, taints, cordon, allocatable,
/// readiness and images, without the heartbeat times that change every
/// few seconds.
fn scheduling_view(node: &Node) -> impl PartialEq + use<> {
    let spec = node.spec.clone().unwrap_or_default();
    let status = node.status.clone().unwrap_or_default();
    let conditions: Vec<(String, String)> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect();
    (
        node.metadata.labels.clone(),
        spec.taints,
        spec.unschedulable,
        status.allocatable,
        conditions,
        status.images,
    )
}
