//! The service account tokens of a pod's projected volumes: requested from
//! the API (TokenRequest, bound to the pod so they die with it) and renewed
//! once 80% of their life or a day has passed, as the kubelet renews them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::PostParams;
use kube::{Api, Client};

/// Which token a projection asks for: its audience (empty: the API server's)
/// and lifetime.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokenKey {
    audience: String,
    seconds: i64,
}

impl TokenKey {
    pub fn of(projection: &ServiceAccountTokenProjection) -> TokenKey {
        TokenKey {
            audience: projection.audience.clone().unwrap_or_default(),
            seconds: projection.expiration_seconds.unwrap_or(3600),
        }
    }
}

/// The tokens by what they were asked for.
pub type Tokens = BTreeMap<TokenKey, String>;

/// The kubelet renews a token after this much of its life at the latest.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
pub struct PodTokens {
    held: BTreeMap<TokenKey, (String, Instant)>,
    /// Why the last request failed, for the pod's status.
    pub error: Option<String>,
}

impl PodTokens {
    /// Requests the tokens the pod's volumes need that are missing or due
    /// for renewal; on failure the others are kept and the error remembered.
    pub async fn refresh(&mut self, client: &Client, pod: &Pod) {
        let wanted = projections(pod);
        self.held.retain(|key, _| wanted.contains(key));
        self.error = None;
        for key in wanted {
            if self
                .held
                .get(&key)
                .is_some_and(|(_, renew_at)| Instant::now() < *renew_at)
            {
                continue;
            }
            match request(client, pod, &key).await {
                Ok(token) => {
                    let life = Duration::from_secs(key.seconds.max(0) as u64);
                    let renew_at = Instant::now() + (life * 4 / 5).min(MAX_AGE);
                    self.held.insert(key, (token, renew_at));
                }
                Err(e) => {
                    self.error = Some(format!("failed to fetch token: {e}"));
                }
            }
        }
    }

    pub fn tokens(&self) -> Tokens {
        self.held
            .iter()
            .map(|(key, (token, _))| (key.clone(), token.clone()))
            .collect()
    }
}

fn projections(pod: &Pod) -> Vec<TokenKey> {
    let mut keys: Vec<TokenKey> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .map(TokenKey::of)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

async fn request(client: &Client, pod: &Pod, key: &TokenKey) -> kube::Result<String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: (!key.audience.is_empty())
                .then(|| key.audience.clone())
                .into_iter()
                .collect(),
            expiration_seconds: Some(key.seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let issued = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await?;
    Ok(issued.status.map(|s| s.token).unwrap_or_default())
}
