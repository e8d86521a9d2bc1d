//! The kind registry: every resource the API server serves, declared once.
//!
//! A kind is data (names, scope, subresources) plus the typed `k8s-openapi`
//! struct that defines its schema. The generic REST layer in the API server
//! reads nothing else, so serving a new kind is one entry in [`KINDS`].
//! Kinds that CustomResourceDefinitions define are the same `Kind`s, made at
//! run time ([`crate::custom`]) and held by a [`Registry`] beside the static ones.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use k8s_openapi::api::{
    apps::v1 as apps, batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;

/// One served resource.
#[derive(Debug)]
pub struct Kind {
    /// API group; empty for the core ("legacy") group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    /// `all` puts the kind into `kubectl get all`.
    pub categories: &'static [&'static str],
    pub namespaced: bool,
    /// Has a `/status` subresource: the main resource ignores status changes
    /// and `/status` ignores everything but status.
    pub has_status: bool,
    /// Has a `/scale` subresource backed by `spec.replicas`.
    pub has_scale: bool,
    /// Decodes through the typed struct and back: refuses wrong field types
    /// and drops fields the schema does not know.
    pub normalize: fn(Value) -> Result<Value, serde_json::Error>,
    /// Adds the typed struct's JSON schema to an OpenAPI generator and
    /// returns its `$ref`.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// What a CustomResourceDefinition says of a kind it defines (its schema,
    /// storage version, printer columns); `None` for built-in kinds.
    pub custom: Option<crate::custom::Custom>,
}

impl Kind {
    /// `v1` or `apps/v1`, as `apiVersion` spells it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// An object read from the store as this version serves it: custom
    /// resources are stored in their storage version, and the versions of
    /// one CRD differ in `apiVersion` alone (the `None` conversion).
    pub fn served(&self, mut obj: Value) -> Value {
        if self.custom.is_some() {
            obj["apiVersion"] = self.api_version().into();
        }
        obj
    }

    /// The `apiVersion` objects of this kind are stored with.
    pub fn stored_api_version(&self) -> String {
        match &self.custom {
            Some(custom) => format!("{}/{}", self.group, custom.storage_version),
            None => self.api_version(),
        }
    }

    /// The store prefix all objects of this kind live under, ending in `/`.
    pub fn key_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/registry/{}/", self.plural)
        } else {
            format!("/registry/{}/{}/", self.group, self.plural)
        }
    }

    /// The store key of one object; `namespace` is ignored for cluster-scoped kinds.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}{namespace}/{name}", self.key_prefix())
        } else {
            format!("{}{name}", self.key_prefix())
        }
    }

    /// The store prefix of one namespace's objects (all objects when cluster-scoped
    /// or when `namespace` is empty).
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        if self.namespaced && !namespace.is_empty() {
            format!("{}{namespace}/", self.key_prefix())
        } else {
            self.key_prefix()
        }
    }
}

fn schema_of<T: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    generator.subschema_for::<T>()
}

fn typed<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, serde_json::Error> {
    serde_json::to_value(serde_json::from_value::<T>(v)?)
}

macro_rules! kinds {
    ($( $ty:ty => { $($field:ident : $value:expr),* $(,)? } )*) => {
        /// Every kind the API server serves.
        pub static KINDS: &[Kind] = &[
            $( Kind { normalize: typed::<$ty>, schema: schema_of::<$ty>, custom: None, $($field: $value),* }, )*
        ];
    };
}

