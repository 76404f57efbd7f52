//! Jobs: run pods from `spec.template` until `spec.completions` of them
//! succeed, or the Job fails (upstream's job controller).
//!
//! One sync ([`Sync::run`]) follows upstream's `syncJob`: count the pods
//! that finished since the last sync, decide whether the Job has failed
//! (backoff limit, active deadline, pod failure policy) or succeeded,
//! otherwise create or delete pods toward `min(parallelism, remaining
//! completions)` (or by completion index for Indexed Jobs), then write the
//! status.
//!
//! Counts are never lost because every pod carries the
//! `batch.kubernetes.io/job-tracking` finalizer: a finished pod's UID is
//! first written to `status.uncountedTerminatedPods`, then its finalizer is
//! removed, and only then is it moved into the `succeeded`/`failed`
//! counters — so a pod is counted exactly once even if the controller
//! stops between the steps or the pod object vanishes. The status is
//! written with PUT against the Job's resourceVersion, so a sync working
//! from a stale Job fails with a conflict and is retried. Pods whose Job is
//! gone or finished lose the finalizer through a second, small controller
//! over pods ([`orphans`]).
//!
//! The Job is read from the API server and its pods are listed on every
//! sync (consistent reads), which is what upstream's expectations emulate.
//! The pod failure backoff ([`backoff`]) is kept in memory, as upstream.

pub mod backoff;
pub mod conditions;
pub mod indexes;
pub mod orphans;
pub mod policy;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::json;

use crate::Error;
use crate::replicaset::{
    self, claim, deletion_order, is_active, is_ready, object_reference, pod_from_template, record_event,
};
use conditions as cond;
use indexes::{COMPLETION_INDEX, Intervals, completion_index};
use policy::Verdict;

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
const COMPONENT: &str = "job-controller";
/// Upstream's `MaxUncountedPods`: bounds the size of `uncountedTerminatedPods`.
const MAX_UNCOUNTED: usize = 500;
/// Upstream's `MaxPodCreateDeletePerSync`.
const MAX_POD_CHANGES: usize = 500;

pub struct Context {
    client: kube::Client,
    backoff: backoff::Store,
}

pub async fn run(client: kube::Client, pods: crate::informer::PodChanges) {
    let jobs: Api<Job> = Api::all(client.clone());
    let controller = Controller::new(jobs, watcher::Config::default());
    let store = controller.store();
    let jobs_cache = store.clone();
    let mapper =
        move |pod: Pod| replicaset::owners_or_adopters::<Job>(&store, &pod, |j| j.spec.as_ref()?.selector.clone());
    let context = Arc::new(Context {
        client: client.clone(),
        backoff: backoff::Store::default(),
    });
    let jobs = controller
        .watches_stream(pods, mapper)
        .run(reconcile, error_policy, context)
        .for_each(|_| futures::future::ready(()));
    tokio::join!(jobs, orphans::run(client, jobs_cache));
}

fn error_policy(_: Arc<Job>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "job controller");
    Action::requeue(Duration::from_secs(1))
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = job.namespace().unwrap_or_default();
    let key = format!("{namespace}/{}", job.name_any());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(job) = jobs.get_opt(&job.name_any()).await? else {
        ctx.backoff.remove(&key);
        return Ok(Action::await_change());
    };
    if cond::is_finished(&job) {
        ctx.backoff.remove(&key);
        return Ok(Action::await_change());
    }
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let all = pods_api.list(&ListParams::default()).await?.items;
    let selector = job.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
    let pods = claim(&pods_api, &job, &selector, all).await?;
    let mut sync = Sync {
        ctx: &ctx,
        key,
        jobs,
        pods_api,
        spec: job.spec.clone().unwrap_or_default(),
        job,
        pods,
        now: Timestamp::now(),
        requeue: None,
    };
    sync.run().await?;
    Ok(sync.requeue.map_or_else(Action::await_change, Action::requeue))
}

/// One sync of one Job: the Job as last written and the pods it controls.
struct Sync<'a> {
    ctx: &'a Context,
    key: String,
    jobs: Api<Job>,
    pods_api: Api<Pod>,
    job: Job,
    /// The Job's spec, which a sync does not change.
    spec: JobSpec,
    pods: Vec<Pod>,
    now: Timestamp,
    /// When to sync again even if nothing changes (deadline, backoff).
    requeue: Option<Duration>,
}

