//! Events about objects, as Kubernetes components record them: what
//! `kubectl describe` and `kubectl events` show. The kubelet's Pulling and
//! Started, the scheduler's Scheduled and FailedScheduling, the controllers'
//! SuccessfulCreate and ScalingReplicaSet all go through one [`Recorder`].
//!
//! Events are written as core/v1 Events (not events.k8s.io/v1, which
//! `kube::runtime::events` writes) because `kubectl describe` reads core/v1.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::PostParams;
use kube::{Api, Client, Resource};
use serde_json::json;

/// Who records: `component` is what `kubectl get events` shows as the source
/// (`kubelet`, `default-scheduler`, `replicaset-controller`), `host` the node
/// for a kubelet.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Normal,
    Warning,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        }
    }
}

impl Recorder {
    pub fn new(client: Client, component: &str, host: Option<&str>) -> Recorder {
        Recorder {
            client,
            component: component.to_owned(),
            host: host.map(str::to_owned),
        }
    }

    /// Records an event about `object`.
    pub async fn record<K>(&self, object: &K, kind: Type, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        self.record_about(object.object_ref(&()), kind, reason, message)
            .await;
    }

    /// Records an event about what `regarding` names: an object, or a part of
    /// one through its `fieldPath` (a pod's `spec.containers{web}`). Failing
    /// to record is logged, never an error of the caller's: an event is a
    /// report, and the work it reports has happened.
    pub async fn record_about(
        &self,
        regarding: ObjectReference,
        kind: Type,
        reason: &str,
        message: String,
    ) {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = regarding.name.clone().unwrap_or_default();
        let now = Timestamp::now();
        let time = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let event: Event = match serde_json::from_value(json!({
            "metadata": {
                "name": format!("{name}.{:x}", now.as_nanosecond()),
                "namespace": namespace,
            },
            "involvedObject": regarding,
            "reason": reason,
            "message": message,
            "type": kind.as_str(),
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host.as_deref().unwrap_or(&self.component),
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
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = events.create(&PostParams::default(), &event).await {
            tracing::warn!(object = name, "recording a {reason} event: {e}");
        }
    }
}