kinds! {
    core::Namespace => { group: "", version: "v1", kind: "Namespace", plural: "namespaces", singular: "namespace", short_names: &["ns"], categories: &[], namespaced: false, has_status: true, has_scale: false }
    core::Pod => { group: "", version: "v1", kind: "Pod", plural: "pods", singular: "pod", short_names: &["po"], categories: &["all"], namespaced: true, has_status: true, has_scale: false }
    core::Node => { group: "", version: "v1", kind: "Node", plural: "nodes", singular: "node", short_names: &["no"], categories: &[], namespaced: false, has_status: true, has_scale: false }
    core::Service => { group: "", version: "v1", kind: "Service", plural: "services", singular: "service", short_names: &["svc"], categories: &["all"], namespaced: true, has_status: true, has_scale: false }
    core::Endpoints => { group: "", version: "v1", kind: "Endpoints", plural: "endpoints", singular: "endpoints", short_names: &["ep"], categories: &[], namespaced: true, has_status: false, has_scale: false }
    core::ConfigMap => { group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", singular: "configmap", short_names: &["cm"], categories: &[], namespaced: true, has_status: false, has_scale: false }
    core::Secret => { group: "", version: "v1", kind: "Secret", plural: "secrets", singular: "secret", short_names: &[], categories: &[], namespaced: true, has_status: false, has_scale: false }
    core::ServiceAccount => { group: "", version: "v1", kind: "ServiceAccount", plural: "serviceaccounts", singular: "serviceaccount", short_names: &["sa"], categories: &[], namespaced: true, has_status: false, has_scale: false }
    core::Event => { group: "", version: "v1", kind: "Event", plural: "events", singular: "event", short_names: &["ev"], categories: &[], namespaced: true, has_status: false, has_scale: false }
    core::PersistentVolume => { group: "", version: "v1", kind: "PersistentVolume", plural: "persistentvolumes", singular: "persistentvolume", short_names: &["pv"], categories: &[], namespaced: false, has_status: true, has_scale: false }
    core::PersistentVolumeClaim => { group: "", version: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", singular: "persistentvolumeclaim", short_names: &["pvc"], categories: &[], namespaced: true, has_status: true, has_scale: false }
    core::ResourceQuota => { group: "", version: "v1", kind: "ResourceQuota", plural: "resourcequotas", singular: "resourcequota", short_names: &["quota"], categories: &[], namespaced: true, has_status: true, has_scale: false }
    core::LimitRange => { group: "", version: "v1", kind: "LimitRange", plural: "limitranges", singular: "limitrange", short_names: &["limits"], categories: &[], namespaced: true, has_status: false, has_scale: false }
    core::ReplicationController => { group: "", version: "v1", kind: "ReplicationController", plural: "replicationcontrollers", singular: "replicationcontroller", short_names: &["rc"], categories: &["all"], namespaced: true, has_status: true, has_scale: true }
    apps::Deployment => { group: "apps", version: "v1", kind: "Deployment", plural: "deployments", singular: "deployment", short_names: &["deploy"], categories: &["all"], namespaced: true, has_status: true, has_scale: true }
    apps::ReplicaSet => { group: "apps", version: "v1", kind: "ReplicaSet", plural: "replicasets", singular: "replicaset", short_names: &["rs"], categories: &["all"], namespaced: true, has_status: true, has_scale: true }
    apps::StatefulSet => { group: "apps", version: "v1", kind: "StatefulSet", plural: "statefulsets", singular: "statefulset", short_names: &["sts"], categories: &["all"], namespaced: true, has_status: true, has_scale: true }
    apps::DaemonSet => { group: "apps", version: "v1", kind: "DaemonSet", plural: "daemonsets", singular: "daemonset", short_names: &["ds"], categories: &["all"], namespaced: true, has_status: true, has_scale: false }
    apps::ControllerRevision => { group: "apps", version: "v1", kind: "ControllerRevision", plural: "controllerrevisions", singular: "controllerrevision", short_names: &[], categories: &[], namespaced: true, has_status: false, has_scale: false }
    batch::Job => { group: "batch", version: "v1", kind: "Job", plural: "jobs", singular: "job", short_names: &[], categories: &["all"], namespaced: true, has_status: true, has_scale: false }
    batch::CronJob => { group: "batch", version: "v1", kind: "CronJob", plural: "cronjobs", singular: "cronjob", short_names: &["cj"], categories: &["all"], namespaced: true, has_status: true, has_scale: false }
    discovery::EndpointSlice => { group: "discovery.k8s.io", version: "v1", kind: "EndpointSlice", plural: "endpointslices", singular: "endpointslice", short_names: &[], categories: &[], namespaced: true, has_status: false, has_scale: false }
    networking::Ingress => { group: "networking.k8s.io", version: "v1", kind: "Ingress", plural: "ingresses", singular: "ingress", short_names: &["ing"], categories: &[], namespaced: true, has_status: true, has_scale: false }
    networking::IngressClass => { group: "networking.k8s.io", version: "v1", kind: "IngressClass", plural: "ingressclasses", singular: "ingressclass", short_names: &[], categories: &[], namespaced: false, has_status: false, has_scale: false }
    networking::NetworkPolicy => { group: "networking.k8s.io", version: "v1", kind: "NetworkPolicy", plural: "networkpolicies", singular: "networkpolicy", short_names: &["netpol"], categories: &[], namespaced: true, has_status: false, has_scale: false }
    coordination::Lease => { group: "coordination.k8s.io", version: "v1", kind: "Lease", plural: "leases", singular: "lease", short_names: &[], categories: &[], namespaced: true, has_status: false, has_scale: false }
    events::Event => { group: "events.k8s.io", version: "v1", kind: "Event", plural: "events", singular: "event", short_names: &["ev"], categories: &[], namespaced: true, has_status: false, has_scale: false }
    apiextensions::CustomResourceDefinition => { group: "apiextensions.k8s.io", version: "v1", kind: "CustomResourceDefinition", plural: "customresourcedefinitions", singular: "customresourcedefinition", short_names: &["crd", "crds"], categories: &["api-extensions"], namespaced: false, has_status: true, has_scale: false }
    storage::StorageClass => { group: "storage.k8s.io", version: "v1", kind: "StorageClass", plural: "storageclasses", singular: "storageclass", short_names: &["sc"], categories: &[], namespaced: false, has_status: false, has_scale: false }
    scheduling::PriorityClass => { group: "scheduling.k8s.io", version: "v1", kind: "PriorityClass", plural: "priorityclasses", singular: "priorityclass", short_names: &["pc"], categories: &[], namespaced: false, has_status: false, has_scale: false }
}

/// A subresource of a core kind that the node's kubelet serves through the
/// API server (Kubernetes' "connect" subresources).
#[derive(Debug)]
pub struct KubeletSubresource {
    pub plural: &'static str,
    pub name: &'static str,
    /// The kind discovery names: the options object the request carries.
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

pub static KUBELET_SUBRESOURCES: &[KubeletSubresource] = &[
    KubeletSubresource {
        plural: "pods",
        name: "attach",
        kind: "PodAttachOptions",
        verbs: &["create", "get"],
    },
    KubeletSubresource {
        plural: "pods",
        name: "exec",
        kind: "PodExecOptions",
        verbs: &["create", "get"],
    },
    KubeletSubresource {
        plural: "pods",
        name: "log",
        kind: "Pod",
        verbs: &["get"],
    },
    KubeletSubresource {
        plural: "pods",
        name: "portforward",
        kind: "PodPortForwardOptions",
        verbs: &["create", "get"],
    },
    KubeletSubresource {
        plural: "nodes",
        name: "proxy",
        kind: "NodeProxyOptions",
        verbs: &["create", "delete", "get", "patch", "update"],
    },
];

/// The kinds served now: the built-in ones and those the
/// CustomResourceDefinitions in the store define, kept by the API server's
/// CRD controller as definitions come, change and go.
#[derive(Debug, Default)]
pub struct Registry {
    /// Each definition's served versions, by the definition's name.
    custom: RwLock<BTreeMap<String, Vec<&'static Kind>>>,
}

impl Registry {
    /// Serves `kinds` for the definition `crd`, in place of what it served before.
    pub fn set_custom(&self, crd: &str, kinds: Vec<&'static Kind>) {
        let mut custom = self.custom.write().expect("registry lock");
        if kinds.is_empty() {
            custom.remove(crd);
        } else {
            custom.insert(crd.to_owned(), kinds);
        }
    }

    /// The names of the definitions served.
    pub fn definitions(&self) -> Vec<String> {
        let custom = self.custom.read().expect("registry lock");
        custom.keys().cloned().collect()
    }

    /// Every kind: the built-in ones first, then the custom ones by definition name.
    pub fn all(&self) -> Vec<&'static Kind> {
        let custom = self.custom.read().expect("registry lock");
        KINDS
            .iter()
            .chain(custom.values().flatten().copied())
            .collect()
    }

    /// Finds the kind served at `/{group}/{version}/{plural}`.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
        by_plural(group, version, plural).or_else(|| {
            let custom = self.custom.read().expect("registry lock");
            custom
                .values()
                .flatten()
                .copied()
                .find(|k| k.group == group && k.version == version && k.plural == plural)
        })
    }

    /// The served groups and their versions, core first; a custom group's
    /// versions in their definition's order of preference.
    pub fn group_versions(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = group_versions();
        for kind in self.all() {
            if !out.contains(&(kind.group, kind.version)) {
                out.push((kind.group, kind.version));
            }
        }
        out
    }
}

/// Finds the kind served at `/{group}/{version}/{plural}`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// Finds the kind an object's `apiVersion` and `kind` name.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// The served groups and their versions, in the order discovery lists them
/// (core first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in KINDS {
        if !out.contains(&(k.group, k.version)) {
            out.push((k.group, k.version));
        }
    }
    out
}
