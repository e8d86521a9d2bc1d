//! The garbage collector, as kube-controller-manager's: it deletes objects
//! whose owners (`metadata.ownerReferences`) are all gone, and carries out
//! the propagation policies the API server records as finalizers:
//! `foregroundDeletion` (dependents go first; the owner waits for those with
//! `blockOwnerDeletion`) and `orphan` (dependents lose their reference to
//! the owner). It watches every kind discovery lists when it starts, and
//! discovers again whenever a CustomResourceDefinition changes, so that the
//! kinds of definitions made later (custom resources owning or owned by
//! other objects) are watched too.
//!
//! - `graph`: what the watches saw, by uid: owners and dependents.
//! - here: the watches, a work queue of uids, and what is done for each.

mod graph;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::core::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::resources::{self, ServedKind};
use graph::{FOREGROUND, Graph, Node, ORPHAN};

/// Objects handled at the same time.
const WORKERS: usize = 4;
/// Kinds not watched: events are never owners nor worth collecting, as
/// kube-controller-manager ignores them by default.
const IGNORED: [(&str, &str); 2] = [("", "events"), ("events.k8s.io", "events")];
/// How long a uid whose handling failed waits before it is tried again.
const RETRY: Duration = Duration::from_secs(2);

pub async fn run(client: Client) -> anyhow::Result<()> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let collector = Arc::new(Collector {
        client,
        kinds: RwLock::default(),
        graph: Mutex::default(),
        queue: Queue {
            sender,
            pending: Mutex::default(),
        },
    });
    let (found, mut new_kinds) = mpsc::unbounded_channel();
    while let Err(e) = collector.discover(&found).await {
        tracing::warn!("garbage collector: discovery failed: {e}");
        tokio::time::sleep(RETRY).await;
    }
    let mut tasks = JoinSet::new();
    tasks.spawn(collector.clone().work(receiver));
    tasks.spawn(collector.clone().follow_definitions(found));
    loop {
        tokio::select! {
            Some(kind) = new_kinds.recv() => {
                tasks.spawn(collector.clone().watch(kind));
            }
            stopped = tasks.join_next() => match stopped {
                Some(stopped) => stopped??,
                None => return Ok(()),
            },
        }
    }
}

struct Collector {
    client: Client,
    /// The kinds watched, in the order found; a graph node names its kind
    /// by index here, so kinds are only ever added.
    kinds: RwLock<Vec<ServedKind>>,
    graph: Mutex<Graph>,
    queue: Queue,
}

/// Uids waiting to be handled, each at most once in the queue.
struct Queue {
    sender: mpsc::UnboundedSender<String>,
    pending: Mutex<HashSet<String>>,
}

impl Queue {
    fn add(&self, uid: String) {
        if self.pending.lock().expect("queue lock").insert(uid.clone()) {
            // The receiver lives as long as the collector.
            let _ = self.sender.send(uid);
        }
    }

    fn taken(&self, uid: &str) {
        self.pending.lock().expect("queue lock").remove(uid);
    }
}

/// How an owner reference stands.
enum Owner {
    /// The owner exists and is not deleting its dependents.
    Solid,
    /// No object of that name has that uid.
    Gone,
    /// The owner is being deleted in the foreground.
    DeletingDependents,
}

impl Collector {
    /// Adds the served kinds not watched yet and sends their indices to be watched.
    async fn discover(&self, found: &mpsc::UnboundedSender<usize>) -> kube::Result<()> {
        let served = resources::with_verbs(&self.client, &["list", "watch", "delete"]).await?;
        let mut kinds = self.kinds.write().expect("kinds lock");
        for kind in served {
            let key = (kind.api.group.as_str(), kind.api.plural.as_str());
            let known = kinds
                .iter()
                .any(|k| (k.api.group.as_str(), k.api.plural.as_str()) == key);
            if !known && !IGNORED.contains(&key) {
                kinds.push(kind);
                // The receiver lives as long as the collector's tasks.
                let _ = found.send(kinds.len() - 1);
            }
        }
        Ok(())
    }

    /// Discovers again whenever a CustomResourceDefinition changes (its
    /// kinds are served once it is established, which is a change too).
    async fn follow_definitions(
        self: Arc<Self>,
        found: mpsc::UnboundedSender<usize>,
    ) -> anyhow::Result<()> {
        let definitions = Api::<CustomResourceDefinition>::all(self.client.clone());
        let mut events = watcher(definitions, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            if matches!(
                event,
                Ok(watcher::Event::Apply(_) | watcher::Event::InitDone)
            ) && let Err(e) = self.discover(&found).await
            {
                tracing::warn!("garbage collector: discovery failed: {e}");
            }
        }
        Ok(())
    }

    /// The kind watched at `index`.
    fn kind(&self, index: usize) -> ServedKind {
        self.kinds.read().expect("kinds lock")[index].clone()
    }

