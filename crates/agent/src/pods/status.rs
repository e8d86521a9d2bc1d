//! The pod's status as the kubelet reports it: phase, conditions and one
//! status per container, computed from what the runtime says.

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use tugboat_runtime::{ContainerState, ContainerStatus};

use crate::rfc3339;

/// What the worker knows of one container of the spec.
#[derive(Default)]
pub struct Observed<'a> {
    /// The newest container made for it, and the one before (its lastState).
    pub latest: Option<&'a ContainerStatus>,
    pub previous: Option<&'a ContainerStatus>,
    /// Why it is not running, when the worker knows better than the runtime
    /// (`ErrImagePull`, `CrashLoopBackOff`, ...), with the message.
    pub waiting: Option<(String, String)>,
    /// The image ID it runs, `docker.io/library/busybox@sha256:...`.
    pub image_id: String,
    /// Running, and its readiness (startup) probe passed if it has one.
    pub ready: bool,
    pub started: bool,
}

/// The phase of the pod from its containers' ends, as the kubelet's
/// `getPhase`: a pod is over only once no container will run again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

pub struct PodView<'a> {
    pub pod: &'a Pod,
    pub init: Vec<Observed<'a>>,
    pub app: Vec<Observed<'a>>,
    pub initialized: bool,
    pub sandbox_ready: bool,
    pub phase: Phase,
    pub host_ip: &'a str,
    /// The pod's address on the pod network; host-network pods use the node's.
    pub pod_ip: Option<IpAddr>,
    pub start_time: Timestamp,
}

pub fn pod_status(view: &PodView, now: Timestamp) -> Value {
    let spec = view.pod.spec.as_ref();
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[]);
    let apps = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let app_statuses: Vec<Value> = apps
        .iter()
        .zip(&view.app)
        .map(|(c, o)| container_status(c, o, !view.initialized, view.phase))
        .collect();
    let init_statuses: Vec<Value> = inits
        .iter()
        .zip(&view.init)
        .map(|(c, o)| container_status(c, o, false, view.phase))
        .collect();
    let all_ready = !app_statuses.is_empty() && app_statuses.iter().all(|s| s["ready"] == true);
    let not_ready: Vec<&str> = app_statuses
        .iter()
        .filter(|s| s["ready"] != true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let not_ready_message = format!("containers with unready status: [{}]", not_ready.join(" "));
    let pending_inits: Vec<&str> = init_statuses
        .iter()
        .filter(|s| s["state"]["terminated"]["exitCode"] != 0)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let old = view.pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let condition = |kind: &str, ok: bool, reason: Option<&str>, message: Option<&str>| {
        let since = old
            .and_then(|conds| conds.iter().find(|c| c.type_ == kind))
            .filter(|c| c.status == if ok { "True" } else { "False" })
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(|| rfc3339(now));
        let mut cond = json!({
            "type": kind,
            "status": if ok { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": since,
        });
        if !ok {
            if let Some(reason) = reason {
                cond["reason"] = reason.into();
            }
            if let Some(message) = message {
                cond["message"] = message.into();
            }
        }
        cond
    };
    let terminal_reason = view.phase.is_terminal().then_some("PodCompleted");
    let ready_reason = terminal_reason.or(Some("ContainersNotReady"));
    let ready_message = (!view.phase.is_terminal()).then_some(not_ready_message.as_str());
    let init_message = format!(
        "containers with incomplete status: [{}]",
        pending_inits.join(" ")
    );
    let conditions = vec![
        condition("PodReadyToStartContainers", view.sandbox_ready, None, None),
        condition(
            "Initialized",
            view.initialized,
            Some("ContainersNotInitialized"),
            Some(&init_message),
        ),
        condition("Ready", all_ready, ready_reason, ready_message),
        condition("ContainersReady", all_ready, ready_reason, ready_message),
        condition("PodScheduled", true, None, None),
    ];
    let mut status = json!({
        "phase": view.phase.as_str(),
        "conditions": conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": rfc3339(view.start_time),
        "containerStatuses": app_statuses,
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = init_statuses.into();
    }
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let pod_ip = match view.pod_ip {
        _ if host_network => Some(view.host_ip.to_owned()),
        Some(ip) => Some(ip.to_string()),
        None => None,
    };
    if let Some(ip) = pod_ip {
        status["podIP"] = ip.clone().into();
        status["podIPs"] = json!([{ "ip": ip }]);
    }
    status
}

fn container_status(c: &Container, observed: &Observed, initializing: bool, phase: Phase) -> Value {
    let running = matches!(
        observed.latest.map(|s| &s.state),
        Some(ContainerState::Running { .. })
    );
    let state = match (&observed.waiting, observed.latest) {
        (Some((reason, message)), _) if !running => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        (_, Some(latest)) => state_json(latest),
        (_, None) if initializing => json!({"waiting": {"reason": "PodInitializing"}}),
        (_, None) if phase.is_terminal() => json!({"waiting": {"reason": "PodCompleted"}}),
        (_, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
    };
    // A container replaced by a newer one shows the old one's end; one
    // waiting to restart shows its own.
    let last = if observed.waiting.is_some() && !running {
        observed
            .latest
            .filter(|s| matches!(s.state, ContainerState::Exited { .. }))
    } else {
        observed.previous
    };
    let last_state = last.map(state_json).unwrap_or_else(|| json!({}));
    let mut status = json!({
        "name": c.name,
        "image": c.image.clone().unwrap_or_default(),
        "imageID": observed.image_id,
        "ready": observed.ready && observed.started,
        "started": observed.started,
        "restartCount": observed.latest.map_or(0, |s| s.attempt),
        "state": state,
        "lastState": last_state,
    });
    if let Some(latest) = observed.latest {
        status["containerID"] = container_id(latest).into();
    }
    status
}

fn state_json(s: &ContainerStatus) -> Value {
    match &s.state {
        ContainerState::Created => json!({"waiting": {"reason": "ContainerCreating"}}),
        ContainerState::Running { started_at, .. } => {
            json!({"running": {"startedAt": rfc3339(*started_at)}})
        }
        ContainerState::Exited {
            exit_code,
            reason,
            message,
            started_at,
            finished_at,
        } => {
            let mut terminated = json!({
                "exitCode": exit_code,
                "reason": reason.as_str(),
                "finishedAt": rfc3339(*finished_at),
                "containerID": container_id(s),
            });
            if let Some(started) = started_at {
                terminated["startedAt"] = rfc3339(*started).into();
            }
            if let Some(message) = message {
                terminated["message"] = message.clone().into();
            }
            json!({"terminated": terminated})
        }
    }
}

pub fn container_id(s: &ContainerStatus) -> String {
    format!("tugboat://{}", s.id)
}

/// The observed containers by name, newest attempt first.
pub fn by_name(containers: &[ContainerStatus]) -> BTreeMap<&str, Vec<&ContainerStatus>> {
    let mut map: BTreeMap<&str, Vec<&ContainerStatus>> = BTreeMap::new();
    for c in containers {
        map.entry(c.name.as_str()).or_default().push(c);
    }
    for list in map.values_mut() {
        list.sort_by_key(|c| std::cmp::Reverse(c.attempt));
    }
    map
}
