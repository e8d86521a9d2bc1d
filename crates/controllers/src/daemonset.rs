//! The DaemonSet controller: one pod per eligible node, as
//! kube-controller-manager's daemon controller keeps them.
//!
//! A node is eligible when the pod template's nodeSelector and required node
//! affinity match it and its NoSchedule and NoExecute taints are tolerated
//! (by the template's tolerations plus those Kubernetes gives every daemon
//! pod). Pods are placed by the default scheduler: each carries a required
//! node affinity on `metadata.name` naming its node, as Kubernetes has done
//! since 1.12. Templates are kept as ControllerRevisions (`revisions`); a
//! RollingUpdate either deletes old pods first, at most `maxUnavailable`
//! nodes at a time, or with `maxSurge` starts the new pod beside the old one
//! on at most that many nodes at a time, deleting the old one once the new
//! one is available; OnDelete replaces pods only once the user deletes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tugboat_events::{Recorder, Type};

use crate::claim::claim;
use crate::placement::{node_selector_matches, tolerates};
use crate::pods;
use crate::revisions::{HASH_LABEL, History};
use crate::selector::Selector;

/// The deprecated label Kubernetes still puts on daemon pods.
const GENERATION_LABEL: &str = "pod-template-generation";

struct Context {
    client: Client,
    events: Recorder,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let daemon_sets: Api<DaemonSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    // Any node change may change where daemon pods belong.
    let node_changes = watcher(nodes, watcher::Config::default()).map(|_| ());
    let context = Arc::new(Context {
        events: Recorder::new(client.clone(), "daemonset-controller", None),
        client,
    });
    Controller::new(daemon_sets, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .reconcile_all_on(node_changes)
        .run(reconcile, retry, context)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn retry(_: Arc<DaemonSet>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!("DaemonSet controller: {error}");
    Action::requeue(Duration::from_secs(2))
}

/// Whether a node should get a daemon pod, and whether one already there
/// may stay (a NoSchedule taint keeps new pods off but leaves running ones).
#[derive(Clone, Copy, PartialEq, Debug)]
struct Eligibility {
    should_run: bool,
    should_continue: bool,
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let uid = ds.uid().unwrap_or_default();
    let spec = ds.spec.clone().unwrap_or_default();
    let selector = match Selector::new(Some(&spec.selector)) {
        Ok(selector) => selector,
        Err(e) => {
            tracing::warn!(namespace, name, "DaemonSet with a bad selector: {e}");
            return Ok(Action::await_change());
        }
    };
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    // Its pods, orphans it selects adopted and pods it no longer selects
    // released.
    let candidates = pod_api.list(&ListParams::default()).await?.items;
    let owned: Vec<Arc<Pod>> = claim(
        &ctx.client,
        &*ds,
        &selector,
        candidates.into_iter().map(Arc::new).collect(),
    )
    .await;

    let mut history = History::of(
        Api::<ControllerRevision>::namespaced(ctx.client.clone(), &namespace),
        &selector,
        &uid,
    )
    .await?;
    let status = ds.status.clone().unwrap_or_default();
    let current = history
        .current_of(&*ds, &spec.template, status.collision_count)
        .await?;
    // A template that came back keeps the hash its revision was made with.
    let current_hash = current
        .labels()
        .get(HASH_LABEL)
        .cloned()
        .unwrap_or_default();
    let owner = ds
        .controller_owner_ref(&())
        .expect("a stored DaemonSet has a uid");

    let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in &owned {
        if let Some(node) = node_of(pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    let template_spec = daemon_pod_spec(spec.template.spec.clone().unwrap_or_default());
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let is_updated = |p: &Pod| p.labels().get(HASH_LABEL) == Some(&current_hash);

    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let rolling = strategy
        .rolling_update
        .filter(|_| strategy.type_.as_deref() != Some("OnDelete"));
    let max_surge = rolling.as_ref().and_then(|r| r.max_surge.clone());
    // Whether a node may hold a new pod beside its old one during a rollout.
    let surging = scaled(max_surge.as_ref(), 1, 0) > 0;

    let mut to_create = Vec::new();
    let mut to_delete: Vec<&Pod> = Vec::new();
    let mut counts = Counts::default();
    // What nodes that should run a pod keep, for the rolling update.
    let mut kept_pods: Vec<(String, Kept)> = Vec::new();
    for node in &nodes {
        let node_name = node.name_any();
        let eligibility = eligibility(&template_spec, node);
        let on_node = by_node.remove(&node_name).unwrap_or_default();
        let (failed, mut active): (Vec<&Pod>, Vec<&Pod>) = on_node
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .partition(|p| phase(p) == Some("Failed"));
        for pod in failed {
            ctx.events
                .record(
                    &*ds,
                    Type::Warning,
                    "FailedDaemonPod",
                    format!(
                        "Found failed daemon pod {namespace}/{} on node {node_name}, will try to kill it",
                        pod.name_any()
                    ),
                )
                .await;
            to_delete.push(pod);
        }
        if eligibility.should_run {
            counts.desired += 1;
        }
        if !eligibility.should_continue {
            if !active.is_empty() {
                counts.misscheduled += 1;
            }
            to_delete.extend(active);
            continue;
        }
        if active.is_empty() {
            if eligibility.should_run {
                to_create.push(node_name);
            }
            continue;
        }
        active.sort_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0));
        let kept = if surging {
            Kept::surging(active, &is_updated, min_ready, now, &mut to_delete)
        } else {
            // Several pods on one node: keep the oldest, as Kubernetes does.
            to_delete.extend(active.drain(1..));
            Kept::one(active[0], &is_updated)
        };
        if !eligibility.should_run {
            // Tolerated to stay, not to be scheduled: not counted as desired.
            continue;
        }
        let pod = kept.oldest();
        counts.scheduled += 1;
        if pods::is_ready(pod) {
            counts.ready += 1;
        }
        if pods::is_available(pod, min_ready, now) {
            counts.available += 1;
        }
        if is_updated(pod) {
            counts.updated += 1;
        }
        kept_pods.push((node_name, kept));
    }
    // Pods on nodes that are gone.
    to_delete.extend(by_node.into_values().flatten());

    if let Some(rolling) = &rolling {
        let available = |p: &Pod| pods::is_available(p, min_ready, now);
        if surging {
            let max_surge = scaled(max_surge.as_ref(), counts.desired, 0);
            to_create.extend(surge_onto(&kept_pods, max_surge, available));
        } else {
            let max_unavailable =
                scaled(rolling.max_unavailable.as_ref(), counts.desired, 1).max(1);
            to_delete.extend(take_away(
                &kept_pods,
                max_unavailable,
                counts.desired - counts.available,
                available,
            ));
        }
    }

    for node_name in to_create {
        let pod = daemon_pod(
            &ds,
            &template_spec,
            &current_hash,
            &node_name,
            owner.clone(),
        );
        match pod_api.create(&PostParams::default(), &pod).await {
            Ok(made) => {
                ctx.events
                    .record(
                        &*ds,
                        Type::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", made.name_any()),
                    )
                    .await;
            }
            Err(e) => {
                ctx.events
                    .record(
                        &*ds,
                        Type::Warning,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    )
                    .await;
                return Err(e);
            }
        }
    }
    for pod in &to_delete {
        match pod_api
            .delete(&pod.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                ctx.events
                    .record(
                        &*ds,
                        Type::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", pod.name_any()),
                    )
                    .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }

    let in_use: Vec<String> = owned
        .iter()
        .filter_map(|p| p.labels().get(HASH_LABEL))
        .map(|h| format!("{name}-{h}"))
        .chain(current.metadata.name.clone())
        .collect();
    history
        .prune(spec.revision_history_limit.unwrap_or(10), &in_use)
        .await?;

    let status = json!({"status": {
        "observedGeneration": ds.metadata.generation,
        "desiredNumberScheduled": counts.desired,
        "currentNumberScheduled": counts.scheduled,
        "numberMisscheduled": counts.misscheduled,
        "numberReady": counts.ready,
        "updatedNumberScheduled": counts.updated,
        "numberAvailable": counts.available,
        "numberUnavailable": counts.desired - counts.available,
    }});
    Api::<DaemonSet>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;

    let settled = counts.available == counts.desired && counts.updated == counts.desired;
    Ok(if settled {
        Action::await_change()
    } else {
        // Readiness turning into availability after minReadySeconds is no
        // change of any object: look again soon.
        Action::requeue(Duration::from_secs(1))
    })
}

#[derive(Default)]
struct Counts {
    desired: i32,
    scheduled: i32,
    misscheduled: i32,
    ready: i32,
    available: i32,
    updated: i32,
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// The pods a node keeps. One, the oldest; or, while surging, the oldest
/// of the current revision beside the oldest of an older one.
struct Kept<'a> {
    updated: Option<&'a Pod>,
    old: Option<&'a Pod>,
}

impl<'a> Kept<'a> {
    fn one(pod: &'a Pod, is_updated: &impl Fn(&Pod) -> bool) -> Kept<'a> {
        if is_updated(pod) {
            Kept {
                updated: Some(pod),
                old: None,
            }
        } else {
            Kept {
                updated: None,
                old: Some(pod),
            }
        }
    }

    /// From a node's pods, oldest first: the old pod stays beside the new
    /// one only while it is ready and the new one not yet available (the
    /// daemon controller's rule); every other pod goes to `to_delete`.
    fn surging(
        pods: Vec<&'a Pod>,
        is_updated: &impl Fn(&Pod) -> bool,
        min_ready: i32,
        now: Timestamp,
        to_delete: &mut Vec<&'a Pod>,
    ) -> Kept<'a> {
        let mut kept = Kept {
            updated: None,
            old: None,
        };
        for pod in pods {
            let slot = if is_updated(pod) {
                &mut kept.updated
            } else {
                &mut kept.old
            };
            if slot.is_none() {
                *slot = Some(pod);
            } else {
                to_delete.push(pod);
            }
        }
        if let (Some(updated), Some(old)) = (kept.updated, kept.old)
            && (!pods::is_ready(old) || pods::is_available(updated, min_ready, now))
        {
            to_delete.push(old);
            kept.old = None;
        }
        kept
    }

    /// The pod the node's status counts: the older of the two.
    fn oldest(&self) -> &'a Pod {
        match (self.old, self.updated) {
            (Some(old), _) => old,
            (None, Some(updated)) => updated,
            (None, None) => unreachable!("a node keeps at least one pod"),
        }
    }
}

/// Nodes to get a new pod beside their old one: every node whose old pod
/// is unavailable anyway, and as many others as `max_surge` leaves room
/// for beside the new pods not yet available.
fn surge_onto(
    kept: &[(String, Kept)],
    max_surge: i32,
    available: impl Fn(&Pod) -> bool,
) -> Vec<String> {
    let mut surging = 0;
    let mut now = Vec::new();
    let mut candidates = Vec::new();
    for (node, pods) in kept {
        match (pods.old, pods.updated) {
            (Some(_), Some(_)) => surging += 1,
            (Some(old), None) if !available(old) => now.push(node.clone()),
            (Some(_), None) => candidates.push(node.clone()),
            (None, _) => {}
        }
    }
    let room = usize::try_from(max_surge - surging).unwrap_or(0);
    now.extend(candidates.into_iter().take(room));
    now
}

/// Old pods to delete so that new ones replace them: those unavailable
/// anyway, and available ones while fewer than `max_unavailable` nodes
/// are without an available pod.
fn take_away<'a>(
    kept: &[(String, Kept<'a>)],
    max_unavailable: i32,
    mut unavailable: i32,
    available: impl Fn(&Pod) -> bool,
) -> Vec<&'a Pod> {
    let mut deleted = Vec::new();
    for old in kept.iter().filter_map(|(_, pods)| pods.old) {
        if !available(old) {
            deleted.push(old);
        } else if unavailable < max_unavailable {
            unavailable += 1;
            deleted.push(old);
        }
    }
    deleted
}

/// `maxUnavailable` or `maxSurge` as a number of nodes: a percentage of
/// `desired` rounded up, as the daemon controller scales them; `unset`
/// when absent.
fn scaled(value: Option<&IntOrString>, desired: i32, unset: i32) -> i32 {
    match value {
        None => unset,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            ((percent * i64::from(desired) + 99) / 100) as i32
        }
    }
}

/// The template's spec with the tolerations every daemon pod gets, so that
/// it keeps running through node conditions that drive other pods away.
fn daemon_pod_spec(mut spec: PodSpec) -> PodSpec {
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in wanted {
        let present = tolerations.iter().any(|t| {
            t.key.as_deref() == Some(key)
                && t.effect.as_deref() == Some(effect)
                && t.operator.as_deref() == Some("Exists")
        });
        if !present {
            tolerations.push(Toleration {
                key: Some(key.to_owned()),
                operator: Some("Exists".to_owned()),
                effect: Some(effect.to_owned()),
                ..Toleration::default()
            });
        }
    }
    spec
}

/// The pod for one node: the template, its revision's labels, and a
/// required node affinity naming the node for the scheduler to honour.
fn daemon_pod(
    ds: &DaemonSet,
    spec: &PodSpec,
    hash: &str,
    node: &str,
    owner: OwnerReference,
) -> Pod {
    let template = &ds.spec.as_ref().expect("checked by the caller").template;
    let mut pod = pods::from_template(
        template,
        &ds.namespace().unwrap_or_default(),
        &format!("{}-", ds.name_any()),
        owner,
    );
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(HASH_LABEL.to_owned(), hash.to_owned());
    labels.insert(
        GENERATION_LABEL.to_owned(),
        ds.metadata.generation.unwrap_or(1).to_string(),
    );
    let mut spec = spec.clone();
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".to_owned(),
                operator: "In".to_owned(),
                values: Some(vec![node.to_owned()]),
            }]),
            match_expressions: None,
        }],
    });
    pod.spec = Some(spec);
    pod
}

