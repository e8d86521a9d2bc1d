//! Discovery: what kubectl reads to learn which kinds exist, what they are
//! called, which verbs they take and which `kubectl get all` shows.

use serde_json::{Value, json};
use tugboat_api::Kind;
use tugboat_api::registry::{self, Registry};

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUBRESOURCE_VERBS: [&str; 3] = ["get", "patch", "update"];

/// `/version`: the Kubernetes version whose API this server speaks.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0-tugboat.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `/api`: the core group's versions.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

/// `/apis`: every named group with its versions, the preferred one first.
pub fn groups(kinds: &Registry) -> Value {
    let mut groups: Vec<(&str, Vec<Value>)> = Vec::new();
    for (group, version) in kinds.group_versions() {
        if group.is_empty() {
            continue;
        }
        let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
        match groups.iter_mut().find(|(name, _)| *name == group) {
            Some((_, versions)) => versions.push(gv),
            None => groups.push((group, vec![gv])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(group, versions)| {
            json!({"name": group, "preferredVersion": versions[0], "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/{group}/{version}`: the resources and their subresources.
pub fn resource_list(kinds: &Registry, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = kinds
        .all()
        .into_iter()
        .filter(|k| k.group == group && k.version == version)
        .flat_map(resources_of)
        .collect();
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

fn resources_of(kind: &Kind) -> Vec<Value> {
    let mut out = vec![json!({
        "name": kind.plural,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": VERBS,
        "shortNames": kind.short_names,
        "categories": kind.categories,
    })];
    if kind.has_status {
        out.push(json!({
            "name": format!("{}/status", kind.plural),
            "singularName": "",
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": SUBRESOURCE_VERBS,
        }));
    }
    if kind.has_scale {
        out.push(json!({
            "name": format!("{}/scale", kind.plural),
            "singularName": "",
            "namespaced": kind.namespaced,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": SUBRESOURCE_VERBS,
        }));
    }
    if kind.kind == "Pod" {
        out.push(json!({
            "name": "pods/binding",
            "singularName": "",
            "namespaced": true,
            "kind": "Binding",
            "verbs": ["create"],
        }));
    }
    let served_by_kubelet = registry::KUBELET_SUBRESOURCES
        .iter()
        .filter(|s| kind.group.is_empty() && s.plural == kind.plural);
    for sub in served_by_kubelet {
        out.push(json!({
            "name": format!("{}/{}", sub.plural, sub.name),
            "singularName": "",
            "namespaced": kind.namespaced,
            "kind": sub.kind,
            "verbs": sub.verbs,
        }));
    }
    out
}
