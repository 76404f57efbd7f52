//! ReplicationControllers (upstream's replication controller).
//!
//! Upstream runs the ReplicaSet controller's code for ReplicationControllers
//! through an adapter; here the shared code is generic over
//! [`Replicated`](crate::replicaset::Replicated), whose implementation for
//! `ReplicationController` turns its map selector into a label selector.
//! Events come from `replication-controller`, as upstream.

use k8s_openapi::api::core::v1::ReplicationController;

pub async fn run(client: kube::Client, pods: crate::informer::PodChanges) {
    crate::replicaset::run_for::<ReplicationController>(client, pods).await
}
