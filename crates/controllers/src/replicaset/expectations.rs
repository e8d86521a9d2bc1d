//! What a ReplicaSet is waiting to see in its pod watch, as Kubernetes'
//! "expectations": between creating a pod and the watch showing it, the
//! cache is short of that pod, and a pass that trusted the cache would
//! create it again. Until the watch has shown every pod a pass created or
//! deleted, later passes update status only.
//!
//! Pods are named by the controller before it creates them (not by the API
//! server through generateName) so that the name is known before the
//! request goes out: a watch event arriving before the create call returns
//! still finds its expectation.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::pods::controller_of;

/// After this long an expectation is given up, as Kubernetes gives up (a
/// watch that restarted may have missed a pod's whole life).
const PATIENCE: Duration = Duration::from_secs(5 * 60);

/// An owner, by namespace and name.
type Owner = (String, String);

#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<Owner, Pending>>,
}

struct Pending {
    /// Names of pods created but not yet seen.
    creations: HashSet<String>,
    /// UIDs of pods deleted but not yet seen going.
    deletions: HashSet<String>,
    since: Instant,
}

impl Expectations {
    /// Notes that `owner` is about to create a pod named `name`.
    pub fn expect_creation(&self, owner: &Owner, name: &str) {
        self.with(owner, |p| p.creations.insert(name.to_owned()));
    }

    /// Notes that `owner` is about to delete the pod with `uid`.
    pub fn expect_deletion(&self, owner: &Owner, uid: &str) {
        self.with(owner, |p| p.deletions.insert(uid.to_owned()));
    }

    /// Forgets a creation or deletion that failed, so nothing waits for it.
    pub fn forget(&self, owner: &Owner, name_or_uid: &str) {
        self.with(owner, |p| {
            p.creations.remove(name_or_uid);
            p.deletions.remove(name_or_uid);
        });
    }

    /// True when `owner` has seen everything it did (or gave up waiting).
    pub fn satisfied(&self, owner: &Owner) -> bool {
        let mut pending = self.pending.lock().expect("expectations lock");
        let waiting = pending.get(owner).is_some_and(|p| {
            p.since.elapsed() < PATIENCE && !(p.creations.is_empty() && p.deletions.is_empty())
        });
        if !waiting {
            pending.remove(owner);
        }
        !waiting
    }

    /// Takes in one event of the pod watch, before the cache does.
    pub fn observe(&self, event: &Event<Pod>) {
        let (pod, gone) = match event {
            Event::Apply(pod) | Event::InitApply(pod) => (pod, false),
            Event::Delete(pod) => (pod, true),
            Event::Init | Event::InitDone => return,
        };
        let Some(controller) = controller_of(pod) else {
            return;
        };
        let owner = (pod.namespace().unwrap_or_default(), controller.name.clone());
        let mut pending = self.pending.lock().expect("expectations lock");
        if let Some(p) = pending.get_mut(&owner) {
            p.creations.remove(&pod.name_any());
            if gone || pod.metadata.deletion_timestamp.is_some() {
                p.deletions.remove(&pod.uid().unwrap_or_default());
            }
        }
    }

    fn with<T>(&self, owner: &Owner, change: impl FnOnce(&mut Pending) -> T) -> T {
        let mut pending = self.pending.lock().expect("expectations lock");
        let entry = pending.entry(owner.clone()).or_insert_with(|| Pending {
            creations: HashSet::new(),
            deletions: HashSet::new(),
            since: Instant::now(),
        });
        change(entry)
    }
}
