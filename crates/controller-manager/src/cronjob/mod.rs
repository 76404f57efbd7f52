//! CronJobs: create a Job from `spec.jobTemplate` at every due time of
//! `spec.schedule` (upstream's cronjob controller, v2).
//!
//! A sync follows upstream's `syncCronJob`: reconcile `status.active` with
//! the Jobs the CronJob controls, delete finished Jobs beyond the history
//! limits, then, unless suspended, start the most recent unmet due time —
//! honouring `startingDeadlineSeconds` and `concurrencyPolicy` — and
//! requeue just after the next one ([`schedule`] holds the time
//! arithmetic). A Job is named `<cronjob>-<due time in minutes since the
//! epoch>`, so the name doubles as a lock: a due time is never run twice,
//! even if the status write after creating it was lost.

pub mod schedule;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::Error;
use crate::job::conditions;
use crate::replicaset::{controller_of, controller_reference, object_reference, record_event};
use schedule::{Missed, Schedule};

const COMPONENT: &str = "cronjob-controller";
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

pub async fn run(client: kube::Client) {
    let cronjobs: Api<CronJob> = Api::all(client.clone());
    let jobs: Api<Job> = Api::all(client.clone());
    Controller::new(cronjobs, watcher::Config::default())
        .owns(jobs, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn error_policy(_: Arc<CronJob>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(%error, "cronjob controller");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(cj: Arc<CronJob>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let namespace = cj.namespace().unwrap_or_default();
    let api: Api<CronJob> = Api::namespaced((*client).clone(), &namespace);
    let Some(cj) = api.get_opt(&cj.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let jobs_api: Api<Job> = Api::namespaced((*client).clone(), &namespace);
    let jobs: Vec<Job> = jobs_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.kind == "CronJob" && r.name == cj.name_any()))
        .collect();
    let original = cj.status.clone();
    let mut sync = Sync {
        client: &client,
        jobs_api,
        cj,
        now: Timestamp::now(),
    };
    sync.cleanup_finished(&jobs).await;
    let result = sync.sync(&jobs).await;
    if sync.cj.status != original {
        let name = sync.cj.name_any();
        api.replace_status(&name, &PostParams::default(), &sync.cj).await?;
    }
    Ok(result?.map_or_else(Action::await_change, Action::requeue))
}

fn is_finished(job: &Job) -> Option<&'static str> {
    if conditions::find_true(job, conditions::COMPLETE).is_some() {
        Some(conditions::COMPLETE)
    } else if conditions::find_true(job, conditions::FAILED).is_some() {
        Some(conditions::FAILED)
    } else {
        None
    }
}

/// One sync of one CronJob, changing its status in place.
struct Sync<'a> {
    client: &'a kube::Client,
    jobs_api: Api<Job>,
    cj: CronJob,
    now: Timestamp,
}

