//! The pure decisions of a rollout (upstream's `deployment/util` and the
//! arithmetic of `rolling.go` and `sync.go`), kept free of I/O so that
//! they can be tested table-driven.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::history::{fnv32a, prune, safe_encode};

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Deployment annotations that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// The API's defaults, for objects that come without them.
const DEFAULT_SURGE_OR_UNAVAILABLE: &str = "25%";
const DEFAULT_PROGRESS_DEADLINE: i32 = 600;
pub use crate::history::DEFAULT_HISTORY_LIMIT;

pub fn desired(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0)
}

/// Available pods a rollout may count on: a ReplicaSet just scaled down
/// still reports the pods it is about to delete, so no more than its
/// size counts (otherwise two quick scale-downs overshoot maxUnavailable).
pub fn rs_available_for_planning(rs: &ReplicaSet) -> i32 {
    rs_available(rs).min(rs_replicas(rs))
}

pub fn is_recreate(d: &Deployment) -> bool {
    let strategy = d.spec.as_ref().and_then(|s| s.strategy.as_ref());
    strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// `IntOrString` resolved against `total`: percentages round up for surge,
/// down for unavailability, as upstream's `GetScaledValueFromIntOrPercent`.
fn scaled(value: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    let default = IntOrString::String(DEFAULT_SURGE_OR_UNAVAILABLE.into());
    int_or_percent(value.unwrap_or(&default), total, round_up)
}

/// Upstream's `GetScaledValueFromIntOrPercent`.
pub(crate) fn int_or_percent(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let product = percent * i64::from(total);
            let value = if round_up { (product + 99) / 100 } else { product / 100 };
            value as i32
        }
    }
}

/// Upstream's `ResolveFenceposts`: (maxSurge, maxUnavailable) as counts;
/// both zero would stall a rollout, so unavailability becomes one.
pub fn resolve_fenceposts(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, desired: i32) -> (i32, i32) {
    let surge = scaled(surge, desired, true);
    let unavailable = scaled(unavailable, desired, false);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        desired(d),
    )
}

/// How many pods above `replicas` a rollout may run (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) { 0 } else { fenceposts(d).0 }
}

/// How many of `replicas` may be unavailable during a rollout (0 for Recreate).
pub fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) || desired(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired(d))
}

/// Upstream's `NewRSNewReplicas`: the new ReplicaSet grows until all
/// ReplicaSets together reach `replicas + maxSurge`.
pub fn new_rs_replicas(desired: i32, max_surge: i32, rolling: bool, total: i32, new_current: i32) -> i32 {
    if !rolling {
        return desired;
    }
    let max_total = desired + max_surge;
    if total >= max_total {
        return new_current;
    }
    new_current + (max_total - total).min(desired - new_current)
}

/// A ReplicaSet as the rollout arithmetic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub available: i32,
}

/// Upstream's `reconcileOldReplicaSets`: the new sizes of the old
/// ReplicaSets (given oldest first). Unhealthy old pods go first, within
/// what the availability budget allows; then healthy ones, as long as
/// `replicas - maxUnavailable` pods stay available.
pub fn scale_down_old(desired: i32, max_unavailable: i32, new: Counts, old: &[Counts]) -> Vec<i32> {
    let mut sizes: Vec<i32> = old.iter().map(|c| c.replicas).collect();
    let old_total: i32 = sizes.iter().sum();
    if old_total == 0 {
        return sizes;
    }
    let all_total = old_total + new.replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = new.replicas - new.available;
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return sizes;
    }
    let mut cleaned = 0;
    for (size, counts) in sizes.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = *size - counts.available;
        if *size == 0 || unhealthy <= 0 {
            continue;
        }
        let down = unhealthy.min(max_scaled_down - cleaned);
        *size -= down;
        cleaned += down;
    }
    let available: i32 = old.iter().map(|c| c.available).sum::<i32>() + new.available;
    let mut budget = available - min_available;
    for size in sizes.iter_mut() {
        if budget <= 0 {
            break;
        }
        let down = (*size).min(budget);
        *size -= down;
        budget -= down;
    }
    sizes
}

/// A ReplicaSet as proportional scaling sees it; `newer` orders by age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sized {
    pub replicas: i32,
    /// The `max-replicas` annotation: the deployment size it was scaled for.
    pub max_replicas: Option<i32>,
    pub created: Option<Timestamp>,
    pub name: String,
}