/// The node a daemon pod is for: where it runs, or, before the scheduler
/// has bound it, the node its affinity names.
fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(node);
    }
    let required = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    required
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        })
}

fn eligibility(spec: &PodSpec, node: &Node) -> Eligibility {
    let never = Eligibility {
        should_run: false,
        should_continue: false,
    };
    let name = node.name_any();
    if spec
        .node_name
        .as_ref()
        .is_some_and(|n| !n.is_empty() && *n != name)
    {
        return never;
    }
    let labels = node.labels();
    let selected = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if !selected || required.is_some_and(|r| !node_selector_matches(r, labels, &name)) {
        return never;
    }
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    let untolerated: Vec<&Taint> = node
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .filter(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
        .collect();
    Eligibility {
        should_run: untolerated.is_empty(),
        should_continue: !untolerated.iter().any(|t| t.effect == "NoExecute"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::from_value;

    fn node(labels: serde_json::Value, taints: serde_json::Value) -> Node {
        from_value(
            json!({"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints}}),
        )
        .unwrap()
    }

    fn spec(extra: serde_json::Value) -> PodSpec {
        let mut spec = json!({"containers": [{"name": "c"}]});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        daemon_pod_spec(from_value(spec).unwrap())
    }

    const RUN: Eligibility = Eligibility {
        should_run: true,
        should_continue: true,
    };

    #[test]
    fn node_selector_and_affinity_pick_nodes() {
        let n = node(json!({"disk": "ssd", "cores": "8"}), json!([]));
        assert_eq!(
            eligibility(&spec(json!({"nodeSelector": {"disk": "ssd"}})), &n),
            RUN
        );
        assert!(!eligibility(&spec(json!({"nodeSelector": {"disk": "hdd"}})), &n).should_run);
        let affinity = |expr: serde_json::Value| {
            spec(
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}}),
            )
        };
        let gt = affinity(json!({"key": "cores", "operator": "Gt", "values": ["4"]}));
        assert!(eligibility(&gt, &n).should_run);
        let lt = affinity(json!({"key": "cores", "operator": "Lt", "values": ["4"]}));
        assert!(!eligibility(&lt, &n).should_run);
        let not_in = affinity(json!({"key": "disk", "operator": "NotIn", "values": ["ssd"]}));
        assert!(!eligibility(&not_in, &n).should_run);
        let absent = affinity(json!({"key": "gpu", "operator": "DoesNotExist"}));
        assert!(eligibility(&absent, &n).should_run);
    }

    #[test]
    fn taints_keep_pods_off_unless_tolerated() {
        let plain = spec(json!({}));
        let no_schedule = node(
            json!({}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            eligibility(&plain, &no_schedule),
            Eligibility {
                should_run: false,
                should_continue: true
            }
        );
        let no_execute = node(
            json!({}),
            json!([{"key": "dedicated", "effect": "NoExecute"}]),
        );
        assert_eq!(
            eligibility(&plain, &no_execute),
            Eligibility {
                should_run: false,
                should_continue: false
            }
        );
        let tolerant = spec(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]}),
        );
        assert_eq!(eligibility(&tolerant, &no_schedule), RUN);
        // The tolerations every daemon pod gets: a cordoned, not-ready node keeps its pod.
        let cordoned = node(
            json!({}),
            json!([
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
        );
        assert_eq!(eligibility(&plain, &cordoned), RUN);
    }

    fn pod(name: &str, hash: &str, ready: bool) -> Pod {
        from_value(json!({
            "metadata": {"name": name, "labels": {HASH_LABEL: hash}},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_surge_keeps_the_old_pod_until_the_new_one_is_available() {
        let is_updated = |p: &Pod| p.labels().get(HASH_LABEL).is_some_and(|h| h == "new");
        let now = Timestamp::now();
        let (old, waiting, ready) = (
            pod("old", "old", true),
            pod("waiting", "new", false),
            pod("ready", "new", true),
        );
        let mut deleted = Vec::new();
        let kept = Kept::surging(vec![&old, &waiting], &is_updated, 0, now, &mut deleted);
        assert!(deleted.is_empty());
        assert_eq!(kept.oldest().name_any(), "old");
        let kept = Kept::surging(vec![&old, &ready], &is_updated, 0, now, &mut deleted);
        assert_eq!(
            deleted.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
            ["old"]
        );
        assert!(kept.old.is_none());
    }

    #[test]
    fn a_surge_starts_new_pods_on_at_most_max_surge_nodes() {
        let available = |p: &Pod| pods::is_ready(p);
        let (old, broken, waiting) = (
            pod("old", "old", true),
            pod("broken", "old", false),
            pod("waiting", "new", false),
        );
        let node = |name: &str, updated, old| (name.to_owned(), Kept { updated, old });
        let nodes = [
            node("a", Some(&waiting), Some(&old)),
            node("b", None, Some(&old)),
            node("c", None, Some(&old)),
            node("d", None, Some(&broken)),
        ];
        // One surge is in progress on a; d's old pod is down anyway.
        assert_eq!(surge_onto(&nodes, 2, available), ["d", "b"]);
        assert_eq!(surge_onto(&nodes, 1, available), ["d"]);
    }

    #[test]
    fn percentages_of_nodes_round_up() {
        assert_eq!(scaled(None, 10, 1), 1);
        assert_eq!(scaled(Some(&IntOrString::String("25%".into())), 10, 1), 3);
        assert_eq!(scaled(Some(&IntOrString::String("30%".into())), 4, 0), 2);
        assert_eq!(scaled(Some(&IntOrString::Int(0)), 10, 1), 0);
        assert_eq!(scaled(Some(&IntOrString::Int(4)), 10, 1), 4);
    }
}
