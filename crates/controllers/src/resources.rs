//! The kinds the API server serves, found through discovery, for the
//! controllers that act on objects of every kind (the garbage collector,
//! namespace deletion): they follow what the server offers, not a fixed list.

use kube::Client;
use kube::core::discovery::Scope;
use kube::discovery::{ApiResource, Discovery};

/// One served kind, in its group's preferred version.
#[derive(Clone, Debug)]
pub struct ServedKind {
    pub api: ApiResource,
    pub namespaced: bool,
}

/// Every served kind that takes all of `verbs`.
pub async fn with_verbs(client: &Client, verbs: &[&str]) -> kube::Result<Vec<ServedKind>> {
    let discovery = Discovery::new(client.clone()).run().await?;
    Ok(discovery
        .groups()
        .flat_map(|group| group.recommended_resources())
        .filter(|(_, caps)| verbs.iter().all(|verb| caps.supports_operation(verb)))
        .map(|(api, caps)| ServedKind {
            api,
            namespaced: caps.scope == Scope::Namespaced,
        })
        .collect())
}
