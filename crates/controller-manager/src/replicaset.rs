//! ReplicaSets: keep `spec.replicas` pods from `spec.template` alive
//! (upstream's replicaset controller).
//!
//! The code is generic over [`Replicated`], as upstream runs this same
//! controller for ReplicationControllers (see [`crate::replication`]); the
//! trait hides what differs: the selector's shape and the kind.
//!
//! Pods are listed from the API server on every reconcile rather than
//! from an informer cache, so pods created by an earlier reconcile are
//! always seen: that consistent read is what upstream's "expectations"
//! emulate on top of a lagging cache, and it is what keeps us from
//! creating too many pods. kube-runtime never reconciles one object twice
//! at once, so no two reconciles race for the same ReplicaSet.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::Error;
use crate::informer::PodChanges;

/// Upstream's `burstReplicas`: at most this many creations or deletions per sync.
const BURST_REPLICAS: usize = 500;
/// Lower cost pods are deleted first (upstream's PodDeletionCost).
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// An object that keeps a number of pods from a template alive: a
/// ReplicaSet or a ReplicationController.
pub(crate) trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + serde::Serialize
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The event source, as upstream names the controller.
    const COMPONENT: &'static str;
    fn selector(&self) -> Option<LabelSelector>;
    fn replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The status counts last written.
    fn counts(&self) -> Option<Counts>;
}

/// The accessors ReplicaSets and ReplicationControllers spell alike.
macro_rules! same_shape_accessors {
    () => {
        fn replicas(&self) -> i32 {
            self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
        }
        fn min_ready_seconds(&self) -> i32 {
            self.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
        }
        fn template(&self) -> Option<&PodTemplateSpec> {
            self.spec.as_ref().and_then(|s| s.template.as_ref())
        }
        fn counts(&self) -> Option<Counts> {
            self.status.as_ref().map(|s| Counts {
                replicas: s.replicas,
                fully_labeled: s.fully_labeled_replicas.unwrap_or(0),
                ready: s.ready_replicas.unwrap_or(0),
                available: s.available_replicas.unwrap_or(0),
                observed_generation: s.observed_generation.unwrap_or(0),
            })
        }
    };
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
    same_shape_accessors!();
}

/// ReplicationControllers select by a plain label map.
impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    fn selector(&self) -> Option<LabelSelector> {
        let labels = self.spec.as_ref().and_then(|s| s.selector.clone())?;
        Some(LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        })
    }
    same_shape_accessors!();
}

pub async fn run(client: kube::Client, pods: PodChanges) {
    run_for::<ReplicaSet>(client, pods).await
}

/// Runs the controller for one kind of [`Replicated`] object.
pub(crate) async fn run_for<K: Replicated>(client: kube::Client, pods: PodChanges) {
    let sets: Api<K> = Api::all(client.clone());
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    // Owned pods map to their owner; orphans to every set that could adopt them.
    let mapper = move |pod: Pod| owners_or_adopters::<K>(&store, &pod, K::selector);
    controller
        .watches_stream(pods, mapper)
        .run(reconcile::<K>, error_policy::<K>, Arc::new(client))
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The objects a dependent's change concerns: its controller if it has
/// one, else every object of kind `K` in its namespace whose selector
/// matches it (who may adopt it).
pub(crate) fn owners_or_adopters<K>(
    store: &Store<K>,
    dependent: &impl Resource,
    selector: impl Fn(&K) -> Option<LabelSelector>,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let namespace = dependent.meta().namespace.clone().unwrap_or_default();
    if let Some(owner) = controller_of(dependent.meta()) {
        if owner.kind != K::kind(&()) {
            return Vec::new();
        }
        return vec![ObjectRef::new(&owner.name).within(&namespace)];
    }
    let labels = dependent.meta().labels.clone().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace.as_str()))
        .filter(|o| selector(o).is_some_and(|s| selector_matches(&s, &labels)))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

async fn reconcile<K: Replicated>(rs: Arc<K>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let namespace = rs.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced((*client).clone(), &namespace);
    let all = pods_api.list(&ListParams::default()).await?.items;
    let selector = rs.selector().unwrap_or_default();
    let owned = claim(&pods_api, &*rs, &selector, all).await?;
    let active: Vec<Pod> = owned.into_iter().filter(is_active).collect();
    if rs.meta().deletion_timestamp.is_none() {
        manage_replicas(&client, &*rs, &active).await?;
    }
    let status = compute_status(&*rs, &active, Timestamp::now());
    update_status(&client, &*rs, &status).await?;
    Ok(requeue_for_availability(
        &active,
        rs.min_ready_seconds(),
        Timestamp::now(),
    ))
}

