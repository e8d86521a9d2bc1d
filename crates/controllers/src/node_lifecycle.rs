//! The node lifecycle controller, as kube-controller-manager's: a node
//! whose kubelet stops renewing its Lease (and posting its status) for the
//! grace period (`--node-monitor-grace-period`, 40 s) has its conditions
//! set to Unknown and its pods marked not Ready; nodes not Ready get the
//! `node.kubernetes.io/not-ready` or `unreachable` taints (NoSchedule and
//! NoExecute); and pods on a node with NoExecute taints are evicted
//! (deleted) once their tolerations run out, so that their controllers
//! replace them elsewhere (the taint eviction controller). Pressure
//! conditions and cordoning become NoSchedule taints too
//! (TaintNodesByCondition), which is what `kubectl describe node` shows and
//! what a pod must tolerate to land there.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tugboat_events::{Recorder, Type};

use crate::placement::tolerates;

/// How often every node is looked at (`--node-monitor-period`).
const PERIOD: Duration = Duration::from_secs(5);
/// The conditions a silent node's kubelet can no longer vouch for.
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taints this controller keeps in step with the node's conditions:
/// each with the condition type and status that call for it.
const CONDITION_TAINTS: [(&str, &str, &str, &str); 8] = [
    ("Ready", "False", NOT_READY, "NoSchedule"),
    ("Ready", "False", NOT_READY, "NoExecute"),
    ("Ready", "Unknown", UNREACHABLE, "NoSchedule"),
    ("Ready", "Unknown", UNREACHABLE, "NoExecute"),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
        "NoSchedule",
    ),
    (
        "DiskPressure",
        "True",
        "node.kubernetes.io/disk-pressure",
        "NoSchedule",
    ),
    (
        "PIDPressure",
        "True",
        "node.kubernetes.io/pid-pressure",
        "NoSchedule",
    ),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
        "NoSchedule",
    ),
];
/// The taint of a cordoned node (`spec.unschedulable`).
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub async fn run(client: Client, grace: Duration) -> anyhow::Result<()> {
    let mut monitor = Monitor {
        client: client.clone(),
        nodes: Api::all(client.clone()),
        leases: Api::namespaced(client.clone(), "kube-node-lease"),
        pods: Api::all(client.clone()),
        grace,
        heard: HashMap::new(),
        tainted_since: HashMap::new(),
        node_events: Recorder::new(client.clone(), "node-controller", None),
        eviction_events: Recorder::new(client, "taint-eviction-controller", None),
    };
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        if let Err(e) = monitor.pass().await {
            tracing::warn!("node lifecycle controller: {e}");
        }
    }
}

struct Monitor {
    client: Client,
    nodes: Api<Node>,
    leases: Api<Lease>,
    pods: Api<Pod>,
    grace: Duration,
    /// Per node: the last heartbeat seen (Lease renewal and Ready
    /// heartbeat) and when this controller saw it change. Judging by our
    /// own clock, as Kubernetes does, keeps a skewed node clock harmless.
    heard: HashMap<String, (String, Instant)>,
    /// Per node: since when it has had NoExecute taints without `timeAdded`.
    tainted_since: HashMap<String, Timestamp>,
    node_events: Recorder,
    eviction_events: Recorder,
}

impl Monitor {
    async fn pass(&mut self) -> kube::Result<()> {
        let nodes = self.nodes.list(&ListParams::default()).await?.items;
        let leases = self.leases.list(&ListParams::default()).await?.items;
        self.heard
            .retain(|name, _| nodes.iter().any(|n| n.name_any() == *name));
        self.tainted_since
            .retain(|name, _| nodes.iter().any(|n| n.name_any() == *name));
        for node in nodes {
            let lease = leases.iter().find(|l| l.name_any() == node.name_any());
            let node = self.check_health(node, lease).await?;
            let node = self.taint(node).await?;
            self.evict(&node).await?;
        }
        Ok(())
    }

