//! The volume objects the scheduler reads, mirrored from watches:
//! PersistentVolumeClaims, PersistentVolumes and StorageClasses.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::{ObjectRef, Store};

#[derive(Clone)]
pub struct Volumes {
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
}

impl Volumes {
    /// Waits until every store has listed its kind once.
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.claims.wait_until_ready().await?;
        self.volumes.wait_until_ready().await?;
        self.classes.wait_until_ready().await?;
        Ok(())
    }

    pub fn claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<std::sync::Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(namespace))
    }

    pub fn volume(&self, name: &str) -> Option<std::sync::Arc<PersistentVolume>> {
        self.volumes.get(&ObjectRef::new(name))
    }

    pub fn class(&self, name: &str) -> Option<std::sync::Arc<StorageClass>> {
        self.classes.get(&ObjectRef::new(name))
    }
}
