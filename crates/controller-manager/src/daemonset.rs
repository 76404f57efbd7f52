//! DaemonSets: one pod from `spec.template` on every node that should run
//! it (upstream's daemon controller, `pkg/controller/daemon`).
//!
//! Which nodes: upstream's `NodeShouldRunDaemonPod` — the template's
//! `nodeSelector` and required node affinity, and the node's taints against
//! the template's tolerations plus those every daemon pod gets
//! ([`daemon_tolerations`]). Placement: as upstream since 1.12, the default
//! scheduler binds the pods; each carries a required node affinity
//! `metadata.name In [node]` that only its node satisfies.
//!
//! Updates: each template is recorded as a ControllerRevision named
//! `<daemonset>-<template hash>` ([`crate::history`] format, so `kubectl
//! rollout history|undo` work); pods carry the hash in
//! `controller-revision-hash` and the template generation in
//! `pod-template-generation`. RollingUpdate replaces old pods within
//! `maxUnavailable` (delete, then create) or `maxSurge` (create, then delete
//! once the new pod is available); OnDelete waits for users to delete them.
//! The decisions are pure functions of the nodes, the pods and the time
//! ([`Daemon`]); [`reconcile`] reads the objects and carries them out.
//!
//! Pods are listed from the API on every reconcile (see [`crate::replicaset`]
//! for why). Nodes come from one watch whose cache answers "which nodes
//! exist"; only changes that can move daemon pods (nodes added or removed,
//! labels, taints) wake the DaemonSets, as upstream ignores heartbeats.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use capstan_scheduler::labels::node_term_matches;
use capstan_scheduler::plugins::taint_toleration::tolerates;
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    PodTemplateSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use serde_json::{Value, json};

use crate::Error;
use crate::deployment::plan::{int_or_percent, pod_template_hash};
use crate::history::{self, DEFAULT_HISTORY_LIMIT, REVISION_LABEL};
use crate::replicaset::{
    claim, controller_reference, is_available, is_ready, object_reference, owners_or_adopters, pod_from_template,
    record_event,
};

const COMPONENT: &str = "daemonset-controller";
/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
const BURST_REPLICAS: usize = 250;
/// Where the API server keeps the template generation (upstream's v1 form
/// of `spec.templateGeneration`).
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";
const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

struct Context {
    client: kube::Client,
    nodes: Store<Node>,
}

pub async fn run(client: kube::Client, pods: crate::informer::PodChanges) {
    let sets: Api<DaemonSet> = Api::all(client.clone());
    let (nodes, writer) = reflector::store();
    let node_events = reflector::reflector(writer, watcher(Api::<Node>::all(client.clone()), Default::default()));
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    let adopters = store.clone();
    let pod_owners = move |pod: Pod| owners_or_adopters::<DaemonSet>(&adopters, &pod, |d| selector_of(d).cloned());
    let every_set = move |_: Node| {
        let sets = store.state();
        sets.iter()
            .map(|ds| ObjectRef::from_obj(ds.as_ref()))
            .collect::<Vec<_>>()
    };
    controller
        .watches_stream(pods, pod_owners)
        .watches_stream(placement_changes(node_events), every_set)
        .run(reconcile, error_policy, Arc::new(Context { client, nodes }))
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn selector_of(ds: &DaemonSet) -> Option<&LabelSelector> {
    ds.spec.as_ref().map(|s| &s.selector)
}

/// The node events that can change where daemon pods belong: a node added
/// or removed, or its labels or taints changed.
fn placement_changes(
    events: impl Stream<Item = Result<watcher::Event<Node>, watcher::Error>>,
) -> impl Stream<Item = Result<Node, watcher::Error>> {
    let mut seen: HashMap<String, u64> = HashMap::new();
    events.flat_map(move |event| {
        let changed = match event {
            Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node)) => {
                let print = placement_fingerprint(&node);
                (seen.insert(node.name_any(), print) != Some(print)).then_some(Ok(node))
            }
            Ok(watcher::Event::Delete(node)) => {
                seen.remove(&node.name_any());
                Some(Ok(node))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(error) => Some(Err(error)),
        };
        futures::stream::iter(changed)
    })
}

fn placement_fingerprint(node: &Node) -> u64 {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(&(node.labels(), taints))
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let client = &ctx.client;
    let selector = selector_of(&ds).cloned().unwrap_or_default();
    if selector.match_labels.iter().flatten().count() + selector.match_expressions.iter().flatten().count() == 0 {
        let message = "This daemon set is selecting all pods. A non-empty selector is required.";
        event(client, &ds, "Warning", "SelectingAll", message).await;
        return Ok(Action::await_change());
    }
    // Upstream leaves a DaemonSet being deleted alone: its history may be gone.
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    ctx.nodes
        .wait_until_ready()
        .await
        .map_err(|e| Error::Pending(e.to_string()))?;
    let nodes = ctx.nodes.state();
    let namespace = ds.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let listed = pods_api.list(&ListParams::default()).await?.items;
    let pods = claim(&pods_api, &*ds, &selector, listed).await?;
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let (current, old) = construct_history(client, &revisions, &ds).await?;
    let hash = current.labels().get(REVISION_LABEL).cloned().unwrap_or_default();
    let daemon = Daemon::new(&ds, &nodes, &pods, &hash, Timestamp::now());
    let acted = carry_out(client, &ds, &daemon, daemon.manage()).await?;
    // Like upstream's expectations: roll only once the last changes are seen.
    if !acted && is_rolling_update(&ds) {
        carry_out(client, &ds, &daemon, daemon.rolling_update()).await?;
    }
    let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit);
    for name in history_to_delete(old, &live_hashes(&pods), limit.unwrap_or(DEFAULT_HISTORY_LIMIT)) {
        history::delete(&revisions, &name).await?;
    }
    let status = daemon.status();
    update_status(client, &ds, &status).await?;
    let min_ready = min_ready_seconds(&ds);
    let waiting = min_ready > 0 && status.number_ready != status.number_available.unwrap_or(0);
    Ok(if waiting {
        Action::requeue(Duration::from_secs(min_ready as u64))
    } else {
        Action::await_change()
    })
}

