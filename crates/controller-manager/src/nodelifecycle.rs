//! Node lifecycle (upstream's node lifecycle controller, with its
//! TaintNodesByCondition pass, and the TaintEvictionController).
//!
//! Every `--node-monitor-period` the monitor looks at every node's
//! heartbeats — its Lease's `renewTime` in `kube-node-lease` and its Ready
//! condition's `lastHeartbeatTime`. When neither has changed for
//! `--node-monitor-grace-period` (`--node-startup-grace-period` for a
//! node that never posted Ready), the node's conditions become Unknown
//! ("Kubelet stopped posting node status."). Heartbeat changes are timed
//! on the controller's own clock, as upstream does, so clock skew between
//! machines does not matter; a restarted controller gives every node a new
//! grace period.
//!
//! Conditions become taints: NoSchedule taints for not-ready, unreachable,
//! pressure and unschedulable nodes at once; the NoExecute not-ready or
//! unreachable taint at upstream's per-zone rate — `--node-eviction-rate`
//! nodes/s in a healthy zone, `--secondary-node-eviction-rate` in a
//! partially disrupted one (none when the zone has at most
//! `--large-cluster-size-threshold` nodes), and no NoExecute taints at all
//! when every zone is fully disrupted (the control plane is the likely
//! culprit). The limiter is a token bucket per zone with a burst of one,
//! kept between passes, rather than upstream's timed work queues. Pods on a
//! node that is not Ready get `Ready=False`.
//!
//! Taint eviction is a pod reconciler: a pod on a node with NoExecute taints
//! it does not tolerate is deleted at once; one tolerating them for
//! `tolerationSeconds` is deleted that long after the earliest taint's
//! `timeAdded` (upstream counts from when it saw the taint; `timeAdded` is
//! the same moment and survives restarts). Each deletion gets the
//! `DisruptionTarget` condition and the `TaintManagerEviction` Event.
//! Upstream's "Cancelling deletion" Event for pods whose taint went away
//! before their time is not emitted: nothing is scheduled to cancel.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use serde_json::json;

use crate::replicaset::{is_ready, object_reference, record_event};
use crate::{ControllerManagerOptions, Error};

const COMPONENT: &str = "node-controller";
const EVICTION_COMPONENT: &str = "taint-eviction-controller";
const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Condition (and status) to NoSchedule taint, upstream's `nodeConditionToTaintKeyStatusMap`.
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    ("MemoryPressure", "True", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("NetworkUnavailable", "True", "node.kubernetes.io/network-unavailable"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];
/// The conditions a silent kubelet's are set Unknown (upstream's list).
const MONITORED: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
const ZONE: &str = "topology.kubernetes.io/zone";
const REGION: &str = "topology.kubernetes.io/region";

pub async fn run(
    client: kube::Client,
    options: ControllerManagerOptions,
    pods: Store<Pod>,
    changes: crate::informer::PodChanges,
) {
    let (nodes, nodes_reflector) = crate::reflect(Api::<Node>::all(client.clone()), watcher::Config::default());
    let leases_api = Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE);
    let (leases, leases_reflector) = crate::reflect(leases_api, watcher::Config::default());
    let eviction = Controller::for_stream(changes, pods.clone());
    let on_node = {
        let pods = pods.clone();
        move |node: Node| pods_to_check(&pods, &node)
    };
    let eviction_context = Arc::new(EvictionContext {
        client: client.clone(),
        nodes: nodes.clone(),
    });
    let eviction = eviction
        .watches(Api::<Node>::all(client.clone()), watcher::Config::default(), on_node)
        .run(reconcile_eviction, eviction_error, eviction_context)
        .for_each(|_| futures::future::ready(()));
    let mut monitor = Monitor {
        client,
        options,
        nodes,
        leases,
        pods,
        health: HashMap::new(),
        limiters: HashMap::new(),
    };
    let monitoring = async move {
        let _ = monitor.nodes.wait_until_ready().await;
        let _ = monitor.leases.wait_until_ready().await;
        let mut tick = tokio::time::interval(monitor.options.node_monitor_period);
        // A slow pass delays the next, as upstream's `wait.Until`; no burst to catch up.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            monitor.pass().await;
        }
    };
    tokio::join!(nodes_reflector, leases_reflector, eviction, monitoring);
}

