//! Pods whose Job is gone or being deleted lose the tracking finalizer, so
//! that nothing is left waiting for a Job that will never count them (the
//! job controller does this from its pod handler in Kubernetes).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use super::tracking;
use crate::pods::controller_of;

/// The label the API server gives every pod of a Job.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

pub async fn run(client: Client) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::all(client.clone());
    Controller::new(pods, watcher::Config::default().labels(JOB_NAME_LABEL))
        .run(reconcile, retry, Arc::new(client))
        .for_each(|_| async {})
        .await;
    Ok(())
}

async fn reconcile(pod: Arc<Pod>, client: Arc<Client>) -> kube::Result<Action> {
    if !tracking::has_finalizer(&pod) {
        return Ok(Action::await_change());
    }
    let namespace = pod.namespace().unwrap_or_default();
    let owner = controller_of(&pod).filter(|o| o.kind == "Job");
    let job = match owner {
        Some(owner) => Api::<Job>::namespaced((*client).clone(), &namespace)
            .get_opt(&owner.name)
            .await?
            .filter(|job| job.uid().as_deref() == Some(owner.uid.as_str())),
        None => None,
    };
    if job.is_none_or(|job| job.metadata.deletion_timestamp.is_some()) {
        tracking::release(&Api::namespaced((*client).clone(), &namespace), &pod).await?;
    }
    Ok(Action::await_change())
}

fn retry(_: Arc<Pod>, error: &kube::Error, _: Arc<Client>) -> Action {
    tracing::warn!("Job controller (orphaned pods): {error}");
    Action::requeue(Duration::from_secs(5))
}