/// Creates or deletes pods so that `spec.replicas` active pods exist.
async fn manage_replicas<K: Replicated>(client: &kube::Client, rs: &K, active: &[Pod]) -> Result<(), Error> {
    let wanted = rs.replicas().max(0) as usize;
    match active.len().cmp(&wanted) {
        Ordering::Less => create_pods(client, rs, (wanted - active.len()).min(BURST_REPLICAS)).await,
        Ordering::Greater => delete_pods(client, rs, active, (active.len() - wanted).min(BURST_REPLICAS)).await,
        Ordering::Equal => Ok(()),
    }
}

/// Creates `count` pods in upstream's "slow start" batches (1, 2, 4, …), so
/// that a failing creation (quota, admission) fails once rather than
/// `count` times.
async fn create_pods<K: Replicated>(client: &kube::Client, rs: &K, count: usize) -> Result<(), Error> {
    let Some(template) = rs.template() else {
        return Ok(());
    };
    let pod = pod_from_template(template, rs, &format!("{}-", rs.name_any()));
    let api: Api<Pod> = Api::namespaced(client.clone(), &rs.namespace().unwrap_or_default());
    let params = PostParams::default();
    let mut remaining = count;
    let mut batch = 1;
    while remaining > 0 {
        let size = batch.min(remaining);
        let results = futures::future::join_all((0..size).map(|_| api.create(&params, &pod))).await;
        for result in results {
            let created = result?;
            let message = format!("Created pod: {}", created.name_any());
            record_event(
                client,
                &object_reference(rs),
                "Normal",
                "SuccessfulCreate",
                &message,
                K::COMPONENT,
            )
            .await;
        }
        remaining -= size;
        batch *= 2;
    }
    Ok(())
}

/// A pod for `owner` from `template`, named `generate_name` + 5 random
/// chars, with a controller reference that blocks the owner's foreground
/// deletion.
pub(crate) fn pod_from_template<K: Resource<DynamicType = ()>>(
    template: &PodTemplateSpec,
    owner: &K,
    generate_name: &str,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name.to_string()),
            namespace: owner.meta().namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![controller_reference(owner)]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

async fn delete_pods<K: Replicated>(client: &kube::Client, rs: &K, active: &[Pod], count: usize) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &rs.namespace().unwrap_or_default());
    let now = Timestamp::now();
    let mut ranked: Vec<&Pod> = active.iter().collect();
    ranked.sort_by(|a, b| deletion_order(a, b, now));
    for pod in ranked.into_iter().take(count) {
        match api.delete(&pod.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(err) => return Err(err.into()),
        }
        let message = format!("Deleted pod: {}", pod.name_any());
        record_event(
            client,
            &object_reference(rs),
            "Normal",
            "SuccessfulDelete",
            &message,
            K::COMPONENT,
        )
        .await;
    }
    Ok(())
}

/// Upstream's `ActivePods` ordering: `Less` means "delete `a` first".
/// Unscheduled before scheduled, pending before unknown before running,
/// not ready before ready, cheaper deletion cost first, ready for less
/// time first, more restarts first, newer first.
pub(crate) fn deletion_order(a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    };
    let cost = |p: &Pod| {
        p.annotations()
            .get(DELETION_COST)
            .and_then(|c| c.parse::<i32>().ok())
            .unwrap_or(0)
    };
    scheduled(a)
        .cmp(&scheduled(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(is_ready(a).cmp(&is_ready(b)))
        .then(cost(a).cmp(&cost(b)))
        .then_with(|| ready_order(a, b, now))
        .then(restarts(b).cmp(&restarts(a)))
        .then(created(b).cmp(&created(a)))
}

/// Between two ready pods, the one ready for less time goes first.
fn ready_order(a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    if !(is_ready(a) && is_ready(b)) {
        return Ordering::Equal;
    }
    let since = |p: &Pod| {
        ready_condition(p)
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or(now, |t| t.0)
    };
    since(b).cmp(&since(a))
}

fn restarts(pod: &Pod) -> i32 {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Not finished and not being deleted: the pods that count as replicas.
pub(crate) fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref())?;
    conditions.iter().find(|c| c.type_ == "Ready")
}

