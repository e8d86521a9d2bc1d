//! ControllerRevisions: the template history of DaemonSets and StatefulSets.
//!
//! Each distinct pod template an owner has had is kept as a ControllerRevision
//! named `<owner>-<hash>`, whose `data` is the strategic merge patch that puts
//! the template back (`{"spec":{"template":{..., "$patch":"replace"}}}`) and
//! whose `revision` number orders them. That is what `kubectl rollout
//! history` lists and what `kubectl rollout undo` applies, so the shape is
//! Kubernetes' own.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::selector::Selector;

/// The label on pods (and revisions) naming the revision they come from.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// The patch that restores `template`, stored as a revision's data.
pub fn template_patch(template: &PodTemplateSpec) -> serde_json::Result<Value> {
    let mut template = serde_json::to_value(template)?;
    template["$patch"] = json!("replace");
    Ok(json!({"spec": {"template": template}}))
}

/// A short hash of a revision's data, perturbed by the owner's collision
/// count, spelt in the alphabet Kubernetes uses for names (no vowels, so no
/// words).
pub fn hash(data: &Value, collision_count: Option<i32>) -> String {
    // FNV-1a, 32 bits, as Kubernetes' ComputeHash.
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(data.to_string().as_bytes());
    if let Some(count) = collision_count {
        feed(&count.to_le_bytes());
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // Each decimal digit's byte taken modulo the alphabet, as SafeEncodeString.
    h.to_string()
        .bytes()
        .map(|d| ALPHABET[usize::from(d) % ALPHABET.len()] as char)
        .collect()
}

/// An owner's revisions, oldest first.
pub struct History {
    api: Api<ControllerRevision>,
    pub revisions: Vec<ControllerRevision>,
}

impl History {
    /// The revisions in the owner's namespace selected by its selector and
    /// controlled by it (`owner_uid`).
    pub async fn of(
        api: Api<ControllerRevision>,
        selector: &Selector,
        owner_uid: &str,
    ) -> kube::Result<History> {
        let mut revisions: Vec<ControllerRevision> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|r| selector.matches(r.metadata.labels.as_ref()))
            .filter(|r| {
                r.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == owner_uid)
            })
            .collect();
        revisions.sort_by_key(|r| r.revision);
        Ok(History { api, revisions })
    }

    /// The revision of `owner`'s pod `template` (perturbed by its
    /// `collision_count`), made or renumbered as [`History::current`] does.
    pub async fn current_of<K: Resource<DynamicType = ()>>(
        &mut self,
        owner: &K,
        template: &PodTemplateSpec,
        collision_count: Option<i32>,
    ) -> kube::Result<ControllerRevision> {
        let data = template_patch(template).map_err(kube::Error::SerdeError)?;
        let hash = hash(&data, collision_count);
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(HASH_LABEL.to_owned(), hash.clone());
        let owner_ref = owner
            .controller_owner_ref(&())
            .expect("a stored owner has a uid");
        self.current(
            &format!("{}-{hash}", owner.name_any()),
            &data,
            labels,
            owner.meta().annotations.clone(),
            owner_ref,
        )
        .await
    }

    fn latest_number(&self) -> i64 {
        self.revisions.last().map_or(0, |r| r.revision)
    }

    /// The revision holding `data`, made (or renumbered as the latest, when
    /// an old template comes back) as needed. `name` is `<owner>-<hash>`.
    async fn current(
        &mut self,
        name: &str,
        data: &Value,
        labels: BTreeMap<String, String>,
        annotations: Option<BTreeMap<String, String>>,
        owner: OwnerReference,
    ) -> kube::Result<ControllerRevision> {
        let latest = self.latest_number();
        if let Some(i) = self.revisions.iter().position(|r| same_data(r, data)) {
            if self.revisions[i].revision == latest {
                return Ok(self.revisions[i].clone());
            }
            let mut renumbered = self.revisions.remove(i);
            renumbered.revision = latest + 1;
            let renumbered = self
                .api
                .replace(
                    renumbered.metadata.name.as_deref().unwrap_or_default(),
                    &PostParams::default(),
                    &renumbered,
                )
                .await?;
            self.revisions.push(renumbered.clone());
            return Ok(renumbered);
        }
        let revision = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(labels),
                annotations,
                owner_references: Some(vec![owner]),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(data.clone())),
            revision: latest + 1,
        };
        let made = self.api.create(&PostParams::default(), &revision).await?;
        self.revisions.push(made.clone());
        Ok(made)
    }

    /// Deletes the oldest revisions beyond `limit` that no live pod or
    /// status still names (`in_use`: revision names).
    pub async fn prune(&mut self, limit: i32, in_use: &[String]) -> kube::Result<()> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let unused: Vec<String> = self
            .revisions
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .filter(|n| !in_use.contains(n))
            .collect();
        for name in unused.iter().take(unused.len().saturating_sub(limit)) {
            match self.api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
            self.revisions
                .retain(|r| r.metadata.name.as_ref() != Some(name));
        }
        Ok(())
    }
}

fn same_data(revision: &ControllerRevision, data: &Value) -> bool {
    revision.data.as_ref().is_some_and(|d| &d.0 == data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_differ_by_template_and_collision_count() {
        let a = json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        let b = json!({"spec": {"template": {"spec": {"containers": [{"image": "b"}]}}}});
        assert_eq!(hash(&a, None), hash(&a, None));
        assert_ne!(hash(&a, None), hash(&b, None));
        assert_ne!(hash(&a, None), hash(&a, Some(1)));
        assert!(
            hash(&a, None)
                .chars()
                .all(|c| c.is_ascii_alphanumeric() && !"aeiou".contains(c))
        );
    }
}
