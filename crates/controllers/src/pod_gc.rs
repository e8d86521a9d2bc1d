//! The pod garbage collector, as kube-controller-manager's PodGC:
//! - pods bound to a node that no longer exists (`kubectl delete node`)
//!   are marked Failed with a `DisruptionTarget` condition and deleted at
//!   once, so that their controllers replace them on the nodes left; a
//!   node must be missing for a quarantine first, as a node being
//!   re-registered is missing for a moment;
//! - past `--terminated-pod-gc-threshold` finished pods (Succeeded or
//!   Failed), the oldest are deleted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// How often pods are looked at (kube-controller-manager's gcCheckPeriod).
const PERIOD: Duration = Duration::from_secs(20);
/// How long a node must be missing before its pods go.
const QUARANTINE: Duration = Duration::from_secs(40);

pub async fn run(client: Client, threshold: usize) -> anyhow::Result<()> {
    let mut collector = Collector {
        client: client.clone(),
        nodes: Api::all(client.clone()),
        pods: Api::all(client),
        threshold,
        missing_since: HashMap::new(),
    };
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        if let Err(e) = collector.pass().await {
            tracing::warn!("pod garbage collector: {e}");
        }
    }
}

struct Collector {
    client: Client,
    nodes: Api<Node>,
    pods: Api<Pod>,
    /// How many finished pods may stay (0: no limit).
    threshold: usize,
    /// Nodes pods are bound to but that do not exist, since when by our clock.
    missing_since: HashMap<String, Instant>,
}

impl Collector {
    async fn pass(&mut self) -> kube::Result<()> {
        let pods = self.pods.list(&ListParams::default()).await?.items;
        let nodes: HashSet<String> = self
            .nodes
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        for pod in self.orphans(&pods, &nodes) {
            self.delete_orphan(pod).await?;
        }
        for pod in oldest_finished_past(&pods, self.threshold) {
            self.delete(pod, DeleteParams::default()).await?;
        }
        Ok(())
    }

    /// The pods bound to nodes missing for the quarantine.
    fn orphans<'a>(&mut self, pods: &'a [Pod], nodes: &HashSet<String>) -> Vec<&'a Pod> {
        let now = Instant::now();
        let missing: HashSet<&str> = pods
            .iter()
            .filter_map(node_of)
            .filter(|node| !nodes.contains(*node))
            .collect();
        self.missing_since
            .retain(|node, _| missing.contains(node.as_str()));
        for node in &missing {
            self.missing_since.entry((*node).to_owned()).or_insert(now);
        }
        pods.iter()
            .filter(|pod| {
                node_of(pod)
                    .and_then(|node| self.missing_since.get(node))
                    .is_some_and(|since| now.duration_since(*since) >= QUARANTINE)
            })
            .collect()
    }

    /// Marks the pod Failed and why, as PodGC does, then deletes it with no
    /// grace: no kubelet is left to stop its containers.
    async fn delete_orphan(&self, pod: &Pod) -> kube::Result<()> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        let status = json!({"status": {
            "phase": if is_finished(pod) { phase(pod) } else { "Failed" },
            "conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": jiff::Timestamp::now().to_string(),
            }],
        }});
        let patched = api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(status),
            )
            .await;
        match patched {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
        tracing::info!(
            "pod garbage collector: deleting {}/{}, its node {} no longer exists",
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
            node_of(pod).unwrap_or_default()
        );
        self.delete(pod, DeleteParams::default().grace_period(0))
            .await
    }

    async fn delete(&self, pod: &Pod, params: DeleteParams) -> kube::Result<()> {
        let api: Api<Pod> =
            Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.node_name.as_deref())
        .filter(|node| !node.is_empty())
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|status| status.phase.as_deref())
        .unwrap_or_default()
}

fn is_finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// The finished pods beyond the `threshold` newest, oldest first (none
/// when the threshold is 0, which means no limit).
fn oldest_finished_past(pods: &[Pod], threshold: usize) -> Vec<&Pod> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut finished: Vec<&Pod> = pods
        .iter()
        .filter(|pod| is_finished(pod) && pod.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = finished.len().saturating_sub(threshold);
    finished.sort_by_key(|pod| pod.metadata.creation_timestamp.as_ref().map(|t| t.0));
    finished.truncate(excess);
    finished
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::from_value;

    fn pod(name: &str, created: &str, phase: &str) -> Pod {
        from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
            "spec": {"containers": [], "nodeName": "n"},
            "status": {"phase": phase},
        }))
        .expect("a pod")
    }

    fn names(pods: Vec<&Pod>) -> Vec<String> {
        pods.into_iter().map(ResourceExt::name_any).collect()
    }

    #[test]
    fn the_oldest_finished_pods_past_the_threshold_go() {
        let pods = [
            pod("new-done", "2026-01-03T00:00:00Z", "Succeeded"),
            pod("running", "2026-01-01T00:00:00Z", "Running"),
            pod("old-failed", "2026-01-01T00:00:00Z", "Failed"),
            pod("mid-done", "2026-01-02T00:00:00Z", "Succeeded"),
        ];
        assert_eq!(
            names(oldest_finished_past(&pods, 1)),
            ["old-failed", "mid-done"]
        );
        assert_eq!(names(oldest_finished_past(&pods, 3)), Vec::<String>::new());
        assert_eq!(names(oldest_finished_past(&pods, 0)), Vec::<String>::new());
    }
}
