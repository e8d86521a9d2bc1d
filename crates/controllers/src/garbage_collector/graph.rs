//! The dependency graph: every object the collector watches, by uid, with
//! the owners its ownerReferences name and, for each uid, the objects naming
//! it as an owner (whether that owner exists or not).

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// What the collector remembers of one object.
#[derive(Clone, Debug)]
pub struct Node {
    /// Index of its kind in the collector's list of watched kinds.
    pub kind: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerReference>,
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn new(kind: usize, meta: &ObjectMeta) -> Node {
        Node {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            owners: meta.owner_references.clone().unwrap_or_default(),
            being_deleted: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        }
    }

    /// Being deleted and holding `finalizer`: waiting for the collector.
    pub fn awaits(&self, finalizer: &str) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == finalizer)
    }

    fn awaits_collector(&self) -> bool {
        self.awaits(FOREGROUND) || self.awaits(ORPHAN)
    }

    /// Its reference to the owner `uid`, if it has one.
    pub fn reference_to(&self, uid: &str) -> Option<&OwnerReference> {
        self.owners.iter().find(|r| r.uid == uid)
    }
}

#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The uids of the objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The uids of the objects naming owners the graph has not seen: gone,
    /// or of a kind not watched until now.
    pub fn dependents_of_unseen_owners(&self) -> Vec<String> {
        self.dependents
            .iter()
            .filter(|(owner, _)| !self.nodes.contains_key(*owner))
            .flat_map(|(_, dependents)| dependents.iter().cloned())
            .collect()
    }

    /// The uids of every object of the kind `kind`.
    pub fn uids_of_kind(&self, kind: usize) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.kind == kind)
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// Records an object as it is now; returns the uids the collector should
    /// look at again because of the change.
    pub fn upsert(&mut self, uid: &str, node: Node) -> Vec<String> {
        let old = self.nodes.remove(uid);
        let mut todo = Vec::new();
        // A new owner reference is checked when the graph cannot vouch for
        // the owner: unseen (perhaps gone) or deleting its dependents.
        let doubtful_owner = node.owners.iter().any(|r| {
            old.as_ref()
                .is_none_or(|o| o.reference_to(&r.uid).is_none())
                && self.nodes.get(&r.uid).is_none_or(|o| o.awaits(FOREGROUND))
        });
        if doubtful_owner || node.awaits_collector() {
            todo.push(uid.to_owned());
        }
        // An owner that starts deleting in the foreground makes its
        // dependents deletable.
        let started_foreground =
            node.awaits(FOREGROUND) && !old.as_ref().is_some_and(|o| o.awaits(FOREGROUND));
        if started_foreground {
            todo.extend(self.dependents_of(uid));
        }
        if let Some(old) = &old {
            todo.extend(self.unlink(uid, old));
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.to_owned());
        }
        todo.extend(self.owners_awaiting_collector(&node));
        self.nodes.insert(uid.to_owned(), node);
        todo
    }

    /// Forgets a deleted object; returns the uids the collector should look
    /// at again: its dependents, which may have lost their last owner, and
    /// its owners waiting for their dependents to go.
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(old) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut todo = self.unlink(uid, &old);
        todo.extend(self.dependents_of(uid));
        todo
    }

    /// Drops `node`'s links to its owners; returns those waiting on it.
    fn unlink(&mut self, uid: &str, node: &Node) -> Vec<String> {
        for owner in &node.owners {
            if let Some(dependents) = self.dependents.get_mut(&owner.uid) {
                dependents.remove(uid);
                if dependents.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        self.owners_awaiting_collector(node)
    }

    fn owners_awaiting_collector(&self, node: &Node) -> Vec<String> {
        node.owners
            .iter()
            .filter(|r| self.nodes.get(&r.uid).is_some_and(Node::awaits_collector))
            .map(|r| r.uid.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(owners: &[&str], finalizers: &[&str], being_deleted: bool) -> Node {
        Node {
            kind: 0,
            namespace: Some("default".into()),
            name: "x".into(),
            owners: owners
                .iter()
                .map(|uid| OwnerReference {
                    uid: (*uid).into(),
                    ..OwnerReference::default()
                })
                .collect(),
            being_deleted,
            finalizers: finalizers.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn a_removed_owner_sends_its_dependents_to_the_collector() {
        let mut graph = Graph::default();
        graph.upsert("owner", node(&[], &[], false));
        assert!(graph.upsert("dep", node(&["owner"], &[], false)).is_empty());
        assert_eq!(graph.remove("owner"), ["dep"]);
        assert_eq!(
            graph.dependents_of("owner"),
            ["dep"],
            "the owner's uid still names its dependents"
        );
    }

    #[test]
    fn a_dependent_of_an_unseen_owner_goes_to_the_collector() {
        let mut graph = Graph::default();
        assert_eq!(graph.upsert("dep", node(&["owner"], &[], false)), ["dep"]);
        assert!(graph.upsert("dep", node(&["owner"], &[], false)).is_empty());
    }

    #[test]
    fn foreground_deletion_sends_dependents_once_and_their_removal_sends_the_owner() {
        let mut graph = Graph::default();
        graph.upsert("owner", node(&[], &[], false));
        graph.upsert("dep", node(&["owner"], &[], false));
        let todo = graph.upsert("owner", node(&[], &[FOREGROUND], true));
        assert_eq!(todo, ["owner", "dep"]);
        assert_eq!(
            graph.upsert("owner", node(&[], &[FOREGROUND], true)),
            ["owner"]
        );
        assert_eq!(graph.remove("dep"), ["owner"]);
        assert!(graph.dependents_of("owner").is_empty());
    }

    #[test]
    fn dropping_an_owner_reference_sends_an_orphaning_owner() {
        let mut graph = Graph::default();
        graph.upsert("owner", node(&[], &[ORPHAN], true));
        graph.upsert("dep", node(&["owner"], &[], false));
        assert_eq!(graph.upsert("dep", node(&[], &[], false)), ["owner"]);
        assert!(graph.dependents_of("owner").is_empty());
    }
}