// ---- Node health ----

/// What the monitor last saw of a node.
#[derive(Debug, Clone, PartialEq)]
struct Health {
    heartbeat: Option<Timestamp>,
    lease: Option<Timestamp>,
    /// When a heartbeat last changed, on our clock.
    probe: Timestamp,
    ready: Option<String>,
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref())?;
    conditions.iter().find(|c| c.type_ == type_)
}

fn ready_status(node: &Node) -> Option<String> {
    condition(node, "Ready").map(|c| c.status.clone())
}

/// Upstream's `tryUpdateNodeHealth` bookkeeping: the probe time moves to
/// `now` whenever the Ready heartbeat or the Lease renewal changed. A node
/// seen for the first time starts its grace period now, or at its
/// creation if it never posted Ready.
fn observe(saved: Option<&Health>, node: &Node, lease: Option<Timestamp>, now: Timestamp) -> Health {
    let heartbeat = condition(node, "Ready")
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let probe = match saved {
        Some(saved) if saved.heartbeat == heartbeat && saved.lease == lease => saved.probe,
        Some(_) => now,
        None if condition(node, "Ready").is_none() => node.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
        None => now,
    };
    Health {
        heartbeat,
        lease,
        probe,
        ready: ready_status(node),
    }
}

fn grace_period(node: &Node, options: &ControllerManagerOptions) -> Duration {
    if condition(node, "Ready").is_some() {
        options.node_monitor_grace_period
    } else {
        options.node_startup_grace_period
    }
}

/// The conditions of a node whose kubelet went silent: each monitored
/// condition Unknown, with upstream's reasons; `None` if already so.
fn silent_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in MONITORED {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

// ---- Zones and the NoExecute rate limit ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// Upstream's `ComputeZoneState`.
fn zone_state(ready: usize, not_ready: usize, unhealthy_threshold: f32) -> ZoneState {
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f32 / (ready + not_ready) as f32 >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// Nodes per second a zone may get NoExecute taints at (upstream's `setLimiterInZone`).
fn eviction_rate(state: ZoneState, zone_size: usize, options: &ControllerManagerOptions) -> f32 {
    match state {
        ZoneState::Normal | ZoneState::FullDisruption => options.node_eviction_rate,
        ZoneState::PartialDisruption if zone_size > options.large_cluster_size_threshold as usize => {
            options.secondary_node_eviction_rate
        }
        ZoneState::PartialDisruption => 0.0,
    }
}

fn zone_of(node: &Node) -> String {
    let labels = node.labels();
    let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
    format!("{}:\u{0}:{}", get(REGION), get(ZONE))
}

/// A token bucket with a burst of one (upstream's limiter per zone).
#[derive(Debug, Clone)]
struct Limiter {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    fn new(now: Instant) -> Limiter {
        Limiter { tokens: 1.0, last: now }
    }

    fn try_take(&mut self, rate: f32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(1.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

// ---- Taints ----

/// The NoSchedule taints a node's conditions and spec call for.
fn no_schedule_taints(node: &Node) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = CONDITION_TAINTS
        .iter()
        .filter(|(type_, status, _)| condition(node, type_).is_some_and(|c| c.status == *status))
        .map(|(_, _, key)| *key)
        .collect();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        keys.push(UNSCHEDULABLE);
    }
    keys
}

/// The NoExecute taint the Ready condition calls for.
fn no_execute_taint(node: &Node) -> Option<&'static str> {
    match ready_status(node).as_deref() {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    }
}

fn managed_no_schedule(key: &str) -> bool {
    key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, k)| *k == key)
}

