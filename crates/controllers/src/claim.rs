//! Which objects a controller owns, as Kubernetes' ControllerRefManager
//! decides it: an object controlled by the owner stays its own while the
//! owner's selector matches it and is released when it stops matching; an
//! orphan that matches is adopted. A ReplicaSet claims pods this way, a
//! Deployment claims ReplicaSets.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::selector::Selector;

/// The reference a controller puts on what it owns: controller=true and
/// blockOwnerDeletion=true, so foreground deletion waits for its children.
pub fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        controller: Some(true),
        block_owner_deletion: Some(true),
        ..owner
            .owner_ref(&())
            .expect("objects from the API server have a name and uid")
    }
}

/// The object's controller (a pod's ReplicaSet, a ReplicaSet's
/// Deployment), if it has one.
pub fn controller_of<C: Resource>(object: &C) -> Option<&OwnerReference> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whom a child's change concerns: its controller if that is of kind `K`,
/// and every `K` whose selector matches it if it is an orphan (which one
/// of them may adopt).
pub fn owners_of<K, C>(
    owners: &Store<K>,
    child: &C,
    selector_of: impl Fn(&K) -> Option<LabelSelector>,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone,
    C: Resource,
{
    let namespace = child.meta().namespace.clone().unwrap_or_default();
    if let Some(controller) = controller_of(child) {
        let ours = controller.kind == K::kind(&()) && controller.api_version == K::api_version(&());
        return if ours {
            vec![ObjectRef::new(&controller.name).within(&namespace)]
        } else {
            Vec::new()
        };
    }
    owners
        .state()
        .iter()
        .filter(|owner| owner.meta().namespace.as_deref() == Some(&namespace))
        .filter(|owner| {
            Selector::new(selector_of(owner).as_ref())
                .is_ok_and(|s| s.matches(child.meta().labels.as_ref()))
        })
        .map(|owner| ObjectRef::from_obj(owner.as_ref()))
        .collect()
}

/// The candidates (all objects of the owner's namespace) that `owner` owns
/// once orphans matching `selector` are adopted and its own objects that no
/// longer match are released. Adoption and release are patches pinned to
/// the object's resourceVersion: one that lost a race is skipped and seen
/// again on the next pass.
pub async fn claim<K, C>(
    client: &Client,
    owner: &K,
    selector: &Selector,
    candidates: Vec<Arc<C>>,
) -> Vec<Arc<C>>
where
    K: Resource<DynamicType = ()>,
    C: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let uid = owner.meta().uid.as_deref();
    let owner_leaving = owner.meta().deletion_timestamp.is_some();
    let api: Api<C> = Api::namespaced(client.clone(), &owner.namespace().unwrap_or_default());
    let mut owned = Vec::new();
    for object in candidates {
        let matches = selector.matches(object.meta().labels.as_ref());
        match controller_of(object.as_ref()) {
            Some(controller) if Some(controller.uid.as_str()) == uid => {
                if matches || owner_leaving {
                    owned.push(object);
                } else {
                    let rest: Vec<&OwnerReference> = object
                        .owner_references()
                        .iter()
                        .filter(|r| Some(r.uid.as_str()) != uid)
                        .collect();
                    set_owners(&api, object.as_ref(), json!(rest)).await;
                }
            }
            Some(_) => {}
            None => {
                if matches && !owner_leaving && object.meta().deletion_timestamp.is_none() {
                    let mut all = object.owner_references().to_vec();
                    all.push(owner_reference(owner));
                    if let Some(adopted) = set_owners(&api, object.as_ref(), json!(all)).await {
                        owned.push(Arc::new(adopted));
                    }
                }
            }
        }
    }
    owned
}

/// Replaces the object's ownerReferences, provided it has not changed since
/// it was read; the patched object, or `None` when that failed.
async fn set_owners<C>(api: &Api<C>, object: &C, owners: serde_json::Value) -> Option<C>
where
    C: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = json!({"metadata": {
        "ownerReferences": owners,
        "resourceVersion": object.resource_version(),
    }});
    match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(patched) => Some(patched),
        Err(e) => {
            tracing::debug!(name = object.name_any(), "changing owners: {e}");
            None
        }
    }
}
