//! The StatefulSet controller: pods with stable names (`<set>-<ordinal>`),
//! hostnames and claims, as kube-controller-manager's stateful set
//! controller keeps them.
//!
//! Pod `web-2` is `web-2` forever: it has hostname `web-2` under the set's
//! `serviceName` subdomain, and its volumeClaimTemplates give it claims
//! named `<template>-web-2` that outlive it, so a replacement finds its
//! data. With `OrderedReady` pods start one at a time, each once the one
//! before is Running and Ready, and stop highest ordinal first; `Parallel`
//! does both at once. A RollingUpdate replaces pods from the highest
//! ordinal down to the partition, one at a time; OnDelete waits for the
//! user. Templates are kept as ControllerRevisions (`revisions`), named on
//! each pod by its `controller-revision-hash` label.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tugboat_events::{Recorder, Type};

use crate::claim::claim;
use crate::pods;
use crate::revisions::{HASH_LABEL, History};
use crate::selector::Selector;

const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

struct Context {
    client: Client,
    events: Recorder,
}

pub async fn run(client: Client) -> anyhow::Result<()> {
    let sets: Api<StatefulSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let context = Arc::new(Context {
        events: Recorder::new(client.clone(), "statefulset-controller", None),
        client,
    });
    Controller::new(sets, watcher::Config::default())
        .owns(pods, watcher::Config::default())
        .run(reconcile, retry, context)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn retry(_: Arc<StatefulSet>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!("StatefulSet controller: {error}");
    Action::requeue(Duration::from_secs(2))
}

/// One pass over a set: what it has, and the API to change it.
struct Pass<'a> {
    set: &'a StatefulSet,
    spec: &'a StatefulSetSpec,
    name: String,
    pods: Api<Pod>,
    claims: Api<PersistentVolumeClaim>,
    ctx: &'a Context,
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let uid = set.uid().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let selector = match Selector::new(Some(&spec.selector)) {
        Ok(selector) => selector,
        Err(e) => {
            tracing::warn!(namespace, name, "StatefulSet with a bad selector: {e}");
            return Ok(Action::await_change());
        }
    };
    let pass = Pass {
        set: &set,
        spec: &spec,
        name: name.clone(),
        pods: Api::namespaced(ctx.client.clone(), &namespace),
        claims: Api::namespaced(ctx.client.clone(), &namespace),
        ctx: &ctx,
    };
    // Its pods, with orphans it selects adopted (only those named as its
    // members, `<set>-<ordinal>`) and pods it no longer selects released.
    let candidates = pass.pods.list(&ListParams::default()).await?.items;
    let owned: Vec<Arc<Pod>> = claim(
        &ctx.client,
        &*set,
        &selector,
        candidates
            .into_iter()
            .filter(|p| ordinal_of(&name, &p.name_any()).is_some())
            .map(Arc::new)
            .collect(),
    )
    .await;

    let mut history = History::of(
        Api::<ControllerRevision>::namespaced(ctx.client.clone(), &namespace),
        &selector,
        &uid,
    )
    .await?;
    let status = set.status.clone().unwrap_or_default();
    let update = history
        .current_of(&*set, &spec.template, status.collision_count)
        .await?;
    let owner = set
        .controller_owner_ref(&())
        .expect("a stored StatefulSet has a uid");
    let update_name = update.name_any();
    // The revision pods below the partition keep; the update revision
    // once a rollout is complete or when the recorded one is gone.
    let current = status
        .current_revision
        .as_ref()
        .and_then(|n| {
            history
                .revisions
                .iter()
                .find(|r| r.metadata.name.as_ref() == Some(n))
        })
        .cloned()
        .unwrap_or_else(|| update.clone());
    let current_name = current.name_any();
    let current_template = template_of(&current).unwrap_or_else(|| spec.template.clone());

    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let mut by_ordinal: BTreeMap<i32, &Pod> = BTreeMap::new();
    for pod in &owned {
        if let Some(ordinal) = ordinal_of(&name, &pod.name_any()) {
            by_ordinal.insert(ordinal, pod);
        }
    }
    let ordered = spec.pod_management_policy.as_deref() != Some("Parallel");
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let on_delete = strategy.type_.as_deref() == Some("OnDelete");
    let partition = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();

    // Bring up ordinals start..start+replicas, in order.
    let mut all_healthy = true;
    for ordinal in start..start + replicas {
        let index = ordinal - start;
        match by_ordinal.get(&ordinal) {
            None => {
                let (template, revision) = if !on_delete && index < partition {
                    (&current_template, &current_name)
                } else {
                    (&spec.template, &update_name)
                };
                pass.create_pod(ordinal, template, revision, owner.clone())
                    .await?;
                all_healthy = false;
            }
            Some(pod) if matches!(phase(pod), Some("Failed" | "Succeeded")) => {
                // Made again under the same name once it is gone.
                pass.delete_pod(pod).await?;
                all_healthy = false;
            }
            Some(pod) => {
                if pod.metadata.deletion_timestamp.is_some() || !running_and_ready(pod) {
                    all_healthy = false;
                }
            }
        }
        if ordered && !all_healthy {
            break;
        }
    }

    // Condemned pods: beyond the replicas, highest ordinal first.
    let condemned: Vec<&Pod> = by_ordinal
        .iter()
        .rev()
        .filter(|(o, _)| **o < start || **o >= start + replicas)
        .map(|(_, p)| *p)
        .collect();
    if !ordered || all_healthy {
        for pod in &condemned {
            if pod.metadata.deletion_timestamp.is_none() {
                pass.delete_pod(pod).await?;
            }
            if ordered {
                break;
            }
        }
    }
    if spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_scaled.as_deref())
        == Some("Delete")
    {
        pass.delete_claims_of_scaled_down(&by_ordinal, start, replicas)
            .await?;
    }

    // Rolling update: the highest ordinal not at the update revision goes,
    // one at a time, down to the partition.
    if !on_delete && all_healthy && condemned.is_empty() {
        for ordinal in (start + partition.max(0)..start + replicas).rev() {
            let Some(pod) = by_ordinal.get(&ordinal) else {
                break;
            };
            if revision_of(pod) != Some(&update_name) && pod.metadata.deletion_timestamp.is_none() {
                pass.delete_pod(pod).await?;
                break;
            }
            if !running_and_ready(pod) {
                break;
            }
        }
    }

    let in_use: Vec<String> = owned
        .iter()
        .filter_map(|p| revision_of(p).cloned())
        .chain([current_name.clone(), update_name.clone()])
        .collect();
    history
        .prune(spec.revision_history_limit.unwrap_or(10), &in_use)
        .await?;

    let live: Vec<&Pod> = owned
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| pods::is_active(p))
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| live.iter().filter(|p| f(p)).count() as i32;
    let ready = count(&pods::is_ready);
    let available = count(&|p| pods::is_available(p, min_ready, now));
    let updated = count(&|p| revision_of(p) == Some(&update_name));
    let mut current_replicas = count(&|p| revision_of(p) == Some(&current_name));
    let mut current_revision = current_name;
    // A rollout is complete once every replica is updated and ready.
    if !on_delete && updated == replicas && ready == replicas && live.len() as i32 == replicas {
        current_revision = update_name.clone();
        current_replicas = updated;
    }
    let status = json!({"status": {
        "observedGeneration": set.metadata.generation,
        "replicas": live.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current_replicas,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_name,
        "collisionCount": status.collision_count.unwrap_or(0),
    }});
    Api::<StatefulSet>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;

    let settled = ready == replicas
        && available == replicas
        && updated == replicas
        && live.len() as i32 == replicas;
    Ok(if settled {
        Action::await_change()
    } else {
        // Availability after minReadySeconds changes no object: look again.
        Action::requeue(Duration::from_secs(1))
    })
}

