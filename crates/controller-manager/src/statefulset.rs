//! StatefulSets: pods with stable identities `<set>-<ordinal>` and their own
//! PersistentVolumeClaims (upstream's statefulset controller,
//! `pkg/controller/statefulset`).
//!
//! Each pod has a fixed name, hostname and subdomain (the governing
//! Service), and claims `<template>-<set>-<ordinal>` created before it and
//! kept after it unless `persistentVolumeClaimRetentionPolicy` says
//! otherwise (then the claims are owned by the set or the pod, and the
//! garbage collector removes them with their owner).
//!
//! With `OrderedReady`, pods are created one at a time in ordinal order,
//! each only once all before it are Running and Ready, and removed in
//! reverse; any unhealthy pod halts progress. `Parallel` creates and
//! removes all at once. A rolling update replaces the highest ordinal not
//! at the update revision, one at a time, waiting for each to be Ready,
//! down to `partition`; `OnDelete` waits for users to delete pods.
//! Revisions are ControllerRevisions ([`crate::history`]); a pod's
//! `controller-revision-hash` label names the revision it was made from.
//!
//! [`plan`] decides a sync's steps from the pods alone (pure, tested);
//! [`reconcile`] lists pods from the API (see [`crate::replicaset`] for
//! why), keeps the history and carries the steps out.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::daemonset::api_message;
use crate::history::{self, DEFAULT_HISTORY_LIMIT, REVISION_LABEL};
use crate::replicaset::{
    claim_where, controller_reference, is_available, is_ready, object_reference, owners_or_adopters, pod_from_template,
    record_event, selector_matches,
};

const COMPONENT: &str = "statefulset-controller";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub async fn run(client: kube::Client, pods: crate::informer::PodChanges) {
    let sets: Api<StatefulSet> = Api::all(client.clone());
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    let mapper = move |pod: Pod| owners_or_adopters::<StatefulSet>(&store, &pod, |s| selector_of(s).cloned());
    controller
        .watches_stream(pods, mapper)
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn selector_of(set: &StatefulSet) -> Option<&LabelSelector> {
    set.spec.as_ref().map(|s| &s.selector)
}

async fn reconcile(set: Arc<StatefulSet>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let client = (*client).clone();
    let namespace = set.namespace().unwrap_or_default();
    let selector = selector_of(&set).cloned().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let listed = pods_api.list(&ListParams::default()).await?.items;
    // Upstream's `ClaimPods` with the `isMemberOf` filter: the name must fit.
    let pods = claim_where(&pods_api, &*set, listed, |p| {
        selector_matches(&selector, p.labels()) && ordinal_of(&set, p).is_some()
    })
    .await?;
    let revisions_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let revisions = history::claim_revisions(&revisions_api, &*set, &selector).await?;
    let (current, update, collisions) = sync_revisions(&revisions_api, &set, &revisions).await?;
    let now = Timestamp::now();
    let mut status = compute_status(&set, &pods, &current.name_any(), &update.name_any(), now);
    status.collision_count = Some(collisions);
    let sync = Sync {
        client: client.clone(),
        set: &set,
        current_set: history::apply_revision(&*set, &current)?,
        update_set: history::apply_revision(&*set, &update)?,
        current: current.name_any(),
        update: update.name_any(),
        claims: Api::namespaced(client.clone(), &namespace),
    };
    let outcome = if set.metadata.deletion_timestamp.is_some() {
        Ok(0)
    } else {
        sync.run(&pods, plan(&set, &pods, &update.name_any(), now)).await
    };
    // Like upstream, the status is written even when a step failed.
    status.current_replicas = status.current_replicas.map(|n| n - *outcome.as_ref().unwrap_or(&0));
    complete_rolling_update(&set, &mut status);
    write_status(&client, &set, status).await?;
    outcome?;
    let limit = set.spec.as_ref().and_then(|s| s.revision_history_limit);
    let live = live_revisions(&pods, &current.name_any(), &update.name_any());
    for name in history_to_truncate(&revisions, &live, limit.unwrap_or(DEFAULT_HISTORY_LIMIT)) {
        history::delete(&revisions_api, &name).await?;
    }
    Ok(requeue_for_availability(&set, &pods, now))
}

fn error_policy(_: Arc<StatefulSet>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(%error, "statefulset controller");
    Action::requeue(Duration::from_secs(1))
}

/// Upstream re-syncs after `minReadySeconds` while pods are not yet available.
fn requeue_for_availability(set: &StatefulSet, pods: &[Pod], now: Timestamp) -> Action {
    let min_ready = min_ready_seconds(set);
    let waiting = pods.iter().any(|p| is_ready(p) && !is_available(p, min_ready, now));
    if min_ready > 0 && waiting {
        Action::requeue(Duration::from_secs(min_ready as u64))
    } else {
        Action::await_change()
    }
}

// ---- Identity ----

fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

/// `spec.ordinals.start`: where the ordinals begin.
fn start_ordinal(set: &StatefulSet) -> i32 {
    let ordinals = set.spec.as_ref().and_then(|s| s.ordinals.as_ref());
    ordinals.and_then(|o| o.start).unwrap_or(0)
}

fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// Upstream's `getParentNameAndOrdinal` + `isMemberOf`: the ordinal of a
/// pod named `<set>-<n>`.
fn ordinal_of(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let name = pod.name_any();
    let (parent, ordinal) = name.rsplit_once('-')?;
    let digits = !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit());
    (digits && parent == set.name_any()).then(|| ordinal.parse().ok())?
}

