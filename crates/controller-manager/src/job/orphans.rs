//! Releases the `batch.kubernetes.io/job-tracking` finalizer of pods whose
//! Job no longer tracks them: the Job is gone (deleted with background
//! propagation, so the garbage collector deletes the pods while the
//! finalizer holds them) or has finished (upstream's orphan pod queue).
//!
//! A controller of its own over the pods a Job selects by the
//! server-generated `batch.kubernetes.io/controller-uid` label, so that its
//! cache holds Job pods only.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;

use super::{conditions, has_finalizer, remove_finalizer};
use crate::Error;
use crate::replicaset::controller_of;

const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

pub async fn run(client: kube::Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    Controller::new(pods, watcher::Config::default().labels(CONTROLLER_UID_LABEL))
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn error_policy(_: Arc<Pod>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(%error, "job orphan pods");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(pod: Arc<Pod>, client: Arc<kube::Client>) -> Result<Action, Error> {
    if !has_finalizer(&pod) {
        return Ok(Action::await_change());
    }
    let namespace = pod.namespace().unwrap_or_default();
    let owner = controller_of(&pod.metadata).filter(|r| r.kind == "Job");
    let tracked = match owner {
        None => false,
        Some(owner) => {
            let jobs: Api<Job> = Api::namespaced((*client).clone(), &namespace);
            let job = jobs.get_opt(&owner.name).await?;
            job.is_some_and(|j| j.metadata.uid.as_deref() == Some(&owner.uid) && !conditions::is_finished(&j))
        }
    };
    if !tracked {
        remove_finalizer(&Api::namespaced((*client).clone(), &namespace), &pod).await?;
    }
    Ok(Action::await_change())
}