fn error_policy(_: Arc<DaemonSet>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "daemonset controller");
    Action::requeue(Duration::from_secs(1))
}

fn is_rolling_update(ds: &DaemonSet) -> bool {
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    strategy.and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") == "RollingUpdate"
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

fn template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
}

/// Upstream's `updatedDesiredNodeCounts`: (maxSurge, maxUnavailable) in
/// pods, percentages of the desired count rounded up; when both come to
/// zero, one pod may be unavailable so that the update can progress.
fn rolling_budget(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let strategy = ds.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let count = |v: Option<&IntOrString>| v.map_or(0, |v| int_or_percent(v, desired, true));
    let surge = count(rolling.and_then(|r| r.max_surge.as_ref()));
    let unavailable = count(rolling.and_then(|r| r.max_unavailable.as_ref()));
    if desired > 0 && surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// Upstream's `GetTemplateGeneration`.
fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.annotations().get(TEMPLATE_GENERATION)?.parse().ok()
}

// ---- History ----

/// Upstream's `constructHistory`: the revision of the current template
/// (recorded now if it is new, renumbered if it came back) and the others.
async fn construct_history(
    client: &kube::Client,
    api: &Api<ControllerRevision>,
    ds: &DaemonSet,
) -> Result<(ControllerRevision, Vec<ControllerRevision>), Error> {
    let selector = selector_of(ds).cloned().unwrap_or_default();
    let patch = history::template_patch(&template(ds));
    let revisions = history::claim_revisions(api, ds, &selector).await?;
    let (mut current, mut old): (Vec<_>, Vec<_>) = revisions
        .into_iter()
        .partition(|r| history::same_data(&history::data(r), &patch));
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    // Sorted, so the last match is the newest; older duplicates are history.
    let found = current.pop();
    old.append(&mut current);
    let current = match found {
        None => snapshot(client, api, ds, next, patch).await?,
        Some(found) if found.revision < next => history::renumber(api, &found, next).await?,
        Some(found) => found,
    };
    Ok((current, old))
}

/// Upstream's `snapshot`: records the template as `<name>-<template hash>`.
/// A name taken by another template bumps `status.collisionCount` (so the
/// next hash differs) and fails this sync.
async fn snapshot(
    client: &kube::Client,
    api: &Api<ControllerRevision>,
    ds: &DaemonSet,
    revision: i64,
    patch: Value,
) -> Result<ControllerRevision, Error> {
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    let template = template(ds);
    let hash = pod_template_hash(&template, collisions);
    let name = format!("{}-{hash}", ds.name_any());
    let mut labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), hash);
    let record = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: ds.namespace(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![controller_reference(ds)]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(patch.clone())),
        revision,
    };
    match api.create(&PostParams::default(), &record).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let existing = api.get(&name).await?;
            if history::same_data(&history::data(&existing), &patch) {
                return Ok(existing);
            }
            bump_collision_count(client, ds).await
        }
        Err(err) => Err(err.into()),
    }
}

async fn bump_collision_count(client: &kube::Client, ds: &DaemonSet) -> Result<ControllerRevision, Error> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ds.namespace().unwrap_or_default());
    let live = api.get(&ds.name_any()).await?;
    let seen = ds.status.as_ref().and_then(|s| s.collision_count);
    let current = live.status.as_ref().and_then(|s| s.collision_count);
    if seen != current {
        return Err(Error::Pending(format!(
            "found a stale collision count ({}, expected {}) of DaemonSet {:?} while processing; will retry until it is updated",
            seen.unwrap_or(0),
            current.unwrap_or(0),
            ds.name_any()
        )));
    }
    let count = current.unwrap_or(0) + 1;
    let patch = json!({"status": {"collisionCount": count}});
    api.patch_status(&ds.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Err(Error::Pending(format!(
        "found a hash collision for DaemonSet {:?} - bumping collisionCount to {count} to resolve it",
        ds.name_any()
    )))
}

/// The template hashes some pod still carries.
fn live_hashes(pods: &[Pod]) -> HashSet<String> {
    pods.iter()
        .filter_map(|p| p.labels().get(REVISION_LABEL).cloned())
        .collect()
}

/// Upstream's `cleanupHistory`: beyond `limit` old revisions, the oldest
/// that no pod was made from go.
fn history_to_delete(mut old: Vec<ControllerRevision>, live: &HashSet<String>, limit: i32) -> Vec<String> {
    let excess = old.len().saturating_sub(limit.max(0) as usize);
    history::sort_revisions(&mut old);
    old.iter()
        .filter(|r| r.labels().get(REVISION_LABEL).is_none_or(|h| !live.contains(h)))
        .take(excess)
        .map(|r| r.name_any())
        .collect()
}

