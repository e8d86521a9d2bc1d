//! Events about objects, as Kubernetes components record them: what
//! `kubectl describe` and `kubectl events` show. The kubelet's Pulling and
//! Started, the scheduler's Scheduled and FailedScheduling, the controllers'
//! SuccessfulCreate and ScalingReplicaSet all go through one [`Recorder`].
//!
//! Events are written as core/v1 Events (not events.k8s.io/v1, which
//! `kube::runtime::events` writes) because `kubectl describe` reads core/v1.
//! An event recorded again is counted in the Event already written, and
//! similar events with many messages are combined, and a source sending
//! too many about one object is held back (`correlator`), so a pod retried
//! every few seconds makes one Event, not thousands.

mod correlator;

use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;

use correlator::{Correlator, Written};

/// Who records: `component` is what `kubectl get events` shows as the source
/// (`kubelet`, `default-scheduler`, `replicaset-controller`), `host` the node
/// for a kubelet.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: Option<String>,
    /// Shared by the clones, as one client-go broadcaster is.
    correlator: Arc<Mutex<Correlator>>,
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
            correlator: Arc::default(),
        }
    }

    /// This recorder with no spam filter: kube-scheduler records through
    /// events.k8s.io, whose recorder holds no event back, so a pod retried
    /// all day keeps counting its FailedScheduling.
    pub fn without_spam_filter(mut self) -> Recorder {
        self.correlator = Arc::new(Mutex::new(Correlator::without_spam_filter()));
        self
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
        let now = Timestamp::now();
        let mut event = match self.event(regarding, kind, reason, message, now) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!("building a {reason} event: {e}");
                return;
            }
        };
        let correlated = self
            .correlator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .correlate(&mut event, now);
        let mut written = correlated.series.lock().await;
        if correlated.spam {
            // Not written, but counted, as client-go counts it: the next
            // event of the series that is written carries it.
            if let Some(last) = written.as_mut() {
                last.count += 1;
            }
            return;
        }
        if let Some(last) = written.as_mut().filter(|w| w.continues_at(now))
            && self.count(last, &event, now).await
        {
            return;
        }
        *written = self.create(&event, now).await;
    }

    /// A new Event, counted once.
    fn event(
        &self,
        regarding: ObjectReference,
        kind: Type,
        reason: &str,
        message: String,
        now: Timestamp,
    ) -> serde_json::Result<Event> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = regarding.name.clone().unwrap_or_default();
        let time = timestamp(now);
        serde_json::from_value(json!({
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
        }))
    }

    /// Counts `event` in the Event `last` was written as. False when that
    /// Event is gone (expired or deleted), so a new one is written.
    async fn count(&self, last: &mut Written, event: &Event, now: Timestamp) -> bool {
        let patch = json!({
            "count": last.count + 1,
            "lastTimestamp": timestamp(now),
            "message": event.message,
        });
        let counted = self
            .events(event)
            .patch(
                &last.name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await;
        match counted {
            Ok(_) => {
                last.count += 1;
                last.last = now;
                true
            }
            Err(kube::Error::Api(e)) if e.code == 404 => false,
            Err(e) => {
                tracing::warn!(
                    event = last.name,
                    "counting a {:?} event: {e}",
                    event.reason
                );
                true
            }
        }
    }

    /// Writes `event` as a new Event; what was written, if it was.
    async fn create(&self, event: &Event, now: Timestamp) -> Option<Written> {
        match self
            .events(event)
            .create(&PostParams::default(), event)
            .await
        {
            Ok(created) => Some(Written {
                name: created.metadata.name.unwrap_or_default(),
                count: 1,
                last: now,
            }),
            Err(e) => {
                let object = event.involved_object.name.as_deref().unwrap_or_default();
                tracing::warn!(object, "recording a {:?} event: {e}", event.reason);
                None
            }
        }
    }

    fn events(&self, event: &Event) -> Api<Event> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// An Event's timestamps: whole seconds, as `metav1.Time` is written.
fn timestamp(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