impl Pass<'_> {
    /// Makes the pod of `ordinal` from `template` at `revision`, after its
    /// claims.
    async fn create_pod(
        &self,
        ordinal: i32,
        template: &PodTemplateSpec,
        revision: &str,
        owner: OwnerReference,
    ) -> Result<(), kube::Error> {
        let pod_name = format!("{}-{ordinal}", self.name);
        let namespace = self.set.namespace().unwrap_or_default();
        let mut pod = pods::from_template(template, &namespace, "", owner);
        pod.metadata.generate_name = None;
        pod.metadata.name = Some(pod_name.clone());
        let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(HASH_LABEL.to_owned(), revision.to_owned());
        labels.insert(POD_NAME_LABEL.to_owned(), pod_name.clone());
        labels.insert(POD_INDEX_LABEL.to_owned(), ordinal.to_string());
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.hostname = Some(pod_name.clone());
        if !self.spec.service_name.as_deref().unwrap_or("").is_empty() {
            spec.subdomain = self.spec.service_name.clone();
        }
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        for claim in self.spec.volume_claim_templates.iter().flatten() {
            let template_name = claim.name_any();
            let claim_name = format!("{template_name}-{pod_name}");
            self.ensure_claim(claim, &claim_name).await?;
            volumes.retain(|v| v.name != template_name);
            volumes.push(Volume {
                name: template_name,
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name,
                    read_only: None,
                }),
                ..Volume::default()
            });
        }
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                self.record(
                    Type::Normal,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {pod_name} in StatefulSet {} successful",
                        self.name
                    ),
                )
                .await;
                Ok(())
            }
            // The previous pod of that name is still terminating.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => {
                self.record(
                    Type::Warning,
                    "FailedCreate",
                    format!(
                        "create Pod {pod_name} in StatefulSet {} failed error: {e}",
                        self.name
                    ),
                )
                .await;
                Err(e)
            }
        }
    }

    /// The claim `name` from a volumeClaimTemplate, made when missing; an
    /// existing one is kept as it is, with its data.
    async fn ensure_claim(&self, template: &PersistentVolumeClaim, name: &str) -> kube::Result<()> {
        if self.claims.get_opt(name).await?.is_some() {
            return Ok(());
        }
        let mut labels = template.metadata.labels.clone().unwrap_or_default();
        labels.extend(self.spec.selector.match_labels.clone().unwrap_or_default());
        let delete_with_set = self
            .spec
            .persistent_volume_claim_retention_policy
            .as_ref()
            .and_then(|p| p.when_deleted.as_deref())
            == Some("Delete");
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels),
                annotations: template.metadata.annotations.clone(),
                // The garbage collector deletes it with the set.
                owner_references: delete_with_set
                    .then(|| vec![self.set.controller_owner_ref(&()).expect("stored")]),
                ..ObjectMeta::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        match self.claims.create(&PostParams::default(), &claim).await {
            Ok(_) => {
                self.record(
                    Type::Normal,
                    "SuccessfulCreate",
                    format!("create Claim {name} in StatefulSet {} success", self.name),
                )
                .await;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_pod(&self, pod: &Pod) -> kube::Result<()> {
        let pod_name = pod.name_any();
        match self.pods.delete(&pod_name, &DeleteParams::default()).await {
            Ok(_) => {
                self.record(
                    Type::Normal,
                    "SuccessfulDelete",
                    format!(
                        "delete Pod {pod_name} in StatefulSet {} successful",
                        self.name
                    ),
                )
                .await;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `whenScaled: Delete`: the claims of ordinals scaled away go once
    /// their pods are gone.
    async fn delete_claims_of_scaled_down(
        &self,
        pods: &BTreeMap<i32, &Pod>,
        start: i32,
        replicas: i32,
    ) -> kube::Result<()> {
        let claims = self.claims.list(&ListParams::default()).await?.items;
        for claim in self.spec.volume_claim_templates.iter().flatten() {
            let prefix = format!("{}-{}-", claim.name_any(), self.name);
            for existing in &claims {
                let claim_name = existing.name_any();
                let Some(ordinal) = claim_name
                    .strip_prefix(&prefix)
                    .and_then(|o| o.parse::<i32>().ok())
                else {
                    continue;
                };
                let scaled_away = ordinal < start || ordinal >= start + replicas;
                if scaled_away
                    && !pods.contains_key(&ordinal)
                    && existing.metadata.deletion_timestamp.is_none()
                {
                    match self
                        .claims
                        .delete(&claim_name, &DeleteParams::default())
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    async fn record(&self, kind: Type, reason: &str, message: String) {
        self.ctx
            .events
            .record(self.set, kind, reason, message)
            .await;
    }
}

/// The ordinal of `pod_name` in the set `set_name`: `web-2` is 2.
fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    let ordinal = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    if ordinal.starts_with('+') || (ordinal.len() > 1 && ordinal.starts_with('0')) {
        return None;
    }
    ordinal.parse().ok().filter(|o: &i32| *o >= 0)
}

fn revision_of(pod: &Pod) -> Option<&String> {
    pod.labels().get(HASH_LABEL)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && pods::is_ready(pod)
}

/// The pod template a revision restores.
fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template: Value = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_are_read_from_names_of_the_set_only() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-01"), None);
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web--1"), None);
    }

    #[test]
    fn a_revision_gives_back_its_template() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "old"}]},
        }))
        .unwrap();
        let revision = ControllerRevision {
            data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(
                crate::revisions::template_patch(&template).unwrap(),
            )),
            ..ControllerRevision::default()
        };
        assert_eq!(template_of(&revision), Some(template));
    }
}