    /// Keeps the graph current with every object of one kind.
    async fn watch(self: Arc<Self>, kind: usize) -> anyhow::Result<()> {
        let served = self.kind(kind);
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &served.api);
        let mut listed: Option<HashSet<String>> = None;
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::debug!(kind = served.api.plural, "garbage collector watch: {e}");
                    continue;
                }
            };
            let todo = {
                let mut graph = self.graph.lock().expect("graph lock");
                match event {
                    watcher::Event::Init => {
                        listed = Some(HashSet::new());
                        Vec::new()
                    }
                    watcher::Event::InitApply(obj) => {
                        let uid = obj.metadata.uid.clone().unwrap_or_default();
                        listed.get_or_insert_default().insert(uid.clone());
                        graph.upsert(&uid, Node::new(kind, &obj.metadata))
                    }
                    watcher::Event::Apply(obj) => {
                        let uid = obj.metadata.uid.clone().unwrap_or_default();
                        graph.upsert(&uid, Node::new(kind, &obj.metadata))
                    }
                    watcher::Event::Delete(obj) => {
                        graph.remove(obj.metadata.uid.as_deref().unwrap_or_default())
                    }
                    // What a new list no longer has went while the watch was
                    // down. Dependents of owners not seen are looked at again:
                    // their owners may be of this kind, watched only now.
                    watcher::Event::InitDone => {
                        let listed = listed.take().unwrap_or_default();
                        let mut todo: Vec<String> = graph
                            .uids_of_kind(kind)
                            .into_iter()
                            .filter(|uid| !listed.contains(uid))
                            .flat_map(|uid| graph.remove(&uid))
                            .collect();
                        todo.extend(graph.dependents_of_unseen_owners());
                        todo
                    }
                }
            };
            for uid in todo {
                self.queue.add(uid);
            }
        }
        Ok(())
    }

    /// Handles queued uids, a few at a time, until the process stops.
    async fn work(
        self: Arc<Self>,
        mut receiver: mpsc::UnboundedReceiver<String>,
    ) -> anyhow::Result<()> {
        futures::stream::poll_fn(|cx| receiver.poll_recv(cx))
            .for_each_concurrent(WORKERS, |uid| {
                let collector = self.clone();
                async move {
                    collector.queue.taken(&uid);
                    if let Err(e) = collector.handle(&uid).await {
                        tracing::debug!(uid, "garbage collector: {e}; trying again");
                        tokio::time::sleep(RETRY).await;
                        collector.queue.add(uid);
                    }
                }
            })
            .await;
        Ok(())
    }

    /// Does what the object `uid` needs now, judging from a fresh read.
    async fn handle(&self, uid: &str) -> anyhow::Result<()> {
        let Some(node) = self.graph.lock().expect("graph lock").get(uid).cloned() else {
            return Ok(());
        };
        let api = self.api(node.kind, node.namespace.as_deref());
        let Some(obj) = api.get_opt(&node.name).await? else {
            return Ok(());
        };
        if obj.metadata.uid.as_deref() != Some(uid) {
            return Ok(());
        }
        let node = Node::new(node.kind, &obj.metadata);
        if node.awaits(ORPHAN) {
            return self.orphan_dependents(uid, &node, &api, &obj).await;
        }
        if node.awaits(FOREGROUND) {
            return self.finish_foreground(uid, &api, &obj).await;
        }
        if node.being_deleted || node.owners.is_empty() {
            return Ok(());
        }
        self.collect(uid, &node, &api, &obj).await
    }

    /// Deletes a dependent whose owners are all gone or deleting their
    /// dependents, or drops its references to those when another owner
    /// remains.
    async fn collect(
        &self,
        uid: &str,
        node: &Node,
        api: &Api<DynamicObject>,
        obj: &DynamicObject,
    ) -> anyhow::Result<()> {
        let mut solid = false;
        let mut dropped = Vec::new();
        let mut owner_deleting_dependents = false;
        for owner in &node.owners {
            match self.owner(owner, node.namespace.as_deref()).await? {
                Owner::Solid => solid = true,
                Owner::Gone => dropped.push(owner.uid.as_str()),
                Owner::DeletingDependents => {
                    owner_deleting_dependents = true;
                    dropped.push(owner.uid.as_str());
                }
            }
        }
        if solid {
            if dropped.is_empty() {
                return Ok(());
            }
            let kept: Vec<&OwnerReference> = node
                .owners
                .iter()
                .filter(|r| !dropped.contains(&r.uid.as_str()))
                .collect();
            return self
                .patch_metadata(api, obj, json!({"ownerReferences": kept}))
                .await;
        }
        let has_dependents = !self
            .graph
            .lock()
            .expect("graph lock")
            .dependents_of(uid)
            .is_empty();
        // Dependents of a foreground deletion that own objects themselves go
        // in the foreground too, so the first owner waits for the whole tree.
        let policy = if node.finalizers.iter().any(|f| f == ORPHAN) {
            PropagationPolicy::Orphan
        } else if (owner_deleting_dependents && has_dependents)
            || node.finalizers.iter().any(|f| f == FOREGROUND)
        {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        tracing::debug!(
            uid,
            name = node.name,
            ?policy,
            "garbage collector: deleting"
        );
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&node.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Ends a foreground deletion once no dependent blocks it; until then
    /// the blocking dependents not yet deleting are sent to be collected.
    async fn finish_foreground(
        &self,
        uid: &str,
        api: &Api<DynamicObject>,
        obj: &DynamicObject,
    ) -> anyhow::Result<()> {
        let blocking: Vec<(String, bool)> = {
            let graph = self.graph.lock().expect("graph lock");
            graph
                .dependents_of(uid)
                .into_iter()
                .filter_map(|d| {
                    let node = graph.get(&d)?;
                    let blocks = node.reference_to(uid)?.block_owner_deletion == Some(true);
                    blocks.then_some((d, node.being_deleted))
                })
                .collect()
        };
        if blocking.is_empty() {
            return self.remove_finalizer(api, obj, FOREGROUND).await;
        }
        for (dependent, being_deleted) in blocking {
            if !being_deleted {
                self.queue.add(dependent);
            }
        }
        Ok(())
    }

    /// Removes the reference to `uid` from each of its dependents, then the
    /// owner's `orphan` finalizer.
    async fn orphan_dependents(
        &self,
        uid: &str,
        node: &Node,
        api: &Api<DynamicObject>,
        obj: &DynamicObject,
    ) -> anyhow::Result<()> {
        let dependents: Vec<Node> = {
            let graph = self.graph.lock().expect("graph lock");
            graph
                .dependents_of(uid)
                .iter()
                .filter_map(|d| graph.get(d).cloned())
                .collect()
        };
        for dependent in dependents {
            let api = self.api(dependent.kind, dependent.namespace.as_deref());
            let Some(current) = api.get_opt(&dependent.name).await? else {
                continue;
            };
            let owners = current
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default();
            if owners.iter().all(|r| r.uid != uid) {
                continue;
            }
            let kept: Vec<&OwnerReference> = owners.iter().filter(|r| r.uid != uid).collect();
            self.patch_metadata(&api, &current, json!({"ownerReferences": kept}))
                .await?;
        }
        tracing::debug!(
            uid,
            name = node.name,
            "garbage collector: orphaned dependents"
        );
        self.remove_finalizer(api, obj, ORPHAN).await
    }

    async fn remove_finalizer(
        &self,
        api: &Api<DynamicObject>,
        obj: &DynamicObject,
        finalizer: &str,
    ) -> anyhow::Result<()> {
        let kept: Vec<&String> = obj
            .metadata
            .finalizers
            .iter()
            .flatten()
            .filter(|f| *f != finalizer)
            .collect();
        self.patch_metadata(api, obj, json!({"finalizers": kept}))
            .await
    }

    /// Merges `fields` into the object's metadata, if it is still the
    /// version read (else the write is refused and the uid tried again).
    async fn patch_metadata(
        &self,
        api: &Api<DynamicObject>,
        obj: &DynamicObject,
        mut fields: serde_json::Value,
    ) -> anyhow::Result<()> {
        fields["resourceVersion"] = obj.metadata.resource_version.clone().into();
        let name = obj.metadata.name.as_deref().unwrap_or_default();
        let patch = Patch::Merge(json!({"metadata": fields}));
        match api.patch(name, &PatchParams::default(), &patch).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Looks the owner up as it is now (the graph may lag behind).
    async fn owner(
        &self,
        reference: &OwnerReference,
        namespace: Option<&str>,
    ) -> anyhow::Result<Owner> {
        let group = reference
            .api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        let found = self
            .kinds
            .read()
            .expect("kinds lock")
            .iter()
            .position(|k| k.api.group == group && k.api.kind == reference.kind);
        let Some(kind) = found else {
            // A kind the server does not serve may come back (an API being
            // upgraded): its dependents are kept, as Kubernetes keeps them.
            return Ok(Owner::Solid);
        };
        // A cluster-scoped object cannot be owned by a namespaced one.
        if self.kind(kind).namespaced && namespace.is_none() {
            return Ok(Owner::Gone);
        }
        let Some(owner) = self.api(kind, namespace).get_opt(&reference.name).await? else {
            return Ok(Owner::Gone);
        };
        if owner.metadata.uid.as_deref() != Some(reference.uid.as_str()) {
            return Ok(Owner::Gone);
        }
        let owner = Node::new(kind, &owner.metadata);
        Ok(if owner.awaits(FOREGROUND) {
            Owner::DeletingDependents
        } else {
            Owner::Solid
        })
    }

    fn api(&self, kind: usize, namespace: Option<&str>) -> Api<DynamicObject> {
        let served = self.kind(kind);
        match namespace {
            Some(ns) if served.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &served.api)
            }
            _ => Api::all_with(self.client.clone(), &served.api),
        }
    }
}
