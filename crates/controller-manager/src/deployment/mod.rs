//! Deployments: roll a pod template out through ReplicaSets (upstream's
//! deployment controller).
//!
//! Each template gets its own ReplicaSet, `<deployment>-<pod-template-hash>`;
//! a rollout scales the new one up and the old ones down within
//! `maxSurge`/`maxUnavailable` (RollingUpdate) or all at once (Recreate).
//! The arithmetic lives in [`plan`]; this module reads and writes objects.
//! ReplicaSets are listed from the API server on each reconcile (a
//! consistent read), so a ReplicaSet created by a previous reconcile is
//! never created twice.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use serde_json::json;

use crate::Error;
use crate::replicaset::{self, claim, controller_of, controller_reference, object_reference, record_event};
use plan::{HASH_LABEL, REVISION};

const COMPONENT: &str = "deployment-controller";

pub async fn run(client: kube::Client) {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let sets: Api<ReplicaSet> = Api::all(client.clone());
    let controller = Controller::new(deployments, watcher::Config::default());
    let store = controller.store();
    let mapper =
        move |rs: ReplicaSet| replicaset::owners_or_adopters::<Deployment>(&store, &rs, |d| selector_of(d).cloned());
    controller
        .watches(sets, watcher::Config::default(), mapper)
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn selector_of(d: &Deployment) -> Option<&LabelSelector> {
    d.spec.as_ref().map(|s| &s.selector)
}

async fn reconcile(d: Arc<Deployment>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let namespace = d.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced((*client).clone(), &namespace);
    let selector = selector_of(&d).cloned().unwrap_or_default();
    if selector.match_labels.iter().flatten().count() + selector.match_expressions.iter().flatten().count() == 0 {
        tracing::warn!(
            deployment = d.name_any(),
            "a deployment with an empty selector selects nothing"
        );
        return Ok(Action::await_change());
    }
    let all = api.list(&ListParams::default()).await?.items;
    let rss = claim(&api, &*d, &selector, all).await?;
    let mut rollout = Rollout {
        client: (*client).clone(),
        api,
        d: (*d).clone(),
        rss,
    };
    rollout.sync().await
}

fn error_policy(_: Arc<Deployment>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(%error, "deployment controller");
    Action::requeue(Duration::from_secs(1))
}

/// One sync of one Deployment: the Deployment as last written and the
/// ReplicaSets it controls, kept current as we write them.
struct Rollout {
    client: kube::Client,
    api: Api<ReplicaSet>,
    d: Deployment,
    rss: Vec<ReplicaSet>,
}

impl Rollout {
    /// Upstream's `syncDeployment`.
    async fn sync(&mut self) -> Result<Action, Error> {
        if self.d.metadata.deletion_timestamp.is_some() {
            let new = self.sync_revision(false).await?;
            return self.sync_status(new, false).await;
        }
        self.check_paused_conditions().await?;
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || self.is_scaling_event().await? {
            return self.scale_only(paused).await;
        }
        if plan::is_recreate(&self.d) {
            self.rollout_recreate().await
        } else {
            self.rollout_rolling().await
        }
    }

    /// Upstream's `sync`: resize (proportionally) without rolling out.
    async fn scale_only(&mut self, paused: bool) -> Result<Action, Error> {
        let new = self.sync_revision(false).await?;
        self.scale(new).await?;
        if paused {
            self.cleanup(new).await?;
        }
        self.sync_status(new, false).await
    }

    async fn rollout_rolling(&mut self) -> Result<Action, Error> {
        let new = self
            .sync_revision(true)
            .await?
            .ok_or_else(|| Error::Pending("no new replica set".into()))?;
        if self.reconcile_new(new).await? || self.reconcile_old(new).await? {
            return self.sync_status(Some(new), true).await;
        }
        if plan::deployment_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(Some(new)).await?;
        }
        self.sync_status(Some(new), true).await
    }

    /// Upstream's `rolloutRecreate`: all old pods go before any new one.
    async fn rollout_recreate(&mut self) -> Result<Action, Error> {
        let new = self.sync_revision(false).await?;
        let mut scaled = false;
        for i in self.old_indices(new) {
            if plan::rs_replicas(&self.rss[i]) > 0 {
                scaled |= self.scale_rs(i, 0).await?;
            }
        }
        if scaled {
            return self.sync_status(new, true).await;
        }
        if self.old_pods_running(new).await? {
            self.sync_status(new, true).await?;
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        let new = match new {
            Some(new) => new,
            None => self
                .sync_revision(true)
                .await?
                .ok_or_else(|| Error::Pending("no new replica set".into()))?,
        };
        self.scale_rs(new, plan::desired(&self.d)).await?;
        if plan::deployment_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(Some(new)).await?;
        }
        self.sync_status(Some(new), true).await
    }

    fn old_indices(&self, new: Option<usize>) -> Vec<usize> {
        let mut old: Vec<usize> = (0..self.rss.len()).filter(|i| Some(*i) != new).collect();
        old.sort_by_key(|&i| {
            (
                self.rss[i].metadata.creation_timestamp.clone().map(|t| t.0),
                self.rss[i].name_any(),
            )
        });
        old
    }

    /// Pods of old ReplicaSets that have not finished (Recreate waits for them).
    async fn old_pods_running(&self, new: Option<usize>) -> Result<bool, Error> {
        let old: Vec<String> = self
            .old_indices(new)
            .iter()
            .filter_map(|&i| self.rss[i].uid())
            .collect();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.d.namespace().unwrap_or_default());
        let listed = pods.list(&ListParams::default()).await?.items;
        Ok(listed.iter().any(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            let owned = controller_of(&p.metadata).is_some_and(|r| old.contains(&r.uid));
            owned && !matches!(phase, Some("Succeeded") | Some("Failed"))
        }))
    }

    fn template(&self) -> k8s_openapi::api::core::v1::PodTemplateSpec {
        self.d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
    }

    /// Upstream's `FindNewReplicaSet`: the oldest ReplicaSet with the
    /// current template (a rollback makes an old one new again).
    fn find_new(&self) -> Option<usize> {
        let template = self.template();
        let mut candidates = self.old_indices(None);
        candidates.retain(|&i| {
            let rs_template = self.rss[i].spec.as_ref().and_then(|s| s.template.as_ref());
            rs_template.is_some_and(|t| plan::equal_ignoring_hash(t, &template))
        });
        candidates.first().copied()
    }

    /// Upstream's `getAllReplicaSetsAndSyncRevision`: finds (or creates)
    /// the new ReplicaSet and brings its revision and the Deployment's
    /// revision annotation up to date. Returns its index in `rss`.
    async fn sync_revision(&mut self, create: bool) -> Result<Option<usize>, Error> {
        let found = self.find_new();
        let max_old = (0..self.rss.len())
            .filter(|i| Some(*i) != found)
            .map(|i| plan::revision(&self.rss[i]))
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let index = match found {
            Some(i) => {
                self.update_existing_new(i, new_revision).await?;
                i
            }
            None if create => self.create_new(new_revision).await?,
            None => return Ok(None),
        };
        let revision = plan::revision(&self.rss[index]).to_string();
        self.set_deployment_revision(&revision).await?;
        Ok(Some(index))
    }

    async fn update_existing_new(&mut self, i: usize, new_revision: i64) -> Result<(), Error> {
        let mut rs = self.rss[i].clone();
        let mut changed = plan::set_new_rs_annotations(&self.d, &mut rs, new_revision, true);
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let spec = rs.spec.get_or_insert_default();
        if spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0) {
            spec.min_ready_seconds = min_ready;
            changed = true;
        }
        if changed {
            self.rss[i] = self.api.replace(&rs.name_any(), &PostParams::default(), &rs).await?;
        }
        let status = self.d.status.clone().unwrap_or_default();
        if plan::progress_deadline(&self.d).is_some() && plan::condition(&status, "Progressing").is_none() {
            let message = format!("Found new replica set \"{}\"", rs.name_any());
            self.write_condition("True", "FoundNewReplicaSet", message).await?;
        }
        Ok(())
    }

    /// Creates `<deployment>-<hash>`; a name taken by a ReplicaSet that is
    /// not ours bumps `collisionCount` so the next hash differs.
    async fn create_new(&mut self, new_revision: i64) -> Result<usize, Error> {
        let rs = self.new_replica_set(new_revision);
        let replicas = plan::rs_replicas(&rs);
        match self.api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                let name = created.name_any();
                self.rss.push(created);
                if replicas > 0 {
                    let message = format!("Scaled up replica set {name} to {replicas} from 0");
                    self.event("ScalingReplicaSet", &message).await;
                }
                if plan::progress_deadline(&self.d).is_some() {
                    let message = format!("Created new replica set \"{name}\"");
                    self.write_condition("True", "NewReplicaSetCreated", message).await?;
                }
                Ok(self.rss.len() - 1)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => self.adopt_or_collide(&rs).await,
            Err(err) => Err(err.into()),
        }
    }

    async fn adopt_or_collide(&mut self, wanted: &ReplicaSet) -> Result<usize, Error> {
        let existing = self.api.get(&wanted.name_any()).await?;
        let ours = controller_of(&existing.metadata).is_some_and(|r| Some(&r.uid) == self.d.metadata.uid.as_ref());
        let same = existing
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| plan::equal_ignoring_hash(t, &self.template()));
        if ours && same {
            self.rss.push(existing);
            return Ok(self.rss.len() - 1);
        }
        let mut status = self.d.status.clone().unwrap_or_default();
        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
        self.write_status(status).await?;
        Err(Error::Pending(format!(
            "hash collision on replica set {}",
            wanted.name_any()
        )))
    }

    fn new_replica_set(&self, new_revision: i64) -> ReplicaSet {
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = self.template();
        let hash = plan::pod_template_hash(&template, collisions);
        let meta = template.metadata.get_or_insert_default();
        meta.labels
            .get_or_insert_default()
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = selector_of(&self.d).cloned().unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_default()
            .insert(HASH_LABEL.into(), hash.clone());
        let total: i32 = self.rss.iter().map(plan::rs_replicas).sum();
        let desired = plan::desired(&self.d);
        let replicas = plan::new_rs_replicas(desired, plan::max_surge(&self.d), !plan::is_recreate(&self.d), total, 0);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", self.d.name_any())),
                namespace: self.d.namespace(),
                labels: meta.labels.clone(),
                owner_references: Some(vec![controller_reference(&self.d)]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: self.d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        plan::set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        rs
    }

    /// The Deployment carries its newest revision (what `rollout history` shows).
    async fn set_deployment_revision(&mut self, revision: &str) -> Result<(), Error> {
        if self.d.annotations().get(REVISION).map(String::as_str) == Some(revision) {
            return Ok(());
        }
        let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.d.namespace().unwrap_or_default());
        self.d = api
            .patch(&self.d.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Upstream's `isScalingEvent`: an active ReplicaSet was sized for a
    /// different `replicas`.
    async fn is_scaling_event(&mut self) -> Result<bool, Error> {
        self.sync_revision(false).await?;
        let desired = plan::desired(&self.d);
        Ok(self.rss.iter().any(|rs| {
            plan::rs_replicas(rs) > 0 && plan::annotated_int(rs, plan::DESIRED_REPLICAS).is_some_and(|d| d != desired)
        }))
    }

    /// Upstream's `checkPausedConditions`: `Progressing` says
    /// DeploymentPaused / DeploymentResumed.
    async fn check_paused_conditions(&mut self) -> Result<(), Error> {
        if plan::progress_deadline(&self.d).is_none() {
            return Ok(());
        }
        let status = self.d.status.clone().unwrap_or_default();
        let reason = plan::condition(&status, "Progressing").and_then(|c| c.reason.clone());
        if reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return Ok(());
        }
        let paused = self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let paused_condition = reason.as_deref() == Some("DeploymentPaused");
        if paused && !paused_condition {
            self.write_condition("Unknown", "DeploymentPaused", "Deployment is paused".into())
                .await?;
        } else if !paused && paused_condition {
            self.write_condition("Unknown", "DeploymentResumed", "Deployment is resumed".into())
                .await?;
        }
        Ok(())
    }

    /// Upstream's `reconcileNewReplicaSet`; returns whether it scaled.
    async fn reconcile_new(&mut self, new: usize) -> Result<bool, Error> {
        let desired = plan::desired(&self.d);
        let current = plan::rs_replicas(&self.rss[new]);
        if current == desired {
            return Ok(false);
        }
        if current > desired {
            return self.scale_rs(new, desired).await;
        }
        let total: i32 = self.rss.iter().map(plan::rs_replicas).sum();
        let target = plan::new_rs_replicas(desired, plan::max_surge(&self.d), true, total, current);
        self.scale_rs(new, target).await
    }

    /// Upstream's `reconcileOldReplicaSets`; returns whether it scaled.
    async fn reconcile_old(&mut self, new: usize) -> Result<bool, Error> {
        let old = self.old_indices(Some(new));
        let counts = |rs: &ReplicaSet| plan::Counts {
            replicas: plan::rs_replicas(rs),
            available: plan::rs_available_for_planning(rs),
        };
        let old_counts: Vec<plan::Counts> = old.iter().map(|&i| counts(&self.rss[i])).collect();
        let sizes = plan::scale_down_old(
            plan::desired(&self.d),
            plan::max_unavailable(&self.d),
            counts(&self.rss[new]),
            &old_counts,
        );
        let mut scaled = false;
        for (i, size) in old.into_iter().zip(sizes) {
            if size != plan::rs_replicas(&self.rss[i]) {
                scaled |= self.scale_rs(i, size).await?;
            }
        }
        Ok(scaled)
    }

    /// Upstream's `scale`: a lone active ReplicaSet takes the new size; a
    /// saturated new one retires the old; otherwise sizes are proportional.
    async fn scale(&mut self, new: Option<usize>) -> Result<(), Error> {
        let desired = plan::desired(&self.d);
        if let Some(i) = self.active_or_latest(new) {
            if plan::rs_replicas(&self.rss[i]) != desired {
                self.scale_rs(i, desired).await?;
            }
            return Ok(());
        }
        if let Some(n) = new.filter(|&n| self.saturated(n)) {
            for i in self.old_indices(Some(n)) {
                if plan::rs_replicas(&self.rss[i]) > 0 {
                    self.scale_rs(i, 0).await?;
                }
            }
            return Ok(());
        }
        if plan::is_recreate(&self.d) {
            return Ok(());
        }
        self.scale_proportionally().await
    }

    async fn scale_proportionally(&mut self) -> Result<(), Error> {
        let active: Vec<usize> = (0..self.rss.len())
            .filter(|&i| plan::rs_replicas(&self.rss[i]) > 0)
            .collect();
        let sized: Vec<plan::Sized> = active
            .iter()
            .map(|&i| plan::Sized {
                replicas: plan::rs_replicas(&self.rss[i]),
                max_replicas: plan::annotated_int(&self.rss[i], plan::MAX_REPLICAS),
                created: self.rss[i].metadata.creation_timestamp.clone().map(|t| t.0),
                name: self.rss[i].name_any(),
            })
            .collect();
        let status_replicas = self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let sizes = plan::proportional_sizes(
            plan::desired(&self.d),
            plan::max_surge(&self.d),
            status_replicas,
            &sized,
        );
        for (i, size) in active.into_iter().zip(sizes) {
            self.scale_rs(i, size).await?;
        }
        Ok(())
    }

    /// Upstream's `FindActiveOrLatest`.
    fn active_or_latest(&self, new: Option<usize>) -> Option<usize> {
        let active: Vec<usize> = (0..self.rss.len())
            .filter(|&i| plan::rs_replicas(&self.rss[i]) > 0)
            .collect();
        match active.len() {
            0 => new.or_else(|| self.old_indices(new).last().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// Upstream's `IsSaturated`: the new ReplicaSet alone serves everything.
    fn saturated(&self, new: usize) -> bool {
        let rs = &self.rss[new];
        let desired = plan::desired(&self.d);
        plan::rs_replicas(rs) == desired
            && plan::annotated_int(rs, plan::DESIRED_REPLICAS) == Some(desired)
            && plan::rs_available(rs) == desired
    }

    /// Upstream's `scaleReplicaSetAndRecordEvent`: sets the size and the
    /// size annotations; returns whether the size changed.
    async fn scale_rs(&mut self, i: usize, size: i32) -> Result<bool, Error> {
        let mut rs = self.rss[i].clone();
        let old = plan::rs_replicas(&rs);
        let desired = plan::desired(&self.d);
        let annotations = plan::set_replicas_annotations(&mut rs, desired, desired + plan::max_surge(&self.d));
        if old == size && !annotations {
            return Ok(false);
        }
        rs.spec.get_or_insert_default().replicas = Some(size);
        self.rss[i] = self.api.replace(&rs.name_any(), &PostParams::default(), &rs).await?;
        if old != size {
            let direction = if old < size { "up" } else { "down" };
            let message = format!("Scaled {direction} replica set {} to {size} from {old}", rs.name_any());
            self.event("ScalingReplicaSet", &message).await;
        }
        Ok(old != size)
    }

    /// Upstream's `cleanupDeployment`: keep `revisionHistoryLimit` old,
    /// empty ReplicaSets, deleting the lowest revisions.
    async fn cleanup(&mut self, new: Option<usize>) -> Result<(), Error> {
        let limit = self
            .d
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(plan::DEFAULT_HISTORY_LIMIT);
        let mut old: Vec<&ReplicaSet> = self
            .old_indices(new)
            .into_iter()
            .map(|i| &self.rss[i])
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = old.len().saturating_sub(limit.max(0) as usize);
        old.sort_by_key(|rs| (plan::revision(rs), rs.metadata.creation_timestamp.clone().map(|t| t.0)));
        let doomed: Vec<String> = old
            .into_iter()
            .take(excess)
            .filter(|rs| {
                let status = rs.status.clone().unwrap_or_default();
                status.replicas == 0
                    && plan::rs_replicas(rs) == 0
                    && status.observed_generation.unwrap_or(0) >= rs.metadata.generation.unwrap_or(0)
            })
            .map(|rs| rs.name_any())
            .collect();
        for name in doomed {
            match self.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => self.rss.retain(|rs| rs.name_any() != name),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Upstream's `syncRolloutStatus` (`rollout`) or `syncDeploymentStatus`:
    /// writes the status; asks to be called back at the progress deadline.
    async fn sync_status(&mut self, new: Option<usize>, rollout: bool) -> Result<Action, Error> {
        let now = Timestamp::now();
        let new_rs = new.map(|i| self.rss[i].clone());
        let all: Vec<&ReplicaSet> = self.rss.iter().collect();
        let mut status = plan::calculate_status(&self.d, &all, new_rs.as_ref(), now);
        if rollout {
            let name = new_rs.as_ref().map(|rs| rs.name_any());
            plan::rollout_conditions(&self.d, &mut status, name.as_deref(), now);
        }
        let recheck = plan::recheck_after(&self.d, &status, now);
        self.write_status(status).await?;
        Ok(recheck.map_or_else(Action::await_change, Action::requeue))
    }

    async fn write_condition(&mut self, status: &str, reason: &str, message: String) -> Result<(), Error> {
        let mut new = self.d.status.clone().unwrap_or_default();
        let condition = plan::new_condition("Progressing", status, reason, message, Timestamp::now());
        plan::set_condition(&mut new, condition);
        self.write_status(new).await
    }

    /// Replaces the status (guarded by resourceVersion) when it changed.
    async fn write_status(&mut self, mut status: k8s_openapi::api::apps::v1::DeploymentStatus) -> Result<(), Error> {
        for field in [
            &mut status.ready_replicas,
            &mut status.available_replicas,
            &mut status.unavailable_replicas,
            &mut status.updated_replicas,
            &mut status.replicas,
        ] {
            *field = field.filter(|n| *n != 0);
        }
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut updated = self.d.clone();
        updated.status = Some(status);
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.d.namespace().unwrap_or_default());
        self.d = api
            .replace_status(&self.d.name_any(), &PostParams::default(), &updated)
            .await?;
        Ok(())
    }

    async fn event(&self, reason: &str, message: &str) {
        record_event(
            &self.client,
            &object_reference(&self.d),
            "Normal",
            reason,
            message,
            COMPONENT,
        )
        .await;
    }
}
