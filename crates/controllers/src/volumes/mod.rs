//! PersistentVolumes and their claims: binding claims to volumes
//! (`binder`), making volumes for claims of the default `local-path` class
//! (`provisioner`), releasing volumes whose claims are gone, deleting
//! them under the `Delete` reclaim policy, and letting deleted claims and
//! volumes go once nothing uses them (`protection`).
//!
//! Each pass looks at every claim and volume, so it runs on any change to
//! claims, volumes, classes or pods that use claims, and every half minute.

mod binder;
mod protection;
mod provisioner;

use std::collections::HashSet;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tugboat_events::{Recorder, Type};

/// Set by the scheduler on a claim that waits for its first consumer.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
const RESYNC: Duration = Duration::from_secs(30);

pub async fn run(client: Client) -> anyhow::Result<()> {
    let changes = stream::select_all([
        watcher(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            watcher::Config::default(),
        )
        .map(|_| ())
        .boxed(),
        watcher(
            Api::<PersistentVolume>::all(client.clone()),
            watcher::Config::default(),
        )
        .map(|_| ())
        .boxed(),
        watcher(
            Api::<StorageClass>::all(client.clone()),
            watcher::Config::default(),
        )
        .map(|_| ())
        .boxed(),
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .filter(|event| std::future::ready(uses_claims(event)))
            .map(|_| ())
            .boxed(),
    ]);
    let mut changes = changes.ready_chunks(1024);
    let mut volumes = Volumes {
        events: Recorder::new(client.clone(), "persistentvolume-controller", None),
        client,
        reported: HashSet::new(),
    };
    // Made once per start (a class the user deleted stays deleted until
    // then), retried until the API server answers.
    let mut class_made = false;
    loop {
        if !class_made {
            match provisioner::ensure_default_class(&volumes.client).await {
                Ok(()) => class_made = true,
                Err(e) => tracing::warn!("making the default StorageClass: {e}"),
            }
        }
        if let Err(e) = volumes.sync().await {
            tracing::warn!("PersistentVolume controller: {e}");
        }
        if tokio::time::timeout(RESYNC, changes.next()).await == Ok(None) {
            anyhow::bail!("the PersistentVolume controller's watches ended");
        }
    }
}

fn uses_claims(event: &Result<watcher::Event<Pod>, watcher::Error>) -> bool {
    let has_claim = |p: &Pod| {
        p.spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| v.persistent_volume_claim.is_some())
    };
    match event {
        Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p) | watcher::Event::Delete(p)) => {
            has_claim(p)
        }
        _ => false,
    }
}

struct Volumes {
    client: Client,
    events: Recorder,
    /// Claims already told why they wait (uid, reason), so that a pass
    /// every few seconds does not repeat the event.
    reported: HashSet<(String, String)>,
}

impl Volumes {
    async fn sync(&mut self) -> kube::Result<()> {
        let classes = Api::<StorageClass>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let volumes = Api::<PersistentVolume>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        let claims = Api::<PersistentVolumeClaim>::all(self.client.clone())
            .list(&ListParams::default())
            .await?
            .items;
        for claim in claims
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
        {
            if let Err(e) = self.sync_claim(claim, &classes, &volumes).await {
                tracing::debug!(claim = claim.name_any(), "claim not bound yet: {e}");
            }
        }
        for claim in claims
            .iter()
            .filter(|c| c.metadata.deletion_timestamp.is_some())
        {
            protection::release_claim(&self.client, claim).await?;
        }
        for volume in &volumes {
            self.sync_volume(volume, &claims).await?;
        }
        Ok(())
    }