/// Upstream's proportional scaling (`scale` in sync.go): when a rolling
/// Deployment is resized mid-rollout, each active ReplicaSet grows or
/// shrinks in proportion to its size; leftovers go to the largest.
/// Returns the new sizes in input order.
pub fn proportional_sizes(desired: i32, max_surge: i32, status_replicas: i32, rss: &[Sized]) -> Vec<i32> {
    let allowed = if desired > 0 { desired + max_surge } else { 0 };
    let current: i32 = rss.iter().map(|r| r.replicas).sum();
    let to_add = allowed - current;
    let mut order: Vec<usize> = (0..rss.len()).collect();
    order.sort_by(|&a, &b| {
        let by_age = by_age(&rss[a], &rss[b]);
        let by_age = if to_add > 0 { by_age.reverse() } else { by_age };
        rss[b].replicas.cmp(&rss[a].replicas).then(by_age)
    });
    let mut sizes: Vec<i32> = rss.iter().map(|r| r.replicas).collect();
    if to_add == 0 || rss.is_empty() {
        return sizes;
    }
    let mut added = 0;
    for &i in &order {
        let proportion = proportion(&rss[i], desired, allowed, status_replicas, to_add, added);
        sizes[i] += proportion;
        added += proportion;
    }
    let largest = order[0];
    sizes[largest] = (sizes[largest] + to_add - added).max(0);
    sizes
}

fn by_age(a: &Sized, b: &Sized) -> Ordering {
    a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name))
}

/// Upstream's `GetProportion`.
fn proportion(rs: &Sized, desired: i32, allowed: i32, status_replicas: i32, to_add: i32, added: i32) -> i32 {
    if rs.replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = if desired == 0 {
        -rs.replicas
    } else {
        let annotated = rs.max_replicas.unwrap_or(status_replicas);
        if annotated == 0 {
            0
        } else {
            let size = f64::from(rs.replicas) * f64::from(allowed) / f64::from(annotated);
            size.round() as i32 - rs.replicas
        }
    };
    let left = to_add - added;
    if to_add > 0 {
        fraction.min(left)
    } else {
        fraction.max(left)
    }
}

/// Upstream's `ComputeHash` in spirit: FNV-32a over a canonical rendering
/// of the template (JSON with sorted maps, not Go's deep-print), plus the
/// collision count, encoded with the safe alphabet. Stable across
/// restarts because the rendering depends only on the stored template.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(&canonical(template)).unwrap_or_default();
    if let Some(count) = collision_count {
        let mut tail = [0u8; 8];
        tail[..4].copy_from_slice(&(count as u32).to_le_bytes());
        bytes.extend_from_slice(&tail);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Upstream's `EqualIgnoreHash`: templates equal but for the hash label.
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let normalize = |t: &PodTemplateSpec| {
        let mut value = canonical(t);
        if let Some(labels) = value.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
            labels.remove(HASH_LABEL);
        }
        prune(&mut value);
        value
    };
    normalize(a) == normalize(b)
}

/// The template as Go sees it: `null`, `{}` and `[]` are all the zero
/// value (kubectl sends `resources: {}` and `creationTimestamp: null`).
fn canonical(template: &PodTemplateSpec) -> Value {
    let mut value = serde_json::to_value(template).unwrap_or(Value::Null);
    prune(&mut value);
    value
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    let annotations = rs.metadata.annotations.as_ref();
    annotations
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Upstream's `SetNewReplicaSetAnnotations`: copy the Deployment's
/// annotations, move the revision forward (remembering the old one in the
/// revision history on a rollback), and size annotations on creation.
/// Returns whether anything changed.
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let mut changed = copy_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_default();
    let old = annotations.get(REVISION).cloned();
    let old_revision: i64 = old.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0);
    if old_revision < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = match annotations.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old,
            };
            annotations.insert(REVISION_HISTORY.into(), history);
        }
    }
    if !exists {
        changed |= set_replicas_annotations(rs, desired(d), desired(d) + max_surge(d));
    }
    changed
}

fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_default();
    let mut changed = false;
    for (key, value) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&key.as_str()) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    changed
}

/// Sets `desired-replicas` and `max-replicas`; returns whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_default();
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        if annotations.get(key) != Some(&value.to_string()) {
            annotations.insert(key.into(), value.to_string());
            changed = true;
        }
    }
    changed
}