// ---- Placement ----

/// Upstream's `AddOrUpdateDaemonPodTolerations`: daemon pods survive node
/// problems (not-ready and unreachable without a time limit) and go where
/// conditions taint a node unschedulable.
pub fn daemon_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    let mut add = |key: &str, effect: &str| {
        let toleration = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            ..Toleration::default()
        };
        add_or_update_toleration(&mut tolerations, toleration);
    };
    add("node.kubernetes.io/not-ready", "NoExecute");
    add("node.kubernetes.io/unreachable", "NoExecute");
    add("node.kubernetes.io/disk-pressure", "NoSchedule");
    add("node.kubernetes.io/memory-pressure", "NoSchedule");
    add("node.kubernetes.io/pid-pressure", "NoSchedule");
    add("node.kubernetes.io/unschedulable", "NoSchedule");
    if spec.host_network == Some(true) {
        add("node.kubernetes.io/network-unavailable", "NoSchedule");
    }
    tolerations
}

/// Upstream's `AddOrUpdateTolerationInPodSpec`: tolerations are unique by
/// key, effect, operator and value; a differing one (say, with
/// `tolerationSeconds`) is replaced.
fn add_or_update_toleration(tolerations: &mut Vec<Toleration>, toleration: Toleration) {
    if tolerations.contains(&toleration) {
        return;
    }
    let same = |t: &Toleration| {
        t.key == toleration.key
            && t.effect == toleration.effect
            && t.operator == toleration.operator
            && t.value == toleration.value
    };
    let mut replaced = false;
    for existing in tolerations.iter_mut().filter(|t| same(t)) {
        *existing = toleration.clone();
        replaced = true;
    }
    if !replaced {
        tolerations.push(toleration);
    }
}

/// Upstream's `NodeShouldRunDaemonPod`: (should run a new pod, may keep a
/// running one). A pod keeps running on a node tainted `NoSchedule` after
/// it got there, but not under an untolerated `NoExecute` taint.
pub fn node_should_run(node: &Node, spec: &PodSpec) -> (bool, bool) {
    let name = node.name_any();
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != name) {
        return (false, false);
    }
    if !fits_node_affinity(spec, node) {
        return (false, false);
    }
    let tolerations = daemon_tolerations(spec);
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let untolerated = |effects: &[&str]| {
        taints
            .iter()
            .any(|t| effects.contains(&t.effect.as_str()) && !tolerates(&tolerations, t))
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

/// Upstream's `GetRequiredNodeAffinity(pod).Match(node)`.
fn fits_node_affinity(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.labels();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref());
    selector_ok
        && required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| node_term_matches(t, labels, &node.name_any()))
        })
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the pod's required
/// node affinity becomes "this node", which the scheduler then honours.
fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    affinity
}

/// Upstream's `GetTargetNodeName`: where a daemon pod is, or is meant to be.
fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.clone().filter(|n| !n.is_empty()) {
        return Some(name);
    }
    let required = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    let fields = required
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten());
    let by_name = fields
        .into_iter()
        .find(|r| r.key == "metadata.name" && r.operator == "In")?;
    match by_name.values.as_deref() {
        Some([only]) => Some(only.clone()),
        _ => None,
    }
}

fn is_scheduled(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's `podByCreationTimestampAndPhase`: scheduled first, then oldest.
fn oldest_first(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        let created = |p: &Pod| p.metadata.creation_timestamp.clone().map(|t| t.0);
        is_scheduled(b)
            .cmp(&is_scheduled(a))
            .then(created(a).cmp(&created(b)))
            .then(a.name_any().cmp(&b.name_any()))
    });
}

// ---- Decisions ----

/// What one sync should do: nodes to create a pod on, pods to delete, and
/// Events to record on the DaemonSet.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub create_on: Vec<String>,
    pub delete: Vec<String>,
    pub events: Vec<(&'static str, &'static str, String)>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty()
    }
}

/// A node's non-deleted pods made from the current template and from an
/// older one; `None` when it has several of one kind.
type NewAndOld<'a> = Option<(Option<&'a Pod>, Option<&'a Pod>)>;

/// A DaemonSet with its nodes and pods at one instant: the pure half of
/// the controller.
pub struct Daemon<'a> {
    ds: &'a DaemonSet,
    /// Every node, by name, with upstream's (should run, may keep running).
    nodes: Vec<(&'a Node, (bool, bool))>,
    /// How many nodes should run a pod.
    desired: i32,
    /// (maxSurge, maxUnavailable) in pods.
    budget: (i32, i32),
    /// Upstream's `getNodesToDaemonPods`: pods by the node they are (meant
    /// to be) on.
    by_node: BTreeMap<String, Vec<&'a Pod>>,
    hash: &'a str,
    generation: Option<i64>,
    now: Timestamp,
}

