//! A Deployment's ReplicaSets: the one whose template is the Deployment's
//! (the new one, made when missing), the others (old ones), their
//! revisions, scaling them, and deleting old ones beyond
//! `revisionHistoryLimit`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use tugboat_events::Type;

use super::{Context, spec_of};
use crate::claim::owner_reference;
use crate::revisions;

/// The label that tells a ReplicaSet's pods from its siblings'.
pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations that are not copied onto its ReplicaSets: the
/// ones the controller writes there itself, and kubectl's record of what
/// was applied to the Deployment.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// A Deployment's ReplicaSets, the new one apart, the old ones oldest first.
pub struct Sets {
    pub new: Option<ReplicaSet>,
    pub old: Vec<ReplicaSet>,
}

impl Sets {
    /// Sorts what the Deployment owns into new and old.
    pub fn sort(deployment: &Deployment, owned: Vec<Arc<ReplicaSet>>) -> Sets {
        let mut all: Vec<ReplicaSet> = owned.iter().map(|rs| (**rs).clone()).collect();
        all.sort_by_key(|rs| (rs.creation_timestamp().map(|t| t.0), rs.name_any()));
        let template = spec_of(deployment).template.clone();
        let new = all
            .iter()
            .position(|rs| same_template(&template, rs))
            .map(|i| all.remove(i));
        Sets { new, old: all }
    }

    pub fn all(&self) -> impl Iterator<Item = &ReplicaSet> {
        self.new.iter().chain(&self.old)
    }

    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut ReplicaSet> {
        self.new.iter_mut().chain(&mut self.old)
    }

    /// Sum of `of` over every ReplicaSet.
    pub fn total(&self, of: impl Fn(&ReplicaSet) -> i32) -> i32 {
        self.all().map(of).sum()
    }
}

pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The available pods that will stay: no more than the ReplicaSet's count,
/// since a status written before it was scaled down still counts the pods
/// its controller is about to delete.
pub fn staying_available(rs: &ReplicaSet) -> i32 {
    available(rs).min(replicas(rs))
}

pub fn ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The Deployment's count plus its surge when it last scaled `rs`.
pub fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    rs.annotations().get(MAX_REPLICAS)?.parse().ok()
}

/// Whether the Deployment's count changed since it last scaled one of its
/// active ReplicaSets: then it scales, in proportion, rather than rolls.
pub fn count_changed(deployment: &Deployment, sets: &Sets) -> bool {
    let wanted = spec_of(deployment).replicas.unwrap_or(1).to_string();
    sets.all()
        .filter(|rs| replicas(rs) > 0)
        .filter_map(|rs| rs.annotations().get(DESIRED_REPLICAS))
        .any(|desired| *desired != wanted)
}

/// The ReplicaSet's template is the Deployment's, once its own
/// pod-template-hash label is set aside.
fn same_template(template: &PodTemplateSpec, rs: &ReplicaSet) -> bool {
    let Some(theirs) = rs.spec.as_ref().and_then(|s| s.template.as_ref()) else {
        return false;
    };
    let mut theirs = theirs.clone();
    if let Some(labels) = theirs.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    let mut ours = template.clone();
    if let Some(labels) = ours.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    normalized(&theirs) == normalized(&ours)
}

/// A template with empty label and annotation maps taken as absent, which
/// is how the API server stores them.
fn normalized(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).unwrap_or_default();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));
    }
    value
}

/// The hash of the Deployment's pod template that names its ReplicaSet
/// and labels its pods, computed as DaemonSets and StatefulSets hash their
/// revisions (Kubernetes' ComputeHash): it changes whenever the template
/// does, and with the collision count.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    revisions::hash(&normalized(template), collision_count)
}

