//! Releases the `batch.kubernetes.io/job-tracking` finalizer of pods whose
//! Job no longer tracks them: the Job is gone (deleted with background
//! propagation, so the garbage collector deletes the pods while the
//! finalizer holds them) or has finished (upstream's orphan pod queue).
//!
//! A controller of its own over the pods a Job selects by the
//! server-generated `batch.kubernetes.io/controller-uid` label, so that its
//! cache holds Job pods only. The Job controller's cache answers for live
//! pods of running Jobs; for the rest the API server is asked.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::{conditions, has_finalizer, remove_finalizer};
use crate::Error;
use crate::replicaset::controller_of;

const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

pub struct Context {
    client: kube::Client,
    jobs: Store<Job>,
}

pub async fn run(client: kube::Client, jobs: Store<Job>) {
    let pods: Api<Pod> = Api::all(client.clone());
    Controller::new(pods, watcher::Config::default().labels(CONTROLLER_UID_LABEL))
        .run(reconcile, error_policy, Arc::new(Context { client, jobs }))
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn error_policy(_: Arc<Pod>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "job orphan pods");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !has_finalizer(&pod) {
        return Ok(Action::await_change());
    }
    let namespace = pod.namespace().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(owner) = controller_of(&pod.metadata).filter(|r| r.kind == "Job") else {
        remove_finalizer(&pods, &pod).await?;
        return Ok(Action::await_change());
    };
    let tracks = |job: &Job| job.metadata.uid.as_deref() == Some(&owner.uid) && !conditions::is_finished(job);
    let cached = ctx.jobs.get(&ObjectRef::new(&owner.name).within(&namespace));
    // A pod being deleted may be the garbage collector's work for a Job this
    // cache has not yet seen go: only the API server can say.
    if pod.metadata.deletion_timestamp.is_none() && cached.is_some_and(|j| tracks(&j)) {
        return Ok(Action::await_change());
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    if !jobs.get_opt(&owner.name).await?.is_some_and(|j| tracks(&j)) {
        remove_finalizer(&pods, &pod).await?;
    }
    Ok(Action::await_change())
}
