//! Node leases (upstream `pkg/kubelet/nodelease` and the component-helpers
//! lease controller): one `coordination.k8s.io` Lease per node in
//! `kube-node-lease`, named after the node, held by it, owned by the Node
//! object (so it goes when the node goes), with a 40 s duration renewed
//! every 10 s (a quarter of it). A fresh `renewTime` is what tells the node
//! lifecycle controller the node is alive; it is far cheaper to write than
//! the node's status.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

pub const NAMESPACE: &str = "kube-node-lease";
/// Upstream's `nodeLeaseDurationSeconds`.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Upstream renews at a quarter of the duration.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(LEASE_DURATION_SECONDS as u64 / 4);

/// The Lease of node `name` (with `uid`), renewed at `now`.
pub fn lease(name: &str, uid: &str, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.to_string(),
                uid: uid.to_string(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// Renews node `name`'s Lease, creating it if it is missing.
pub async fn renew(api: &Api<Lease>, name: &str, uid: &str) -> kube::Result<()> {
    let now = Timestamp::now();
    let patch = json!({"spec": {
        "holderIdentity": name,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
        "renewTime": MicroTime(now),
    }});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Err(kube::Error::Api(status)) if status.code == 404 => {
            match api.create(&PostParams::default(), &lease(name, uid, now)).await {
                // Created meanwhile by an earlier attempt: renewed next round.
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
                result => result.map(drop),
            }
        }
        result => result.map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_held_and_owned_by_their_node() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let lease = lease("hollow-3", "uid-3", now);
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
        let owner = &lease.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "hollow-3", "uid-3")
        );
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("hollow-3"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(RENEW_INTERVAL, Duration::from_secs(10));
    }
}