/// The annotations a ReplicaSet of this Deployment carries: the
/// Deployment's own (its change-cause among them), its revision, and the
/// replica counts it was last scaled for.
fn annotations_for(
    deployment: &Deployment,
    rs: Option<&ReplicaSet>,
    next_revision: i64,
    max_surge: i32,
) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> =
        rs.map(|rs| rs.annotations().clone()).unwrap_or_default();
    for (key, value) in deployment.annotations() {
        if !NOT_COPIED.contains(&key.as_str()) {
            annotations.insert(key.clone(), value.clone());
        }
    }
    let replicas = spec_of(deployment).replicas.unwrap_or(1);
    let old_revision = rs.map_or(0, revision);
    if old_revision != 0 && old_revision < next_revision {
        // A ReplicaSet brought back (a rollback) takes a new revision and
        // remembers the ones it had, as Kubernetes records it.
        let mut history: Vec<String> = annotations
            .get(REVISION_HISTORY)
            .map(|h| h.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        history.push(old_revision.to_string());
        annotations.insert(REVISION_HISTORY.into(), history.join(","));
    }
    annotations.insert(REVISION.into(), next_revision.max(old_revision).to_string());
    annotations.insert(DESIRED_REPLICAS.into(), replicas.to_string());
    annotations.insert(MAX_REPLICAS.into(), (replicas + max_surge).to_string());
    annotations
}