fn managed_no_execute(key: &str) -> bool {
    key == NOT_READY || key == UNREACHABLE
}

fn current_no_execute(taints: &[Taint]) -> Option<&str> {
    taints
        .iter()
        .find(|t| t.effect == "NoExecute" && managed_no_execute(&t.key))
        .map(|t| t.key.as_str())
}

/// The node's taints with the controller's own replaced by `no_schedule`
/// and `no_execute` (taints already present keep their `timeAdded`); `None`
/// if nothing changes.
fn desired_taints(
    current: &[Taint],
    no_schedule: &[&str],
    no_execute: Option<&str>,
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let keep = |t: &&Taint| match t.effect.as_str() {
        "NoSchedule" => !managed_no_schedule(&t.key) || no_schedule.contains(&t.key.as_str()),
        "NoExecute" => !managed_no_execute(&t.key) || no_execute == Some(t.key.as_str()),
        _ => true,
    };
    let mut taints: Vec<Taint> = current.iter().filter(keep).cloned().collect();
    let wanted = no_schedule
        .iter()
        .map(|k| (*k, "NoSchedule"))
        .chain(no_execute.map(|k| (k, "NoExecute")));
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == effect) {
            taints.push(Taint {
                key: key.into(),
                effect: effect.into(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    (taints.len() != current.len() || taints.iter().zip(current).any(|(a, b)| a != b)).then_some(taints)
}

// ---- The monitor ----

struct Monitor {
    client: kube::Client,
    options: ControllerManagerOptions,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    health: HashMap<String, Health>,
    limiters: HashMap<String, Limiter>,
}

impl Monitor {
    async fn pass(&mut self) {
        let now = Timestamp::now();
        let mut nodes: Vec<Arc<Node>> = self.nodes.state();
        nodes.sort_by_key(|n| n.name_any());
        let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        self.health.retain(|name, _| names.contains(name));
        for node in &mut nodes {
            if let Err(error) = self.check_health(node, now).await {
                tracing::warn!(%error, node = node.name_any(), "node lifecycle: updating node health");
            }
        }
        let zones = self.zone_rates(&nodes);
        let all_disrupted = !zones.is_empty() && zones.values().all(|(state, _)| *state == ZoneState::FullDisruption);
        let pods_by_node = self.pods_by_node(&nodes);
        for node in &nodes {
            let rate = zones
                .get(&zone_of(node))
                .map_or(self.options.node_eviction_rate, |z| z.1);
            if let Err(error) = self.update_taints(node, rate, all_disrupted, now).await {
                tracing::warn!(%error, node = node.name_any(), "node lifecycle: tainting");
            }
            if no_execute_taint(node).is_some() {
                let pods = pods_by_node
                    .get(&node.name_any())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                self.mark_pods_not_ready(node, pods).await;
            }
        }
    }

    /// Marks the node's conditions Unknown once its grace period passed
    /// without a heartbeat; `node` is replaced by what was written.
    async fn check_health(&mut self, node: &mut Arc<Node>, now: Timestamp) -> Result<(), Error> {
        let name = node.name_any();
        let lease = self
            .leases
            .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE))
            .and_then(|l| l.spec.as_ref().and_then(|s| s.renew_time.as_ref()).map(|t| t.0));
        let health = observe(self.health.get(&name), node, lease, now);
        let previous_ready = self.health.get(&name).and_then(|h| h.ready.clone());
        let expired =
            health.probe + SignedDuration::try_from(grace_period(node, &self.options)).unwrap_or_default() < now;
        self.health.insert(name.clone(), health);
        if expired && let Some(conditions) = silent_conditions(node, now) {
            let mut silent = (**node).clone();
            silent.status.get_or_insert_with(Default::default).conditions = Some(conditions);
            let api: Api<Node> = Api::all(self.client.clone());
            *node = Arc::new(api.replace_status(&name, &PostParams::default(), &silent).await?);
            tracing::info!(node = name, "node stopped posting status; conditions set to Unknown");
        }
        let ready = ready_status(node);
        if let Some(h) = self.health.get_mut(&name) {
            h.ready = ready.clone();
        }
        if previous_ready.as_deref() == Some("True") && ready.as_deref() != Some("True") {
            let message = format!("Node {name} status is now: NodeNotReady");
            record_event(
                &self.client,
                &object_reference(node.as_ref()),
                "Normal",
                "NodeNotReady",
                &message,
                COMPONENT,
            )
            .await;
        }
        Ok(())
    }

    /// Each zone's state and NoExecute rate.
    fn zone_rates(&self, nodes: &[Arc<Node>]) -> HashMap<String, (ZoneState, f32)> {
        let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
        for node in nodes {
            let entry = counts.entry(zone_of(node)).or_default();
            if ready_status(node).as_deref() == Some("True") {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        counts
            .into_iter()
            .map(|(zone, (ready, not_ready))| {
                let state = zone_state(ready, not_ready, self.options.unhealthy_zone_threshold);
                let rate = eviction_rate(state, ready + not_ready, &self.options);
                (zone, (state, rate))
            })
            .collect()
    }

    fn pods_by_node(&self, nodes: &[Arc<Node>]) -> HashMap<String, Vec<Arc<Pod>>> {
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        if nodes.iter().all(|n| no_execute_taint(n).is_none()) {
            return by_node;
        }
        for pod in self.pods.state() {
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
                by_node.entry(node).or_default().push(pod);
            }
        }
        by_node
    }

    /// Brings the controller's taints in line with the node's conditions;
    /// a new NoExecute taint waits for its zone's limiter.
    async fn update_taints(
        &mut self,
        node: &Node,
        rate: f32,
        all_disrupted: bool,
        now: Timestamp,
    ) -> Result<(), Error> {
        let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let wanted = if all_disrupted { None } else { no_execute_taint(node) };
        let present = current_no_execute(&current);
        let no_execute = match (present, wanted) {
            // Swapping not-ready for unreachable (or back) and removing are immediate.
            (Some(_), _) | (None, None) => wanted,
            (None, Some(_)) => {
                let limiter = self
                    .limiters
                    .entry(zone_of(node))
                    .or_insert_with(|| Limiter::new(Instant::now()));
                if limiter.try_take(rate, Instant::now()) {
                    wanted
                } else {
                    None
                }
            }
        };
        let Some(taints) = desired_taints(&current, &no_schedule_taints(node), no_execute, now) else {
            return Ok(());
        };
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": taints},
        });
        let api: Api<Node> = Api::all(self.client.clone());
        api.patch(&node.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Upstream's `MarkPodsNotReady`: the pods of a node that is not Ready are not ready either.
    async fn mark_pods_not_ready(&self, node: &Node, pods: &[Arc<Pod>]) {
        let live = |p: &&Arc<Pod>| p.metadata.deletion_timestamp.is_none();
        for pod in pods.iter().filter(live).filter(|p| is_ready(p)) {
            // Guarded by the resourceVersion: a pod whose deletion began meanwhile is left alone.
            let patch = json!({
                "metadata": {"resourceVersion": pod.resource_version()},
                "status": {"conditions": [
                    {"type": "Ready", "status": "False", "lastTransitionTime": Timestamp::now().to_string()}
                ]},
            });
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
            match api
                .patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {
                    let reference = object_reference(pod.as_ref());
                    record_event(
                        &self.client,
                        &reference,
                        "Warning",
                        "NodeNotReady",
                        "Node is not ready",
                        COMPONENT,
                    )
                    .await;
                }
                Err(error) => tracing::debug!(%error, node = node.name_any(), "marking a pod not ready"),
            }
        }
    }
}

// ---- Taint eviction ----

struct EvictionContext {
    client: kube::Client,
    nodes: Store<Node>,
}

/// The pods to look at when a node changes: those on it, if it has
/// NoExecute taints (a pod whose taint went away simply finds none when
/// its requeue comes).
fn pods_to_check(pods: &Store<Pod>, node: &Node) -> Vec<ObjectRef<Pod>> {
    let tainted = node
        .spec
        .iter()
        .flat_map(|s| s.taints.iter().flatten())
        .any(|t| t.effect == "NoExecute");
    if !tainted {
        return Vec::new();
    }
    let name = node.name_any();
    pods.state()
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// When a pod must leave its node.
#[derive(Debug, Clone, PartialEq)]
enum Eviction {
    Never,
    At(Timestamp),
    Now,
}

/// Upstream's `ToleratesTaint`.
fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    let key = toleration.key.as_deref().unwrap_or_default();
    if (!effect.is_empty() && effect != taint.effect) || (!key.is_empty() && key != taint.key) {
        return false;
    }
    match toleration.operator.as_deref() {
        Some("Exists") => true,
        _ => toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default(),
    }
}

/// Upstream's taint-manager decision: any NoExecute taint not tolerated
/// evicts now; otherwise the shortest `tolerationSeconds` among the
/// tolerations used decides, counted from the earliest taint.
fn eviction(tolerations: &[Toleration], taints: &[Taint], now: Timestamp) -> Eviction {
    let taints: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if taints.is_empty() {
        return Eviction::Never;
    }
    let mut used = Vec::new();
    for taint in &taints {
        let matching: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Eviction::Now;
        }
        used.extend(matching);
    }
    let Some(seconds) = used.iter().filter_map(|t| t.toleration_seconds).map(|s| s.max(0)).min() else {
        return Eviction::Never;
    };
    let start = taints
        .iter()
        .filter_map(|t| t.time_added.as_ref())
        .map(|t| t.0)
        .min()
        .unwrap_or(now);
    let deadline = start + SignedDuration::from_secs(seconds);
    if deadline <= now {
        Eviction::Now
    } else {
        Eviction::At(deadline)
    }
}

