//! The DefaultStorageClass admission step for new PersistentVolumeClaims: a
//! claim that names no class (`storageClassName` absent, not `""`) gets the
//! cluster's default, the newest class annotated
//! `storageclass.kubernetes.io/is-default-class: "true"`, as
//! kube-apiserver's plugin of that name sets it. Schedulers and
//! provisioners then see the class from the claim's first version.

use serde_json::{Value, json};
use tugboat_api::{ApiResult, Kind, registry};
use tugboat_store::{KeyRange, RangeOptions};

use crate::objects::{Objects, decode, store_error};

const DEFAULT_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// Gives a new object of `kind`, if a claim without a class, the default.
pub async fn admit(objects: &Objects, kind: &Kind, claim: &mut Value) -> ApiResult<()> {
    if kind.kind != "PersistentVolumeClaim"
        || claim
            .pointer("/spec/storageClassName")
            .is_some_and(|c| !c.is_null())
    {
        return Ok(());
    }
    let kind =
        registry::by_kind("storage.k8s.io/v1", "StorageClass").expect("storage classes are served");
    let classes = objects
        .store
        .range(KeyRange::Prefix(kind.key_prefix()), RangeOptions::default())
        .await
        .map_err(store_error)?;
    let mut default: Option<Value> = None;
    for kv in &classes.kvs {
        let class = decode(kv)?;
        let is_default = DEFAULT_ANNOTATIONS
            .iter()
            .any(|a| class["metadata"]["annotations"][a] == "true");
        let newer = |d: &Value| {
            class["metadata"]["creationTimestamp"].as_str()
                >= d["metadata"]["creationTimestamp"].as_str()
        };
        if is_default && default.as_ref().is_none_or(newer) {
            default = Some(class);
        }
    }
    if let (Some(class), Some(spec)) = (
        default,
        claim.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        spec.insert("storageClassName".into(), json!(class["metadata"]["name"]));
    }
    Ok(())
}
