//! The admission steps of new claims and volumes, as kube-apiserver's
//! plugins of those names take them:
//! - DefaultStorageClass: a claim that names no class (`storageClassName`
//!   absent, not `""`) gets the cluster's default, the newest class
//!   annotated `storageclass.kubernetes.io/is-default-class: "true"`, so
//!   schedulers and provisioners see the class from its first version;
//! - StorageObjectInUseProtection: claims get the `kubernetes.io/pvc-protection`
//!   and volumes the `kubernetes.io/pv-protection` finalizer, which the
//!   volume controller lifts once no pod uses the claim and no claim the
//!   volume, so data in use is never deleted under a pod.

use serde_json::{Value, json};
use tugboat_api::{ApiResult, Kind, meta, registry};

use super::admit;
use crate::objects::Objects;

const DEFAULT_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// Admits a new object of `kind`: claims and volumes get their protection
/// finalizer, claims without a class the default one.
pub async fn admit(objects: &Objects, kind: &Kind, obj: &mut Value) -> ApiResult<()> {
    let finalizer = match kind.kind {
        "PersistentVolumeClaim" => "kubernetes.io/pvc-protection",
        "PersistentVolume" => "kubernetes.io/pv-protection",
        _ => return Ok(()),
    };
    let mut finalizers = meta::finalizers(obj)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if !finalizers.iter().any(|f| f == finalizer) {
        finalizers.push(finalizer.to_owned());
        meta::set(obj, "finalizers", finalizers.into());
    }
    if kind.kind == "PersistentVolumeClaim" {
        set_default_class(objects, obj).await?;
    }
    Ok(())
}

async fn set_default_class(objects: &Objects, claim: &mut Value) -> ApiResult<()> {
    if claim
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null())
    {
        return Ok(());
    }
    let classes =
        registry::by_kind("storage.k8s.io/v1", "StorageClass").expect("storage classes are served");
    let default = admit::default_class(objects, classes, &DEFAULT_ANNOTATIONS).await?;
    if let (Some(class), Some(spec)) = (
        default,
        claim.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        spec.insert("storageClassName".into(), json!(class));
    }
    Ok(())
}
