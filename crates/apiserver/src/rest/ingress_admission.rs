//! DefaultIngressClass admission, as kube-apiserver's plugin of that name
//! takes it: a new Ingress that names no class (neither
//! `spec.ingressClassName` nor the older `kubernetes.io/ingress.class`
//! annotation) gets the cluster's default, the newest IngressClass
//! annotated `ingressclass.kubernetes.io/is-default-class: "true"`, so
//! every controller sees from its first version whose Ingress it is.
//! Without a default class the Ingress is left as it came.

use serde_json::{Value, json};
use tugboat_api::{ApiResult, Kind, registry};

use super::admit;
use crate::objects::Objects;

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
    let classes = registry::by_kind("networking.k8s.io/v1", "IngressClass")
        .expect("ingress classes are served");
    if let Some(class) = admit::default_class(objects, classes, &[DEFAULT_ANNOTATION]).await? {
        let spec = obj
            .as_object_mut()
            .map(|o| o.entry("spec").or_insert_with(|| json!({})));
        if let Some(Value::Object(spec)) = spec {
            spec.insert("ingressClassName".into(), class.into());
        }
    }
    Ok(())
}
