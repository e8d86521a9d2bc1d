//! The scheduler's picture of the cluster: every node with the pods bound
//! to it and what they request, kept from the watches. Pods the scheduler
//! has chosen a node for but whose binding is not yet seen are "assumed"
//! on that node, so the next pod does not take the same room. It also
//! keeps which nodes hold each controller's pods, pods with affinity terms
//! and each image, so an attempt looks at those nodes alone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::filters::taints::node_taints;
use crate::pod::PodInfo;
use crate::resources::{Resources, node_allocatable};
use crate::scores::node_images;

#[derive(Clone)]
pub struct NodeInfo {
    /// Tells nodes apart in per-attempt tables without hashing their
    /// names; never reused while the scheduler runs.
    pub id: u64,
    /// `None` while pods name a node the watch has not shown (or no longer shows).
    pub node: Option<Arc<Node>>,
    /// Cordoned (`spec.unschedulable`), and the node's taints with the
    /// readiness taint it is due: read for every node an attempt looks
    /// at, so kept here rather than looked up in the Node each time.
    pub cordoned: bool,
    pub taints: Vec<Taint>,
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
    /// The node's images by normalized name, with their sizes.
    pub images: HashMap<String, i64>,
}

impl NodeInfo {
    fn empty(id: u64) -> NodeInfo {
        NodeInfo {
            id,
            node: None,
            cordoned: false,
            taints: Vec::new(),
            allocatable: Resources::default(),
            allowed_pods: 0,
            pods: BTreeMap::new(),
            pods_with_anti_affinity: BTreeSet::new(),
            pods_with_affinity: BTreeSet::new(),
            by_controller: HashMap::new(),
            requested: Resources::default(),
            scoring_requested: (0, 0),
            images: HashMap::new(),
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

    /// Takes the pod off the node; returns it if it was there.
    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        self.pods_with_anti_affinity.remove(key);
        self.pods_with_affinity.remove(key);
        let old = self.pods.remove(key)?;
        self.forget_requests(&old);
        Some(old)
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
    /// The id the next new node entry gets.
    next_id: u64,
    placements: HashMap<String, Placement>,
    /// The names of the nodes holding a pod with pod affinity or
    /// anti-affinity, the only ones inter-pod affinity must look at for an
    /// incoming pod with no terms of its own.
    with_pod_affinity: BTreeSet<String>,
    /// The names of the nodes holding pods of each controller (by uid), the
    /// only ones spreading its pods must count.
    with_controller: HashMap<String, BTreeSet<String>>,
    /// How many nodes pods can go to, and how many of them hold each image
    /// (by normalized name), so image locality looks at no node but those
    /// it scores.
    node_count: i64,
    image_holders: HashMap<String, i64>,
    /// Preemptors and the node their victims are leaving, by pod key: the
    /// room is theirs, not a lower-priority pod's that comes first.
    nominated: HashMap<String, (String, Arc<PodInfo>)>,
}

impl Cache {
    /// A node added or changed; true when the change may let pods fit
    /// that did not (not a mere heartbeat).
    pub fn set_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = Self::entry(&mut self.nodes, &mut self.next_id, name);
        let changed = info
            .node
            .as_deref()
            .is_none_or(|old| scheduling_view(old) != scheduling_view(&node));
        (info.allocatable, info.allowed_pods) = node_allocatable(&node);
        if info.node.is_some() {
            count_images(&mut self.image_holders, &info.images, -1);
        } else {
            self.node_count += 1;
        }
        info.images = node_images(&node);
        count_images(&mut self.image_holders, &info.images, 1);
        info.cordoned = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        info.taints = node_taints(&node);
        info.node = Some(Arc::new(node));
        changed
    }

    /// The entry of the node `name`, made with a new id if there is none.
    fn entry<'a>(
        nodes: &'a mut BTreeMap<String, NodeInfo>,
        next_id: &mut u64,
        name: String,
    ) -> &'a mut NodeInfo {
        nodes.entry(name).or_insert_with(|| {
            *next_id += 1;
            NodeInfo::empty(*next_id)
        })
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(info) = self.nodes.get_mut(name) else {
            return;
        };
        if info.node.is_some() {
            count_images(&mut self.image_holders, &info.images, -1);
            self.node_count -= 1;
        }
        if info.pods.is_empty() {
            self.nodes.remove(name);
        } else {
            info.node = None;
        }
    }

    /// How many nodes pods can go to.
    pub fn node_count(&self) -> i64 {
        self.node_count
    }

    /// How many of the nodes pods can go to hold the image of this
    /// normalized name.
    pub fn image_holders(&self, normalized: &str) -> i64 {
        self.image_holders.get(normalized).copied().unwrap_or(0)
    }

    /// The nodes pods can go to, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.values().filter(|n| n.node.is_some())
    }

    /// The nodes pods can go to, in name order from the first named `from`
    /// or after, then round from the start.
    pub fn nodes_from<'a>(&'a self, from: &str) -> impl Iterator<Item = &'a NodeInfo> + use<'a> {
        let after = self
            .nodes
            .range::<str, _>((Bound::Included(from), Bound::Unbounded));
        let before = self
            .nodes
            .range::<str, _>((Bound::Unbounded, Bound::Excluded(from)));
        after
            .chain(before)
            .map(|(_, n)| n)
            .filter(|n| n.node.is_some())
    }

    /// The nodes inter-pod affinity looks at for an incoming pod: every
    /// node when the pod has terms of its own (`own_terms`), else only
    /// those holding a pod with terms, as only their terms can matter.
    pub fn nodes_for_pod_affinity(
        &self,
        own_terms: bool,
    ) -> Box<dyn Iterator<Item = &NodeInfo> + '_> {
        if own_terms {
            return Box::new(self.nodes());
        }
        Box::new(self.named(&self.with_pod_affinity))
    }

    /// The nodes pods can go to that hold pods of the controller `uid`.
    pub fn nodes_with_controller(&self, uid: &str) -> impl Iterator<Item = &NodeInfo> {
        self.with_controller
            .get(uid)
            .into_iter()
            .flat_map(|names| self.named(names))
    }

    /// The nodes of these names that pods can go to.
    fn named<'a>(&'a self, names: &'a BTreeSet<String>) -> impl Iterator<Item = &'a NodeInfo> {
        names
            .iter()
            .filter_map(|name| self.nodes.get(name))
            .filter(|n| n.node.is_some())
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
        if self.nominated.is_empty() {
            return std::borrow::Cow::Borrowed(node);
        }
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
        if pod.has_pod_affinity() {
            self.with_pod_affinity.insert(node.to_owned());
        }
        if let Some(uid) = pod.controller_uid() {
            self.with_controller
                .entry(uid.to_owned())
                .or_default()
                .insert(node.to_owned());
        }
        Self::entry(&mut self.nodes, &mut self.next_id, node.to_owned()).add_pod(pod);
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
            let removed = info.remove_pod(key);
            if info.pods_with_affinity.is_empty() {
                self.with_pod_affinity.remove(&placement.node);
            }
            let controller = removed.as_deref().and_then(PodInfo::controller_uid);
            if let Some(uid) = controller
                && !info.by_controller.contains_key(uid)
                && let Some(names) = self.with_controller.get_mut(uid)
            {
                names.remove(&placement.node);
                if names.is_empty() {
                    self.with_controller.remove(uid);
                }
            }
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

/// Adds `by` to the holder count of each of `images`.
fn count_images(holders: &mut HashMap<String, i64>, images: &HashMap<String, i64>, by: i64) {
    for name in images.keys() {
        let count = holders.entry(name.clone()).or_default();
        *count += by;
        if *count == 0 {
            holders.remove(name);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_nodes_holding_a_controllers_pods_or_affinity_terms_follow_the_pods() {
        let mut cache = Cache::default();
        for name in ["a", "b", "c"] {
            let node = json!({"metadata": {"name": name}});
            cache.set_node(serde_json::from_value(node).expect("a node"));
        }
        cache.assume(pod("web-1", "rs-web", false), "a");
        cache.set_pod(pod("web-2", "rs-web", true), "b");
        cache.set_pod(pod("db-1", "rs-db", false), "b");
        assert_eq!(names(cache.nodes_with_controller("rs-web")), ["a", "b"]);
        assert_eq!(names(cache.nodes_for_pod_affinity(false)), ["b"]);
        assert_eq!(names(cache.nodes_for_pod_affinity(true)), ["a", "b", "c"]);

        cache.remove_pod("default/web-2");
        assert_eq!(names(cache.nodes_with_controller("rs-web")), ["a"]);
        assert!(names(cache.nodes_for_pod_affinity(false)).is_empty());
        cache.forget("default/web-1");
        assert!(names(cache.nodes_with_controller("rs-web")).is_empty());

        cache.set_pod(pod("db-1", "rs-db", false), "c");
        assert_eq!(names(cache.nodes_with_controller("rs-db")), ["c"]);
        cache.remove_node("c");
        assert!(names(cache.nodes_with_controller("rs-db")).is_empty());
    }

    #[test]
    fn image_holders_follow_the_nodes() {
        let mut cache = Cache::default();
        let busybox = "docker.io/library/busybox:latest";
        cache.set_node(node_with_images("a", &["busybox"]));
        cache.set_node(node_with_images("b", &[busybox, "nginx:1.27"]));
        assert_eq!(cache.node_count(), 2);
        assert_eq!(cache.image_holders(busybox), 2);

        cache.set_node(node_with_images("b", &["nginx:1.27"]));
        assert_eq!(cache.image_holders(busybox), 1);
        assert_eq!(cache.image_holders("docker.io/library/nginx:1.27"), 1);
        cache.remove_node("a");
        assert_eq!(cache.node_count(), 1);
        assert_eq!(cache.image_holders(busybox), 0);
    }

    fn node_with_images(name: &str, images: &[&str]) -> Node {
        let images: Vec<_> = images
            .iter()
            .map(|image| json!({"names": [image], "sizeBytes": 100 << 20}))
            .collect();
        let node = json!({"metadata": {"name": name}, "status": {"images": images}});
        serde_json::from_value(node).expect("a node")
    }

    fn pod(name: &str, controller: &str, anti_affinity: bool) -> Arc<PodInfo> {
        let affinity = anti_affinity.then(|| {
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "kubernetes.io/hostname",
            }]}})
        });
        let pod = json!({
            "metadata": {"name": name, "namespace": "default", "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": controller,
                "uid": controller, "controller": true,
            }]},
            "spec": {"containers": [{"name": "app"}], "affinity": affinity},
        });
        Arc::new(PodInfo::new(serde_json::from_value(pod).expect("a pod")))
    }

    fn names<'a>(nodes: impl Iterator<Item = &'a NodeInfo>) -> Vec<&'a str> {
        nodes.map(NodeInfo::name).collect()
    }
}
