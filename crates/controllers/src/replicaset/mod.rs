//! The ReplicaSet controller, which also runs ReplicationControllers (the
//! older kind with a plain label-map selector; the loop is the same, as in
//! Kubernetes): keeps the number of pods a spec asks for, adopting orphans
//! that match the selector and releasing pods that stop matching, and
//! reports replicas, fullyLabeledReplicas, readyReplicas and
//! availableReplicas in the status.
//!
//! Each pass works from a cache of all pods, fed by one watch whose events
//! also settle the `expectations` of earlier passes.

mod expectations;

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tugboat_events::{Recorder, Type};

use self::expectations::Expectations;
use crate::claim::{claim, owner_reference, owners_of};
use crate::pods::{self, is_active, is_available, is_ready, ready_since};
use crate::selector::Selector;

/// At most this many pods are created or deleted in one pass, as
/// Kubernetes' BurstReplicas.
const BURST: usize = 500;

/// Runs the ReplicaSet and ReplicationController controllers.
pub async fn run(client: Client) -> anyhow::Result<()> {
    tokio::try_join!(
        run_kind::<ReplicaSet>(client.clone()),
        run_kind::<ReplicationController>(client),
    )?;
    Ok(())
}

/// What the loop needs to know of a ReplicaSet or a ReplicationController.
pub trait Replicated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The source of its events, as Kubernetes names the controller.
    const COMPONENT: &'static str;
    fn replicas(&self) -> i32;
    fn selector(&self) -> Option<LabelSelector>;
    fn template(&self) -> Option<&PodTemplateSpec>;
    fn min_ready_seconds(&self) -> i32;
    /// The counts its status holds now.
    fn counts(&self) -> Counts;
}

/// The counts a status reports, and its ReplicaFailure condition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub fully_labeled: i32,
    pub ready: i32,
    pub available: i32,
    pub observed_generation: i64,
    pub failure: Option<Failure>,
}

/// Why pods could not be created or deleted: the ReplicaFailure
/// condition's reason (FailedCreate, FailedDelete) and the API server's
/// words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
}

/// The ReplicaFailure condition among a status's conditions, if true.
fn failure_in<'a>(
    conditions: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a String>, Option<&'a String>)>,
) -> Option<Failure> {
    conditions
        .into_iter()
        .find(|(type_, status, _, _)| *type_ == "ReplicaFailure" && *status == "True")
        .map(|(_, _, reason, message)| Failure {
            reason: reason.cloned().unwrap_or_default(),
            message: message.cloned().unwrap_or_default(),
        })
}

/// ReplicaSet and ReplicationController keep the same spec and status fields
/// under types of their own; one body reads both.
macro_rules! shared_fields {
    () => {
        fn replicas(&self) -> i32 {
            self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
        }

        fn template(&self) -> Option<&PodTemplateSpec> {
            self.spec.as_ref()?.template.as_ref()
        }

        fn min_ready_seconds(&self) -> i32 {
            self.spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0)
        }

        fn counts(&self) -> Counts {
            let Some(s) = &self.status else {
                return Counts::default();
            };
            Counts {
                replicas: s.replicas,
                fully_labeled: s.fully_labeled_replicas.unwrap_or(0),
                ready: s.ready_replicas.unwrap_or(0),
                available: s.available_replicas.unwrap_or(0),
                observed_generation: s.observed_generation.unwrap_or(0),
                failure: failure_in(s.conditions.iter().flatten().map(|c| {
                    (
                        c.type_.as_str(),
                        c.status.as_str(),
                        c.reason.as_ref(),
                        c.message.as_ref(),
                    )
                })),
            }
        }
    };
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";

    shared_fields!();

    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";

    shared_fields!();

    fn selector(&self) -> Option<LabelSelector> {
        let labels = self.spec.as_ref()?.selector.clone()?;
        Some(LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        })
    }
}

struct Context {
    client: Client,
    pods: Store<Pod>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
}

async fn run_kind<K: Replicated>(client: Client) -> anyhow::Result<()> {
    let (pods, writer) = reflector::store();
    let expectations = Arc::new(Expectations::default());
    let observer = expectations.clone();
    // Expectations are settled after the cache has the event, so a pass
    // that finds them settled also finds the pods in the cache.
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect_ok(move |event| observer.observe(event))
        .touched_objects();
    let controller = Controller::new(Api::<K>::all(client.clone()), watcher::Config::default());
    let owners = controller.store();
    let context = Arc::new(Context {
        recorder: Recorder::new(client.clone(), K::COMPONENT, None),
        client,
        pods,
        expectations,
    });
    controller
        .watches_stream(pod_events, move |pod| {
            owners_of(&owners, &pod, |owner: &K| owner.selector())
        })
        .run(reconcile::<K>, retry, context)
        .for_each(|_| async {})
        .await;
    Ok(())
}

