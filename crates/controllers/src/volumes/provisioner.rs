//! The local-path provisioner: a directory on the consumer's node as a
//! PersistentVolume, as k3s' local-path-provisioner makes them.
//!
//! The class is `local-path`, the cluster's default, with
//! `WaitForFirstConsumer` binding: a claim gets its volume only once a pod
//! using it is on a node, and the volume is a `hostPath` directory under the
//! directory that node's agent publishes (annotation [`DIR_ANNOTATION`]),
//! pinned to that node by `nodeAffinity`. The volume carries [`FINALIZER`]:
//! the agent of its node removes the directory when a `Delete` reclaim
//! deletes the volume, then lets the object go.
//!
//! The provisioner is named `tugboat.io/local-path` rather than k3s'
//! `rancher.io/local-path`: a user who installs Rancher's provisioner gets
//! classes it serves alone, never two provisioners answering one claim.

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

pub const PROVISIONER: &str = "tugboat.io/local-path";
pub const DEFAULT_CLASS: &str = "local-path";
/// Where a node's agent keeps local-path volumes (on the Node).
pub const DIR_ANNOTATION: &str = "tugboat.io/local-path-dir";
/// Held by a provisioned volume until its node's agent removed its directory.
pub const FINALIZER: &str = "tugboat.io/local-path";
const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// Makes the `local-path` class when the cluster has none of that name. A
/// class the user changed or deleted and made again is left as it is.
pub async fn ensure_default_class(client: &Client) -> kube::Result<()> {
    let classes: Api<StorageClass> = Api::all(client.clone());
    if classes.get_opt(DEFAULT_CLASS).await?.is_some() {
        return Ok(());
    }
    let class: StorageClass = serde_json::from_value(json!({
        "metadata": {
            "name": DEFAULT_CLASS,
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }))
    .map_err(kube::Error::SerdeError)?;
    match classes.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The class claims without one get: the newest marked default, as the
/// DefaultStorageClass admission plugin picks.
pub fn default_class(classes: &[StorageClass]) -> Option<&StorageClass> {
    classes
        .iter()
        .filter(|c| {
            c.annotations()
                .get(DEFAULT_CLASS_ANNOTATION)
                .or_else(|| {
                    c.annotations()
                        .get("storageclass.beta.kubernetes.io/is-default-class")
                })
                .is_some_and(|v| v == "true")
        })
        .max_by_key(|c| c.metadata.creation_timestamp.clone().map(|t| t.0))
}

/// The volume for `claim` on `node`, pre-bound to the claim (the binder
/// completes the binding), or why there can be none.
pub fn volume_for(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &Node,
) -> Result<PersistentVolume, String> {
    let node_name = node.name_any();
    let dir = node.annotations().get(DIR_ANNOTATION).ok_or_else(|| {
        format!("node {node_name:?} has no local-path directory (annotation {DIR_ANNOTATION})")
    })?;
    let spec = claim.spec.clone().unwrap_or_default();
    if spec
        .access_modes
        .iter()
        .flatten()
        .any(|m| m == "ReadWriteMany")
    {
        return Err("local-path volumes are on one node: ReadWriteMany is not supported".into());
    }
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .ok_or("claim Spec.Resources[storage] not specified")?;
    let uid = claim.uid().unwrap_or_default();
    let namespace = claim.namespace().unwrap_or_default();
    let claim_name = claim.name_any();
    let path = format!("{dir}/pvc-{uid}_{namespace}_{claim_name}");
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("pvc-{uid}"),
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            "finalizers": [FINALIZER],
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.access_modes,
            "persistentVolumeReclaimPolicy": class.reclaim_policy.as_deref().unwrap_or("Delete"),
            "storageClassName": class.name_any(),
            "volumeMode": spec.volume_mode.as_deref().unwrap_or("Filesystem"),
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]},
            ]}]}},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": claim_name,
                "uid": uid,
            },
        },
    }))
    .map_err(|e| e.to_string())
}