pub(crate) fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Ready for at least `min_ready` seconds.
pub(crate) fn is_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    let since = ready_condition(pod).and_then(|c| c.last_transition_time.as_ref());
    since.is_some_and(|t| t.0 + k8s_openapi::jiff::SignedDuration::from_secs(min_ready.into()) <= now)
}

/// A ready-but-not-yet-available pod becomes available by itself with
/// time: come back then, as upstream does.
fn requeue_for_availability(active: &[Pod], min_ready: i32, now: Timestamp) -> Action {
    let waiting = active.iter().any(|p| is_ready(p) && !is_available(p, min_ready, now));
    if waiting {
        Action::requeue(Duration::from_secs(1))
    } else {
        Action::await_change()
    }
}

/// The fields of `ReplicaSetStatus` this controller owns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub replicas: i32,
    pub fully_labeled: i32,
    pub ready: i32,
    pub available: i32,
    pub observed_generation: i64,
}

pub(crate) fn compute_status<K: Replicated>(rs: &K, active: &[Pod], now: Timestamp) -> Counts {
    let min_ready = rs.min_ready_seconds();
    let template_labels = rs
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    Counts {
        replicas: active.len() as i32,
        fully_labeled: count(&|p| template_labels.iter().all(|(k, v)| p.labels().get(k) == Some(v))),
        ready: count(&is_ready),
        available: count(&|p| is_available(p, min_ready, now)),
        observed_generation: rs.meta().generation.unwrap_or(0),
    }
}

/// Writes the status when it changed; zero counts are omitted as upstream's
/// `omitempty` does.
async fn update_status<K: Replicated>(client: &kube::Client, rs: &K, counts: &Counts) -> Result<(), Error> {
    if rs.counts().as_ref() == Some(counts) {
        return Ok(());
    }
    let omit_zero = |n: i32| if n == 0 { Value::Null } else { n.into() };
    let patch = json!({"status": {
        "replicas": counts.replicas,
        "fullyLabeledReplicas": omit_zero(counts.fully_labeled),
        "readyReplicas": omit_zero(counts.ready),
        "availableReplicas": omit_zero(counts.available),
        "observedGeneration": counts.observed_generation,
    }});
    let api: Api<K> = Api::namespaced(client.clone(), &rs.namespace().unwrap_or_default());
    api.patch_status(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn error_policy<K: Replicated>(_: Arc<K>, error: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(%error, controller = K::COMPONENT, "reconcile failed");
    Action::requeue(Duration::from_secs(1))
}

// ---- Shared with the deployment controller ----

/// The ownerReference a controller puts on what it creates.
pub(crate) fn controller_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Upstream's controller-ref manager: adopts orphans matching the
/// selector, releases owned objects that no longer match, and returns what
/// the owner controls. An owner being deleted adopts nothing, and an empty
/// selector matches nothing.
pub(crate) async fn claim<O, D>(api: &Api<D>, owner: &O, selector: &LabelSelector, all: Vec<D>) -> Result<Vec<D>, Error>
where
    O: Resource<DynamicType = ()>,
    D: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    claim_where(api, owner, all, |object| {
        selector_matches(selector, object.meta().labels.as_ref().unwrap_or(&BTreeMap::new()))
    })
    .await
}

/// [`claim`] with any test of what the owner should control (upstream's
/// selector plus `ClaimPods` filters).
pub(crate) async fn claim_where<O, D>(
    api: &Api<D>,
    owner: &O,
    all: Vec<D>,
    belongs: impl Fn(&D) -> bool,
) -> Result<Vec<D>, Error>
where
    O: Resource<DynamicType = ()>,
    D: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let owner_deleting = owner.meta().deletion_timestamp.is_some();
    let mut claimed = Vec::new();
    for object in all {
        let matches = belongs(&object);
        let deleting = object.meta().deletion_timestamp.is_some();
        match controller_of(object.meta()) {
            Some(r) if r.uid != uid => {}
            Some(_) if matches || deleting => claimed.push(object),
            Some(_) => {
                set_owner_references(api, &object, release(&object, &uid)).await?;
            }
            None if matches && !deleting && !owner_deleting => {
                let mut refs = object.meta().owner_references.clone().unwrap_or_default();
                refs.push(controller_reference(owner));
                claimed.push(set_owner_references(api, &object, refs).await?);
            }
            None => {}
        }
    }
    Ok(claimed)
}

