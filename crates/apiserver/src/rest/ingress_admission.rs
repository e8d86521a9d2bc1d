//! DefaultIngressClass admission, as kube-apiserver's plugin of that name
//! takes it: a new Ingress that names no class (neither
//! `spec.ingressClassName` nor the older `kubernetes.io/ingress.class`
//! annotation) gets the cluster's default, the newest IngressClass
//! annotated `ingressclass.kubernetes.io/is-default-class: "true"`, so
//! every controller sees from its first version whose Ingress it is.
//! Without a default class the Ingress is left as it came.

use serde_json::{Value, json};
use tugboat_api::{ApiResult, Kind, registry};
use tugboat_store::{KeyRange, RangeOptions};

use crate::objects::{Objects, decode, store_error};

const DEFAULT_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Gives a new Ingress without a class the default one; other kinds pass.
pub async fn admit(objects: &Objects, kind: &Kind, obj: &mut Value) -> ApiResult<()> {
    if kind.kind != "Ingress" || kind.group != "networking.k8s.io" {
        return Ok(());
    }
    let named = obj
        .pointer("/spec/ingressClassName")
        .is_some_and(|c| !c.is_null());
    let annotated = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(LEGACY_CLASS_ANNOTATION));
    if named || annotated {
        return Ok(());
    }
    if let Some(class) = default_class(objects).await? {
        let spec = obj
            .as_object_mut()
            .map(|o| o.entry("spec").or_insert_with(|| json!({})));
        if let Some(Value::Object(spec)) = spec {
            spec.insert("ingressClassName".into(), class.into());
        }
    }
    Ok(())
}

/// The name of the newest IngressClass marked default, if any is.
async fn default_class(objects: &Objects) -> ApiResult<Option<String>> {
    let kind = registry::by_kind("networking.k8s.io/v1", "IngressClass")
        .expect("ingress classes are served");
    let classes = objects
        .store
        .range(KeyRange::Prefix(kind.key_prefix()), RangeOptions::default())
        .await
        .map_err(store_error)?;
    let mut default: Option<Value> = None;
    for kv in &classes.kvs {
        let class = decode(kv)?;
        let is_default = class["metadata"]["annotations"][DEFAULT_ANNOTATION] == "true";
        let newer = |d: &Value| {
            class["metadata"]["creationTimestamp"].as_str()
                >= d["metadata"]["creationTimestamp"].as_str()
        };
        if is_default && default.as_ref().is_none_or(newer) {
            default = Some(class);
        }
    }
    Ok(default.and_then(|c| c["metadata"]["name"].as_str().map(str::to_owned)))
}
