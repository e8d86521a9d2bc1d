//! Storage object in-use protection: the API server gives every claim the
//! `kubernetes.io/pvc-protection` finalizer and every volume
//! `kubernetes.io/pv-protection`; a deleted claim goes only once no pod
//! uses it, and a deleted volume only once no claim is bound to it, as
//! kube-controller-manager's pvc-protection and pv-protection controllers
//! let them.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

const CLAIM_FINALIZER: &str = "kubernetes.io/pvc-protection";
const VOLUME_FINALIZER: &str = "kubernetes.io/pv-protection";

/// Lets a deleted claim go once no pod that has not finished uses it.
pub async fn release_claim(client: &Client, claim: &PersistentVolumeClaim) -> kube::Result<()> {
    if !claim.finalizers().iter().any(|f| f == CLAIM_FINALIZER) {
        return Ok(());
    }
    let namespace = claim.namespace().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await?;
    let in_use = pods.items.iter().any(|p| {
        let finished = matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        !finished
            && p.spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| Some(&c.claim_name) == claim.metadata.name.as_ref())
                })
    });
    if in_use {
        return Ok(());
    }
    lift(
        Api::namespaced(client.clone(), &namespace),
        claim,
        CLAIM_FINALIZER,
    )
    .await
}

/// Lets a deleted volume go once it is no longer bound.
pub async fn release_volume(client: &Client, volume: &PersistentVolume) -> kube::Result<()> {
    let bound = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    if bound || !volume.finalizers().iter().any(|f| f == VOLUME_FINALIZER) {
        return Ok(());
    }
    lift(Api::all(client.clone()), volume, VOLUME_FINALIZER).await
}

/// Removes `finalizer` from `object`, if nobody changed it meanwhile (the
/// resourceVersion makes the patch a compare-and-swap).
async fn lift<K>(api: Api<K>, object: &K, finalizer: &str) -> kube::Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let rest: Vec<&String> = object
        .meta()
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = json!({"metadata": {
        "finalizers": rest,
        "resourceVersion": object.meta().resource_version,
    }});
    match api
        .patch(
            &object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Changed or gone meanwhile: the next pass looks again.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