/// What a sync has counted and decided, before the status is written.
struct Tally {
    active: i32,
    ready: i32,
    terminating: i32,
    succeeded: i32,
    failed: i32,
    /// For Indexed Jobs: the indexes counted before this sync, and with it.
    prev_indexes: Intervals,
    indexes: Intervals,
    /// The condition the Job is heading to, interim or final.
    finished: Option<JobCondition>,
    record: backoff::Record,
}

impl Sync<'_> {
    fn spec(&self) -> &JobSpec {
        &self.spec
    }

    fn suspended(&self) -> bool {
        self.spec().suspend.unwrap_or(false)
    }

    fn indexed(&self) -> bool {
        self.spec().completion_mode.as_deref() == Some("Indexed")
    }

    fn completions(&self) -> Option<i32> {
        self.spec().completions
    }

    fn status(&mut self) -> &mut JobStatus {
        self.job.status.get_or_insert_with(JobStatus::default)
    }

    fn uncounted(&self) -> (HashSet<String>, HashSet<String>) {
        let u = self
            .job
            .status
            .as_ref()
            .and_then(|s| s.uncounted_terminated_pods.clone());
        let u = u.unwrap_or_default();
        (
            u.succeeded.unwrap_or_default().into_iter().collect(),
            u.failed.unwrap_or_default().into_iter().collect(),
        )
    }

    /// Upstream's `syncJob`.
    async fn run(&mut self) -> Result<(), Error> {
        let mut tally = self.count();
        let mut changed = false;
        if self.job.status.as_ref().and_then(|s| s.start_time.as_ref()).is_none() && !self.suspended() {
            self.status().start_time = Some(Time(self.now));
            changed = true;
        }
        tally.finished = self.failure_condition(&tally);
        let mut result = Ok(());
        if tally.finished.is_some() {
            let active: Vec<Pod> = self.pods.iter().filter(|p| is_active(p)).cloned().collect();
            let (deleted, deleted_ready, err) = self.delete_pods(&active, false).await;
            if deleted != active.len() as i32 {
                // Not finished until every pod is seen going.
                tally.finished = None;
            }
            tally.active -= deleted;
            tally.terminating += deleted;
            tally.ready -= deleted_ready;
            result = err;
        } else {
            let manage = self.job.metadata.deletion_timestamp.is_none();
            if manage {
                result = self.manage(&mut tally).await;
            }
            let complete = tally.active == 0
                && match self.completions() {
                    None => tally.succeeded > 0,
                    Some(c) => tally.succeeded >= c,
                };
            if complete {
                let (reason, message) = cond::COMPLETIONS_REACHED;
                tally.finished = Some(cond::new(cond::SUCCESS_CRITERIA_MET, "True", reason, message, self.now));
            } else if manage {
                changed |= self.ensure_suspended_condition().await;
            }
        }
        let status = self.job.status.clone().unwrap_or_default();
        changed |= status.active.unwrap_or(0) != tally.active
            || status.ready != Some(tally.ready)
            || status.terminating != Some(tally.terminating);
        let status = self.status();
        status.active = Some(tally.active).filter(|n| *n > 0);
        status.ready = Some(tally.ready);
        status.terminating = Some(tally.terminating);
        self.track_finished_pods(tally, changed).await?;
        result
    }

    /// Counts pods and the finishes not yet in the status.
    fn count(&self) -> Tally {
        let (uncounted_succeeded, uncounted_failed) = self.uncounted();
        let status = self.job.status.clone().unwrap_or_default();
        let fresh = |uncounted: &HashSet<String>, finished: &dyn Fn(&Pod) -> bool| -> Vec<&Pod> {
            self.pods
                .iter()
                .filter(|p| has_finalizer(p) && !uncounted.contains(&uid(p)) && self.valid_index(p) && finished(p))
                .collect()
        };
        let new_succeeded = fresh(&uncounted_succeeded, &policy::is_succeeded);
        let new_failed = fresh(&uncounted_failed, &|p| policy::is_failed(p, &self.job));
        let failure_policy = self.spec().pod_failure_policy.clone();
        let counted_failures = new_failed
            .iter()
            .filter(|p| policy::verdict(failure_policy.as_ref(), p) != Verdict::Ignore)
            .count() as i32;
        let active: Vec<&Pod> = self.pods.iter().filter(|p| is_active(p)).collect();
        let (prev_indexes, indexes) = self.succeeded_indexes();
        let succeeded = if self.indexed() {
            indexes.total()
        } else {
            status.succeeded.unwrap_or(0) + (new_succeeded.len() + uncounted_succeeded.len()) as i32
        };
        Tally {
            active: active.len() as i32,
            ready: active.iter().filter(|p| is_ready(p)).count() as i32,
            terminating: self.pods.iter().filter(|p| is_terminating(p)).count() as i32,
            succeeded,
            failed: status.failed.unwrap_or(0) + counted_failures + uncounted_failed.len() as i32,
            prev_indexes,
            indexes,
            finished: None,
            record: self.ctx.backoff.get(&self.key).after(&new_succeeded, &new_failed),
        }
    }

    /// For Indexed Jobs, a pod outside `0..completions` is never counted.
    fn valid_index(&self, pod: &Pod) -> bool {
        !self.indexed() || completion_index(pod).is_some_and(|ix| ix < self.completions().unwrap_or(0))
    }

    /// Upstream's `calculateSucceededIndexes`.
    fn succeeded_indexes(&self) -> (Intervals, Intervals) {
        if !self.indexed() {
            return Default::default();
        }
        let completions = self.completions().unwrap_or(0);
        let text = self.job.status.as_ref().and_then(|s| s.completed_indexes.clone());
        let prev = Intervals::parse(&text.unwrap_or_default(), completions);
        let new = self
            .pods
            .iter()
            .filter(|p| policy::is_succeeded(p) && has_finalizer(p) && self.valid_index(p))
            .filter_map(completion_index);
        let all = prev.with(new);
        (prev, all)
    }

    /// Whether the Job has already failed or now must: an earlier interim
    /// condition, a FailJob rule, the backoff limit, or the deadline (which
    /// otherwise schedules the next sync).
    fn failure_condition(&mut self, tally: &Tally) -> Option<JobCondition> {
        if let Some(met) = cond::find_true(&self.job, cond::SUCCESS_CRITERIA_MET) {
            return Some(met.clone());
        }
        if let Some(target) = cond::find_true(&self.job, cond::FAILURE_TARGET) {
            return Some(cond::final_for(target, self.now));
        }
        let spec = self.spec();
        let fail_job =
            self.pods
                .iter()
                .filter(|p| policy::is_failed(p, &self.job))
                .find_map(|p| match policy::verdict(spec.pod_failure_policy.as_ref(), p) {
                    Verdict::FailJob(message) => Some(message),
                    _ => None,
                });
        let target =
            |(reason, message): (&str, &str)| Some(cond::new(cond::FAILURE_TARGET, "True", reason, message, self.now));
        if let Some(message) = fail_job {
            return target((cond::POD_FAILURE_POLICY, &message));
        }
        if tally.failed > spec.backoff_limit.unwrap_or(6) || self.past_backoff_limit_on_failure() {
            return target(cond::BACKOFF_LIMIT_EXCEEDED);
        }
        let start = self
            .job
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0);
        if let (Some(deadline), Some(start), false) = (spec.active_deadline_seconds, start, self.suspended()) {
            let end = start + SignedDuration::from_secs(deadline);
            if self.now >= end {
                return target(cond::DEADLINE_EXCEEDED);
            }
            self.requeue_within(Duration::try_from(end.duration_since(self.now)).unwrap_or_default());
        }
        None
    }

    fn requeue_within(&mut self, after: Duration) {
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    /// With `restartPolicy: OnFailure` failures show as container restarts.
    fn past_backoff_limit_on_failure(&self) -> bool {
        let spec = self.spec();
        let restart_policy = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
        if restart_policy != Some("OnFailure") {
            return false;
        }
        let running = self.pods.iter().filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            matches!(phase, Some("Running") | Some("Pending"))
        });
        let restarts: i32 = running
            .filter_map(|p| p.status.as_ref())
            .flat_map(|s| {
                let init = s.init_container_statuses.iter().flatten();
                init.chain(s.container_statuses.iter().flatten())
            })
            .map(|c| c.restart_count)
            .sum();
        match spec.backoff_limit.unwrap_or(6) {
            0 => restarts > 0,
            limit => restarts >= limit,
        }
    }

    /// Upstream's `manageJob`: delete surplus pods, or create missing ones
    /// once the failure backoff allows.
    async fn manage(&mut self, tally: &mut Tally) -> Result<(), Error> {
        let active: Vec<Pod> = self.pods.iter().filter(|p| is_active(p)).cloned().collect();
        if self.suspended() {
            let (deleted, deleted_ready, result) = self.delete_pods(&active, true).await;
            tally.active -= deleted;
            tally.terminating += deleted;
            tally.ready -= deleted_ready;
            return result;
        }
        let spec = self.spec();
        let parallelism = spec.parallelism.unwrap_or(1);
        let want = match spec.completions {
            None if tally.succeeded > 0 => tally.active,
            None => parallelism,
            Some(c) => (c - tally.succeeded).clamp(0, parallelism),
        };
        let surplus = (tally.active - want).max(0) as usize;
        let doomed = self.pods_for_removal(&active, surplus);
        if !doomed.is_empty() {
            let (deleted, deleted_ready, result) = self.delete_pods(&doomed, true).await;
            tally.active -= deleted;
            tally.terminating += deleted;
            tally.ready -= deleted_ready;
            return result;
        }
        let terminating = if policy::only_replace_failed(&self.job) {
            tally.terminating
        } else {
            0
        };
        let missing = (want - tally.active - terminating).max(0) as usize;
        if missing == 0 {
            return Ok(());
        }
        let wait = tally.record.remaining(self.now);
        if !wait.is_zero() {
            self.requeue_within(wait);
            return Ok(());
        }
        let indexes: Vec<Option<i32>> = if self.indexed() {
            let completions = spec.completions.unwrap_or(0);
            let pending = indexes::first_pending(&tally.indexes, &active, missing, completions);
            pending.into_iter().map(Some).collect()
        } else {
            vec![None; missing]
        };
        let indexes = &indexes[..indexes.len().min(MAX_POD_CHANGES)];
        let (created, result) = self.create_pods(indexes).await;
        tally.active += created;
        result
    }

    /// The pods to delete to get rid of `count` active ones: for Indexed
    /// Jobs first those with a duplicate or invalid index, then the least
    /// valuable (upstream's `activePodsForRemoval`).
    fn pods_for_removal(&self, active: &[Pod], count: usize) -> Vec<Pod> {
        let mut doomed = Vec::new();
        let mut left: Vec<&Pod> = active.iter().collect();
        if self.indexed() {
            let mut by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
            left = Vec::new();
            for pod in active {
                match completion_index(pod).filter(|_| self.valid_index(pod)) {
                    Some(ix) => by_index.entry(ix).or_default().push(pod),
                    None => doomed.push(pod.clone()),
                }
            }
            for mut group in by_index.into_values() {
                group.sort_by(|a, b| deletion_order(a, b, self.now));
                let keep = group.pop();
                doomed.extend(group.into_iter().cloned());
                left.extend(keep);
            }
        }
        if doomed.len() < count {
            left.sort_by(|a, b| deletion_order(a, b, self.now));
            doomed.extend(left.into_iter().take(count - doomed.len()).cloned());
        }
        doomed.truncate(MAX_POD_CHANGES);
        doomed
    }

    /// Creates one pod per entry (with its completion index, if any) in
    /// slow-start batches. Returns how many were created.
    async fn create_pods(&self, indexes: &[Option<i32>]) -> (i32, Result<(), Error>) {
        let mut created = 0;
        let mut batch = 1;
        let mut rest = indexes;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(batch.min(rest.len()));
            let pods = now.iter().map(|ix| self.new_pod(*ix));
            let results = futures::future::join_all(
                pods.map(|p| async move { self.pods_api.create(&PostParams::default(), &p).await }),
            )
            .await;
            for result in results {
                match result {
                    Ok(pod) => {
                        created += 1;
                        self.event(
                            "Normal",
                            "SuccessfulCreate",
                            &format!("Created pod: {}", pod.name_any()),
                        )
                        .await;
                    }
                    Err(err) => {
                        self.event("Warning", "FailedCreate", &format!("Error creating: {err}"))
                            .await;
                        return (created, Err(err.into()));
                    }
                }
            }
            rest = later;
            batch *= 2;
        }
        (created, Ok(()))
    }

    /// A pod from the template with the tracking finalizer and, for
    /// Indexed Jobs, its index as annotation, label, hostname and
    /// `JOB_COMPLETION_INDEX`.
    fn new_pod(&self, index: Option<i32>) -> Pod {
        let name = self.job.name_any();
        let mut template = self.spec().template.clone();
        let generate_name = match index {
            Some(ix) => generate_name_with_index(&name, ix),
            None => format!("{name}-"),
        };
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.finalizers
            .get_or_insert_with(Vec::new)
            .push(TRACKING_FINALIZER.into());
        if let Some(ix) = index {
            let value = ix.to_string();
            let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
            annotations.insert(COMPLETION_INDEX.into(), value.clone());
            meta.labels
                .get_or_insert_with(BTreeMap::new)
                .insert(COMPLETION_INDEX.into(), value);
            let spec = template.spec.get_or_insert_with(Default::default);
            spec.hostname = Some(format!("{name}-{ix}"));
            let containers = spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(spec.containers.iter_mut());
            for container in containers {
                let env = container.env.get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                    env.push(completion_index_env());
                }
            }
        }
        pod_from_template(&template, &self.job, &generate_name)
    }

    /// Deletes pods; `release` first removes their tracking finalizer, so
    /// that pods the Job no longer wants (suspension, surplus) do not count
    /// as failures. Returns how many (and how many ready) were deleted.
    async fn delete_pods(&self, pods: &[Pod], release: bool) -> (i32, i32, Result<(), Error>) {
        let (mut deleted, mut deleted_ready) = (0, 0);
        for pod in pods {
            if release && let Err(err) = remove_finalizer(&self.pods_api, pod).await {
                return (deleted, deleted_ready, Err(err));
            }
            match self.pods_api.delete(&pod.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return (deleted, deleted_ready, Err(err.into())),
            }
            deleted += 1;
            deleted_ready += is_ready(pod) as i32;
            self.event(
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {}", pod.name_any()),
            )
            .await;
        }
        (deleted, deleted_ready, Ok(()))
    }

    /// The Suspended condition and its events; resuming restarts the
    /// active deadline clock. Returns whether the status changed.
    async fn ensure_suspended_condition(&mut self) -> bool {
        let suspended = self.suspended();
        let now = self.now;
        let conditions = self.status().conditions.get_or_insert_with(Vec::new);
        let (status, reason, message, event) = if suspended {
            ("True", "JobSuspended", "Job suspended", "Suspended")
        } else {
            ("False", "JobResumed", "Job resumed", "Resumed")
        };
        if !cond::ensure(conditions, cond::SUSPENDED, status, reason, message, now) {
            return false;
        }
        if !suspended {
            self.status().start_time = Some(Time(now));
        }
        self.event("Normal", event, message).await;
        true
    }

    /// Upstream's `trackJobStatusAndRemoveFinalizers`: records finished
    /// pods in `uncountedTerminatedPods`, removes their finalizers, moves
    /// them into the counters, and finishes the Job when nothing is left
    /// uncounted or terminating.
    async fn track_finished_pods(&mut self, mut tally: Tally, mut needs_flush: bool) -> Result<(), Error> {
        let (uncounted_succeeded, uncounted_failed) = self.uncounted();
        let mut with_finalizer: HashSet<String> = self.pods.iter().filter(|p| has_finalizer(p)).map(uid).collect();
        needs_flush |= move_counted(self.status(), &with_finalizer);
        let mut pods = self.pods.clone();
        if self.indexed() {
            pods.sort_by_key(completion_index);
        }
        let failing = tally
            .finished
            .as_ref()
            .is_some_and(|c| c.type_ != cond::SUCCESS_CRITERIA_MET);
        let deleting = self.job.metadata.deletion_timestamp.is_some();
        let failure_policy = self.spec().pod_failure_policy.clone();
        let mut release = Vec::new();
        let (mut new_indexes, mut add_succeeded, mut add_failed) = (Vec::new(), Vec::new(), Vec::new());
        let mut reached_max = false;
        for pod in pods.iter().filter(|p| has_finalizer(p)) {
            let failed = policy::is_failed(pod, &self.job);
            let succeeded = policy::is_succeeded(pod);
            if !(deleting || tally.finished.is_some() || succeeded || failed) {
                continue;
            }
            release.push(pod);
            let id = uid(pod);
            if succeeded && !uncounted_failed.contains(&id) {
                if self.indexed() {
                    let ix = completion_index(pod).filter(|_| self.valid_index(pod));
                    new_indexes.extend(ix.filter(|ix| !tally.prev_indexes.has(*ix)));
                } else if !uncounted_succeeded.contains(&id) {
                    add_succeeded.push(id);
                }
            } else if (failed || failing)
                && !uncounted_failed.contains(&id)
                && self.valid_index(pod)
                && policy::verdict(failure_policy.as_ref(), pod) != Verdict::Ignore
            {
                add_failed.push(id);
            }
            let pending = new_indexes.len() + add_succeeded.len() + add_failed.len() + uncounted_len(&self.job);
            if pending >= MAX_UNCOUNTED {
                reached_max = true;
                break;
            }
        }
        needs_flush |= !(new_indexes.is_empty() && add_succeeded.is_empty() && add_failed.is_empty());
        let uncounted = self
            .status()
            .uncounted_terminated_pods
            .get_or_insert_with(Default::default);
        uncounted.succeeded.get_or_insert_with(Vec::new).extend(add_succeeded);
        uncounted.failed.get_or_insert_with(Vec::new).extend(add_failed);
        if self.indexed() {
            let indexes = tally.prev_indexes.with(new_indexes);
            let status = self.status();
            let text = indexes.to_string();
            needs_flush |= status.completed_indexes.as_deref().unwrap_or("") != text;
            status.succeeded = Some(indexes.total()).filter(|n| *n > 0);
            status.completed_indexes = Some(text).filter(|s| !s.is_empty());
        }
        // The interim condition is written before any pod is released.
        if let Some(interim) = tally.finished.clone()
            && (interim.type_ == cond::SUCCESS_CRITERIA_MET || interim.type_ == cond::FAILURE_TARGET)
        {
            if cond::find_true(&self.job, &interim.type_).is_none() {
                self.status()
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(interim.clone());
                needs_flush = true;
            }
            tally.finished = Some(cond::final_for(&interim, self.now));
        }
        // Step 1: the new uncounted UIDs (and interim condition) are durable.
        if needs_flush {
            self.write_status().await?;
            self.ctx.backoff.set(&self.key, tally.record.clone());
            needs_flush = false;
        }
        // Step 2: release the pods, then count those released.
        let mut release_error = None;
        for pod in release {
            match remove_finalizer(&self.pods_api, pod).await {
                Ok(()) => {
                    with_finalizer.remove(&uid(pod));
                }
                Err(err) => release_error = Some(err),
            }
        }
        needs_flush |= move_counted(self.status(), &with_finalizer);
        if let Some(err) = release_error {
            if needs_flush {
                self.write_status().await?;
            }
            return Err(err);
        }
        let finished = !reached_max && self.enact_finished(&tally);
        if needs_flush || finished {
            self.write_status().await?;
        }
        if finished && let Some(condition) = &tally.finished {
            self.record_finished(condition).await;
        }
        Ok(())
    }

    /// Adds the final condition once every finished pod is counted and no
    /// pod is terminating (upstream's `enactJobFinished`).
    fn enact_finished(&mut self, tally: &Tally) -> bool {
        let Some(condition) = &tally.finished else {
            return false;
        };
        if uncounted_len(&self.job) > 0 || tally.terminating > 0 {
            return false;
        }
        let now = self.now;
        let status = self.status();
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        let reason = condition.reason.as_deref().unwrap_or_default();
        let message = condition.message.as_deref().unwrap_or_default();
        cond::ensure(conditions, &condition.type_, "True", reason, message, now);
        if condition.type_ == cond::COMPLETE {
            status.completion_time = Some(Time(now));
        }
        true
    }

    async fn record_finished(&self, condition: &JobCondition) {
        if condition.type_ == cond::COMPLETE {
            let succeeded = self.job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if self.completions().is_some_and(|c| succeeded > c) {
                let message = "Too many succeeded pods running after completion count reached";
                self.event("Warning", "TooManySucceededPods", message).await;
            }
            self.event("Normal", "Completed", "Job completed").await;
        } else {
            let reason = condition.reason.as_deref().unwrap_or_default();
            self.event("Warning", reason, condition.message.as_deref().unwrap_or_default())
                .await;
        }
    }

    /// PUT the status against the resourceVersion read, keeping the result.
    async fn write_status(&mut self) -> Result<(), Error> {
        let status = self.status();
        let uncounted = status.uncounted_terminated_pods.get_or_insert_with(Default::default);
        for list in [&mut uncounted.succeeded, &mut uncounted.failed] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                *list = None;
            }
        }
        self.job = self
            .jobs
            .replace_status(&self.job.name_any(), &PostParams::default(), &self.job)
            .await?;
        Ok(())
    }

    async fn event(&self, type_: &str, reason: &str, message: &str) {
        record_event(
            &self.ctx.client,
            &object_reference(&self.job),
            type_,
            reason,
            message,
            COMPONENT,
        )
        .await;
    }
}