impl Sync<'_> {
    fn status(&mut self) -> &mut CronJobStatus {
        self.cj.status.get_or_insert_with(CronJobStatus::default)
    }

    fn active(&self) -> Vec<ObjectReference> {
        let status = self.cj.status.as_ref();
        status.and_then(|s| s.active.clone()).unwrap_or_default()
    }

    fn in_active(&self, uid: Option<&str>) -> bool {
        self.active().iter().any(|r| r.uid.as_deref() == uid)
    }

    fn remove_active(&mut self, uid: Option<&str>) {
        let active = self.active().into_iter().filter(|r| r.uid.as_deref() != uid).collect();
        self.status().active = Some(active).filter(|a: &Vec<_>| !a.is_empty());
    }

    async fn event(&self, type_: &str, reason: &str, message: &str) {
        record_event(
            self.client,
            &object_reference(&self.cj),
            type_,
            reason,
            message,
            COMPONENT,
        )
        .await;
    }

    /// Upstream's `cleanupFinishedJobs`: keeps the newest finished Jobs
    /// within `successfulJobsHistoryLimit` and `failedJobsHistoryLimit`.
    async fn cleanup_finished(&mut self, jobs: &[Job]) {
        let spec = self.cj.spec.clone().unwrap_or_default();
        for (outcome, limit) in [
            (conditions::COMPLETE, spec.successful_jobs_history_limit),
            (conditions::FAILED, spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let mut finished: Vec<&Job> = jobs.iter().filter(|j| is_finished(j) == Some(outcome)).collect();
            let surplus = finished.len().saturating_sub(limit.max(0) as usize);
            finished.sort_by_key(|j| start_order(j));
            for job in finished.into_iter().take(surplus) {
                self.delete_job(job).await;
            }
        }
    }

    /// Deletes a Job and its pods (background propagation) and forgets it.
    async fn delete_job(&mut self, job: &Job) -> bool {
        match self.jobs_api.delete(&job.name_any(), &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => {
                self.event("Warning", "FailedDelete", &format!("Deleted job: {err}"))
                    .await;
                return false;
            }
        }
        self.remove_active(job.metadata.uid.as_deref());
        self.event("Normal", "SuccessfulDelete", &format!("Deleted job {}", job.name_any()))
            .await;
        true
    }

    /// Upstream's `syncCronJob`; returns when to sync again.
    async fn sync(&mut self, jobs: &[Job]) -> Result<Option<Duration>, Error> {
        self.reconcile_active(jobs).await?;
        if self.cj.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let spec = self.cj.spec.clone().unwrap_or_default();
        let time_zone = spec.time_zone.as_deref();
        if let Some(zone) = time_zone
            && let Err(err) = k8s_openapi::jiff::tz::TimeZone::get(zone)
        {
            self.event(
                "Warning",
                "UnknownTimeZone",
                &format!("invalid timeZone: {zone:?}: {err}"),
            )
            .await;
            return Ok(None);
        }
        if spec.suspend.unwrap_or(false) {
            return Ok(None);
        }
        let schedule = match Schedule::parse(&spec.schedule, time_zone) {
            Ok(s) => s,
            Err(err) => {
                let message = format!("unparseable schedule: {:?} : {err}", spec.schedule);
                self.event("Warning", "UnparseableSchedule", &message).await;
                return Ok(None);
            }
        };
        let since = self.last_schedule_time().or(self.created()).unwrap_or(self.now);
        let recent = match schedule::most_recent(&schedule, since, spec.starting_deadline_seconds, self.now) {
            Ok(r) => r,
            Err(err) => {
                let message = format!("invalid schedule: {} : {err}", spec.schedule);
                self.event("Warning", "InvalidSchedule", &message).await;
                return Ok(None);
            }
        };
        if recent.missed == Missed::Many {
            let message =
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew";
            self.event("Warning", "TooManyMissedTimes", message).await;
        }
        let requeue = |s: &Self| {
            let since = s.last_schedule_time().or(s.created()).unwrap_or(s.now);
            Some(schedule::requeue_after(&schedule, since, s.now))
        };
        let Some(due) = recent.most_recent else {
            return Ok(requeue(self));
        };
        if too_late(due, spec.starting_deadline_seconds, self.now) {
            let when = due.strftime("%a, %d %b %Y %H:%M:%S +0000");
            self.event(
                "Warning",
                "MissSchedule",
                &format!("Missed scheduled time to start a job: {when}"),
            )
            .await;
            return Ok(requeue(self));
        }
        let name = job_name(&self.cj.name_any(), due);
        let handled =
            self.active().iter().any(|r| r.name.as_deref() == Some(&name)) || self.last_schedule_time() == Some(due);
        if handled {
            return Ok(requeue(self));
        }
        match concurrency(spec.concurrency_policy.as_deref(), self.active().len()) {
            Concurrency::Start => {}
            Concurrency::Skip => {
                let message = "Not starting job because prior execution is running and concurrency policy is Forbid";
                self.event("Normal", "JobAlreadyActive", message).await;
                return Ok(requeue(self));
            }
            Concurrency::ReplaceThenStart => self.replace_active().await?,
        }
        let Some(job) = self.create_job(&schedule, due).await? else {
            return Ok(None);
        };
        let reference = object_reference(&job);
        let status = self.status();
        status.active.get_or_insert_with(Vec::new).push(reference);
        status.last_schedule_time = Some(Time(due));
        Ok(requeue(self))
    }

    fn last_schedule_time(&self) -> Option<Timestamp> {
        let status = self.cj.status.as_ref();
        status.and_then(|s| s.last_schedule_time.as_ref()).map(|t| t.0)
    }

    fn created(&self) -> Option<Timestamp> {
        self.cj.metadata.creation_timestamp.as_ref().map(|t| t.0)
    }

    /// Brings `status.active` in line with the Jobs: finished ones leave
    /// it, vanished ones too, unknown running ones are reported; the
    /// latest success is remembered.
    async fn reconcile_active(&mut self, jobs: &[Job]) -> Result<(), Error> {
        for job in jobs {
            let uid = job.metadata.uid.as_deref();
            let found = self.in_active(uid);
            let finished = is_finished(job);
            match finished {
                None if !found => {
                    let message = format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        job.name_any()
                    );
                    self.event("Warning", "UnexpectedJob", &message).await;
                }
                Some(outcome) if found => {
                    self.remove_active(uid);
                    let message = format!("Saw completed job: {}, condition: {outcome}", job.name_any());
                    self.event("Normal", "SawCompletedJob", &message).await;
                }
                _ => {}
            }
            if finished == Some(conditions::COMPLETE) {
                let completed = job.status.as_ref().and_then(|s| s.completion_time.clone());
                let status = self.status();
                if status.last_successful_time.is_none()
                    || completed.as_ref().map(|t| t.0) > status.last_successful_time.as_ref().map(|t| t.0)
                {
                    status.last_successful_time = completed.or(status.last_successful_time.take());
                }
            }
        }
        let children: HashSet<&str> = jobs.iter().filter_map(|j| j.metadata.uid.as_deref()).collect();
        for reference in self.active() {
            if children.contains(reference.uid.as_deref().unwrap_or_default()) {
                continue;
            }
            let name = reference.name.clone().unwrap_or_default();
            if self.jobs_api.get_opt(&name).await?.is_none() {
                self.event("Normal", "MissingJob", &format!("Active job went missing: {name}"))
                    .await;
                self.remove_active(reference.uid.as_deref());
            }
        }
        Ok(())
    }

    /// `Replace`: deletes the still-running Jobs before starting a new one.
    async fn replace_active(&mut self) -> Result<(), Error> {
        for reference in self.active() {
            let name = reference.name.clone().unwrap_or_default();
            let Some(job) = self.jobs_api.get_opt(&name).await? else {
                continue;
            };
            if !self.delete_job(&job).await {
                return Err(Error::Pending(format!("could not replace job {name}")));
            }
        }
        Ok(())
    }

    /// Creates the Job for `due`; `None` when a Job of that name exists
    /// that this CronJob does not control, or that it already tracks.
    async fn create_job(&mut self, schedule: &Schedule, due: Timestamp) -> Result<Option<Job>, Error> {
        let job = job_from_template(&self.cj, schedule, due);
        match self.jobs_api.create(&PostParams::default(), &job).await {
            Ok(created) => {
                self.event(
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created job {}", created.name_any()),
                )
                .await;
                Ok(Some(created))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = self.jobs_api.get(&job.name_any()).await?;
                let ours = controller_of(&existing.metadata).is_some_and(|r| Some(&r.uid) == self.cj.uid().as_ref());
                if !ours || self.in_active(existing.metadata.uid.as_deref()) {
                    return Ok(None);
                }
                Ok(Some(existing))
            }
            Err(err) => {
                self.event("Warning", "FailedCreate", &format!("Error creating job: {err}"))
                    .await;
                Err(err.into())
            }
        }
    }
}

