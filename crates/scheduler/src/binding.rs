//! What the scheduler writes: a pod's Binding to its node with the
//! Scheduled event, or, for a pod that fits nowhere, PodScheduled=False and
//! the FailedScheduling event that says why.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tugboat_events::{Recorder, Type};

use crate::pod::{PodInfo, SCHEDULER_NAME};

pub struct Binder {
    client: Client,
    recorder: Recorder,
}

impl Binder {
    pub fn new(client: Client) -> Binder {
        Binder {
            recorder: Recorder::new(client.clone(), SCHEDULER_NAME, None),
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
        let message = format!(
            "Successfully assigned {}/{} to {node}",
            pod.namespace(),
            pod.name()
        );
        self.recorder
            .record(&pod.pod, Type::Normal, "Scheduled", message)
            .await;
        Ok(())
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
}
