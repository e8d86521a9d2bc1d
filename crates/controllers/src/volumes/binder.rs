//! Which volume a claim gets, and the two writes that bind them, as
//! kube-controller-manager's PersistentVolume controller does.
//!
//! A claim binds to the smallest Available volume of its class that has
//! every access mode it asks for, at least the storage it requests, the
//! same volume mode, labels its selector matches and (when the claim waits
//! for its first consumer) node affinity admitting the consumer's node. A
//! volume already naming the claim in its `claimRef` (pre-bound, as
//! provisioned volumes are) wins over all others.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tugboat_api::quantity;

use crate::placement::node_selector_matches;
use crate::selector::Selector;

const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";

/// Whether `volume`'s claimRef names `claim` (by uid when it has one).
pub fn is_bound_to(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.namespace == claim.metadata.namespace
        && r.name == claim.metadata.name
        && r.uid
            .as_ref()
            .is_none_or(|uid| Some(uid) == claim.metadata.uid.as_ref())
}

/// The volume `claim` should bind to, if any. `node` is where its consumer
/// runs, for claims that waited for one.
pub fn find_volume<'a>(
    claim: &PersistentVolumeClaim,
    class: &str,
    volumes: &'a [PersistentVolume],
    node: Option<&Node>,
) -> Option<&'a PersistentVolume> {
    let live = volumes
        .iter()
        .filter(|v| v.metadata.deletion_timestamp.is_none());
    if let Some(pre_bound) = live.clone().find(|v| is_bound_to(v, claim)) {
        return Some(pre_bound);
    }
    let spec = claim.spec.clone().unwrap_or_default();
    let wanted = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| quantity::value(&q.0))
        .unwrap_or(0);
    let selector = spec.selector.as_ref().map(|s| Selector::new(Some(s)));
    let mode = spec.volume_mode.as_deref().unwrap_or("Filesystem");
    live.filter(|v| {
        let vspec = v.spec.clone().unwrap_or_default();
        vspec.claim_ref.is_none()
            && vspec.storage_class_name.as_deref().unwrap_or("") == class
            && vspec.volume_mode.as_deref().unwrap_or("Filesystem") == mode
            && spec
                .access_modes
                .iter()
                .flatten()
                .all(|m| vspec.access_modes.iter().flatten().any(|h| h == m))
            && size(v) >= wanted
            && match &selector {
                None => true,
                Some(Ok(s)) => s.matches(v.metadata.labels.as_ref()),
                Some(Err(_)) => false,
            }
            && node.is_none_or(|n| admits(v, n))
    })
    .min_by_key(|v| size(v))
}

fn size(volume: &PersistentVolume) -> i128 {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| quantity::value(&q.0))
        .unwrap_or(0)
}

/// Whether the volume's required node affinity lets a pod on `node` use it.
fn admits(volume: &PersistentVolume, node: &Node) -> bool {
    let Some(required) = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    let labels: BTreeMap<String, String> = node.labels().clone();
    node_selector_matches(required, &labels, &node.name_any())
}

/// Binds `volume` and `claim` both ways: the volume's claimRef and phase,
/// then the claim's volumeName, annotations and phase, as Kubernetes
/// orders them (a crash between leaves a pre-bound volume, finished later).
pub async fn bind(
    client: &Client,
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> kube::Result<()> {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume_name = volume.name_any();
    if !is_bound_to(volume, claim)
        || volume
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|r| r.uid.as_ref())
            .is_none()
    {
        let mut bound = volume.clone();
        let spec = bound.spec.get_or_insert_with(Default::default);
        spec.claim_ref = Some(k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("PersistentVolumeClaim".to_owned()),
            namespace: claim.metadata.namespace.clone(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            field_path: None,
        });
        bound
            .annotations_mut()
            .insert(BOUND_BY_CONTROLLER.to_owned(), "yes".to_owned());
        volumes
            .replace(&volume_name, &PostParams::default(), &bound)
            .await?;
    }
    let phase = json!({"status": {"phase": "Bound"}});
    volumes
        .patch_status(&volume_name, &PatchParams::default(), &Patch::Merge(&phase))
        .await?;

    let namespace = claim.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let claim_name = claim.name_any();
    let link = json!({
        "metadata": {"annotations": {BIND_COMPLETED: "yes", BOUND_BY_CONTROLLER: "yes"}},
        "spec": {"volumeName": volume_name},
    });
    claims
        .patch(&claim_name, &PatchParams::default(), &Patch::Merge(&link))
        .await?;
    let vspec = volume.spec.clone().unwrap_or_default();
    let status = json!({"status": {
        "phase": "Bound",
        "accessModes": vspec.access_modes,
        "capacity": vspec.capacity,
    }});
    claims
        .patch_status(&claim_name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, from_value};

    fn volume(name: &str, size: &str, extra: Value) -> PersistentVolume {
        let mut spec = json!({"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual", "volumeMode": "Filesystem"});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        from_value(json!({"metadata": {"name": name, "labels": {"tier": "fast"}}, "spec": spec}))
            .unwrap()
    }

    fn claim(extra: Value) -> PersistentVolumeClaim {
        let mut spec = json!({"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
            "resources": {"requests": {"storage": "1Gi"}}});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        from_value(json!({"metadata": {"name": "c", "namespace": "ns", "uid": "u1"}, "spec": spec}))
            .unwrap()
    }

    fn found(
        claim: &PersistentVolumeClaim,
        volumes: &[PersistentVolume],
        node: Option<&Node>,
    ) -> Option<String> {
        find_volume(claim, "manual", volumes, node).map(|v| v.name_any())
    }

    #[test]
    fn the_smallest_volume_that_fits_wins() {
        let volumes = [
            volume("small", "512Mi", json!({})),
            volume("big", "10Gi", json!({})),
            volume("right", "2Gi", json!({})),
            volume("other-class", "1Gi", json!({"storageClassName": "fast"})),
            volume("read-many", "1Gi", json!({"accessModes": ["ReadOnlyMany"]})),
            volume(
                "taken",
                "1Gi",
                json!({"claimRef": {"namespace": "ns", "name": "x"}}),
            ),
        ];
        assert_eq!(
            found(&claim(json!({})), &volumes, None).as_deref(),
            Some("right")
        );
        let slow = claim(json!({"selector": {"matchLabels": {"tier": "slow"}}}));
        assert_eq!(found(&slow, &volumes, None), None);
    }

    #[test]
    fn a_volume_pre_bound_to_the_claim_wins_over_a_better_fit() {
        let volumes = [
            volume("fit", "1Gi", json!({})),
            volume(
                "reserved",
                "5Gi",
                json!({"claimRef": {"namespace": "ns", "name": "c"}}),
            ),
        ];
        assert_eq!(
            found(&claim(json!({})), &volumes, None).as_deref(),
            Some("reserved")
        );
    }

    #[test]
    fn a_waiting_claim_takes_only_volumes_its_node_can_reach() {
        let on = |node: &str| {
            json!({"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}})
        };
        let volumes = [
            volume("on-a", "1Gi", on("a")),
            volume("on-b", "2Gi", on("b")),
        ];
        let b: Node = from_value(json!({"metadata": {"name": "b",
            "labels": {"kubernetes.io/hostname": "b"}}}))
        .unwrap();
        assert_eq!(
            found(&claim(json!({})), &volumes, Some(&b)).as_deref(),
            Some("on-b")
        );
    }
}