pub fn annotated_int(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

// ---- Status and conditions (upstream's progress.go and calculateStatus) ----

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    let seconds = d.spec.as_ref().and_then(|s| s.progress_deadline_seconds);
    Some(seconds.unwrap_or(DEFAULT_PROGRESS_DEADLINE)).filter(|s| *s != i32::MAX)
}

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == type_)
}

pub fn new_condition(type_: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream's `SetDeploymentCondition`: a condition with the same status
/// and reason is left alone; a same-status one keeps its transition time.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = self::condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status.conditions.get_or_insert_default().push(condition);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// Upstream's `calculateStatus`: counts summed over all ReplicaSets, and
/// the `Available` condition.
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let sum = |f: fn(&ReplicaSet) -> i32| all.iter().map(|rs| f(rs)).sum::<i32>();
    let replicas = |rs: &ReplicaSet| rs.status.as_ref().map_or(0, |s| s.replicas);
    let ready = |rs: &ReplicaSet| rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    let available = sum(rs_available);
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(replicas)),
        updated_replicas: Some(new.map_or(0, replicas)),
        ready_replicas: Some(sum(ready)),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired(d) - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions,
        terminating_replicas: None,
    };
    let condition = if available >= desired(d) - max_unavailable(d) {
        let message = "Deployment has minimum availability.".to_string();
        new_condition("Available", "True", "MinimumReplicasAvailable", message, now)
    } else {
        let message = "Deployment does not have minimum availability.".to_string();
        new_condition("Available", "False", "MinimumReplicasUnavailable", message, now)
    };
    set_condition(&mut status, condition);
    status
}

/// Upstream's `DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = desired(d);
    status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream's `DeploymentProgressing`: anything moved since the last status.
fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Upstream's `DeploymentTimedOut`.
pub fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    let (Some(deadline), Some(progressing)) = (progress_deadline(d), condition(status, "Progressing")) else {
        return false;
    };
    match progressing.reason.as_deref() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => progressing
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + SignedDuration::from_secs(deadline.into()) < now),
    }
}

/// Upstream's `syncRolloutStatus` conditions: `Progressing` becomes
/// NewReplicaSetAvailable, ReplicaSetUpdated, or ProgressDeadlineExceeded.
pub fn rollout_conditions(d: &Deployment, status: &mut DeploymentStatus, new_rs: Option<&str>, now: Timestamp) {
    if progress_deadline(d).is_none() {
        remove_condition(status, "Progressing");
        return;
    }
    let current = condition(status, "Progressing").cloned();
    let complete = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some("NewReplicaSetAvailable");
    if complete {
        return;
    }
    let name = new_rs.unwrap_or_default();
    if deployment_complete(d, status) {
        let message = format!("ReplicaSet \"{name}\" has successfully progressed.");
        set_condition(
            status,
            new_condition("Progressing", "True", "NewReplicaSetAvailable", message, now),
        );
    } else if deployment_progressing(d, status) {
        let message = match new_rs {
            Some(name) => format!("ReplicaSet \"{name}\" is progressing."),
            None => "Deployment is progressing.".into(),
        };
        let mut condition = new_condition("Progressing", "True", "ReplicaSetUpdated", message, now);
        if let Some(current) = current.filter(|c| c.status == "True") {
            condition.last_transition_time = current.last_transition_time;
        }
        remove_condition(status, "Progressing");
        set_condition(status, condition);
    } else if timed_out(d, status, now) {
        let message = format!("ReplicaSet \"{name}\" has timed out progressing.");
        set_condition(
            status,
            new_condition("Progressing", "False", "ProgressDeadlineExceeded", message, now),
        );
    }
}

