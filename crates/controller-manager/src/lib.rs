//! The controller manager: the controllers that drive objects toward their
//! spec, each an API client like any other.
//!
//! Every controller is written the kube-runtime way — a `reconcile`
//! function that is safe to run any number of times, driven by
//! `kube::runtime::Controller` from informers — in a module named for the
//! upstream controller it implements. Start with [`run`], which starts them
//! all on one client; then read any controller module, e.g. [`namespace`].

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod garbagecollector;
pub mod history;
pub mod job;
pub mod namespace;
pub mod replicaset;
pub mod replication;
pub mod serviceaccount;
pub mod statefulset;
pub mod ttlafterfinished;

use std::future::Future;

/// Runs every controller until `shutdown` resolves.
pub async fn run(client: kube::Client, shutdown: impl Future<Output = ()> + Send + 'static) {
    let controllers = async {
        tokio::join!(
            namespace::run(client.clone()),
            serviceaccount::run(client.clone()),
            replicaset::run(client.clone()),
            replication::run(client.clone()),
            deployment::run(client.clone()),
            daemonset::run(client.clone()),
            statefulset::run(client.clone()),
            garbagecollector::run(client.clone()),
            job::run(client.clone()),
            cronjob::run(client.clone()),
            ttlafterfinished::run(client.clone()),
        );
    };
    tokio::select! {
        _ = controllers => tracing::warn!("controllers stopped"),
        _ = shutdown => {}
    }
}

/// Errors a reconcile can end with; every one is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Pending(String),
}

/// How kube-rs's dynamic API addresses a resource from the registry.
pub(crate) fn api_resource(resource: &capstan_apimachinery::ResourceType) -> kube::api::ApiResource {
    kube::api::ApiResource {
        group: resource.group.to_string(),
        version: resource.version.to_string(),
        api_version: resource.api_version(),
        kind: resource.kind.to_string(),
        plural: resource.plural.to_string(),
    }
}