async fn reconcile<K: Replicated>(owner: Arc<K>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    if ctx.pods.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let namespace = owner.namespace().unwrap_or_default();
    let key = (namespace.clone(), owner.name_any());
    let Ok(selector) = Selector::new(owner.selector().as_ref()) else {
        // Validation keeps bad selectors out; one that got in cannot be
        // fixed by trying again.
        return Ok(Action::await_change());
    };
    // Asked before the cache is read: settled expectations promise that
    // the cache holds what the earlier passes did.
    let may_change = ctx.expectations.satisfied(&key) && owner.meta().deletion_timestamp.is_none();
    let candidates = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&namespace) && is_active(p))
        .collect();
    let owned = claim(&ctx.client, owner.as_ref(), &selector, candidates).await;
    let outcome = if may_change {
        manage(owner.as_ref(), &owned, &key, &ctx).await
    } else {
        Ok(())
    };
    let now = Timestamp::now();
    let mut counts = count(owner.as_ref(), &owned, now);
    // A failure already reported stays as first reported while it lasts,
    // as Kubernetes keeps it.
    counts.failure = outcome.as_ref().err().map(|error| {
        owner.counts().failure.unwrap_or_else(|| Failure {
            reason: if owned.len() < usize::try_from(owner.replicas()).unwrap_or(0) {
                "FailedCreate".into()
            } else {
                "FailedDelete".into()
            },
            message: api_message(error),
        })
    });
    if counts != owner.counts() {
        write_status(owner.as_ref(), &counts, now, &ctx.client).await?;
    }
    outcome?;
    // A pod that is ready but not yet available becomes available with
    // no event to say so: look again when it should have.
    if counts.ready > counts.available {
        let wait = u64::try_from(owner.min_ready_seconds()).unwrap_or(0);
        return Ok(Action::requeue(Duration::from_secs(wait.max(1))));
    }
    Ok(Action::await_change())
}

/// Creates or deletes pods to bring `owned` to the spec's count.
async fn manage<K: Replicated>(
    owner: &K,
    owned: &[Arc<Pod>],
    key: &(String, String),
    ctx: &Context,
) -> Result<(), kube::Error> {
    let wanted = usize::try_from(owner.replicas()).unwrap_or(0);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.0);
    if owned.len() < wanted {
        let Some(template) = owner.template() else {
            return Ok(());
        };
        let missing = (wanted - owned.len()).min(BURST);
        create_pods(owner, template, missing, key, &api, ctx).await
    } else if owned.len() > wanted {
        let mut doomed: Vec<&Arc<Pod>> = owned.iter().collect();
        doomed.sort_by_key(|p| deletion_rank(p));
        doomed.truncate((owned.len() - wanted).min(BURST));
        let deletions = doomed
            .into_iter()
            .map(|pod| delete_pod(owner, pod, key, &api, ctx));
        futures::future::join_all(deletions)
            .await
            .into_iter()
            .collect()
    } else {
        Ok(())
    }
}

/// Creates `count` pods in batches of 1, 2, 4, ... as Kubernetes does, so
/// that a pod the API server refuses is refused once, not `count` times.
async fn create_pods<K: Replicated>(
    owner: &K,
    template: &PodTemplateSpec,
    count: usize,
    key: &(String, String),
    api: &Api<Pod>,
    ctx: &Context,
) -> Result<(), kube::Error> {
    let mut done = 0;
    let mut batch = 1;
    while done < count {
        let size = batch.min(count - done);
        let creations = (0..size).map(|_| create_pod(owner, template, key, api, ctx));
        let results = futures::future::join_all(creations).await;
        results.into_iter().collect::<Result<(), _>>()?;
        done += size;
        batch *= 2;
    }
    Ok(())
}

async fn create_pod<K: Replicated>(
    owner: &K,
    template: &PodTemplateSpec,
    key: &(String, String),
    api: &Api<Pod>,
    ctx: &Context,
) -> Result<(), kube::Error> {
    let prefix = pod_name_prefix(&key.1);
    let name = format!("{prefix}{}", random_suffix());
    let mut pod = pods::from_template(template, &key.0, &prefix, owner_reference(owner));
    pod.metadata.name = Some(name.clone());
    ctx.expectations.expect_creation(key, &name);
    match api.create(&PostParams::default(), &pod).await {
        Ok(_) => {
            let message = format!("Created pod: {name}");
            ctx.recorder
                .record(owner, Type::Normal, "SuccessfulCreate", message)
                .await;
            Ok(())
        }
        Err(error) => {
            ctx.expectations.forget(key, &name);
            let message = format!("Error creating: {}", api_message(&error));
            ctx.recorder
                .record(owner, Type::Warning, "FailedCreate", message)
                .await;
            Err(error)
        }
    }
}