/// Upstream's `requeueStuckDeployment`: when to look again so that a
/// stalled rollout is marked as timed out on time.
pub fn recheck_after(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> Option<std::time::Duration> {
    let deadline = progress_deadline(d)?;
    let progressing = condition(status, "Progressing")?;
    if deployment_complete(d, status) || timed_out(d, status, now) {
        return None;
    }
    let since = progressing.last_update_time.as_ref()?.0;
    let left = (since + SignedDuration::from_secs(deadline.into())).duration_since(now);
    let left = left.max(SignedDuration::ZERO) + SignedDuration::from_secs(1);
    left.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let pct = |s: &str| Some(IntOrString::String(s.into()));
        let cases = [
            (None, None, 3, (1, 0)),
            (None, None, 4, (1, 1)),
            (None, None, 10, (3, 2)),
            (Some(IntOrString::Int(0)), Some(IntOrString::Int(0)), 3, (0, 1)),
            (Some(IntOrString::Int(2)), pct("50%"), 5, (2, 2)),
            (pct("0%"), Some(IntOrString::Int(1)), 3, (0, 1)),
        ];
        for (surge, unavailable, desired, expected) in cases {
            assert_eq!(
                resolve_fenceposts(surge.as_ref(), unavailable.as_ref(), desired),
                expected
            );
        }
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        // (desired, surge, rolling, total, new_current) -> expected
        let cases = [
            (3, 1, true, 0, 0, 3),
            (3, 1, true, 3, 0, 1),
            (3, 1, true, 4, 1, 1),
            (3, 1, true, 3, 1, 2),
            (3, 0, true, 3, 0, 0),
            (3, 0, false, 3, 0, 3),
            (10, 3, true, 10, 0, 3),
        ];
        for (desired, surge, rolling, total, new_current, expected) in cases {
            assert_eq!(
                new_rs_replicas(desired, surge, rolling, total, new_current),
                expected,
                "{desired} {total}"
            );
        }
    }

    #[test]
    fn old_replica_sets_shrink_within_unavailability() {
        let c = |replicas, available| Counts { replicas, available };
        let cases = [
            // 3 desired, surge 1 / unavailable 0: new has 1 unavailable pod -> nothing.
            (3, 0, c(1, 0), vec![c(3, 3)], vec![3]),
            // The new pod became available: one old pod may go.
            (3, 0, c(1, 1), vec![c(3, 3)], vec![2]),
            // Unhealthy old pods are removed first, within the budget.
            (3, 1, c(1, 0), vec![c(3, 1)], vec![2]),
            // Oldest first.
            (4, 1, c(0, 0), vec![c(2, 2), c(2, 2)], vec![1, 2]),
            // Everything available: all old pods may go.
            (3, 0, c(3, 3), vec![c(3, 3)], vec![0]),
            (3, 0, c(3, 0), vec![c(0, 0)], vec![0]),
        ];
        for (desired, unavailable, new, old, expected) in cases {
            assert_eq!(
                scale_down_old(desired, unavailable, new, &old),
                expected,
                "{new:?} {old:?}"
            );
        }
    }

    #[test]
    fn proportional_scaling_follows_sizes() {
        let rs = |name: &str, replicas, max, created| Sized {
            replicas,
            max_replicas: Some(max),
            created: Some(Timestamp::from_second(created).unwrap()),
            name: name.into(),
        };
        // 10 -> 15 replicas mid-rollout (surge 3): 8 old + 5 new scaled for 13 -> 18.
        let sizes = proportional_sizes(15, 3, 13, &[rs("old", 8, 13, 1), rs("new", 5, 13, 2)]);
        assert_eq!(sizes.iter().sum::<i32>(), 18);
        assert_eq!(sizes, vec![11, 7]);
        // Down to zero.
        assert_eq!(
            proportional_sizes(0, 0, 4, &[rs("a", 2, 4, 1), rs("b", 2, 4, 2)]),
            vec![0, 0]
        );
    }

    #[test]
    fn hash_is_stable_and_safe() {
        let template = PodTemplateSpec::default();
        let a = pod_template_hash(&template, None);
        assert_eq!(a, pod_template_hash(&template, None));
        assert_ne!(a, pod_template_hash(&template, Some(1)));
        assert!(a.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let mut with_hash = PodTemplateSpec::default();
        with_hash.metadata.get_or_insert_default().labels = Some([(HASH_LABEL.into(), "abc".into())].into());
        assert!(equal_ignoring_hash(&with_hash, &PodTemplateSpec::default()));
        let from_kubectl: PodTemplateSpec =
            serde_json::from_value(serde_json::json!({"spec": {"containers": [{"name": "c", "resources": {}}]}}))
                .unwrap();
        let stored: PodTemplateSpec =
            serde_json::from_value(serde_json::json!({"spec": {"containers": [{"name": "c"}]}})).unwrap();
        assert!(equal_ignoring_hash(&from_kubectl, &stored));
        assert_eq!(pod_template_hash(&from_kubectl, None), pod_template_hash(&stored, None));
    }
}