    /// Marks the node's conditions Unknown once nothing was heard from its
    /// kubelet for the grace period; returns the node as it now is.
    async fn check_health(&mut self, node: Node, lease: Option<&Lease>) -> kube::Result<Node> {
        let name = node.name_any();
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let heartbeat = format!(
            "{:?}/{:?}",
            lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref()),
            ready(&conditions).and_then(|c| c.last_heartbeat_time.as_ref()),
        );
        let now = Instant::now();
        let heard = self
            .heard
            .entry(name.clone())
            .or_insert_with(|| (heartbeat.clone(), now));
        if heard.0 != heartbeat {
            *heard = (heartbeat, now);
        }
        let silent = now.duration_since(heard.1) > self.grace;
        let already_unknown = ready(&conditions).is_some_and(|c| c.status == "Unknown");
        if !silent || already_unknown {
            return Ok(node);
        }
        let stamp = Time(Timestamp::now());
        let mut updated: Vec<NodeCondition> = conditions
            .iter()
            .filter(|c| !WATCHED_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect();
        for type_ in WATCHED_CONDITIONS {
            let old = conditions.iter().find(|c| c.type_ == type_);
            let (reason, message) = if old.is_some() {
                ("NodeStatusUnknown", "Kubelet stopped posting node status.")
            } else {
                (
                    "NodeStatusNeverUpdated",
                    "Kubelet never posted node status.",
                )
            };
            updated.push(NodeCondition {
                type_: type_.to_owned(),
                status: "Unknown".to_owned(),
                reason: Some(reason.to_owned()),
                message: Some(message.to_owned()),
                last_heartbeat_time: old.and_then(|c| c.last_heartbeat_time.clone()),
                last_transition_time: Some(stamp.clone()),
            });
        }
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "status": {"conditions": updated},
        });
        let node = self
            .nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        tracing::info!(
            node = name,
            "node lifecycle: no heartbeat for {:?}; NotReady",
            self.grace
        );
        self.node_events
            .record(
                &node,
                Type::Normal,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            )
            .await;
        self.mark_pods_not_ready(&name).await?;
        Ok(node)
    }

    /// Nobody can vouch for the pods of a silent node: their Ready
    /// condition turns False, so Services stop sending them traffic.
    async fn mark_pods_not_ready(&self, node: &str) -> kube::Result<()> {
        let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
        for pod in self.pods.list(&on_node).await?.items {
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            if ready.is_none_or(|c| c.status != "True") {
                continue;
            }
            let patch = json!({"status": {"conditions": [{
                "type": "Ready",
                "status": "False",
                "lastTransitionTime": Time(Timestamp::now()),
            }]}});
            let api: Api<Pod> =
                Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            match api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Gives the node the taints its conditions and spec call for
    /// (not-ready for Ready False, unreachable for Unknown, each NoSchedule
    /// so no new pod goes there and NoExecute so its pods leave; NoSchedule
    /// for pressure and for cordoning) and drops those no longer called for.
    async fn taint(&self, node: Node) -> kube::Result<Node> {
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let wanted = wanted_taints(&node);
        let mut updated: Vec<Taint> = taints
            .iter()
            .filter(|t| !managed(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str())))
            .cloned()
            .collect();
        for (key, effect) in wanted {
            if !updated.iter().any(|t| t.key == key && t.effect == effect) {
                updated.push(Taint {
                    key: key.to_owned(),
                    effect: effect.to_owned(),
                    // Eviction counts from when a NoExecute taint came.
                    time_added: (effect == "NoExecute").then(|| Time(Timestamp::now())),
                    value: None,
                });
            }
        }
        if updated == taints {
            return Ok(node);
        }
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": updated},
        });
        self.nodes
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
    }

    /// Deletes the pods on the node that do not tolerate its NoExecute
    /// taints, or whose tolerations of them have run out.
    async fn evict(&mut self, node: &Node) -> kube::Result<()> {
        let name = node.name_any();
        let taints: Vec<&Taint> = node
            .spec
            .iter()
            .flat_map(|s| s.taints.iter().flatten())
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if taints.is_empty() {
            self.tainted_since.remove(&name);
            return Ok(());
        }
        let since = taints
            .iter()
            .filter_map(|t| t.time_added.as_ref().map(|t| t.0))
            .min()
            .unwrap_or_else(|| {
                *self
                    .tainted_since
                    .entry(name.clone())
                    .or_insert_with(Timestamp::now)
            });
        let on_node = ListParams::default().fields(&format!("spec.nodeName={name}"));
        for pod in self.pods.list(&on_node).await?.items {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default();
            let due = match toleration_time(tolerations, &taints) {
                None => continue,
                Some(seconds) => since + jiff::SignedDuration::from_secs(seconds),
            };
            if Timestamp::now() < due {
                continue;
            }
            let namespace = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            self.eviction_events
                .record(
                    &pod,
                    Type::Normal,
                    "TaintManagerEviction",
                    format!("Marking for deletion Pod {namespace}/{}", pod.name_any()),
                )
                .await;
            match api.delete(&pod.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn ready(conditions: &[NodeCondition]) -> Option<&NodeCondition> {
    conditions.iter().find(|c| c.type_ == "Ready")
}

/// The (key, effect) of each taint the node's conditions and spec call for.
fn wanted_taints(node: &Node) -> Vec<(&'static str, &'static str)> {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut wanted: Vec<(&str, &str)> = CONDITION_TAINTS
        .iter()
        .filter(|(type_, status, ..)| {
            conditions
                .iter()
                .any(|c| c.type_ == *type_ && c.status == *status)
        })
        .map(|&(_, _, key, effect)| (key, effect))
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((UNSCHEDULABLE, "NoSchedule"));
    }
    wanted
}

/// Whether this controller sets and removes `taint`; others' are left be.
fn managed(taint: &Taint) -> bool {
    let (key, effect) = (taint.key.as_str(), taint.effect.as_str());
    (key == UNSCHEDULABLE && effect == "NoSchedule")
        || CONDITION_TAINTS
            .iter()
            .any(|&(_, _, k, e)| k == key && e == effect)
}

/// Seconds a pod may stay on a node with `taints`, as the taint eviction
/// controller reckons it: 0 when a taint is not tolerated, else the least
/// `tolerationSeconds` of the tolerations that match; `None` (forever) when
/// none of those sets a limit.
fn toleration_time(tolerations: &[Toleration], taints: &[&Taint]) -> Option<i64> {
    let mut least: Option<i64> = None;
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(0);
        }
        for seconds in matching.iter().filter_map(|t| t.toleration_seconds) {
            least = Some(least.map_or(seconds, |l| l.min(seconds)).max(0));
        }
    }
    least
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.to_owned(),
            effect: "NoExecute".to_owned(),
            ..Taint::default()
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.to_owned()),
            operator: Some("Exists".to_owned()),
            effect: Some("NoExecute".to_owned()),
            toleration_seconds: seconds,
            ..Toleration::default()
        }
    }

    fn node(conditions: &[(&str, &str)], unschedulable: bool) -> Node {
        let conditions = conditions
            .iter()
            .map(|(type_, status)| json!({"type": type_, "status": status}))
            .collect::<Vec<_>>();
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn conditions_and_cordoning_call_for_their_taints_only() {
        let pressed = node(
            &[
                ("Ready", "True"),
                ("MemoryPressure", "True"),
                ("PIDPressure", "False"),
            ],
            true,
        );
        assert_eq!(
            wanted_taints(&pressed),
            [
                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                (UNSCHEDULABLE, "NoSchedule"),
            ]
        );
        let silent = node(&[("Ready", "Unknown"), ("DiskPressure", "Unknown")], false);
        assert_eq!(
            wanted_taints(&silent),
            [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
        );
        let user_taint = Taint {
            key: "node.kubernetes.io/memory-pressure".to_owned(),
            effect: "NoExecute".to_owned(),
            ..Taint::default()
        };
        assert!(!managed(&user_taint));
    }

    #[test]
    fn an_untolerated_taint_evicts_at_once() {
        let unreachable = taint(UNREACHABLE);
        let other = taint("example.com/other");
        let tolerations = [toleration(UNREACHABLE, Some(300))];
        assert_eq!(
            toleration_time(&tolerations, &[&unreachable, &other]),
            Some(0)
        );
    }

    #[test]
    fn the_least_toleration_seconds_count_and_none_means_forever() {
        let unreachable = taint(UNREACHABLE);
        let not_ready = taint(NOT_READY);
        let tolerations = [
            toleration(UNREACHABLE, Some(300)),
            toleration(NOT_READY, Some(5)),
        ];
        assert_eq!(
            toleration_time(&tolerations, &[&unreachable, &not_ready]),
            Some(5)
        );
        assert_eq!(
            toleration_time(&[toleration(UNREACHABLE, None)], &[&unreachable]),
            None
        );
    }
}