    async fn sync_claim(
        &mut self,
        claim: &PersistentVolumeClaim,
        classes: &[StorageClass],
        volumes: &[PersistentVolume],
    ) -> kube::Result<()> {
        let namespace = claim.namespace().unwrap_or_default();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        let spec = claim.spec.clone().unwrap_or_default();
        if let Some(volume_name) = spec.volume_name.as_deref().filter(|n| !n.is_empty()) {
            let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
            match volumes.iter().find(|v| v.name_any() == volume_name) {
                Some(volume) if phase != Some("Bound") => {
                    binder::bind(&self.client, volume, claim).await?;
                }
                None if phase == Some("Bound") => {
                    let lost = json!({"status": {"phase": "Lost"}});
                    claims
                        .patch_status(
                            &claim.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&lost),
                        )
                        .await?;
                    self.report(
                        claim,
                        Type::Warning,
                        "ClaimLost",
                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
                            .into(),
                    )
                    .await;
                }
                _ => {}
            }
            return Ok(());
        }
        // A claim without a class gets the default one, also when the
        // default appears after the claim (retroactive assignment).
        let Some(class_name) = spec.storage_class_name.clone() else {
            if let Some(default) = provisioner::default_class(classes) {
                let set = json!({"spec": {"storageClassName": default.name_any()}});
                claims
                    .patch(
                        &claim.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&set),
                    )
                    .await?;
                return Ok(());
            }
            if let Some(volume) = binder::find_volume(claim, "", volumes, None) {
                return binder::bind(&self.client, volume, claim).await;
            }
            self.wait(claim, "", None).await;
            return Ok(());
        };
        let class = classes.iter().find(|c| c.name_any() == class_name);
        let waits =
            class.and_then(|c| c.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer");
        let ours = class.is_some_and(|c| c.provisioner == provisioner::PROVISIONER);
        let node = if waits || ours {
            match self.consumer_node(claim).await? {
                Some(node) => Some(node),
                None => {
                    self.report(
                        claim,
                        Type::Normal,
                        "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding".into(),
                    )
                    .await;
                    return Ok(());
                }
            }
        } else {
            None
        };
        if let Some(volume) = binder::find_volume(claim, &class_name, volumes, node.as_ref()) {
            return binder::bind(&self.client, volume, claim).await;
        }
        match (class, node) {
            (Some(class), Some(node)) if ours => self.provision(claim, class, &node).await,
            _ => {
                self.wait(claim, &class_name, class).await;
                Ok(())
            }
        }
    }

    /// No volume to bind now: says why, once.
    async fn wait(
        &mut self,
        claim: &PersistentVolumeClaim,
        class_name: &str,
        class: Option<&StorageClass>,
    ) {
        let message = match class {
            None if class_name.is_empty() => {
                "no persistent volumes available for this claim and no storage class is set"
                    .to_owned()
            }
            None => format!("storageclass.storage.k8s.io {class_name:?} not found"),
            Some(class) => format!(
                "waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator",
                class.provisioner
            ),
        };
        let reason = if class.is_some() {
            "ExternalProvisioning"
        } else {
            "FailedBinding"
        };
        let kind = if class.is_some() {
            Type::Normal
        } else {
            Type::Warning
        };
        self.report(claim, kind, reason, message).await;
    }

    /// The node the claim's first consumer is on: the scheduler's choice
    /// when it recorded one, else the node of a pod using the claim.
    async fn consumer_node(&self, claim: &PersistentVolumeClaim) -> kube::Result<Option<Node>> {
        let node_name = match claim.annotations().get(SELECTED_NODE) {
            Some(node) => Some(node.clone()),
            None => {
                let namespace = claim.namespace().unwrap_or_default();
                let pods = Api::<Pod>::namespaced(self.client.clone(), &namespace)
                    .list(&ListParams::default())
                    .await?;
                pods.items
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter(|p| {
                        p.spec
                            .iter()
                            .flat_map(|s| s.volumes.iter().flatten())
                            .any(|v| {
                                v.persistent_volume_claim.as_ref().is_some_and(|c| {
                                    Some(&c.claim_name) == claim.metadata.name.as_ref()
                                })
                            })
                    })
                    .find_map(|p| p.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty()))
            }
        };
        match node_name {
            Some(name) => Api::<Node>::all(self.client.clone()).get_opt(&name).await,
            None => Ok(None),
        }
    }

    async fn provision(
        &mut self,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
        node: &Node,
    ) -> kube::Result<()> {
        let volume = match provisioner::volume_for(claim, class, node) {
            Ok(volume) => volume,
            Err(message) => {
                self.report(claim, Type::Warning, "ProvisioningFailed", message)
                    .await;
                return Ok(());
            }
        };
        let namespace = claim.namespace().unwrap_or_default();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        let mark = json!({"metadata": {"annotations": {
            STORAGE_PROVISIONER: provisioner::PROVISIONER,
            "volume.beta.kubernetes.io/storage-provisioner": provisioner::PROVISIONER,
        }}});
        claims
            .patch(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&mark),
            )
            .await?;
        self.events
            .record(
                claim,
                Type::Normal,
                "Provisioning",
                format!(
                    "External provisioner is provisioning volume for claim \"{namespace}/{}\"",
                    claim.name_any()
                ),
            )
            .await;
        let made = match Api::<PersistentVolume>::all(self.client.clone())
            .create(&PostParams::default(), &volume)
            .await
        {
            Ok(made) => made,
            // Made by an earlier pass whose binding did not finish.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Api::<PersistentVolume>::all(self.client.clone())
                    .get(&volume.name_any())
                    .await?
            }
            Err(e) => return Err(e),
        };
        self.events
            .record(
                claim,
                Type::Normal,
                "ProvisioningSucceeded",
                format!("Successfully provisioned volume {}", made.name_any()),
            )
            .await;
        binder::bind(&self.client, &made, claim).await
    }

    /// A volume whose claim is gone is Released, then deleted under the
    /// `Delete` reclaim policy (its finalizer, if it has one, waits for its
    /// node to remove the data); one without a claim is Available.
    async fn sync_volume(
        &mut self,
        volume: &PersistentVolume,
        claims: &[PersistentVolumeClaim],
    ) -> kube::Result<()> {
        if volume.metadata.deletion_timestamp.is_some() {
            return protection::release_volume(&self.client, volume).await;
        }
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let name = volume.name_any();
        let spec = volume.spec.clone().unwrap_or_default();
        let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
        let set_phase = |phase: &'static str| {
            let volumes = volumes.clone();
            let name = name.clone();
            async move {
                let status = json!({"status": {"phase": phase}});
                volumes
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .map(|_| ())
            }
        };
        let Some(claim_ref) = &spec.claim_ref else {
            if phase != Some("Available") {
                set_phase("Available").await?;
            }
            return Ok(());
        };
        let claim = claims.iter().find(|c| {
            c.metadata.namespace == claim_ref.namespace && c.metadata.name == claim_ref.name
        });
        let claim_gone = match (claim, &claim_ref.uid) {
            (None, Some(_)) => true,
            (Some(c), Some(uid)) => c.metadata.uid.as_ref() != Some(uid),
            // Pre-bound by name to a claim not made yet: it waits.
            (_, None) => false,
        };
        if !claim_gone {
            return Ok(());
        }
        if phase != Some("Released") && phase != Some("Failed") {
            set_phase("Released").await?;
        }
        if spec.persistent_volume_reclaim_policy.as_deref() == Some("Delete") {
            match volumes.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn report(
        &mut self,
        claim: &PersistentVolumeClaim,
        kind: Type,
        reason: &str,
        message: String,
    ) {
        let key = (claim.uid().unwrap_or_default(), reason.to_owned());
        if self.reported.insert(key) {
            self.events.record(claim, kind, reason, message).await;
        }
    }
}