impl<'a> Daemon<'a> {
    pub fn new(
        ds: &'a DaemonSet,
        nodes: &'a [Arc<Node>],
        pods: &'a [Pod],
        hash: &'a str,
        now: Timestamp,
    ) -> Daemon<'a> {
        let mut by_node: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
        for pod in pods {
            if let Some(node) = target_node(pod) {
                by_node.entry(node).or_default().push(pod);
            }
        }
        let spec = template(ds).spec.unwrap_or_default();
        let mut nodes: Vec<(&Node, (bool, bool))> =
            nodes.iter().map(|n| (n.as_ref(), node_should_run(n, &spec))).collect();
        nodes.sort_by_key(|(n, _)| n.name_any());
        let desired = nodes.iter().filter(|(_, (run, _))| *run).count() as i32;
        Daemon {
            ds,
            nodes,
            desired,
            budget: rolling_budget(ds, desired),
            by_node,
            hash,
            generation: template_generation(ds),
            now,
        }
    }

    fn min_ready(&self) -> i32 {
        min_ready_seconds(self.ds)
    }

    fn available(&self, pod: &Pod) -> bool {
        is_available(pod, self.min_ready(), self.now)
    }

    /// Upstream's `IsPodUpdated`: made from the current template.
    fn updated(&self, pod: &Pod) -> bool {
        let labels = pod.labels();
        let hash_matches = !self.hash.is_empty() && labels.get(REVISION_LABEL).map(String::as_str) == Some(self.hash);
        let generation_matches = self
            .generation
            .is_some_and(|g| labels.get(TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
        hash_matches || generation_matches
    }

    fn pods_on(&self, node: &str) -> &[&'a Pod] {
        self.by_node.get(node).map_or(&[], Vec::as_slice)
    }

    fn allows_surge(&self) -> bool {
        is_rolling_update(self.ds) && self.budget.0 > 0
    }

    /// Upstream's `manage`: a pod for every node that should run one and
    /// has none; no pods where none may run; finished pods replaced.
    pub fn manage(&self) -> Changes {
        let mut changes = Changes::default();
        for (node, eligible) in &self.nodes {
            self.pods_should_be_on_node(node, *eligible, &mut changes);
        }
        changes.delete.extend(self.unscheduled_without_node());
        changes
    }

    /// Upstream's `podsShouldBeOnNode`.
    fn pods_should_be_on_node(&self, node: &Node, (should_run, may_continue): (bool, bool), changes: &mut Changes) {
        let name = node.name_any();
        let pods = self.pods_on(&name);
        if should_run && pods.is_empty() {
            changes.create_on.push(name);
            return;
        }
        if !may_continue {
            changes
                .delete
                .extend(pods.iter().filter(|p| !deleting(p)).map(|p| p.name_any()));
            return;
        }
        let mut running = Vec::new();
        for pod in pods.iter().filter(|p| !deleting(p)) {
            let where_ = format!(
                "{}/{} on node {name}",
                pod.namespace().unwrap_or_default(),
                pod.name_any()
            );
            match phase(pod) {
                Some("Failed") => {
                    let message = format!("Found failed daemon pod {where_}, will try to kill it");
                    changes.events.push(("Warning", "FailedDaemonPod", message));
                    changes.delete.push(pod.name_any());
                }
                Some("Succeeded") => {
                    let message = format!("Found succeeded daemon pod {where_}, will try to delete it");
                    changes.events.push(("Normal", "SucceededDaemonPod", message));
                    changes.delete.push(pod.name_any());
                }
                _ => running.push(*pod),
            }
        }
        oldest_first(&mut running);
        if !self.allows_surge() {
            // One pod per node: all but the oldest go.
            changes.delete.extend(running.iter().skip(1).map(|p| p.name_any()));
            return;
        }
        if running.is_empty() && should_run {
            changes.create_on.push(name);
        }
        self.prune_surge(&running, changes);
    }

    /// With surge, a node keeps its oldest new pod and, while that one is
    /// not yet available, its oldest old pod if that one is still ready.
    fn prune_surge(&self, running: &[&Pod], changes: &mut Changes) {
        let (mut oldest_new, mut oldest_old) = (None, None);
        for pod in running {
            let slot = if self.updated(pod) {
                &mut oldest_new
            } else {
                &mut oldest_old
            };
            if slot.is_none() {
                *slot = Some(*pod);
            } else {
                changes.delete.push(pod.name_any());
            }
        }
        if let (Some(new), Some(old)) = (oldest_new, oldest_old)
            && (!is_ready(old) || self.available(new))
        {
            changes.delete.push(old.name_any());
        }
    }

    /// Upstream's `getUnscheduledPodsWithoutNode`: pods meant for a node
    /// that no longer exists (pod GC only collects scheduled ones).
    fn unscheduled_without_node(&self) -> Vec<String> {
        let existing: HashSet<String> = self.nodes.iter().map(|(n, _)| n.name_any()).collect();
        self.by_node
            .iter()
            .filter(|(node, _)| !existing.contains(*node))
            .flat_map(|(_, pods)| pods.iter().filter(|p| !is_scheduled(p)).map(|p| p.name_any()))
            .collect()
    }

    /// Every node that has or should run a pod, whether it should, and
    /// its pods (the manage step prunes nodes with several of a kind first).
    fn update_slots(&self) -> Vec<(&'a Node, bool, NewAndOld<'a>)> {
        self.nodes
            .iter()
            .filter(|(node, (run, _))| *run || self.by_node.contains_key(&node.name_any()))
            .map(|(node, (run, _))| (*node, *run, self.new_and_old(&node.name_any())))
            .collect()
    }

    /// Upstream's `findUpdatedPodsOnNode`.
    fn new_and_old(&self, node: &str) -> NewAndOld<'a> {
        let (mut new, mut old) = (None, None);
        for pod in self.pods_on(node).iter().filter(|p| !deleting(p)) {
            let slot = if self.updated(pod) { &mut new } else { &mut old };
            if slot.replace(*pod).is_some() {
                return None;
            }
        }
        Some((new, old))
    }

    /// Upstream's `rollingUpdate`: old pods replaced within `maxUnavailable`
    /// (delete first) or, with `maxSurge`, new pods created next to old
    /// ones, which go once their replacement is available.
    pub fn rolling_update(&self) -> Changes {
        let (surge, unavailable) = self.budget;
        if surge == 0 {
            self.roll_within_unavailability(unavailable)
        } else {
            self.roll_with_surge(surge)
        }
    }

    fn roll_within_unavailability(&self, max_unavailable: i32) -> Changes {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for (_, _, slot) in self.update_slots() {
            match slot {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => unavailable += i32::from(!self.available(new)),
                Some((None, Some(old))) if !self.available(old) => {
                    replace.push(old.name_any());
                    unavailable += 1;
                }
                Some((None, Some(old))) if unavailable < max_unavailable => candidates.push(old.name_any()),
                Some((None, Some(_))) => {}
            }
        }
        let room = (max_unavailable - unavailable).max(0) as usize;
        replace.extend(candidates.into_iter().take(room));
        Changes {
            delete: replace,
            ..Changes::default()
        }
    }

    fn roll_with_surge(&self, max_surge: i32) -> Changes {
        let mut changes = Changes::default();
        let (mut surging, mut available) = (0, 0);
        let mut candidates = Vec::new();
        let mut sunset = Vec::new();
        for (node, should_run, slot) in self.update_slots() {
            let Some((new, old)) = slot else {
                surging += 1;
                continue;
            };
            if old.or(new).is_some_and(|p| self.available(p)) {
                available += 1;
            }
            match (new, old) {
                // Nothing old here: the manage step looks after this node.
                (_, None) => {}
                (None, Some(old)) if !self.available(old) => match should_run {
                    true => changes.create_on.push(node.name_any()),
                    false => changes.delete.push(old.name_any()),
                },
                (None, Some(old)) if !should_run => sunset.push(old.name_any()),
                (None, Some(_)) if surging < max_surge => candidates.push(node.name_any()),
                (None, Some(_)) => {}
                (Some(new), Some(_)) if !self.available(new) => surging += 1,
                (Some(_), Some(old)) => changes.delete.push(old.name_any()),
            }
        }
        // Pods on nodes that no longer qualify go only while enough others
        // are available, so availability never drops.
        let deletable = (available - self.desired).max(0) as usize;
        changes.delete.extend(sunset.into_iter().take(deletable));
        let room = (max_surge - surging).max(0) as usize;
        changes.create_on.extend(candidates.into_iter().take(room));
        changes
    }

    /// Upstream's `updateDaemonSetStatus`, judged by each node's oldest pod.
    pub fn status(&self) -> DaemonSetStatus {
        let mut status = DaemonSetStatus {
            observed_generation: self.ds.metadata.generation,
            collision_count: self.ds.status.as_ref().and_then(|s| s.collision_count),
            ..DaemonSetStatus::default()
        };
        let (mut updated, mut available) = (0, 0);
        for (node, (should_run, _)) in &self.nodes {
            let mut pods = self.pods_on(&node.name_any()).to_vec();
            if !should_run {
                status.number_misscheduled += i32::from(!pods.is_empty());
                continue;
            }
            status.desired_number_scheduled += 1;
            oldest_first(&mut pods);
            let Some(pod) = pods.first() else { continue };
            status.current_number_scheduled += 1;
            if is_ready(pod) {
                status.number_ready += 1;
                available += i32::from(self.available(pod));
            }
            updated += i32::from(self.updated(pod));
        }
        let omit_zero = |n: i32| (n != 0).then_some(n);
        status.updated_number_scheduled = omit_zero(updated);
        status.number_available = omit_zero(available);
        status.number_unavailable = omit_zero(status.desired_number_scheduled - available);
        status
    }

    /// Upstream's `CreatePodTemplate`: the template with the daemon
    /// tolerations and the revision labels.
    fn pod_template(&self) -> PodTemplateSpec {
        let mut template = template(self.ds);
        let spec = template.spec.get_or_insert_default();
        spec.tolerations = Some(daemon_tolerations(spec));
        let labels = template.metadata.get_or_insert_default().labels.get_or_insert_default();
        if let Some(generation) = self.generation {
            labels.insert(TEMPLATE_GENERATION_LABEL.into(), generation.to_string());
        }
        if !self.hash.is_empty() {
            labels.insert(REVISION_LABEL.into(), self.hash.to_string());
        }
        template
    }
}

