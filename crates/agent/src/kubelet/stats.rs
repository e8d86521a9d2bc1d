//! `/stats/summary`: CPU and memory of every running container, from its
//! cgroup, grouped by pod in the kubelet's Summary API shape.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};
use tugboat_runtime::{ContainerState, ContainerStats, ContainerStatus};

use super::{Kubelet, Refusal};

pub async fn summary(State(kubelet): State<Arc<Kubelet>>) -> Result<Json<Value>, Refusal> {
    let node_name = kubelet.node_name.clone();
    tokio::task::spawn_blocking(move || {
        let containers = kubelet
            .runtime
            .list_containers()
            .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let now = Timestamp::now();
        let mut pods: BTreeMap<(String, String, String), Vec<Value>> = BTreeMap::new();
        for container in containers {
            let ContainerState::Running { started_at, .. } = container.state else {
                continue;
            };
            let (Some(pod), Ok(stats)) = (
                pod_ref(&container),
                kubelet.runtime.container_stats(&container.id),
            ) else {
                continue;
            };
            pods.entry(pod)
                .or_default()
                .push(container_stats(&container.name, started_at, &stats, now));
        }
        let pods: Vec<Value> = pods
            .into_iter()
            .map(|((namespace, name, uid), containers)| {
                let sum = |section: &str, field: &str| -> u64 {
                    containers
                        .iter()
                        .filter_map(|c| c[section][field].as_u64())
                        .sum()
                };
                json!({
                    "podRef": {"name": name, "namespace": namespace, "uid": uid},
                    "cpu": {"time": now.to_string(), "usageCoreNanoSeconds": sum("cpu", "usageCoreNanoSeconds")},
                    "memory": {
                        "time": now.to_string(),
                        "usageBytes": sum("memory", "usageBytes"),
                        "workingSetBytes": sum("memory", "workingSetBytes"),
                    },
                    "containers": containers,
                })
            })
            .collect();
        Ok(Json(json!({"node": {"nodeName": node_name}, "pods": pods})))
    })
    .await
    .expect("reading stats does not panic")
}

fn container_stats(
    name: &str,
    started_at: Timestamp,
    stats: &ContainerStats,
    now: Timestamp,
) -> Value {
    json!({
        "name": name,
        "startTime": started_at.to_string(),
        "cpu": {"time": now.to_string(), "usageCoreNanoSeconds": stats.cpu_usage_nanos},
        "memory": {
            "time": now.to_string(),
            "usageBytes": stats.memory_usage_bytes,
            "workingSetBytes": stats.memory_working_set_bytes,
        },
    })
}

/// (namespace, name, uid) of a container's pod, from its log directory
/// `<namespace>_<name>_<uid>/<container>/<attempt>.log`: names and
/// namespaces never hold `_`.
fn pod_ref(container: &ContainerStatus) -> Option<(String, String, String)> {
    let dir = container
        .log_path
        .parent()?
        .parent()?
        .file_name()?
        .to_str()?;
    let mut parts = dir.splitn(3, '_');
    let (namespace, name, uid) = (parts.next()?, parts.next()?, parts.next()?);
    (uid == container.pod_uid).then(|| (namespace.to_owned(), name.to_owned(), uid.to_owned()))
}
