//! The namespace controller: a namespace being deleted loses everything in
//! it, of every namespaced kind discovery lists, and then its `kubernetes`
//! finalizer, after which the API server removes it. While it works, the
//! namespace's conditions say what is left, in kube-controller-manager's
//! words (`kubectl describe namespace` shows them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::resources::{self, ServedKind};

/// The finalizer in `spec.finalizers` this controller is responsible for.
const FINALIZER: &str = "kubernetes";
/// How soon a namespace with content still going is looked at again.
const RECHECK: Duration = Duration::from_secs(2);

pub async fn run(client: Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .run(reconcile, retry, Arc::new(client))
        .for_each(|_| async {})
        .await;
    Ok(())
}

async fn reconcile(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action, kube::Error> {
    let ours = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if ns.metadata.deletion_timestamp.is_none() || !ours {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let kinds = resources::with_verbs(&client, &["list", "delete"]).await?;
    let content = delete_content(&client, &name, &kinds).await;
    set_conditions(&client, &ns, &content).await?;
    if !content.is_empty() {
        return Ok(Action::requeue(RECHECK));
    }
    finalize(&client, &ns).await?;
    tracing::debug!(namespace = name, "namespace emptied and finalized");
    Ok(Action::await_change())
}

/// What deleting a namespace's content left.
#[derive(Default)]
struct Content {
    /// Why some kinds could not be deleted.
    failures: Vec<String>,
    /// Objects left, by `plural.group`.
    remaining: BTreeMap<String, usize>,
    /// Objects left, by the finalizers holding them.
    finalizers: BTreeMap<String, usize>,
}

impl Content {
    fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.remaining.is_empty()
    }
}

/// Deletes every namespaced object in `namespace` (letting dependents go in
/// the background, as Kubernetes does) and counts what is still there.
async fn delete_content(client: &Client, namespace: &str, kinds: &[ServedKind]) -> Content {
    let mut content = Content::default();
    let background = DeleteParams::background();
    for kind in kinds.iter().filter(|k| k.namespaced) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &kind.api);
        let resource = format!("{}.{}", kind.api.plural, kind.api.group);
        let left = match api
            .delete_collection(&background, &ListParams::default())
            .await
        {
            Ok(_) => api.list(&ListParams::default()).await,
            Err(e) => Err(e),
        };
        match left {
            Ok(list) if list.items.is_empty() => {}
            Ok(list) => {
                content.remaining.insert(resource, list.items.len());
                for obj in &list.items {
                    for finalizer in obj.finalizers() {
                        *content.finalizers.entry(finalizer.clone()).or_default() += 1;
                    }
                }
            }
            Err(e) => content.failures.push(format!("{resource}: {e}")),
        }
    }
    content
}

/// Writes the deletion conditions, keeping the transition time of those that
/// did not change.
async fn set_conditions(client: &Client, ns: &Namespace, content: &Content) -> kube::Result<()> {
    let failed = !content.failures.is_empty();
    let remaining = !content.remaining.is_empty();
    let held = !content.finalizers.is_empty();
    let list = |counts: &BTreeMap<String, usize>, sep: &str| {
        counts
            .iter()
            .map(|(what, n)| format!("{what}{sep}{n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let wanted = [
        (
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".to_owned(),
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".to_owned(),
        ),
        if failed {
            (
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    content.failures.len(),
                    content.failures.join(", ")
                ),
            )
        } else {
            (
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".to_owned(),
            )
        },
        if remaining {
            (
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!(
                    "Some resources are remaining: {}",
                    list(&content.remaining, " has ")
                ),
            )
        } else {
            (
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".to_owned(),
            )
        },
        if held {
            (
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    list(&content.finalizers, " in ")
                ),
            )
        } else {
            (
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".to_owned(),
            )
        },
    ];
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = Time(jiff::Timestamp::now());
    let conditions: Vec<NamespaceCondition> = wanted
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let status = if status { "True" } else { "False" }.to_owned();
            let since = old
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            NamespaceCondition {
                type_: type_.to_owned(),
                status,
                reason: Some(reason.to_owned()),
                message: Some(message),
                last_transition_time: Some(since),
            }
        })
        .collect();
    if same_conditions(&old, &conditions) {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = Patch::Merge(json!({"status": {"conditions": conditions}}));
    api.patch_status(&ns.name_any(), &PatchParams::default(), &patch)
        .await?;
    Ok(())
}

fn same_conditions(old: &[NamespaceCondition], new: &[NamespaceCondition]) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(a, b)| {
            a.type_ == b.type_
                && a.status == b.status
                && a.reason == b.reason
                && a.message == b.message
        })
}

/// Hands the namespace back without our finalizer (`PUT .../finalize`).
async fn finalize(client: &Client, ns: &Namespace) -> kube::Result<()> {
    let mut finalized = ns.clone();
    if let Some(finalizers) = finalized.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        finalizers.retain(|f| f != FINALIZER);
    }
    let api: Api<Namespace> = Api::all(client.clone());
    match api
        .replace_subresource(
            "finalize",
            &ns.name_any(),
            &PostParams::default(),
            &finalized,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

fn retry(_: Arc<Namespace>, error: &kube::Error, _: Arc<Client>) -> Action {
    tracing::warn!("namespace controller: {error}");
    Action::requeue(RECHECK)
}
