//! Events about pods, as the kubelet records them (`kubectl describe pod`
//! and `kubectl events` show them): Pulling, Pulled, Created, Started,
//! Killing, BackOff, Failed.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node_name: String,
}

#[derive(Clone, Copy)]
pub enum Type {
    Normal,
    Warning,
}

impl Recorder {
    pub fn new(client: Client, node_name: &str) -> Recorder {
        Recorder {
            client,
            node_name: node_name.to_owned(),
        }
    }

    /// Records an event about `pod` (or one of its containers, named by
    /// `field_path` such as `spec.containers{web}`). Failing to record is
    /// logged, never an error of the caller's.
    pub async fn pod(
        &self,
        pod: &Pod,
        field_path: Option<String>,
        kind: Type,
        reason: &str,
        message: String,
    ) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let now = Timestamp::now();
        let time = crate::rfc3339(now);
        let event: Event = match serde_json::from_value(json!({
            "metadata": {
                "name": format!("{name}.{:x}", now.as_nanosecond()),
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": name,
                "namespace": namespace,
                "uid": pod.metadata.uid,
                "fieldPath": field_path,
            },
            "reason": reason,
            "message": message,
            "type": match kind { Type::Normal => "Normal", Type::Warning => "Warning" },
            "source": {"component": "kubelet", "host": self.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
            "firstTimestamp": time,
            "lastTimestamp": time,
            "count": 1,
        })) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("building a {reason} event: {e}");
                return;
            }
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        if let Err(e) = events.create(&PostParams::default(), &event).await {
            tracing::warn!(pod = name, "recording a {reason} event: {e}");
        }
    }
}