fn in_range(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start_ordinal(set);
    ordinal >= start && ordinal < start + replicas(set)
}

fn pod_revision(pod: &Pod) -> &str {
    pod.labels().get(REVISION_LABEL).map_or("", String::as_str)
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

fn healthy(pod: &Pod) -> bool {
    running_and_ready(pod) && !deleting(pod)
}

/// Upstream's `identityMatches` (the name is checked by membership).
fn identity_matches(pod: &Pod) -> bool {
    pod.labels().get(POD_NAME_LABEL) == Some(&pod.name_any())
}

// ---- Decisions ----

/// One action of a sync, in the order upstream takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the pod with this ordinal (and its claims first).
    Create(i32),
    /// Delete a pod: finished, scaled away, or (`for_update`) replaced by
    /// the rolling update.
    Delete { pod: String, for_update: bool },
    /// Restore a pod's identity label.
    Relabel(String),
}

/// Upstream's `updateStatefulSet`: what to do with the pods now, given the
/// revision pods should be at. `OrderedReady` stops at the first step that
/// must wait (one creation, one deletion, or an unhealthy pod).
pub fn plan(set: &StatefulSet, pods: &[Pod], update_revision: &str, now: Timestamp) -> Vec<Step> {
    let start = start_ordinal(set);
    let mut slots: Vec<Option<&Pod>> = vec![None; replicas(set) as usize];
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for pod in pods {
        match ordinal_of(set, pod) {
            Some(o) if in_range(set, o) => slots[(o - start) as usize] = Some(pod),
            Some(o) => condemned.push((o, pod)),
            None => {}
        }
    }
    condemned.sort_by_key(|(ordinal, _)| std::cmp::Reverse(*ordinal));
    let spec = set.spec.clone().unwrap_or_default();
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    let available = |p: &Pod| is_available(p, min_ready_seconds(set), now);
    // The first unhealthy pod, counting pods yet to be created, then the
    // condemned from the lowest ordinal: it may go even while unhealthy.
    let first_unhealthy = slots
        .iter()
        .enumerate()
        .find(|(_, s)| s.is_none_or(|p| !healthy(p)))
        .map(|(i, _)| pod_name(set, start + i as i32))
        .or_else(|| {
            condemned
                .iter()
                .rev()
                .find(|(_, p)| !healthy(p))
                .map(|(_, p)| p.name_any())
        });
    let mut steps = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let Some(pod) = slot else {
            steps.push(Step::Create(start + i as i32));
            if monotonic {
                return steps;
            }
            continue;
        };
        if matches!(phase(pod), "Failed" | "Succeeded") {
            if !deleting(pod) {
                steps.push(delete(pod, false));
            }
            if monotonic {
                return steps;
            }
            continue;
        }
        if monotonic && (deleting(pod) || !running_and_ready(pod) || !available(pod)) {
            return steps;
        }
        if !identity_matches(pod) {
            steps.push(Step::Relabel(pod.name_any()));
        }
    }
    for (_, pod) in &condemned {
        if deleting(pod) {
            if monotonic {
                return steps;
            }
            continue;
        }
        let first = first_unhealthy.as_deref() == Some(pod.name_any().as_str());
        if monotonic && !first && (!running_and_ready(pod) || !available(pod)) {
            return steps;
        }
        steps.push(delete(pod, false));
        if monotonic {
            return steps;
        }
    }
    let strategy = spec.update_strategy.unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return steps;
    }
    let partition = strategy.rolling_update.and_then(|r| r.partition).unwrap_or(0).max(0) as usize;
    for slot in slots.iter().skip(partition).rev() {
        // A pod created in this sync is at the update revision but not ready.
        let Some(pod) = slot else { return steps };
        if pod_revision(pod) != update_revision && !deleting(pod) {
            steps.push(delete(pod, true));
            return steps;
        }
        if !healthy(pod) {
            return steps;
        }
    }
    steps
}

