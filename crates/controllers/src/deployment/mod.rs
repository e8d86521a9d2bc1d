//! The Deployment controller: a Deployment's pods come from ReplicaSets it
//! owns, one per pod template it has had, named `<deployment>-<hash of
//! the template>`. A new template gets a new ReplicaSet with the next
//! revision, and the strategy moves pods to it; `kubectl rollout undo`
//! puts an old template back, whose ReplicaSet becomes the new one again.
//!
//! - `sets`: finding and making the ReplicaSets, revisions, scaling, history;
//! - `strategy`: RollingUpdate, Recreate, and scaling while paused;
//! - `status`: counts and the Available and Progressing conditions.

mod sets;
mod status;
mod strategy;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tugboat_events::Recorder;

use self::sets::Sets;
use crate::claim::{claim, controller_of, owners_of};
use crate::selector::Selector;

pub struct Context {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    /// All pods, for Recreate to see the last old pod gone.
    pods: Store<Pod>,
    recorder: Recorder,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let (replica_sets, writer) = reflector::store();
    let set_events = watcher(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects();
    let (pods, writer) = reflector::store();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects();
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let recreating = controller.store();
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), "deployment-controller", None),
        client,
        pods,
        replica_sets: replica_sets.clone(),
    });
    controller
        .watches_stream(set_events, move |rs| {
            owners_of(&deployments, &rs, |d: &Deployment| {
                d.spec.as_ref().map(|s| s.selector.clone())
            })
        })
        .watches_stream(pod_events, move |pod| {
            recreating_deployment_of(&pod, &replica_sets, &recreating)
        })
        .run(reconcile, retry, context)
        .for_each(|_| async {})
        .await;
    Ok(())
}

/// The Recreate Deployment whose ReplicaSet controls `pod`: pods coming
/// and going matter to a Deployment only while it waits for the old ones
/// to be gone.
fn recreating_deployment_of(
    pod: &Pod,
    replica_sets: &Store<ReplicaSet>,
    deployments: &Store<Deployment>,
) -> Option<ObjectRef<Deployment>> {
    let namespace = pod.namespace()?;
    let rs_ref = controller_of(pod).filter(|c| c.kind == "ReplicaSet")?;
    let rs = replica_sets.get(&ObjectRef::new(&rs_ref.name).within(&namespace))?;
    let deployment_ref = controller_of(rs.as_ref()).filter(|c| c.kind == "Deployment")?;
    let key = ObjectRef::new(&deployment_ref.name).within(&namespace);
    let deployment = deployments.get(&key)?;
    is_recreate(&deployment).then_some(key)
}

fn is_recreate(deployment: &Deployment) -> bool {
    spec_of(deployment)
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// Whether any pod of an old ReplicaSet has yet to finish, terminating
/// ones included: Recreate starts no new pod before.
fn old_pods_left(sets: &Sets, namespace: &str, pods: &Store<Pod>) -> bool {
    let old: Vec<&str> = sets
        .old
        .iter()
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .collect();
    pods.state().iter().any(|pod| {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        pod.namespace().as_deref() == Some(namespace)
            && !matches!(phase, Some("Succeeded" | "Failed"))
            && controller_of(pod.as_ref()).is_some_and(|c| old.contains(&c.uid.as_str()))
    })
}

/// The spec, which every Deployment from the API server has.
fn spec_of(deployment: &Deployment) -> &DeploymentSpec {
    static EMPTY: std::sync::OnceLock<DeploymentSpec> = std::sync::OnceLock::new();
    deployment
        .spec
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(DeploymentSpec::default))
}

async fn reconcile(deployment: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    if ctx.replica_sets.wait_until_ready().await.is_err()
        || ctx.pods.wait_until_ready().await.is_err()
        || deployment.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let spec = spec_of(&deployment);
    let Ok(selector) = Selector::new(Some(&spec.selector)) else {
        return Ok(Action::await_change());
    };
    let namespace = deployment.namespace().unwrap_or_default();
    let candidates = ctx
        .replica_sets
        .state()
        .into_iter()
        .filter(|rs| rs.namespace().as_deref() == Some(&namespace))
        .collect();
    let owned = claim(&ctx.client, deployment.as_ref(), &selector, candidates).await;
    let mut sets = Sets::sort(&deployment, owned);
    let posts = strategy::fenceposts(&deployment);
    let paused = spec.paused == Some(true);
    let recreate = is_recreate(&deployment);
    // A paused Deployment makes no new ReplicaSet, and Recreate makes it
    // only once the old pods are gone.
    let mut created = sets::sync_new(
        &deployment,
        &mut sets,
        !paused && !recreate,
        posts.surge,
        &ctx,
    )
    .await?;
    let moved = if paused || sets::count_changed(&deployment, &sets) {
        strategy::follow_count(&deployment, &mut sets, posts, &ctx).await?
    } else if recreate {
        let left = old_pods_left(&sets, &namespace, &ctx.pods);
        let waiting = strategy::recreate(&deployment, &mut sets, left, &ctx).await?;
        if !waiting && sets.new.is_none() {
            created = sets::sync_new(&deployment, &mut sets, true, 0, &ctx).await?;
            strategy::recreate(&deployment, &mut sets, false, &ctx).await?
        } else {
            waiting
        }
    } else {
        strategy::roll(&deployment, &mut sets, posts, &ctx).await?
    };
    // Whole seconds, as the API server keeps times.
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default();
    let (status, recheck) = status::compute(&deployment, &sets, posts, created, now);
    let settled = !moved
        && status.updated_replicas == spec.replicas
        && status.replicas == spec.replicas
        && status.available_replicas == spec.replicas;
    if settled || paused {
        sets::clean_up_history(&deployment, &sets, &ctx).await?;
    }
    if Some(&status) != deployment.status.as_ref() {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
        api.patch_status(
            &deployment.name_any(),
            &PatchParams::default(),
            // Computed from this version of the Deployment: if the watch
            // has not yet shown a newer one (our own last write), the 409
            // sends the next pass to recompute from it rather than undo it.
            &Patch::Merge(json!({
                "metadata": {"resourceVersion": deployment.resource_version()},
                "status": status,
            })),
        )
        .await?;
    }
    Ok(recheck.map_or_else(Action::await_change, Action::requeue))
}

fn retry(deployment: Arc<Deployment>, error: &kube::Error, _: Arc<Context>) -> Action {
    if matches!(error, kube::Error::Api(e) if e.code == 409) {
        // A newer version is on its way through the watch, which starts the
        // next pass; this one only makes sure.
        return Action::requeue(Duration::from_secs(1));
    }
    tracing::warn!(
        "deployment-controller {}/{}: {error}",
        deployment.namespace().unwrap_or_default(),
        deployment.name_any()
    );
    Action::requeue(Duration::from_secs(5))
}
