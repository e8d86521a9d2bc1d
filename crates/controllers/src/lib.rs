//! The controllers: control loops that watch objects through the API and
//! write what their specs ask for (a ReplicaSet's pods, a Deployment's
//! ReplicaSets, a namespace's `default` ServiceAccount and `kube-root-ca.crt`), as
//! kube-controller-manager does. They are API clients like any other: in
//! `tug server` they run as tasks talking to the API server over loopback,
//! and `tug controllers` runs them on their own.
//!
//! Map: one module per controller, each with a `run(client)` that loops
//! until the process stops; what several controllers share lives in
//! - `claim`: adopting and releasing children by selector and ownerReferences;
//! - `pods`: pods made from templates, and a pod's readiness as controllers judge it;
//! - `selector`: matching a `metav1.LabelSelector` against labels;
//! - `placement`: node selectors, node affinity and tolerations against a node;
//! - `revisions`: ControllerRevisions, the template history of DaemonSets and StatefulSets;
//! - `resources`: the kinds the API server serves, from discovery.
//!
//! - `garbage_collector`: deletes dependents whose owners are gone; foreground
//!   and orphan deletion.
//! - `namespace`: empties a namespace being deleted, then finalizes it.
//! - `node_lifecycle`: silent nodes go NotReady and get tainted; their pods are evicted.
//! - `pod_gc`: pods of deleted nodes, and finished pods past a threshold, are deleted.
//! - `resource_quota`: ResourceQuotas' `status.used` follows what their namespace uses.
//! - `replicaset`: ReplicaSets and ReplicationControllers keep their pod count.
//! - `deployment`: Deployments roll their pods through ReplicaSets, by revision.
//! - `job`: Jobs run pods to their completions, within back-off and deadline limits.
//! - `cronjob`: CronJobs make Jobs on their schedule and prune their history.
//! - `daemonset`: DaemonSets keep one pod on each eligible node and roll them.
//! - `statefulset`: StatefulSets' ordered pods with stable names, hostnames and claims.
//! - `volumes`: claims bound to volumes; the local-path provisioner and default class.
//! - `endpointslice`: Services' EndpointSlices and Endpoints from the pods they select.
//! - `servicelb`: LoadBalancer Services get the Ready nodes' addresses.

mod claim;
mod cronjob;
mod daemonset;
mod deployment;
mod endpointslice;
mod garbage_collector;
mod job;
mod namespace;
mod node_lifecycle;
mod placement;
mod pod_gc;
mod pods;
mod replicaset;
mod resource_quota;
mod resources;
mod revisions;
mod root_ca;
mod selector;
mod serviceaccount;
mod servicelb;
mod statefulset;
mod volumes;

use std::time::Duration;

use kube::Client;
use tokio::task::JoinSet;

/// What the controllers need besides an API client.
pub struct Config {
    /// The cluster CA (PEM) that pods get to check the API server with.
    pub root_ca: String,
    /// How long a node may go unheard before it is NotReady
    /// (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// How many finished pods may stay before the oldest are deleted
    /// (`--terminated-pod-gc-threshold`; 0: no limit).
    pub terminated_pod_gc_threshold: usize,
}

/// Runs every controller until one of them fails.
pub async fn run(client: Client, config: Config) -> anyhow::Result<()> {
    let mut controllers = JoinSet::new();
    controllers.spawn(root_ca::run(client.clone(), config.root_ca));
    controllers.spawn(serviceaccount::run(client.clone()));
    controllers.spawn(garbage_collector::run(client.clone()));
    controllers.spawn(namespace::run(client.clone()));
    controllers.spawn(resource_quota::run(client.clone()));
    controllers.spawn(node_lifecycle::run(
        client.clone(),
        config.node_monitor_grace_period,
    ));
    controllers.spawn(pod_gc::run(
        client.clone(),
        config.terminated_pod_gc_threshold,
    ));
    controllers.spawn(replicaset::run(client.clone()));
    controllers.spawn(deployment::run(client.clone()));
    controllers.spawn(job::run(client.clone()));
    controllers.spawn(cronjob::run(client.clone()));
    controllers.spawn(daemonset::run(client.clone()));
    controllers.spawn(statefulset::run(client.clone()));
    controllers.spawn(volumes::run(client.clone()));
    controllers.spawn(endpointslice::run(client.clone()));
    controllers.spawn(servicelb::run(client.clone()));
    while let Some(stopped) = controllers.join_next().await {
        stopped??;
    }
    Ok(())
}