fn delete(pod: &Pod, for_update: bool) -> Step {
    Step::Delete {
        pod: pod.name_any(),
        for_update,
    }
}

/// Upstream's `newVersionedStatefulSetPod`: ordinals below the partition
/// are (re)created at the current revision, the rest at the update one.
fn at_current_revision(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start_ordinal(set);
    let strategy = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.clone())
        .unwrap_or_default();
    let rolling = strategy.type_.as_deref().unwrap_or("RollingUpdate") == "RollingUpdate";
    match strategy.rolling_update.and_then(|r| r.partition) {
        Some(partition) => ordinal < start + partition,
        None if rolling => {
            let current = set.status.as_ref().and_then(|s| s.current_replicas).unwrap_or(0);
            ordinal < start + current
        }
        None => false,
    }
}

/// Upstream's `computeReplicaStatus` over the pods with valid ordinals.
pub fn compute_status(
    set: &StatefulSet,
    pods: &[Pod],
    current: &str,
    update: &str,
    now: Timestamp,
) -> StatefulSetStatus {
    let members: Vec<&Pod> = pods.iter().filter(|p| ordinal_of(set, p).is_some()).collect();
    let count = |f: &dyn Fn(&Pod) -> bool| members.iter().filter(|p| f(p)).count() as i32;
    let min_ready = min_ready_seconds(set);
    StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: members.len() as i32,
        ready_replicas: Some(count(&running_and_ready)),
        available_replicas: Some(count(&|p| running_and_ready(p) && is_available(p, min_ready, now))),
        current_replicas: Some(count(&|p| !deleting(p) && pod_revision(p) == current)),
        updated_replicas: Some(count(&|p| !deleting(p) && pod_revision(p) == update)),
        current_revision: Some(current.into()),
        update_revision: Some(update.into()),
        ..StatefulSetStatus::default()
    }
}

/// Upstream's `completeRollingUpdate`: once every pod is updated and
/// ready, the update revision becomes the current one.
fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let strategy = set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let rolling = strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate";
    let all = |n: Option<i32>| n.unwrap_or(0) == status.replicas;
    if rolling && all(status.updated_replicas) && all(status.ready_replicas) {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

/// Revisions some pod, the current or the update revision refers to.
fn live_revisions(pods: &[Pod], current: &str, update: &str) -> HashSet<String> {
    let mut live: HashSet<String> = pods.iter().map(|p| pod_revision(p).to_string()).collect();
    live.extend([current.to_string(), update.to_string()]);
    live
}

/// Upstream's `truncateHistory`: the oldest revisions beyond `limit` that
/// nothing refers to.
fn history_to_truncate(sorted: &[ControllerRevision], live: &HashSet<String>, limit: i32) -> Vec<String> {
    let dead: Vec<String> = sorted
        .iter()
        .map(|r| r.name_any())
        .filter(|name| !live.contains(name))
        .collect();
    let excess = dead.len().saturating_sub(limit.max(0) as usize);
    dead.into_iter().take(excess).collect()
}

// ---- Revisions ----

/// Upstream's `getStatefulSetRevisions`: the revision the pods are at
/// (`status.currentRevision`) and the one they should be at (the current
/// template: reused if recorded, renumbered if it came back, else created).
async fn sync_revisions(
    api: &Api<ControllerRevision>,
    set: &StatefulSet,
    revisions: &[ControllerRevision],
) -> Result<(ControllerRevision, ControllerRevision, i32), Error> {
    let mut collisions = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
    let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let data = history::template_patch(&template);
    let mut candidate = history::new_revision(set, &labels, data, history::next_revision(revisions), Some(collisions));
    candidate.metadata.annotations = set.metadata.annotations.clone();
    let equal = revisions.iter().rfind(|r| history::equal_revision(r, &candidate));
    let latest = revisions.last().map(|r| r.name_any());
    let update = match equal {
        Some(found) if Some(found.name_any()) == latest => found.clone(),
        Some(found) => history::renumber(api, found, candidate.revision).await?,
        None => history::create(api, set, &candidate, &mut collisions).await?,
    };
    let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
    let current = revisions
        .iter()
        .find(|r| Some(r.name_any()) == current_name)
        .cloned()
        .unwrap_or_else(|| update.clone());
    Ok((current, update, collisions))
}

// ---- Claims ----

/// The retention policy's two answers: (delete claims when the set is
/// deleted, delete claims when their pod is scaled away).
fn retention(set: &StatefulSet) -> (bool, bool) {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.clone())
        .unwrap_or_default();
    let delete = |v: Option<String>| v.as_deref() == Some("Delete");
    (delete(policy.when_deleted), delete(policy.when_scaled))
}