/// Finds or makes the new ReplicaSet (made with no replicas: scaling it
/// up is the strategy's step), brings its revision and annotations up to
/// date, and sets the Deployment's revision annotation to its revision.
/// `None` when it is missing and `create` is false.
pub async fn sync_new(
    deployment: &Deployment,
    sets: &mut Sets,
    create: bool,
    max_surge: i32,
    ctx: &Context,
) -> Result<Option<Created>, kube::Error> {
    let next_revision = sets.old.iter().map(revision).max().unwrap_or(0) + 1;
    let namespace = deployment.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let created = match &sets.new {
        Some(rs) => {
            let annotations = annotations_for(deployment, Some(rs), next_revision, max_surge);
            let min_ready = spec_of(deployment).min_ready_seconds;
            let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if &annotations != rs.annotations()
                || min_ready.unwrap_or(0) != rs_min_ready.unwrap_or(0)
            {
                let patch = json!({
                    "metadata": {"annotations": annotations},
                    "spec": {"minReadySeconds": min_ready},
                });
                let updated = api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
                sets.new = Some(updated);
            }
            Created::Found
        }
        None if !create => return Ok(None),
        None => {
            let rs = new_replica_set(deployment, next_revision, max_surge);
            match api.create(&PostParams::default(), &rs).await {
                Ok(made) => {
                    sets.new = Some(made);
                    Created::Made
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // A ReplicaSet of that name with another template: the
                    // next hash must differ, as Kubernetes' collisionCount
                    // makes it.
                    bump_collision_count(deployment, ctx).await?;
                    return Err(kube::Error::Api(e));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let revision = sets.new.as_ref().map_or(0, revision);
    if deployment.annotations().get(REVISION) != Some(&revision.to_string()) {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({"metadata": {"annotations": {REVISION: revision.to_string()}}});
        api.patch(
            &deployment.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    }
    Ok(Some(created))
}

/// Whether the new ReplicaSet was made by this pass or found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Made,
    Found,
}

fn new_replica_set(deployment: &Deployment, next_revision: i64, max_surge: i32) -> ReplicaSet {
    let spec = spec_of(deployment);
    let collisions = deployment.status.as_ref().and_then(|s| s.collision_count);
    let hash = template_hash(&spec.template, collisions);
    let mut template = spec.template.clone();
    let template_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    let mut labels = template_meta.labels.clone().unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    template_meta.labels = Some(labels.clone());
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", deployment.name_any())),
            namespace: deployment.namespace(),
            labels: Some(labels),
            annotations: Some(annotations_for(deployment, None, next_revision, max_surge)),
            owner_references: Some(vec![owner_reference(deployment)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

async fn bump_collision_count(deployment: &Deployment, ctx: &Context) -> Result<(), kube::Error> {
    let count = deployment
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let api: Api<Deployment> = Api::namespaced(
        ctx.client.clone(),
        &deployment.namespace().unwrap_or_default(),
    );
    let patch = json!({"status": {"collisionCount": count + 1}});
    api.patch_status(
        &deployment.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// Scales `rs` to `to` replicas (noting the Deployment's counts on it) and
/// records the ScalingReplicaSet event Kubernetes records; true if it
/// changed anything.
pub async fn scale(
    deployment: &Deployment,
    rs: &mut ReplicaSet,
    to: i32,
    max_surge: i32,
    ctx: &Context,
) -> Result<bool, kube::Error> {
    let from = replicas(rs);
    let wanted = spec_of(deployment).replicas.unwrap_or(1);
    let noted = |key: &str| rs.annotations().get(key).cloned();
    let counts_noted = noted(DESIRED_REPLICAS) == Some(wanted.to_string())
        && noted(MAX_REPLICAS) == Some((wanted + max_surge).to_string());
    if from == to && counts_noted {
        return Ok(false);
    }
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let patch = json!({
        "metadata": {"annotations": {
            DESIRED_REPLICAS: wanted.to_string(),
            MAX_REPLICAS: (wanted + max_surge).to_string(),
        }},
        "spec": {"replicas": to},
    });
    *rs = api
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    if from != to {
        let direction = if to > from { "up" } else { "down" };
        let message = format!(
            "Scaled {direction} replica set {} from {from} to {to}",
            rs.name_any()
        );
        ctx.recorder
            .record(deployment, Type::Normal, "ScalingReplicaSet", message)
            .await;
    }
    Ok(true)
}

/// Deletes the oldest revisions of scaled-down old ReplicaSets beyond the
/// Deployment's `revisionHistoryLimit`.
pub async fn clean_up_history(
    deployment: &Deployment,
    sets: &Sets,
    ctx: &Context,
) -> Result<(), kube::Error> {
    let Some(limit) = spec_of(deployment).revision_history_limit else {
        return Ok(());
    };
    let mut old: Vec<&ReplicaSet> = sets
        .old
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = old
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    old.sort_by_key(|rs| revision(rs));
    let api: Api<ReplicaSet> = Api::namespaced(
        ctx.client.clone(),
        &deployment.namespace().unwrap_or_default(),
    );
    for rs in old.into_iter().take(excess) {
        let settled =
            rs.status.as_ref().and_then(|s| s.observed_generation) >= rs.metadata.generation;
        if replicas(rs) != 0 || status_replicas(rs) != 0 || !settled {
            continue;
        }
        match api.delete(&rs.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": image}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_scaled_down_set_counts_no_more_available_pods_than_it_keeps() {
        let rs = |replicas: i32, available: i32| ReplicaSet {
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..ReplicaSetSpec::default()
            }),
            status: Some(ReplicaSetStatus {
                available_replicas: Some(available),
                ..ReplicaSetStatus::default()
            }),
            ..ReplicaSet::default()
        };
        assert_eq!(
            staying_available(&rs(3, 4)),
            3,
            "status from before the scale down"
        );
        assert_eq!(staying_available(&rs(3, 2)), 2);
    }

    #[test]
    fn the_hash_is_stable_and_follows_the_template_and_collisions() {
        let hash = template_hash(&template("httpd"), None);
        assert_eq!(hash, template_hash(&template("httpd"), None));
        assert!(
            hash.chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
        assert_ne!(hash, template_hash(&template("busybox"), None));
        assert_ne!(hash, template_hash(&template("httpd"), Some(1)));
    }

    #[test]
    fn a_replicaset_has_the_template_whatever_its_hash_label() {
        let mut labelled = template("httpd");
        labelled
            .metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
            .unwrap()
            .insert(HASH_LABEL.into(), "abc".into());
        let rs = ReplicaSet {
            spec: Some(ReplicaSetSpec {
                template: Some(labelled),
                ..ReplicaSetSpec::default()
            }),
            ..ReplicaSet::default()
        };
        assert!(same_template(&template("httpd"), &rs));
        assert!(!same_template(&template("busybox"), &rs));
    }
}