async fn delete_pod<K: Replicated>(
    owner: &K,
    pod: &Pod,
    key: &(String, String),
    api: &Api<Pod>,
    ctx: &Context,
) -> Result<(), kube::Error> {
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    ctx.expectations.expect_deletion(key, &uid);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            let message = format!("Deleted pod: {name}");
            ctx.recorder
                .record(owner, Type::Normal, "SuccessfulDelete", message)
                .await;
            Ok(())
        }
        // Gone already: what we wanted.
        Err(kube::Error::Api(e)) if e.code == 404 => {
            ctx.expectations.forget(key, &uid);
            Ok(())
        }
        Err(error) => {
            ctx.expectations.forget(key, &uid);
            let message = format!("Error deleting: {}", api_message(&error));
            ctx.recorder
                .record(owner, Type::Warning, "FailedDelete", message)
                .await;
            Err(error)
        }
    }
}

/// The API server's own words for a refusal.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(e) => e.message.clone(),
        other => other.to_string(),
    }
}

/// `web-` for owner `web`, shortened so that name and suffix fit the 63
/// characters of a name, as the API server shortens a generateName.
fn pod_name_prefix(owner: &str) -> String {
    let base: String = owner.chars().take(63 - 5 - 1).collect();
    format!("{base}-")
}

/// Five characters from the alphabet Kubernetes uses for generated names
/// (no vowels, so no words).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // A fresh RandomState is randomly keyed: hashing anything with it
    // gives random bits without another dependency.
    let mut bits = RandomState::new().hash_one(0u8);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize];
            bits /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// Which pods go first when there are too many, as Kubernetes ranks them:
/// unscheduled before scheduled, pending before running, not ready before
/// ready, ready for less time before more, more restarts before fewer,
/// newer before older.
fn deletion_rank(pod: &Pod) -> impl Ord {
    let status = pod.status.as_ref();
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |all| {
            all.iter().map(|c| c.restart_count).max().unwrap_or(0)
        });
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        scheduled,
        phase,
        is_ready(pod),
        Reverse(ready_since(pod)),
        Reverse(restarts),
        Reverse(created),
    )
}

fn count<K: Replicated>(owner: &K, owned: &[Arc<Pod>], now: Timestamp) -> Counts {
    let template_labels: BTreeMap<String, String> = owner
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let fully_labeled = |pod: &Pod| {
        let labels = pod.metadata.labels.as_ref();
        template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    };
    let tally = |check: &dyn Fn(&Pod) -> bool| {
        i32::try_from(owned.iter().filter(|p| check(p)).count()).unwrap_or(i32::MAX)
    };
    Counts {
        replicas: tally(&|_| true),
        fully_labeled: tally(&fully_labeled),
        ready: tally(&is_ready),
        available: tally(&|p| is_available(p, owner.min_ready_seconds(), now)),
        observed_generation: owner.meta().generation.unwrap_or(0),
        failure: None,
    }
}

async fn write_status<K: Replicated>(
    owner: &K,
    counts: &Counts,
    now: Timestamp,
    client: &Client,
) -> Result<(), kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    // ReplicaFailure is the only condition these kinds have: null clears it.
    let conditions = counts.failure.as_ref().map(|f| {
        json!([{
            "type": "ReplicaFailure",
            "status": "True",
            "reason": f.reason,
            "message": f.message,
            "lastTransitionTime": Timestamp::from_second(now.as_second()).unwrap_or(now),
        }])
    });
    let status = json!({"status": {
        "replicas": counts.replicas,
        "fullyLabeledReplicas": counts.fully_labeled,
        "readyReplicas": counts.ready,
        "availableReplicas": counts.available,
        "observedGeneration": counts.observed_generation,
        "conditions": conditions,
    }});
    api.patch_status(
        &owner.name_any(),
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await?;
    Ok(())
}

fn retry<K: Replicated>(owner: Arc<K>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!(
        "{} {}/{}: {error}",
        K::COMPONENT,
        owner.namespace().unwrap_or_default(),
        owner.name_any()
    );
    Action::requeue(Duration::from_secs(5))
}