/// Upstream's `getPersistentVolumeClaims`: one claim per template, named
/// `<template>-<set>-<ordinal>`, labelled with the set's selector labels.
fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let spec = set.spec.clone().unwrap_or_default();
    let selector_labels = spec.selector.match_labels.unwrap_or_default();
    let templates = spec.volume_claim_templates.unwrap_or_default();
    templates
        .into_iter()
        .map(|mut claim| {
            let template_name = claim.name_any();
            claim.metadata.name = Some(format!("{template_name}-{}-{ordinal}", set.name_any()));
            claim.metadata.namespace = set.namespace();
            claim.labels_mut().extend(selector_labels.clone());
            claim.status = None;
            claim
        })
        .collect()
}

/// Upstream's `newStatefulSetPod`: `set` (at some revision) as pod
/// `<set>-<ordinal>`, with its identity and its claims as volumes.
fn new_pod(set: &StatefulSet, ordinal: i32, revision: &str) -> Pod {
    let template: PodTemplateSpec = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut pod = pod_from_template(&template, set, "");
    let name = pod_name(set, ordinal);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.labels_mut();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let service = set.spec.as_ref().and_then(|s| s.service_name.clone());
    let templates: Vec<String> = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.name_any())
        .collect();
    let spec = pod.spec.get_or_insert_default();
    spec.hostname = Some(name);
    spec.subdomain = service.filter(|s| !s.is_empty());
    let mut volumes: Vec<Volume> = templates
        .iter()
        .zip(claims_for(set, ordinal))
        .map(|(template, claim)| Volume {
            name: template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.name_any(),
                read_only: None,
            }),
            ..Volume::default()
        })
        .collect();
    let others = spec.volumes.take().unwrap_or_default();
    volumes.extend(others.into_iter().filter(|v| !templates.contains(&v.name)));
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    pod
}

/// Whether `reference` points at `object` by kind and name (any UID).
fn refers_to<K: Resource<DynamicType = ()>>(reference: &OwnerReference, object: &K) -> bool {
    reference.kind == K::kind(&())
        && reference.api_version == K::api_version(&())
        && Some(&reference.name) == object.meta().name.as_ref()
}

/// Upstream's `updateClaimOwnerRefForSetAndPod`: the claim's owners under
/// the retention policy (the set for "delete with the set", the pod once
/// it is scaled away for "delete when scaled"), or `None` when they are
/// right already or belong to someone else (a stale UID or another
/// controller: left alone).
fn wanted_claim_owners(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
    in_range: bool,
) -> Option<Vec<OwnerReference>> {
    let refs = claim.owner_references();
    let stale = |r: &OwnerReference| {
        (refers_to(r, set) && Some(&r.uid) != set.meta().uid.as_ref())
            || (refers_to(r, pod) && Some(&r.uid) != pod.meta().uid.as_ref())
    };
    let foreign_controller = refs
        .iter()
        .any(|r| r.controller == Some(true) && !refers_to(r, set) && !refers_to(r, pod));
    let (with_set, when_scaled) = retention(set);
    if refs.iter().any(stale) || (foreign_controller && (with_set || when_scaled)) {
        return None;
    }
    let mut wanted: Vec<OwnerReference> = refs
        .iter()
        .filter(|r| !refers_to(r, set) && !refers_to(r, pod))
        .cloned()
        .collect();
    if when_scaled && !in_range {
        wanted.push(controller_reference(pod));
    } else if with_set && (in_range || !when_scaled) {
        wanted.push(controller_reference(set));
    }
    (wanted.as_slice() != refs).then_some(wanted)
}

/// Upstream's `PodClaimIsStale`: with "delete when scaled", a claim still
/// owned by an earlier pod of this name must be collected before a new pod
/// may use it.
fn claim_is_stale(claim: &PersistentVolumeClaim, pod_name: &str) -> bool {
    claim
        .owner_references()
        .iter()
        .any(|r| r.kind == "Pod" && r.name == pod_name)
}

// ---- Carrying out ----

/// One sync's view for carrying out steps.
struct Sync<'a> {
    client: kube::Client,
    set: &'a StatefulSet,
    current_set: StatefulSet,
    update_set: StatefulSet,
    current: String,
    update: String,
    claims: Api<PersistentVolumeClaim>,
}