// ---- Carrying out ----

/// Upstream's `syncNodes`: creates pods in slow-start batches (1, 2, 4, …,
/// stopping at the first failure) and deletes pods, each at most
/// `BURST_REPLICAS` per sync. Returns whether it changed anything.
async fn carry_out(
    client: &kube::Client,
    ds: &DaemonSet,
    daemon: &Daemon<'_>,
    changes: Changes,
) -> Result<bool, Error> {
    for (type_, reason, message) in &changes.events {
        event(client, ds, type_, reason, message).await;
    }
    if changes.is_empty() {
        return Ok(false);
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &ds.namespace().unwrap_or_default());
    let template = daemon.pod_template();
    let mut first_error = None;
    let mut nodes = changes.create_on.iter().take(BURST_REPLICAS);
    let mut batch = 1;
    loop {
        let chunk: Vec<&String> = nodes.by_ref().take(batch).collect();
        if chunk.is_empty() {
            break;
        }
        let creations = chunk.iter().map(|node| create_pod(client, &api, ds, &template, node));
        let failed = futures::future::join_all(creations)
            .await
            .into_iter()
            .find_map(Result::err);
        if failed.is_some() {
            first_error = failed;
            break;
        }
        batch *= 2;
    }
    for name in changes.delete.iter().take(BURST_REPLICAS) {
        if let Err(err) = delete_pod(client, &api, ds, name).await {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(true), Err)
}

async fn create_pod(
    client: &kube::Client,
    api: &Api<Pod>,
    ds: &DaemonSet,
    template: &PodTemplateSpec,
    node: &str,
) -> Result<(), Error> {
    let mut pinned = template.clone();
    let spec = pinned.spec.get_or_insert_default();
    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
    match api
        .create(
            &PostParams::default(),
            &pod_from_template(&pinned, ds, &format!("{}-", ds.name_any())),
        )
        .await
    {
        Ok(pod) => {
            let message = format!("Created pod: {}", pod.name_any());
            event(client, ds, "Normal", "SuccessfulCreate", &message).await;
            Ok(())
        }
        // A namespace being deleted refuses every creation; nothing to report.
        Err(kube::Error::Api(status)) if status.reason == "Forbidden" && status.message.contains("terminat") => Ok(()),
        Err(err) => {
            let message = format!("Error creating: {}", api_message(&err));
            event(client, ds, "Warning", "FailedCreate", &message).await;
            Err(err.into())
        }
    }
}

async fn delete_pod(client: &kube::Client, api: &Api<Pod>, ds: &DaemonSet, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            event(
                client,
                ds,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {name}"),
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => {
            let message = format!("Error deleting: {}", api_message(&err));
            event(client, ds, "Warning", "FailedDelete", &message).await;
            Err(err.into())
        }
    }
}

/// What a Go client's error prints: the API status message.
pub(crate) fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

async fn event(client: &kube::Client, ds: &DaemonSet, type_: &str, reason: &str, message: &str) {
    record_event(client, &object_reference(ds), type_, reason, message, COMPONENT).await;
}

/// Upstream's `storeDaemonSetStatus`: written when a count changed or a
/// newer generation was observed.
async fn update_status(client: &kube::Client, ds: &DaemonSet, status: &DaemonSetStatus) -> Result<(), Error> {
    let current = ds.status.clone().unwrap_or_default();
    let counts = |s: &DaemonSetStatus| {
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_misscheduled,
            s.number_ready,
            s.updated_number_scheduled.unwrap_or(0),
            s.number_available.unwrap_or(0),
            s.number_unavailable.unwrap_or(0),
        )
    };
    let observed = current.observed_generation.unwrap_or(0) >= ds.metadata.generation.unwrap_or(0);
    if counts(&current) == counts(status) && observed {
        return Ok(());
    }
    let patch = json!({"status": {
        "observedGeneration": status.observed_generation,
        "desiredNumberScheduled": status.desired_number_scheduled,
        "currentNumberScheduled": status.current_number_scheduled,
        "numberMisscheduled": status.number_misscheduled,
        "numberReady": status.number_ready,
        "updatedNumberScheduled": status.updated_number_scheduled,
        "numberAvailable": status.number_available,
        "numberUnavailable": status.number_unavailable,
    }});
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ds.namespace().unwrap_or_default());
    api.patch_status(&ds.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn node(name: &str, labels: &[(&str, &str)], taints: Value) -> Arc<Node> {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}}))
                .unwrap(),
        )
    }

    fn daemon_set(extra_spec: Value, strategy: Value) -> DaemonSet {
        let mut pod_spec = json!({"containers": [{"name": "c", "image": "agent:1"}]});
        pod_spec
            .as_object_mut()
            .unwrap()
            .extend(extra_spec.as_object().unwrap().clone());
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 2,
                         "annotations": {TEMPLATE_GENERATION: "2"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "updateStrategy": strategy,
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": pod_spec}}
        }))
        .unwrap()
    }

    fn rolling(surge: i32, unavailable: i32) -> Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    /// A pod on `node` made from revision `hash`, created at second `created`.
    fn pod(name: &str, node: &str, hash: &str, ready: bool, created: i64) -> Pod {
        let conditions = if ready {
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}])
        } else {
            json!([])
        };
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "agent", REVISION_LABEL: hash}},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": "Running", "conditions": conditions}
        }))
        .unwrap();
        pod.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        pod
    }

    fn now() -> Timestamp {
        Timestamp::from_second(2_000_000_000).unwrap()
    }

    #[test]
    fn node_eligibility_follows_selector_affinity_and_taints() {
        let spec = |extra: Value| daemon_set(extra, rolling(0, 1)).spec.unwrap().template.spec.unwrap();
        let plain = node("n", &[("disk", "ssd")], json!([]));
        let taint = |key: &str, effect: &str| node("n", &[], json!([{"key": key, "value": "x", "effect": effect}]));
        assert_eq!(node_should_run(&plain, &spec(json!({}))), (true, true));
        assert_eq!(
            node_should_run(&plain, &spec(json!({"nodeSelector": {"disk": "hdd"}}))),
            (false, false)
        );
        let affinity = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}});
        assert_eq!(node_should_run(&plain, &spec(affinity)), (true, true));
        assert_eq!(
            node_should_run(&plain, &spec(json!({"nodeName": "other"}))),
            (false, false)
        );
        // NoSchedule keeps new pods away but lets a running one stay; NoExecute evicts.
        assert_eq!(
            node_should_run(&taint("dedicated", "NoSchedule"), &spec(json!({}))),
            (false, true)
        );
        assert_eq!(
            node_should_run(&taint("dedicated", "NoExecute"), &spec(json!({}))),
            (false, false)
        );
        let tolerating = json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]});
        assert_eq!(
            node_should_run(&taint("dedicated", "NoExecute"), &spec(tolerating)),
            (true, true)
        );
        // What every daemon pod tolerates.
        for (key, effect) in [
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
        ] {
            assert_eq!(
                node_should_run(&taint(key, effect), &spec(json!({}))),
                (true, true),
                "{key}"
            );
        }
        let network = taint("node.kubernetes.io/network-unavailable", "NoSchedule");
        assert!(!node_should_run(&network, &spec(json!({}))).0);
        assert!(node_should_run(&network, &spec(json!({"hostNetwork": true}))).0);
    }

    #[test]
    fn daemon_tolerations_replace_a_timed_one() {
        let spec: PodSpec = serde_json::from_value(json!({"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]}))
        .unwrap();
        let tolerations = daemon_tolerations(&spec);
        assert_eq!(tolerations.len(), 6);
        assert_eq!(tolerations[0].key.as_deref(), Some("node.kubernetes.io/not-ready"));
        assert_eq!(
            tolerations[0].toleration_seconds, None,
            "daemon pods are never evicted for it"
        );
    }

    #[test]
    fn pods_are_pinned_by_node_affinity() {
        let affinity = pin_to_node(None, "n1");
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "affinity": affinity}}),
        )
        .unwrap();
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
        let scheduled = self::pod("p", "n2", "h", false, 1);
        assert_eq!(target_node(&scheduled).as_deref(), Some("n2"));
    }

    #[test]
    fn manage_creates_on_eligible_nodes_and_removes_the_rest() {
        let ds = daemon_set(json!({"nodeSelector": {"role": "edge"}}), rolling(0, 1));
        let nodes = [
            node("a", &[("role", "edge")], json!([])),
            node("b", &[], json!([])),
            node("c", &[("role", "edge")], json!([{"key": "k", "effect": "NoSchedule"}])),
            node("d", &[("role", "edge")], json!([])),
        ];
        let mut failed = pod("on-d", "d", "h1", false, 1);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let mut unscheduled = pod("lost", "", "h1", false, 1);
        unscheduled.spec.as_mut().unwrap().affinity = Some(pin_to_node(None, "gone"));
        let pods = [pod("on-b", "b", "h1", true, 1), failed, unscheduled];
        let daemon = Daemon::new(&ds, &nodes, &pods, "h1", now());
        let changes = daemon.manage();
        assert_eq!(changes.create_on, ["a"]);
        assert_eq!(changes.delete, ["on-b", "on-d", "lost"]);
        assert_eq!(changes.events[0].1, "FailedDaemonPod");
        assert_eq!(
            changes.events[0].2,
            "Found failed daemon pod default/on-d on node d, will try to kill it"
        );
    }

    #[test]
    fn manage_keeps_only_the_oldest_pod_without_surge() {
        let ds = daemon_set(json!({}), rolling(0, 1));
        let nodes = [node("a", &[], json!([]))];
        let pods = [pod("new", "a", "h1", true, 5), pod("old", "a", "h1", true, 1)];
        let changes = Daemon::new(&ds, &nodes, &pods, "h1", now()).manage();
        assert_eq!((changes.create_on.len(), changes.delete), (0, vec!["new".to_string()]));
    }

    fn three_nodes() -> [Arc<Node>; 3] {
        [
            node("a", &[], json!([])),
            node("b", &[], json!([])),
            node("c", &[], json!([])),
        ]
    }

    #[test]
    fn rolling_update_deletes_within_max_unavailable() {
        let ds = daemon_set(json!({}), rolling(0, 1));
        let nodes = three_nodes();
        let all_old = [
            pod("pa", "a", "old", true, 1),
            pod("pb", "b", "old", true, 1),
            pod("pc", "c", "old", true, 1),
        ];
        let changes = Daemon::new(&ds, &nodes, &all_old, "new", now()).rolling_update();
        assert_eq!(changes.delete, ["pa"], "one at a time");
        // A new pod not yet available uses up the budget.
        let in_progress = [
            pod("na", "a", "new", false, 2),
            pod("pb", "b", "old", true, 1),
            pod("pc", "c", "old", true, 1),
        ];
        assert_eq!(
            Daemon::new(&ds, &nodes, &in_progress, "new", now()).rolling_update(),
            Changes::default()
        );
        // An unavailable old pod is replaced regardless.
        let broken = [
            pod("na", "a", "new", false, 2),
            pod("pb", "b", "old", false, 1),
            pod("pc", "c", "old", true, 1),
        ];
        assert_eq!(
            Daemon::new(&ds, &nodes, &broken, "new", now()).rolling_update().delete,
            ["pb"]
        );
        // A node without a pod counts as unavailable (manage creates it).
        let missing = [pod("pb", "b", "old", true, 1), pod("pc", "c", "old", true, 1)];
        assert_eq!(
            Daemon::new(&ds, &nodes, &missing, "new", now()).rolling_update(),
            Changes::default()
        );
    }

    #[test]
    fn rolling_update_with_surge_creates_then_retires() {
        let ds = daemon_set(json!({}), rolling(1, 0));
        let nodes = three_nodes();
        let all_old = [
            pod("pa", "a", "old", true, 1),
            pod("pb", "b", "old", true, 1),
            pod("pc", "c", "old", true, 1),
        ];
        let changes = Daemon::new(&ds, &nodes, &all_old, "new", now()).rolling_update();
        assert_eq!((changes.create_on, changes.delete.len()), (vec!["a".to_string()], 0));
        let surged = [
            pod("na", "a", "new", true, 2),
            pod("pa", "a", "old", true, 1),
            pod("pb", "b", "old", true, 1),
        ];
        let changes = Daemon::new(&ds, &nodes, &surged, "new", now()).rolling_update();
        assert_eq!(changes.delete, ["pa"], "the replacement is available");
        assert_eq!(changes.create_on, ["b"]);
    }

    #[test]
    fn percentages_round_up_and_zero_budget_means_one() {
        let nodes = three_nodes();
        let ds = daemon_set(
            json!({}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}),
        );
        assert_eq!(Daemon::new(&ds, &nodes, &[], "h", now()).budget, (0, 1));
        let ds = daemon_set(json!({}), rolling(0, 0));
        assert_eq!(Daemon::new(&ds, &nodes, &[], "h", now()).budget, (0, 1));
    }

    #[test]
    fn status_counts_each_nodes_oldest_pod() {
        let ds = daemon_set(json!({"nodeSelector": {"role": "edge"}}), rolling(0, 1));
        let nodes = [
            node("a", &[("role", "edge")], json!([])),
            node("b", &[("role", "edge")], json!([])),
            node("c", &[("role", "edge")], json!([])),
            node("x", &[], json!([])),
        ];
        let pods = [
            pod("pa", "a", "new", true, 1),
            pod("pb", "b", "old", false, 1),
            pod("px", "x", "new", true, 1),
        ];
        let status = Daemon::new(&ds, &nodes, &pods, "new", now()).status();
        assert_eq!(
            (
                status.desired_number_scheduled,
                status.current_number_scheduled,
                status.number_misscheduled
            ),
            (3, 2, 1)
        );
        assert_eq!(status.number_ready, 1);
        assert_eq!(status.updated_number_scheduled, Some(1));
        assert_eq!((status.number_available, status.number_unavailable), (Some(1), Some(2)));
        assert_eq!(status.observed_generation, Some(2));
    }

    #[test]
    fn pod_template_carries_revision_labels_and_tolerations() {
        let ds = daemon_set(json!({}), rolling(0, 1));
        let template = Daemon::new(&ds, &[], &[], "h1", now()).pod_template();
        let labels = template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels[REVISION_LABEL], "h1");
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "2");
        assert_eq!(template.spec.unwrap().tolerations.unwrap().len(), 6);
    }

    #[test]
    fn only_placement_changes_of_nodes_wake_daemon_sets() {
        let with = |labels: &[(&str, &str)], taints: Value| (*node("n", labels, taints)).clone();
        let events = vec![
            Ok(watcher::Event::InitApply(with(&[("a", "1")], json!([])))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(with(&[("a", "1")], json!([])))),
            Ok(watcher::Event::Apply(with(&[("a", "2")], json!([])))),
            Ok(watcher::Event::Apply(with(
                &[("a", "2")],
                json!([{"key": "k", "effect": "NoSchedule"}]),
            ))),
            Ok(watcher::Event::Delete(with(&[("a", "2")], json!([])))),
        ];
        let woken: Vec<Node> = futures::executor::block_on(
            placement_changes(futures::stream::iter(events))
                .map(Result::unwrap)
                .collect(),
        );
        assert_eq!(woken.len(), 4, "the heartbeat-like repeat is dropped");
    }

    #[test]
    fn history_keeps_the_limit_and_live_revisions() {
        let revision = |n: i64, hash: &str| ControllerRevision {
            metadata: ObjectMeta {
                name: Some(format!("agent-{hash}")),
                labels: Some(BTreeMap::from([(REVISION_LABEL.to_string(), hash.to_string())])),
                ..ObjectMeta::default()
            },
            data: None,
            revision: n,
        };
        let old = vec![revision(3, "c"), revision(1, "a"), revision(2, "b")];
        let live = HashSet::from(["a".to_string()]);
        assert_eq!(history_to_delete(old.clone(), &live, 1), ["agent-b", "agent-c"]);
        assert_eq!(history_to_delete(old, &HashSet::new(), 2), ["agent-a"]);
    }
}