async fn reconcile_eviction(pod: Arc<Pod>, context: Arc<EvictionContext>) -> Result<Action, Error> {
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    if node_name.is_empty() || pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(node) = context.nodes.get(&ObjectRef::new(&node_name)) else {
        return Ok(Action::await_change());
    };
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let now = Timestamp::now();
    match eviction(&tolerations, &taints, now) {
        Eviction::Never => Ok(Action::await_change()),
        Eviction::At(deadline) => Ok(Action::requeue(
            deadline.duration_since(now).unsigned_abs() + Duration::from_millis(10),
        )),
        Eviction::Now => {
            evict(&context.client, &pod).await?;
            Ok(Action::await_change())
        }
    }
}

/// Deletes a pod for a NoExecute taint, as upstream's taint manager does.
/// The informer may lag behind an eviction already made, so the pod is read
/// afresh and its condition written guarded by its resourceVersion: a pod
/// already being deleted is left alone.
async fn evict(client: &kube::Client, pod: &Pod) -> Result<(), Error> {
    let namespace = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let Some(current) = api.get_opt(&pod.name_any()).await? else {
        return Ok(());
    };
    if current.metadata.deletion_timestamp.is_some() || current.uid() != pod.uid() {
        return Ok(());
    }
    let message = format!("Marking for deletion Pod {namespace}/{}", pod.name_any());
    let reference = object_reference(pod);
    record_event(
        client,
        &reference,
        "Normal",
        "TaintManagerEviction",
        &message,
        EVICTION_COMPONENT,
    )
    .await;
    let condition = json!({
        "metadata": {"resourceVersion": current.resource_version()},
        "status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": Timestamp::now().to_string(),
        }]},
    });
    let gone = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    let params = PatchParams::default();
    match api
        .patch_status(&pod.name_any(), &params, &Patch::Strategic(condition))
        .await
    {
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Err(e) if !gone(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

fn eviction_error(_: Arc<Pod>, error: &Error, _: Arc<EvictionContext>) -> Action {
    tracing::warn!(%error, "taint eviction controller");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn node(ready: Option<&str>, heartbeat: i64) -> Node {
        let conditions: Vec<serde_json::Value> = ready
            .map(|status| {
                vec![
                    json!({"type": "Ready", "status": status, "lastHeartbeatTime": at(heartbeat).to_string()}),
                    json!({"type": "MemoryPressure", "status": "False"}),
                ]
            })
            .unwrap_or_default();
        serde_json::from_value(json!({
            "metadata": {"name": "n", "creationTimestamp": at(0).to_string(),
                         "labels": {"topology.kubernetes.io/zone": "z1"}},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn probe_time_moves_only_when_a_heartbeat_changes() {
        let n = node(Some("True"), 100);
        let first = observe(None, &n, Some(at(100)), at(1000));
        assert_eq!(first.probe, at(1000), "a node seen first starts its grace period now");
        let same = observe(Some(&first), &n, Some(at(100)), at(1010));
        assert_eq!(same.probe, at(1000));
        let renewed = observe(Some(&same), &n, Some(at(110)), at(1020));
        assert_eq!(renewed.probe, at(1020), "a Lease renewal is a heartbeat");
        let status = observe(Some(&renewed), &node(Some("True"), 120), Some(at(110)), at(1030));
        assert_eq!(status.probe, at(1030), "so is a Ready heartbeat");
        let never = observe(None, &node(None, 0), None, at(1000));
        assert_eq!(
            never.probe,
            at(0),
            "a node that never posted Ready counts from its creation"
        );
    }

    #[test]
    fn grace_periods() {
        let options = ControllerManagerOptions::default();
        assert_eq!(grace_period(&node(Some("True"), 0), &options), Duration::from_secs(50));
        assert_eq!(grace_period(&node(None, 0), &options), Duration::from_secs(60));
    }

    #[test]
    fn a_silent_node_turns_unknown_with_upstream_reasons() {
        let conditions = silent_conditions(&node(Some("True"), 5), at(100)).unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!(
            ready.last_heartbeat_time,
            Some(Time(at(5))),
            "the last heartbeat is kept"
        );
        let disk = conditions.iter().find(|c| c.type_ == "DiskPressure").unwrap();
        assert_eq!(disk.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(disk.message.as_deref(), Some("Kubelet never posted node status."));
        let mut unknown = node(None, 0);
        unknown.status.as_mut().unwrap().conditions = Some(conditions);
        assert_eq!(silent_conditions(&unknown, at(200)), None, "already Unknown: no write");
    }

    #[test]
    fn taints_follow_conditions_and_keep_other_taints() {
        let mut n = node(Some("Unknown"), 0);
        n.spec = Some(
            serde_json::from_value(json!({"unschedulable": true,
            "taints": [{"key": "dedicated", "effect": "NoSchedule"},
                       {"key": NOT_READY, "effect": "NoExecute", "timeAdded": at(1).to_string()}]}))
            .unwrap(),
        );
        assert_eq!(no_schedule_taints(&n), [UNREACHABLE, UNSCHEDULABLE]);
        assert_eq!(no_execute_taint(&n), Some(UNREACHABLE));
        let current = n.spec.as_ref().unwrap().taints.clone().unwrap();
        let taints = desired_taints(&current, &no_schedule_taints(&n), Some(UNREACHABLE), at(9)).unwrap();
        let keys: Vec<(&str, &str)> = taints.iter().map(|t| (t.key.as_str(), t.effect.as_str())).collect();
        assert_eq!(
            keys,
            [
                ("dedicated", "NoSchedule"),
                (UNREACHABLE, "NoSchedule"),
                (UNSCHEDULABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute")
            ]
        );
        assert!(taints.iter().skip(1).all(|t| t.time_added == Some(Time(at(9)))));
        assert_eq!(
            desired_taints(&taints, &no_schedule_taints(&n), Some(UNREACHABLE), at(10)),
            None
        );
        let recovered = desired_taints(&taints, &[], None, at(11)).unwrap();
        assert_eq!(recovered.len(), 1, "only the user's taint is left");
    }

    #[test]
    fn zone_states_and_rates_as_upstream() {
        let options = ControllerManagerOptions::default();
        assert_eq!(zone_state(0, 2, 0.55), ZoneState::FullDisruption);
        assert_eq!(
            zone_state(1, 2, 0.55),
            ZoneState::Normal,
            "at most two not ready is normal"
        );
        assert_eq!(zone_state(2, 3, 0.55), ZoneState::PartialDisruption);
        assert_eq!(zone_state(5, 3, 0.55), ZoneState::Normal);
        assert_eq!(eviction_rate(ZoneState::Normal, 10, &options), 0.1);
        assert_eq!(eviction_rate(ZoneState::FullDisruption, 10, &options), 0.1);
        assert_eq!(eviction_rate(ZoneState::PartialDisruption, 10, &options), 0.0);
        assert_eq!(eviction_rate(ZoneState::PartialDisruption, 51, &options), 0.01);
    }

    #[test]
    fn the_limiter_allows_one_then_waits_for_the_rate() {
        let start = Instant::now();
        let mut limiter = Limiter::new(start);
        assert!(limiter.try_take(0.1, start));
        assert!(!limiter.try_take(0.1, start + Duration::from_secs(5)));
        assert!(limiter.try_take(0.1, start + Duration::from_secs(10)));
        assert!(
            !limiter.try_take(0.0, start + Duration::from_secs(100)),
            "rate 0 stops tainting"
        );
    }

    fn toleration(value: serde_json::Value) -> Toleration {
        serde_json::from_value(value).unwrap()
    }

    fn taint(key: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(at(added))),
            value: None,
        }
    }

    #[test]
    fn eviction_timing_follows_tolerations() {
        let now = at(100);
        let taints = [taint(UNREACHABLE, 95)];
        assert_eq!(eviction(&[], &taints, now), Eviction::Now, "not tolerated");
        let forever = toleration(json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}));
        assert_eq!(eviction(std::slice::from_ref(&forever), &taints, now), Eviction::Never);
        let brief = toleration(json!({"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 2}));
        assert_eq!(
            eviction(std::slice::from_ref(&brief), &taints, now),
            Eviction::Now,
            "95 + 2 is past"
        );
        let long = toleration(json!({"operator": "Exists", "tolerationSeconds": 300}));
        assert_eq!(
            eviction(std::slice::from_ref(&long), &taints, now),
            Eviction::At(at(395))
        );
        assert_eq!(
            eviction(&[long, forever], &taints, now),
            Eviction::At(at(395)),
            "the shortest wins"
        );
        let other = toleration(json!({"key": NOT_READY, "operator": "Exists"}));
        assert_eq!(eviction(&[other], &taints, now), Eviction::Now);
        let no_schedule = [Taint {
            effect: "NoSchedule".into(),
            ..taint(UNREACHABLE, 0)
        }];
        assert_eq!(
            eviction(&[], &no_schedule, now),
            Eviction::Never,
            "NoSchedule evicts nothing"
        );
    }

    #[test]
    fn tolerations_match_as_upstream() {
        let t = Taint {
            value: Some("gpu".into()),
            ..taint("dedicated", 0)
        };
        let check = |v: serde_json::Value| tolerates(&toleration(v), &t);
        assert!(check(
            json!({"key": "dedicated", "value": "gpu", "effect": "NoExecute"})
        ));
        assert!(check(json!({"key": "dedicated", "operator": "Equal", "value": "gpu"})));
        assert!(!check(json!({"key": "dedicated", "value": "cpu"})));
        assert!(!check(
            json!({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"})
        ));
        assert!(
            check(json!({"operator": "Exists"})),
            "an empty key with Exists tolerates everything"
        );
    }
}
