//! The root CA publisher: a `kube-root-ca.crt` ConfigMap in every namespace
//! holding the cluster CA (`ca.crt`), which the service account volume of
//! every pod projects, so in-cluster clients can check the API server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

const NAME: &str = "kube-root-ca.crt";

struct Context {
    client: Client,
    ca: String,
}

/// Keeps the ConfigMap in every namespace holding `ca` (PEM).
pub async fn run(client: Client, ca: String) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let config_maps: Api<ConfigMap> = Api::all(client.clone());
    let by_name = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(config_maps, by_name, |cm| {
            Some(ObjectRef::new(&cm.namespace().unwrap_or_default()))
        })
        .run(reconcile, retry, Arc::new(Context { client, ca }))
        .for_each(|_| async {})
        .await;
    Ok(())
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns.name_any());
    let current = config_maps.get_opt(NAME).await?;
    let ca = current
        .as_ref()
        .and_then(|cm| cm.data.as_ref())
        .and_then(|d| d.get("ca.crt"));
    if ca != Some(&ctx.ca) {
        let wanted = ConfigMap {
            metadata: ObjectMeta {
                name: Some(NAME.to_owned()),
                annotations: Some(BTreeMap::from([(
                    "kubernetes.io/description".to_owned(),
                    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("ca.crt".to_owned(), ctx.ca.clone())])),
            ..ConfigMap::default()
        };
        let apply = PatchParams::apply("root-ca-cert-publisher").force();
        match config_maps
            .patch(NAME, &apply, &Patch::Apply(&wanted))
            .await
        {
            Ok(_) => {}
            // The namespace began terminating meanwhile.
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Action::await_change())
}

fn retry(_: Arc<Namespace>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!("root CA publisher: {error}");
    Action::requeue(Duration::from_secs(5))
}
