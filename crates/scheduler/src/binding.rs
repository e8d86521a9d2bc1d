//! What the scheduler writes: a pod's Binding to its node with the
//! Scheduled event, or, for a pod that fits nowhere, PodScheduled=False and
//! the FailedScheduling event that says why; and the eviction of the
//! victims of a preemption.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tugboat_events::{Recorder, Type};

use crate::pod::{PodInfo, SCHEDULER_NAME};
use crate::preemption::Plan;

pub struct Binder {
    client: Client,
    recorder: Recorder,
}

impl Binder {
    pub fn new(client: Client) -> Binder {
        Binder {
            recorder: Recorder::new(client.clone(), SCHEDULER_NAME, None).without_spam_filter(),
            client,
        }
    }

    fn pods(&self, pod: &PodInfo) -> Api<Pod> {
        Api::namespaced(self.client.clone(), pod.namespace())
    }

    /// Binds `pod` to `node` through `pods/binding`; the pod's uid guards
    /// against binding a pod made again under the same name.
    pub async fn bind(&self, pod: &PodInfo, node: &str) -> kube::Result<()> {
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(pod.name().to_owned()),
                namespace: Some(pod.namespace().to_owned()),
                uid: pod.pod.metadata.uid.clone(),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                kind: Some("Node".to_owned()),
                name: Some(node.to_owned()),
                ..ObjectReference::default()
            },
        };
        self.pods(pod)
            .create_subresource::<_, serde_json::Value>(
                "binding",
                pod.name(),
                &PostParams::default(),
                &binding,
            )
            .await?;
        Ok(())
    }

    /// The Scheduled event of a pod bound to `node`.
    pub async fn scheduled(&self, pod: &PodInfo, node: &str) {
        let message = format!(
            "Successfully assigned {}/{} to {node}",
            pod.namespace(),
            pod.name()
        );
        self.recorder
            .record(&pod.pod, Type::Normal, "Scheduled", message)
            .await;
    }

    /// Says on the pod and in an event why it fits nowhere. The condition is
    /// written only when it changes; the event every attempt, as
    /// kube-scheduler records it.
    pub async fn unschedulable(&self, pod: &PodInfo, message: String) {
        let current = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        });
        if !unchanged {
            let since = current
                .filter(|c| c.status == "False")
                .and_then(|c| c.last_transition_time.clone())
                .map_or_else(jiff::Timestamp::now, |t| t.0);
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }]}});
            let written = self
                .pods(pod)
                .patch_status(
                    pod.name(),
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await;
            if let Err(e) = written {
                tracing::debug!(pod = pod.key, "could not mark the pod unschedulable: {e}");
            }
        }
        self.recorder
            .record(&pod.pod, Type::Warning, "FailedScheduling", message)
            .await;
    }

    /// Evicts the plan's victims, each told why (a DisruptionTarget
    /// condition and a Preempted event), and nominates the node for the
    /// preemptor, which is tried again once they are gone.
    pub async fn preempt(&self, preemptor: &PodInfo, plan: &Plan) {
        let uid = preemptor.pod.metadata.uid.as_deref().unwrap_or_default();
        for victim in &plan.victims {
            let condition = json!({"status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": format!("{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"),
                "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }]}});
            let pods = self.pods(victim);
            let marked = pods
                .patch_status(
                    victim.name(),
                    &PatchParams::default(),
                    &Patch::Strategic(condition),
                )
                .await;
            if let Err(e) = marked {
                tracing::debug!(pod = victim.key, "could not mark the victim: {e}");
            }
            let message = format!("Preempted by pod {uid} on node {}", plan.node);
            self.recorder
                .record(&victim.pod, Type::Normal, "Preempted", message)
                .await;
            if let Err(e) = pods.delete(victim.name(), &DeleteParams::default()).await {
                tracing::warn!(pod = victim.key, "could not evict the victim: {e}");
            }
        }
        let nominated = json!({"status": {"nominatedNodeName": plan.node}});
        let written = self
            .pods(preemptor)
            .patch_status(
                preemptor.name(),
                &PatchParams::default(),
                &Patch::Merge(nominated),
            )
            .await;
        if let Err(e) = written {
            tracing::debug!(pod = preemptor.key, "could not nominate a node: {e}");
        }
    }
}
