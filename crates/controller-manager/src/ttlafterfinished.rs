//! Deletes finished Jobs `spec.ttlSecondsAfterFinished` after they finished
//! (upstream's ttlafterfinished controller), with background propagation
//! so the garbage collector removes their pods.
//!
//! A Job finishes at its Complete or Failed condition's transition time;
//! until its TTL has passed the reconcile asks to come back exactly then.
//! Before deleting, the Job is read again from the API server, and the
//! delete is guarded by its UID and resourceVersion, so a Job whose TTL
//! was just extended (or that was recreated) is not deleted by mistake.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;

use crate::Error;
use crate::job::conditions;

pub async fn run(client: kube::Client) {
    let jobs: Api<Job> = Api::all(client.clone());
    Controller::new(jobs, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn error_policy(_: Arc<Job>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(%error, "ttl-after-finished controller");
    Action::requeue(Duration::from_secs(1))
}

/// When the Job may be deleted: its finish time plus its TTL, if it has
/// both and is not being deleted already.
pub fn expires_at(job: &Job) -> Option<Timestamp> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = [conditions::COMPLETE, conditions::FAILED]
        .into_iter()
        .find_map(|t| conditions::find_true(job, t))?;
    let at = finished.last_transition_time.as_ref()?.0;
    Some(at + SignedDuration::from_secs(ttl.into()))
}

async fn reconcile(job: Arc<Job>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let Some(at) = expires_at(&job) else {
        return Ok(Action::await_change());
    };
    let now = Timestamp::now();
    if at > now {
        return Ok(Action::requeue(
            Duration::try_from(at.duration_since(now)).unwrap_or_default(),
        ));
    }
    let api: Api<Job> = Api::namespaced((*client).clone(), &job.namespace().unwrap_or_default());
    let Some(fresh) = api.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    match expires_at(&fresh) {
        Some(at) if at <= now => {}
        _ => return Ok(Action::await_change()),
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: fresh.metadata.resource_version.clone(),
        }),
        ..DeleteParams::background()
    };
    match api.delete(&fresh.name_any(), &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Action::await_change()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;

    #[test]
    fn expires_ttl_after_the_finish() {
        let finished: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let mut job = Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: Some(30),
                ..JobSpec::default()
            }),
            ..Job::default()
        };
        assert_eq!(expires_at(&job), None, "not finished");
        let (reason, message) = conditions::COMPLETIONS_REACHED;
        let complete = conditions::new(conditions::COMPLETE, "True", reason, message, finished);
        job.status = Some(k8s_openapi::api::batch::v1::JobStatus {
            conditions: Some(vec![complete]),
            ..Default::default()
        });
        assert_eq!(expires_at(&job), Some("2025-01-01T00:00:30Z".parse().unwrap()));
        job.spec.as_mut().unwrap().ttl_seconds_after_finished = None;
        assert_eq!(expires_at(&job), None, "no TTL");
    }
}
