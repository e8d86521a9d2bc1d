//! A `metav1.LabelSelector` against an object's labels, with the API
//! server's own selector semantics (`null` selects nothing, `{}` everything).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use tugboat_api::selector::LabelSelector as Parsed;

/// A selector ready to match many objects.
pub struct Selector(Parsed);

impl Selector {
    /// `None` (an absent selector) selects nothing.
    pub fn new(selector: Option<&LabelSelector>) -> anyhow::Result<Selector> {
        let value = serde_json::to_value(selector)?;
        Parsed::from_object(&value)
            .map(Selector)
            .map_err(|e| anyhow::anyhow!("invalid selector: {e}"))
    }

    /// True for the labels of a selected object.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        self.0.matches(Some(&labels))
    }
}
