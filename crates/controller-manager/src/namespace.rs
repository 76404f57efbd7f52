//! Namespace lifecycle: a deleted namespace is `Terminating` until everything
//! in it is gone; then its `kubernetes` finalizer is removed and the API
//! server deletes it (upstream's namespace controller).

use std::sync::Arc;
use std::time::Duration;

use capstan_apimachinery::registry::{self, ResourceType};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;

use crate::Error;

/// The finalizer the API server puts on every namespace.
const FINALIZER: &str = "kubernetes";

pub async fn run(client: kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Controller::new(namespaces, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(namespace: Arc<Namespace>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let finalizing = namespace.metadata.deletion_timestamp.is_some()
        && namespace
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if !finalizing {
        return Ok(Action::await_change());
    }
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let remaining = delete_content(&client, &name).await?;
    if remaining > 0 {
        tracing::debug!(namespace = name, remaining, "waiting for namespace content to go");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    finalize(&client, &namespace).await?;
    tracing::info!(namespace = name, "namespace finalized");
    Ok(Action::await_change())
}

/// Asks every namespaced resource in the namespace to go; returns how
/// many objects are still there (graceful deletion and finalizers take time).
async fn delete_content(client: &kube::Client, namespace: &str) -> Result<usize, Error> {
    let mut remaining = 0;
    for resource in registry::RESOURCES.iter().filter(|r| deletable(r)) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &crate::api_resource(resource));
        let listed = api.list(&ListParams::default()).await?;
        if listed.items.is_empty() {
            continue;
        }
        remaining += listed.items.len();
        api.delete_collection(&DeleteParams::background(), &ListParams::default())
            .await?;
    }
    Ok(remaining)
}

/// Namespaced, stored, and deletable as a collection — and the preferred
/// version of its group, so each resource is visited once.
fn deletable(resource: &ResourceType) -> bool {
    resource.namespaced
        && resource.verbs.contains(&"deletecollection")
        && resource.verbs.contains(&"list")
        && resource.is_preferred_version()
}

/// Removes our finalizer through the `finalize` subresource.
async fn finalize(client: &kube::Client, namespace: &Namespace) -> Result<(), Error> {
    let mut finalized = namespace.clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(
            spec.finalizers
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect(),
        );
    }
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let api: Api<Namespace> = Api::all(client.clone());
    api.replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await?;
    Ok(())
}

fn error_policy(_: Arc<Namespace>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(%error, "namespace controller");
    Action::requeue(Duration::from_secs(2))
}
