//! A pod as the scheduler sees it: the object and what is computed from it
//! once (its key, requests, priority) rather than on every node it is
//! checked against.

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, PodSpec};

use crate::labels::Labels;
use crate::resources::{Resources, pod_requests};

/// The scheduler's name in pods' `spec.schedulerName` and in its events.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// What a container without requests counts as when nodes are scored, as
/// kube-scheduler counts it, so that request-less pods still spread.
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

pub struct PodInfo {
    pub pod: Pod,
    /// `namespace/name`.
    pub key: String,
    pub requests: Resources,
    /// Requests for scoring: containers that ask for no cpu or memory count
    /// as asking for a little.
    pub scoring_requests: (i64, i64),
    pub priority: i32,
}

static NO_LABELS: Labels = Labels::new();
static NO_SPEC: std::sync::LazyLock<PodSpec> = std::sync::LazyLock::new(PodSpec::default);

impl PodInfo {
    pub fn new(pod: Pod) -> PodInfo {
        let spec = pod.spec.as_ref().unwrap_or(&NO_SPEC);
        let requests = pod_requests(spec);
        let scoring_requests = scoring_requests(spec);
        PodInfo {
            key: key_of(&pod),
            requests,
            scoring_requests,
            priority: spec.priority.unwrap_or_default(),
            pod,
        }
    }

    pub fn spec(&self) -> &PodSpec {
        self.pod.spec.as_ref().unwrap_or(&NO_SPEC)
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn labels(&self) -> &Labels {
        self.pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    /// The uid of the pod's controller (its ReplicaSet, StatefulSet...).
    pub fn controller_uid(&self) -> Option<&str> {
        self.pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| r.uid.as_str())
    }

    /// Any pod affinity or anti-affinity, required or preferred.
    pub fn has_pod_affinity(&self) -> bool {
        self.spec()
            .affinity
            .as_ref()
            .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
    }

    /// The pod's required pod affinity and anti-affinity terms.
    pub fn required_terms(&self) -> (&[PodAffinityTerm], &[PodAffinityTerm]) {
        let affinity = self.spec().affinity.as_ref();
        let affinity_terms = affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            });
        let anti_terms = affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            });
        (
            affinity_terms.unwrap_or_default(),
            anti_terms.unwrap_or_default(),
        )
    }
}

fn scoring_requests(spec: &PodSpec) -> (i64, i64) {
    spec.containers
        .iter()
        .fold((0, 0), |(cpu, memory), container| {
            let requests = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref());
            let amounts = Resources::from_map(requests);
            let asks = |name: &str| requests.is_some_and(|m| m.contains_key(name));
            (
                cpu + if asks("cpu") {
                    amounts.milli_cpu
                } else {
                    DEFAULT_MILLI_CPU
                },
                memory
                    + if asks("memory") {
                        amounts.memory
                    } else {
                        DEFAULT_MEMORY
                    },
            )
        })
}

/// `namespace/name`, the key pods are known by in the cache and queue.
pub fn key_of(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Succeeded or Failed: the pod holds nothing on its node any more.
pub fn is_terminal(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// A pod this scheduler should place: unbound, alive, and asking for it.
pub fn wants_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let unbound = spec
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    let ours = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME);
    unbound && ours && pod.metadata.deletion_timestamp.is_none() && !is_terminal(pod)
}
