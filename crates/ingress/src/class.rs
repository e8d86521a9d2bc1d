//! The `tug` IngressClass, and which Ingresses it makes ours.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The class this controller creates and serves.
pub const CLASS_NAME: &str = "tug";
/// The `spec.controller` of the classes this controller serves.
pub const CONTROLLER: &str = "tugboat.io/ingress";
/// Marks the class new Ingresses without one get (the API server's
/// DefaultIngressClass admission reads it).
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The class annotation Ingresses used before `spec.ingressClassName`; still
/// honoured by ingress controllers when the field is unset.
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Creates the `tug` IngressClass, marked default, unless it exists; tries
/// again until the API server answers. A class the user changed or deleted
/// later is left as they made it.
pub async fn ensure_class(client: Client) {
    let classes: Api<IngressClass> = Api::all(client);
    let class: IngressClass = serde_json::from_value(json!({
        "metadata": {
            "name": CLASS_NAME,
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
        },
        "spec": {"controller": CONTROLLER},
    }))
    .expect("a valid IngressClass");
    loop {
        let outcome = match classes.get_opt(CLASS_NAME).await {
            Ok(Some(_)) => return,
            Ok(None) => classes
                .create(&PostParams::default(), &class)
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                tracing::info!("created the IngressClass {CLASS_NAME} (controller {CONTROLLER})");
                return;
            }
            Err(kube::Error::Api(status)) if status.is_already_exists() => return,
            Err(e) => {
                tracing::warn!("cannot create the IngressClass {CLASS_NAME} yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The classes this controller serves, as the cluster has them now.
pub struct Classes {
    ours: HashSet<String>,
    /// Whether one of ours is a default class, which takes Ingresses that
    /// name no class.
    default_is_ours: bool,
}

impl Classes {
    pub fn new(classes: &[Arc<IngressClass>]) -> Classes {
        let ours: Vec<&IngressClass> = classes
            .iter()
            .map(Arc::as_ref)
            .filter(|c| c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER))
            .collect();
        Classes {
            default_is_ours: ours.iter().any(|c| {
                c.annotations()
                    .get(DEFAULT_CLASS_ANNOTATION)
                    .map(String::as_str)
                    == Some("true")
            }),
            ours: ours.iter().map(|c| c.name_any()).collect(),
        }
    }

    /// Whether `ingress` is ours to serve.
    pub fn serves(&self, ingress: &Ingress) -> bool {
        let class = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_ref())
            .or_else(|| ingress.annotations().get(LEGACY_CLASS_ANNOTATION));
        match class {
            Some(class) => self.ours.contains(class),
            None => self.default_is_ours,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
        let annotations = if default {
            json!({DEFAULT_CLASS_ANNOTATION: "true"})
        } else {
            json!({})
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": annotations},
                "spec": {"controller": controller},
            }))
            .unwrap(),
        )
    }

    fn ingress(class: Option<&str>, annotation: Option<&str>) -> Ingress {
        let mut ingress = json!({"metadata": {"name": "i"}, "spec": {}});
        if let Some(class) = class {
            ingress["spec"]["ingressClassName"] = json!(class);
        }
        if let Some(class) = annotation {
            ingress["metadata"]["annotations"] = json!({LEGACY_CLASS_ANNOTATION: class});
        }
        serde_json::from_value(ingress).unwrap()
    }

    #[test]
    fn ingresses_of_our_classes_are_served() {
        let classes = Classes::new(&[
            class("tug", CONTROLLER, true),
            class("nginx", "k8s.io/ingress-nginx", false),
        ]);
        assert!(classes.serves(&ingress(Some("tug"), None)));
        assert!(!classes.serves(&ingress(Some("nginx"), None)));
        assert!(!classes.serves(&ingress(Some("missing"), None)));
        assert!(classes.serves(&ingress(None, Some("tug"))));
        assert!(!classes.serves(&ingress(None, Some("nginx"))));
        assert!(classes.serves(&ingress(None, None)));
    }

    #[test]
    fn classless_ingresses_need_our_class_to_be_the_default() {
        let classes = Classes::new(&[
            class("tug", CONTROLLER, false),
            class("nginx", "k8s.io/ingress-nginx", true),
        ]);
        assert!(!classes.serves(&ingress(None, None)));
        assert!(classes.serves(&ingress(Some("tug"), None)));
    }
}
