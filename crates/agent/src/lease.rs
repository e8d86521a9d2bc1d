//! The node's Lease in `kube-node-lease`: the cheap heartbeat the control
//! plane watches instead of the Node's status.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The kubelet's lease duration: four missed renewals make the node unknown.
const LEASE_SECONDS: i32 = 40;

pub struct LeaseRenewer {
    leases: Api<Lease>,
    node_name: String,
    node_uid: String,
}

impl LeaseRenewer {
    pub fn new(client: Client, node_name: &str, node_uid: &str) -> LeaseRenewer {
        LeaseRenewer {
            leases: Api::namespaced(client, "kube-node-lease"),
            node_name: node_name.to_owned(),
            node_uid: node_uid.to_owned(),
        }
    }

    pub async fn renew(&self) -> kube::Result<Lease> {
        let params = PatchParams::apply("tug-agent").force();
        self.leases
            .patch(
                &self.node_name,
                &params,
                &Patch::Apply(self.lease(Timestamp::now())),
            )
            .await
    }

    fn lease(&self, now: Timestamp) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node_name,
                "namespace": "kube-node-lease",
                // Owned by the Node, so that deleting the Node removes its lease.
                "ownerReferences": [{
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": self.node_name,
                    "uid": self.node_uid,
                }],
            },
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            },
        })
    }
}