/// Moves the uncounted pods whose finalizer is gone into the counters
/// (upstream's `cleanUncountedPodsWithoutFinalizers`); returns whether
/// anything moved.
fn move_counted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    let mut moved = [0, 0];
    for (list, n) in [&mut uncounted.succeeded, &mut uncounted.failed]
        .into_iter()
        .zip(&mut moved)
    {
        let uids = list.get_or_insert_with(Vec::new);
        let before = uids.len();
        uids.retain(|u| with_finalizer.contains(u));
        *n = (before - uids.len()) as i32;
    }
    let [succeeded, failed] = moved;
    if succeeded > 0 {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + succeeded);
    }
    if failed > 0 {
        status.failed = Some(status.failed.unwrap_or(0) + failed);
    }
    succeeded + failed > 0
}

fn uncounted_len(job: &Job) -> usize {
    let uncounted = job.status.as_ref().and_then(|s| s.uncounted_terminated_pods.as_ref());
    uncounted.map_or(0, |u| {
        u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
    })
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

pub(crate) fn has_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// Being deleted but not yet finished.
fn is_terminating(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_some() && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// Removes the tracking finalizer (a strategic-merge delete from the
/// list, so other finalizers are untouched).
pub(crate) async fn remove_finalizer(api: &Api<Pod>, pod: &Pod) -> Result<(), Error> {
    if !has_finalizer(pod) {
        return Ok(());
    }
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}});
    match api
        .patch(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// `JOB_COMPLETION_INDEX` from the index annotation, through the downward API.
fn completion_index_env() -> EnvVar {
    EnvVar {
        name: "JOB_COMPLETION_INDEX".into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// `<job>-<index>-`, the job name cut so that the prefix fits a generated name.
fn generate_name_with_index(job: &str, index: i32) -> String {
    const MAX_GENERATED_NAME_LENGTH: usize = 58;
    let suffix = format!("-{index}-");
    let keep = job.len().min(MAX_GENERATED_NAME_LENGTH - suffix.len());
    format!("{}{suffix}", &job[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_names_fit_a_generated_name() {
        assert_eq!(generate_name_with_index("pi", 3), "pi-3-");
        let long = "a".repeat(63);
        let name = generate_name_with_index(&long, 12);
        assert_eq!(name.len(), 58);
        assert!(name.ends_with("a-12-"));
    }

    #[test]
    fn counted_pods_move_from_uncounted_to_the_counters() {
        let mut status = JobStatus {
            succeeded: Some(2),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            }),
            ..JobStatus::default()
        };
        let still_held: HashSet<String> = ["b".to_string()].into();
        assert!(move_counted(&mut status, &still_held));
        assert_eq!((status.succeeded, status.failed), (Some(3), Some(1)));
        let uncounted = status.uncounted_terminated_pods.as_ref().unwrap();
        assert_eq!(uncounted.succeeded.as_deref(), Some(&["b".to_string()][..]));
        assert!(!move_counted(&mut status, &still_held), "nothing more to move");
    }
}