fn release<D: Resource>(object: &D, uid: &str) -> Vec<OwnerReference> {
    let refs = object.meta().owner_references.iter().flatten();
    refs.filter(|r| r.uid != uid).cloned().collect()
}

/// Replaces an object's ownerReferences, guarded by its resourceVersion so
/// that a concurrent adoption by another controller makes us retry.
async fn set_owner_references<D>(api: &Api<D>, object: &D, refs: Vec<OwnerReference>) -> Result<D, Error>
where
    D: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": object.meta().resource_version,
        "uid": object.meta().uid,
    }});
    Ok(api
        .patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

/// Label selector semantics; an empty (or absent) selector matches nothing,
/// as for controllers upstream.
pub(crate) fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector.match_labels.as_ref().filter(|m| !m.is_empty());
    let expressions = selector.match_expressions.as_ref().filter(|e| !e.is_empty());
    if match_labels.is_none() && expressions.is_none() {
        return false;
    }
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_ok
        && expressions.into_iter().flatten().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
}

pub(crate) fn object_reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(K::kind(&()).to_string()),
        name: object.meta().name.clone(),
        namespace: object.meta().namespace.clone(),
        uid: object.meta().uid.clone(),
        resource_version: object.meta().resource_version.clone(),
        field_path: None,
    }
}

/// Records a core/v1 Event the way upstream's event recorder does (what
/// `kubectl describe` lists). Failing to record is logged, not fatal.
pub(crate) async fn record_event(
    client: &kube::Client,
    involved: &ObjectReference,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let now = Timestamp::now();
    let name = format!(
        "{}.{:x}",
        involved.name.clone().unwrap_or_default(),
        now.as_nanosecond()
    );
    let namespace = involved.namespace.clone().unwrap_or_else(|| "default".into());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: involved.clone(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(component.into()),
        reporting_instance: Some(component.into()),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Err(error) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(%error, reason, "recording an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: Option<i64>, created: i64) -> Pod {
        let conditions = ready.map(|at| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(Timestamp::from_second(at).unwrap())),
                ..PodCondition::default()
            }]
        });
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions,
                ..PodStatus::default()
            }),
        }
    }

    fn order(pods: Vec<Pod>) -> Vec<String> {
        let now = Timestamp::from_second(1000).unwrap();
        let mut pods = pods;
        pods.sort_by(|a, b| deletion_order(a, b, now));
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn deletion_prefers_unscheduled_pending_unready_then_newest() {
        let cases = [
            (
                vec![
                    pod("on-node", Some("n"), "Pending", None, 1),
                    pod("none", None, "Pending", None, 1),
                ],
                ["none", "on-node"],
            ),
            (
                vec![
                    pod("running", Some("n"), "Running", None, 1),
                    pod("pending", Some("n"), "Pending", None, 1),
                ],
                ["pending", "running"],
            ),
            (
                vec![
                    pod("ready", Some("n"), "Running", Some(5), 1),
                    pod("unready", Some("n"), "Running", None, 1),
                ],
                ["unready", "ready"],
            ),
            (
                vec![
                    pod("long", Some("n"), "Running", Some(5), 1),
                    pod("short", Some("n"), "Running", Some(50), 1),
                ],
                ["short", "long"],
            ),
            (
                vec![
                    pod("old", None, "Pending", None, 1),
                    pod("new", None, "Pending", None, 2),
                ],
                ["new", "old"],
            ),
        ];
        for (pods, expected) in cases {
            assert_eq!(order(pods), expected);
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = Timestamp::from_second(100).unwrap();
        let p = pod("p", None, "Running", Some(95), 1);
        assert!(is_available(&p, 0, now));
        assert!(is_available(&p, 5, now));
        assert!(!is_available(&p, 6, now));
        assert!(!is_available(&pod("q", None, "Running", None, 1), 0, now));
    }

    #[test]
    fn selectors_match_as_upstream() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let by_label = |k: &str, v: &str| LabelSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            match_expressions: None,
        };
        assert!(selector_matches(&by_label("app", "web"), &labels));
        assert!(!selector_matches(&by_label("app", "db"), &labels));
        assert!(
            !selector_matches(&LabelSelector::default(), &labels),
            "empty selects nothing"
        );
    }
}