impl Sync<'_> {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.set.namespace().unwrap_or_default())
    }

    fn has_claims(&self) -> bool {
        self.set
            .spec
            .as_ref()
            .and_then(|s| s.volume_claim_templates.as_ref())
            .is_some_and(|t| !t.is_empty())
    }

    /// Fixes claim owners for the existing pods, then takes the steps;
    /// returns how many pods were deleted for the rolling update.
    async fn run(&self, pods: &[Pod], steps: Vec<Step>) -> Result<i32, Error> {
        if self.has_claims() {
            let claims = self.claims.list(&ListParams::default()).await?.items;
            for pod in pods.iter().filter(|p| !deleting(p)) {
                self.fix_claim_owners(pod, &claims).await?;
            }
        }
        let mut updated = 0;
        for step in steps {
            match step {
                Step::Create(ordinal) => {
                    if !self.create(ordinal).await? {
                        break;
                    }
                }
                Step::Delete { pod, for_update } => {
                    self.delete(&pod).await?;
                    updated += i32::from(for_update);
                }
                Step::Relabel(pod) => self.relabel(&pod).await?,
            }
        }
        Ok(updated)
    }

    /// Upstream's `CreateStatefulPod`: the claims, then the pod. Returns
    /// false when a stale claim must be collected first.
    async fn create(&self, ordinal: i32) -> Result<bool, Error> {
        let (set, revision) = if at_current_revision(&self.current_set, ordinal) {
            (&self.current_set, &self.current)
        } else {
            (&self.update_set, &self.update)
        };
        let pod = new_pod(set, ordinal, revision);
        let name = pod.name_any();
        if self.has_claims() && !self.create_claims(&name, ordinal).await? {
            return Ok(false);
        }
        match self.pods().create(&PostParams::default(), &pod).await {
            Ok(created) => {
                let message = format!("create Pod {name} in StatefulSet {} successful", self.set.name_any());
                self.event("Normal", "SuccessfulCreate", &message).await;
                if self.has_claims() {
                    let claims = self.claims.list(&ListParams::default()).await?.items;
                    self.fix_claim_owners(&created, &claims).await?;
                }
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Err(kube::Error::Api(status).into()),
            Err(err) => {
                self.pod_failed("create", &name, &err).await;
                Err(err.into())
            }
        }
    }

    /// Upstream's `createPersistentVolumeClaims`; false if a claim is stale.
    async fn create_claims(&self, pod: &str, ordinal: i32) -> Result<bool, Error> {
        let (_, when_scaled) = retention(self.set);
        for claim in claims_for(self.set, ordinal) {
            let name = claim.name_any();
            match self.claims.get_opt(&name).await? {
                Some(existing) if when_scaled && claim_is_stale(&existing, pod) => return Ok(false),
                Some(existing) if existing.metadata.deletion_timestamp.is_some() => {
                    return Err(Error::Pending(format!("pvc {name} is being deleted")));
                }
                Some(_) => {}
                None => self.create_claim(&claim, pod).await?,
            }
        }
        Ok(true)
    }

    async fn create_claim(&self, claim: &PersistentVolumeClaim, pod: &str) -> Result<(), Error> {
        let name = claim.name_any();
        let set = self.set.name_any();
        match self.claims.create(&PostParams::default(), claim).await {
            Ok(_) => {
                let message = format!("create Claim {name} Pod {pod} in StatefulSet {set} success");
                self.event("Normal", "SuccessfulCreate", &message).await;
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(err) => {
                let message = format!(
                    "create Claim {name} for Pod {pod} in StatefulSet {set} failed error: failed to create PVC {name}: {}",
                    api_message(&err)
                );
                self.event("Warning", "FailedCreate", &message).await;
                Err(err.into())
            }
        }
    }

    /// Sets the owners of `pod`'s claims (among `live`) as the retention
    /// policy wants.
    async fn fix_claim_owners(&self, pod: &Pod, live: &[PersistentVolumeClaim]) -> Result<(), Error> {
        let Some(ordinal) = ordinal_of(self.set, pod) else {
            return Ok(());
        };
        for wanted in claims_for(self.set, ordinal) {
            let Some(claim) = live.iter().find(|c| c.name_any() == wanted.name_any()) else {
                continue;
            };
            if let Some(owners) = wanted_claim_owners(claim, self.set, pod, in_range(self.set, ordinal)) {
                let patch =
                    json!({"metadata": {"ownerReferences": owners, "resourceVersion": claim.resource_version()}});
                self.claims
                    .patch(&claim.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
        }
        Ok(())
    }

    /// Upstream's `DeleteStatefulPod`.
    async fn delete(&self, name: &str) -> Result<(), Error> {
        match self.pods().delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                let message = format!("delete Pod {name} in StatefulSet {} successful", self.set.name_any());
                self.event("Normal", "SuccessfulDelete", &message).await;
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => {
                self.pod_failed("delete", name, &err).await;
                Err(err.into())
            }
        }
    }

    /// Upstream's `UpdateStatefulPod`, for the identity label.
    async fn relabel(&self, name: &str) -> Result<(), Error> {
        let patch = json!({"metadata": {"labels": {POD_NAME_LABEL: name}}});
        match self
            .pods()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                let message = format!("update Pod {name} in StatefulSet {} successful", self.set.name_any());
                self.event("Normal", "SuccessfulUpdate", &message).await;
                Ok(())
            }
            Err(err) => {
                self.pod_failed("update", name, &err).await;
                Err(err.into())
            }
        }
    }

    /// Upstream's `recordPodEvent` for a failure.
    async fn pod_failed(&self, verb: &str, pod: &str, err: &kube::Error) {
        let reason = format!("Failed{}{}", verb[..1].to_uppercase(), &verb[1..]);
        let message = format!(
            "{verb} Pod {pod} in StatefulSet {} failed error: {}",
            self.set.name_any(),
            api_message(err)
        );
        self.event("Warning", &reason, &message).await;
    }

    async fn event(&self, type_: &str, reason: &str, message: &str) {
        record_event(
            &self.client,
            &object_reference(self.set),
            type_,
            reason,
            message,
            COMPONENT,
        )
        .await;
    }
}

