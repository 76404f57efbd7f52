//! ServiceAccounts: every active namespace has a `default` service account
//! (upstream's serviceaccounts controller), which pods use when they name
//! none.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;

use crate::Error;

const DEFAULT: &str = "default";

pub async fn run(client: kube::Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    // A deleted `default` account triggers its namespace's reconcile.
    let by_namespace = |sa: ServiceAccount| {
        sa.metadata
            .namespace
            .filter(|_| sa.metadata.name.as_deref() == Some(DEFAULT))
            .map(|ns| kube::runtime::reflector::ObjectRef::new(&ns))
    };
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, watcher::Config::default(), by_namespace)
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(namespace: Arc<Namespace>, client: Arc<kube::Client>) -> Result<Action, Error> {
    if namespace.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = namespace.metadata.name.clone().unwrap_or_default();
    let api: Api<ServiceAccount> = Api::namespaced((*client).clone(), &name);
    if api.get_opt(DEFAULT).await?.is_some() {
        return Ok(Action::await_change());
    }
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.to_string()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    match api.create(&PostParams::default(), &account).await {
        Ok(_) => tracing::info!(namespace = name, "created the default service account"),
        // Created meanwhile, or the namespace began terminating: both fine.
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 403 => {}
        Err(err) => return Err(err.into()),
    }
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Namespace>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(%error, "serviceaccount controller");
    Action::requeue(Duration::from_secs(2))
}
