//! The resource quota controller: every ResourceQuota's `status.hard` and
//! `status.used` say what its namespace may use and uses now, counted as
//! the API server's quota admission counts (`tugboat_api::quota`, scopes
//! included: a scoped quota counts only the pods it covers), so
//! `kubectl describe quota` shows use going up and down as objects come
//! and go.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tugboat_api::quota::{self, Usage};

/// How often use is counted again.
const PERIOD: Duration = Duration::from_secs(2);

pub async fn run(client: Client) -> anyhow::Result<()> {
    let quotas: Api<ResourceQuota> = Api::all(client.clone());
    loop {
        if let Err(e) = recount(&client, &quotas).await {
            tracing::warn!("resource quota controller: {e}");
        }
        tokio::time::sleep(PERIOD).await;
    }
}

async fn recount(client: &Client, quotas: &Api<ResourceQuota>) -> kube::Result<()> {
    for q in quotas.list(&ListParams::default()).await?.items {
        let namespace = q.namespace().unwrap_or_default();
        let hard: BTreeMap<String, String> = q
            .spec
            .as_ref()
            .and_then(|s| s.hard.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(name, amount)| (name, amount.0))
            .collect();
        let spec = serde_json::to_value(&q.spec).map_err(kube::Error::SerdeError)?;
        let used = used_in(client, &namespace, &spec, &hard).await?;
        let used: BTreeMap<String, String> = hard
            .keys()
            .map(|name| {
                (
                    name.clone(),
                    quota::format(used.get(name).copied().unwrap_or(0)),
                )
            })
            .collect();
        let status = q.status.clone().unwrap_or_default();
        let current = |map: Option<BTreeMap<String, Quantity>>| -> BTreeMap<String, String> {
            map.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()
        };
        if current(status.hard) == hard && current(status.used) == used {
            continue;
        }
        let api: Api<ResourceQuota> = Api::namespaced(client.clone(), &namespace);
        let patch = Patch::Merge(json!({"status": {"hard": hard, "used": used}}));
        api.patch_status(&q.name_any(), &PatchParams::default(), &patch)
            .await?;
    }
    Ok(())
}

/// What the namespace's objects the quota with `spec` covers use of each
/// quota resource in `hard`.
async fn used_in(
    client: &Client,
    namespace: &str,
    spec: &serde_json::Value,
    hard: &BTreeMap<String, String>,
) -> kube::Result<Usage> {
    let mut kinds: Vec<_> = hard.keys().filter_map(|n| quota::counted_kind(n)).collect();
    kinds.sort_by_key(|k| (k.group, k.plural));
    kinds.dedup_by_key(|k| (k.group, k.plural));
    let mut used = Usage::new();
    for kind in kinds {
        let resource = ApiResource {
            group: kind.group.to_owned(),
            version: kind.version.to_owned(),
            api_version: kind.api_version(),
            kind: kind.kind.to_owned(),
            plural: kind.plural.to_owned(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for obj in api.list(&ListParams::default()).await?.items {
            let obj = serde_json::to_value(&obj).map_err(kube::Error::SerdeError)?;
            if !quota::covers(spec, kind, &obj) {
                continue;
            }
            for (name, amount) in quota::usage(kind, &obj) {
                if hard.contains_key(&name) {
                    *used.entry(name).or_insert(0) += amount;
                }
            }
        }
    }
    Ok(used)
}