/// Upstream's `updateStatefulSetStatus`: written when it differs.
async fn write_status(client: &kube::Client, set: &StatefulSet, status: StatefulSetStatus) -> Result<(), Error> {
    let old = set.status.clone().unwrap_or_default();
    let key = |s: &StatefulSetStatus| {
        (
            s.replicas,
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
            s.current_replicas.unwrap_or(0),
            s.updated_replicas.unwrap_or(0),
            s.current_revision.clone(),
            s.update_revision.clone(),
            s.collision_count.unwrap_or(0),
        )
    };
    let newer = status.observed_generation.unwrap_or(0) > old.observed_generation.unwrap_or(0);
    if !newer && key(&old) == key(&status) {
        return Ok(());
    }
    let patch = json!({"status": {
        "observedGeneration": status.observed_generation,
        "replicas": status.replicas,
        "readyReplicas": status.ready_replicas,
        "availableReplicas": status.available_replicas,
        "currentReplicas": status.current_replicas,
        "updatedReplicas": status.updated_replicas,
        "currentRevision": status.current_revision,
        "updateRevision": status.update_revision,
        "collisionCount": status.collision_count,
    }});
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &set.namespace().unwrap_or_default());
    api.patch_status(&set.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::Value;

    fn set(replicas: i32, extra: Value) -> StatefulSet {
        let mut spec = json!({
            "replicas": replicas, "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
        });
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default", "uid": "set-uid"}, "spec": spec}),
        )
        .unwrap()
    }

    /// `web-<ordinal>` at `revision`, Running; Ready when `ready`.
    fn pod(ordinal: i32, revision: &str, ready: bool) -> Pod {
        let condition = if ready { "True" } else { "False" };
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{ordinal}"), "namespace": "default",
                         "labels": {"app": "web", REVISION_LABEL: revision, POD_NAME_LABEL: format!("web-{ordinal}")}},
            "spec": {"containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": condition,
                        "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
        }))
        .unwrap();
        pod.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1).unwrap()));
        pod
    }

    fn now() -> Timestamp {
        Timestamp::from_second(2_000_000_000).unwrap()
    }

    fn del(ordinal: i32, for_update: bool) -> Step {
        Step::Delete {
            pod: format!("web-{ordinal}"),
            for_update,
        }
    }

    #[test]
    fn ordinals_come_from_the_name() {
        let s = set(1, json!({}));
        let named = |n: &str| -> Pod { serde_json::from_value(json!({"metadata": {"name": n}})).unwrap() };
        assert_eq!(ordinal_of(&s, &named("web-0")), Some(0));
        assert_eq!(ordinal_of(&s, &named("web-12")), Some(12));
        assert_eq!(ordinal_of(&s, &named("web-x")), None);
        assert_eq!(ordinal_of(&s, &named("webx-1")), None, "not a member");
        assert_eq!(ordinal_of(&s, &named("web-")), None);
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_in_order() {
        let s = set(3, json!({}));
        assert_eq!(plan(&s, &[], "r1", now()), [Step::Create(0)]);
        assert_eq!(
            plan(&s, &[pod(0, "r1", false)], "r1", now()),
            [],
            "web-1 waits for web-0"
        );
        assert_eq!(plan(&s, &[pod(0, "r1", true)], "r1", now()), [Step::Create(1)]);
        let mut pending = pod(0, "r1", false);
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        assert_eq!(plan(&s, &[pending], "r1", now()), []);
        // A missing lower ordinal is recreated before anything else.
        assert_eq!(plan(&s, &[pod(1, "r1", true)], "r1", now()), [Step::Create(0)]);
    }

    #[test]
    fn parallel_creates_and_deletes_everything_at_once() {
        let s = set(3, json!({"podManagementPolicy": "Parallel"}));
        assert_eq!(
            plan(&s, &[], "r1", now()),
            [Step::Create(0), Step::Create(1), Step::Create(2)]
        );
        let s = set(1, json!({"podManagementPolicy": "Parallel"}));
        let pods = [pod(0, "r1", true), pod(1, "r1", false), pod(2, "r1", true)];
        assert_eq!(plan(&s, &pods, "r1", now()), [del(2, false), del(1, false)]);
    }

    #[test]
    fn scale_down_goes_in_reverse_and_waits_for_health() {
        let s = set(1, json!({}));
        let pods = [pod(0, "r1", true), pod(1, "r1", true), pod(2, "r1", true)];
        assert_eq!(plan(&s, &pods, "r1", now()), [del(2, false)]);
        // The first unhealthy pod may go even while unhealthy...
        let pods = [pod(0, "r1", true), pod(1, "r1", true), pod(2, "r1", false)];
        assert_eq!(plan(&s, &pods, "r1", now()), [del(2, false)]);
        // ...but nothing goes while a pod that stays is unhealthy.
        let pods = [pod(0, "r1", false), pod(1, "r1", true), pod(2, "r1", true)];
        assert_eq!(plan(&s, &pods, "r1", now()), []);
        let mut going = pod(2, "r1", true);
        going.metadata.deletion_timestamp = Some(Time(now()));
        assert_eq!(
            plan(&s, &[pod(0, "r1", true), pod(1, "r1", true), going], "r1", now()),
            []
        );
    }

    #[test]
    fn unhealthy_pods_halt_ordered_progress() {
        let s = set(3, json!({}));
        let pods = [pod(0, "r1", true), pod(1, "r1", false)];
        assert_eq!(plan(&s, &pods, "r1", now()), []);
        let mut failed = pod(1, "r1", false);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        assert_eq!(plan(&s, &[pod(0, "r1", true), failed], "r1", now()), [del(1, false)]);
    }

    #[test]
    fn rolling_update_replaces_the_highest_ordinal_first() {
        let s = set(3, json!({}));
        let old = [pod(0, "r1", true), pod(1, "r1", true), pod(2, "r1", true)];
        assert_eq!(plan(&s, &old, "r2", now()), [del(2, true)]);
        let halfway = [pod(0, "r1", true), pod(1, "r1", true), pod(2, "r2", true)];
        assert_eq!(plan(&s, &halfway, "r2", now()), [del(1, true)]);
        let waiting = [pod(0, "r1", true), pod(1, "r1", true), pod(2, "r2", false)];
        assert_eq!(plan(&s, &waiting, "r2", now()), [], "web-2 must be ready first");
        assert_eq!(
            plan(&s, &old[..2], "r2", now()),
            [Step::Create(2)],
            "recreated before updating on"
        );
    }

    #[test]
    fn partition_keeps_lower_ordinals_and_on_delete_waits() {
        let s = set(
            3,
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
        );
        let pods = [pod(0, "r1", true), pod(1, "r1", true), pod(2, "r2", true)];
        assert_eq!(plan(&s, &pods, "r2", now()), []);
        assert!(at_current_revision(&s, 1) && !at_current_revision(&s, 2));
        let s = set(3, json!({"updateStrategy": {"type": "OnDelete"}}));
        let pods = [pod(0, "r1", true), pod(1, "r1", true), pod(2, "r1", true)];
        assert_eq!(plan(&s, &pods, "r2", now()), []);
        assert!(!at_current_revision(&s, 0), "recreated pods take the new template");
    }

    #[test]
    fn pods_get_identity_revision_and_claims() {
        let s = set(
            2,
            json!({"volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "db"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}),
        );
        let p = new_pod(&s, 1, "web-abc");
        assert_eq!(p.name_any(), "web-1");
        assert_eq!(p.labels()[POD_NAME_LABEL], "web-1");
        assert_eq!(p.labels()[POD_INDEX_LABEL], "1");
        assert_eq!(p.labels()[REVISION_LABEL], "web-abc");
        assert_eq!(p.owner_references()[0].kind, "StatefulSet");
        let spec = p.spec.unwrap();
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some("web-1"), Some("nginx"))
        );
        let volume = &spec.volumes.unwrap()[0];
        assert_eq!(volume.name, "www");
        assert_eq!(volume.persistent_volume_claim.as_ref().unwrap().claim_name, "www-web-1");
        let claim = &claims_for(&s, 1)[0];
        assert_eq!(claim.name_any(), "www-web-1");
        assert_eq!(claim.labels()["tier"], "db");
        assert_eq!(claim.labels()["app"], "web");
    }

    #[test]
    fn claim_owners_follow_the_retention_policy() {
        let policy = |deleted: &str, scaled: &str| {
            let mut s = set(
                1,
                json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": deleted, "whenScaled": scaled}}),
            );
            s.metadata.uid = Some("set-uid".into());
            s
        };
        let claim = PersistentVolumeClaim::default();
        let mut p = pod(1, "r1", true);
        p.metadata.uid = Some("pod-uid".into());
        let kinds = |refs: Option<Vec<OwnerReference>>| refs.map(|r| r.into_iter().map(|r| r.kind).collect::<Vec<_>>());
        assert_eq!(
            kinds(wanted_claim_owners(&claim, &policy("Retain", "Retain"), &p, true)),
            None
        );
        assert_eq!(
            kinds(wanted_claim_owners(&claim, &policy("Delete", "Retain"), &p, true)),
            Some(vec!["StatefulSet".into()])
        );
        assert_eq!(
            kinds(wanted_claim_owners(&claim, &policy("Retain", "Delete"), &p, true)),
            None
        );
        assert_eq!(
            kinds(wanted_claim_owners(&claim, &policy("Retain", "Delete"), &p, false)),
            Some(vec!["Pod".into()])
        );
        assert_eq!(
            kinds(wanted_claim_owners(&claim, &policy("Delete", "Delete"), &p, false)),
            Some(vec!["Pod".into()])
        );
        let owned = PersistentVolumeClaim {
            metadata: kube::api::ObjectMeta {
                owner_references: Some(vec![controller_reference(&policy("Delete", "Retain"))]),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            kinds(wanted_claim_owners(&owned, &policy("Delete", "Retain"), &p, true)),
            None,
            "already right"
        );
        assert_eq!(
            kinds(wanted_claim_owners(&owned, &policy("Retain", "Retain"), &p, true)),
            Some(vec![]),
            "released"
        );
        assert!(claim_is_stale(
            &PersistentVolumeClaim {
                metadata: kube::api::ObjectMeta {
                    owner_references: Some(vec![controller_reference(&p)]),
                    ..Default::default()
                },
                ..Default::default()
            },
            "web-1"
        ));
    }

    #[test]
    fn status_counts_revisions_and_completes_the_update() {
        let s = set(3, json!({}));
        let pods = [pod(0, "r1", true), pod(1, "r2", true), pod(2, "r2", false)];
        let mut status = compute_status(&s, &pods, "r1", "r2", now());
        assert_eq!(status.replicas, 3);
        assert_eq!((status.ready_replicas, status.available_replicas), (Some(2), Some(2)));
        assert_eq!((status.current_replicas, status.updated_replicas), (Some(1), Some(2)));
        complete_rolling_update(&s, &mut status);
        assert_eq!(
            status.current_revision.as_deref(),
            Some("r1"),
            "not all updated and ready"
        );
        let done = [pod(0, "r2", true), pod(1, "r2", true), pod(2, "r2", true)];
        let mut status = compute_status(&s, &done, "r1", "r2", now());
        complete_rolling_update(&s, &mut status);
        assert_eq!(
            (status.current_revision.as_deref(), status.current_replicas),
            (Some("r2"), Some(3))
        );
    }

    #[test]
    fn history_truncation_spares_live_revisions() {
        let s = set(1, json!({}));
        let revisions: Vec<ControllerRevision> = (1..=4)
            .map(|n| {
                let mut r = history::new_revision(&s, &Default::default(), json!({"n": n}), n, None);
                r.metadata.name = Some(format!("web-{n}"));
                r
            })
            .collect();
        let live = HashSet::from(["web-1".to_string(), "web-4".to_string()]);
        assert_eq!(history_to_truncate(&revisions, &live, 1), ["web-2"]);
        assert!(history_to_truncate(&revisions, &live, 2).is_empty());
    }
}