/// What `concurrencyPolicy` says about starting a Job while `active` run.
#[derive(Debug, PartialEq, Eq)]
enum Concurrency {
    Start,
    Skip,
    ReplaceThenStart,
}

fn concurrency(policy: Option<&str>, active: usize) -> Concurrency {
    match policy {
        _ if active == 0 => Concurrency::Start,
        Some("Forbid") => Concurrency::Skip,
        Some("Replace") => Concurrency::ReplaceThenStart,
        _ => Concurrency::Start,
    }
}

/// A due time more than `startingDeadlineSeconds` ago is missed.
fn too_late(due: Timestamp, starting_deadline: Option<i64>, now: Timestamp) -> bool {
    starting_deadline.is_some_and(|d| due + k8s_openapi::jiff::SignedDuration::from_secs(d) < now)
}

/// `<cronjob>-<due time in minutes since the epoch>`.
pub fn job_name(cronjob: &str, due: Timestamp) -> String {
    format!("{cronjob}-{}", due.as_second().div_euclid(60))
}

/// Oldest first by start time (unstarted last), then by name.
fn start_order(job: &Job) -> (bool, Option<Timestamp>, String) {
    let start = job.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    (start.is_none(), start, job.name_any())
}

/// Upstream's `getJobFromTemplate2`.
fn job_from_template(cj: &CronJob, schedule: &Schedule, due: Timestamp) -> Job {
    let template = cj.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), schedule.format_rfc3339(due));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cj.name_any(), due)),
            namespace: cj.meta().namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_reference(cj)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_count_minutes_since_the_epoch() {
        let due: Timestamp = "2025-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(job_name("hello", due), format!("hello-{}", 1735689660 / 60));
    }

    #[test]
    fn concurrency_policy_decides_over_running_jobs() {
        assert_eq!(concurrency(Some("Forbid"), 0), Concurrency::Start);
        assert_eq!(concurrency(Some("Forbid"), 1), Concurrency::Skip);
        assert_eq!(concurrency(Some("Replace"), 2), Concurrency::ReplaceThenStart);
        assert_eq!(concurrency(Some("Replace"), 0), Concurrency::Start);
        assert_eq!(concurrency(Some("Allow"), 3), Concurrency::Start);
        assert_eq!(concurrency(None, 3), Concurrency::Start);
    }

    #[test]
    fn a_start_is_missed_past_the_starting_deadline() {
        let due: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2025-01-01T00:00:20Z".parse().unwrap();
        assert!(!too_late(due, None, now));
        assert!(!too_late(due, Some(20), now));
        assert!(too_late(due, Some(19), now));
    }

    #[test]
    fn history_is_trimmed_oldest_first() {
        let job = |name: &str, start: Option<i64>| Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: Some(k8s_openapi::api::batch::v1::JobStatus {
                start_time: start.map(|s| Time(Timestamp::from_second(s).unwrap())),
                ..Default::default()
            }),
            ..Job::default()
        };
        let mut jobs = [
            job("c", None),
            job("b", Some(20)),
            job("a", Some(20)),
            job("d", Some(10)),
        ];
        jobs.sort_by_key(start_order);
        let names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
        assert_eq!(names, ["d", "a", "b", "c"]);
    }
}
