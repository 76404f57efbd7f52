//! `autoscaling/v1` ⇄ `autoscaling/v2` HorizontalPodAutoscalers, as
//! `pkg/apis/autoscaling/v1/conversion.go` and `v2/conversion.go` do it.
//!
//! v1 knows one metric, the CPU utilization target. Going to v1, the first
//! v2 `Resource` metric on `cpu` with an `averageUtilization` becomes
//! `targetCPUUtilizationPercentage`; every other metric, the behavior, all
//! current metrics and the conditions are written to annotations. Coming from
//! v1, the annotations are read back (an unreadable one is ignored), the CPU
//! target is appended after the annotated metrics, a HPA left without any
//! metric gets upstream's 80% CPU target, and the annotations are dropped.
//! v2 never shows them: upstream drops them on every v2 conversion.

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscalerBehavior, MetricSpec, MetricStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::hpa_types::{
    Condition, GoBehavior, V1MetricSpec, V1MetricStatus, behavior_from_go, behavior_to_go, cpu_current, cpu_metric,
    cpu_status, cpu_target, metric_spec_from_v1, metric_spec_to_v1, metric_status_from_v1, metric_status_to_v1,
};
use super::{ConversionError, Obj, annotations, child, decode, encode, go_json, set_annotations, take};

/// `autoscaling.MetricSpecsAnnotation`: the v2 metrics other than the CPU target.
pub(super) const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// `autoscaling.MetricStatusesAnnotation`: all v2 current metrics.
pub(super) const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// `autoscaling.HorizontalPodAutoscalerConditionsAnnotation`.
pub(super) const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// `autoscaling.BehaviorSpecsAnnotation`.
pub(super) const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const ROUND_TRIP: [&str; 4] = [METRICS, CURRENT_METRICS, CONDITIONS, BEHAVIOR];

/// `autoscaling.DefaultCPUUtilization`.
const DEFAULT_CPU_UTILIZATION: i32 = 80;

pub(super) fn v2_to_v1(input: &Obj) -> Result<Obj, ConversionError> {
    let mut out = input.clone();
    let mut annotations = without_round_trip(annotations(input)?);
    match out.get_mut("spec") {
        None | Some(Value::Null) => {}
        Some(Value::Object(spec)) => spec_to_v1(spec, &mut annotations)?,
        Some(_) => return Err(ConversionError::malformed("spec", "expected an object")),
    }
    status_to_v1(child(&mut out, "status")?, &mut annotations)?;
    set_annotations(&mut out, annotations)?;
    Ok(out)
}

pub(super) fn v1_to_v2(input: &Obj) -> Result<Obj, ConversionError> {
    let mut out = input.clone();
    let saved = annotations(input)?;
    spec_to_v2(child(&mut out, "spec")?, &saved)?;
    status_to_v2(child(&mut out, "status")?, &saved)?;
    set_annotations(&mut out, without_round_trip(saved))?;
    Ok(out)
}

/// A v2 object never carries the round-trip annotations.
pub(super) fn v2_to_v2(input: &Obj) -> Result<Obj, ConversionError> {
    let mut out = input.clone();
    let annotations = annotations(input)?;
    if ROUND_TRIP.iter().any(|key| annotations.contains_key(*key)) {
        set_annotations(&mut out, without_round_trip(annotations))?;
    }
    Ok(out)
}

fn without_round_trip(mut annotations: Obj) -> Obj {
    annotations.retain(|key, _| !ROUND_TRIP.contains(&key.as_str()));
    annotations
}

fn spec_to_v1(spec: &mut Obj, annotations: &mut Obj) -> Result<(), ConversionError> {
    let metrics: Vec<MetricSpec> = take(spec, "metrics", "spec.metrics")?.unwrap_or_default();
    let behavior: Option<HorizontalPodAutoscalerBehavior> = take(spec, "behavior", "spec.behavior")?;
    spec.remove("targetCPUUtilizationPercentage");
    if let Some(cpu) = metrics.iter().find_map(cpu_target) {
        spec.insert("targetCPUUtilizationPercentage".into(), cpu.into());
    }
    let others: Vec<V1MetricSpec> = metrics
        .iter()
        .filter(|m| cpu_target(m).is_none())
        .map(metric_spec_to_v1)
        .collect();
    if !others.is_empty() {
        annotate(annotations, METRICS, &others)?;
    }
    if let Some(behavior) = behavior {
        annotate(annotations, BEHAVIOR, &behavior_to_go(&behavior))?;
    }
    Ok(())
}

fn status_to_v1(status: &mut Obj, annotations: &mut Obj) -> Result<(), ConversionError> {
    let current: Vec<MetricStatus> = take(status, "currentMetrics", "status.currentMetrics")?.unwrap_or_default();
    let conditions: Vec<Condition> = take(status, "conditions", "status.conditions")?.unwrap_or_default();
    status.remove("currentCPUUtilizationPercentage");
    // Upstream's loop keeps overwriting: the last CPU utilization wins.
    if let Some(cpu) = current.iter().rev().find_map(cpu_current) {
        status.insert("currentCPUUtilizationPercentage".into(), cpu.into());
    }
    // Plain int32s in v1, which Go prints even when zero.
    for key in ["currentReplicas", "desiredReplicas"] {
        if status.get(key).is_none_or(Value::is_null) {
            status.insert(key.into(), 0.into());
        }
    }
    if !current.is_empty() {
        let current: Vec<V1MetricStatus> = current.iter().map(metric_status_to_v1).collect();
        annotate(annotations, CURRENT_METRICS, &current)?;
    }
    if !conditions.is_empty() {
        annotate(annotations, CONDITIONS, &conditions)?;
    }
    Ok(())
}

fn annotate<T: Serialize>(annotations: &mut Obj, key: &str, value: &T) -> Result<(), ConversionError> {
    annotations.insert(key.into(), go_json(value, key)?.into());
    Ok(())
}

fn spec_to_v2(spec: &mut Obj, saved: &Obj) -> Result<(), ConversionError> {
    let field = "spec.targetCPUUtilizationPercentage";
    let cpu: Option<i32> = take(spec, "targetCPUUtilizationPercentage", field)?;
    let mut metrics: Vec<MetricSpec> = restore::<Vec<V1MetricSpec>>(saved, METRICS)
        .unwrap_or_default()
        .into_iter()
        .map(metric_spec_from_v1)
        .collect();
    metrics.extend(cpu.map(cpu_metric));
    if metrics.is_empty() {
        metrics.push(cpu_metric(DEFAULT_CPU_UTILIZATION));
    }
    spec.insert("metrics".into(), encode(&metrics, "spec.metrics")?);
    match restore::<GoBehavior>(saved, BEHAVIOR).and_then(behavior_from_go) {
        Some(behavior) => spec.insert("behavior".into(), encode(&behavior, "spec.behavior")?),
        None => spec.remove("behavior"),
    };
    Ok(())
}

fn status_to_v2(status: &mut Obj, saved: &Obj) -> Result<(), ConversionError> {
    let field = "status.currentCPUUtilizationPercentage";
    let cpu: Option<i32> = take(status, "currentCPUUtilizationPercentage", field)?;
    let current = match restore::<Vec<V1MetricStatus>>(saved, CURRENT_METRICS) {
        Some(current) => Some(current.into_iter().map(metric_status_from_v1).collect()),
        None => cpu.map(|cpu| vec![cpu_status(cpu)]),
    };
    // `currentMetrics` has no omitempty in v2: Go prints null.
    status.insert("currentMetrics".into(), encode(&current, "status.currentMetrics")?);
    match restore::<Vec<Condition>>(saved, CONDITIONS).filter(|c| !c.is_empty()) {
        Some(conditions) => status.insert("conditions".into(), encode(&conditions, "status.conditions")?),
        None => status.remove("conditions"),
    };
    // v2's currentReplicas is omitempty, its desiredReplicas is not.
    if status.get("currentReplicas").is_some_and(|r| r.is_null() || r == 0) {
        status.remove("currentReplicas");
    }
    if status.get("desiredReplicas").is_none_or(Value::is_null) {
        status.insert("desiredReplicas".into(), 0.into());
    }
    Ok(())
}

/// The value saved in a round-trip annotation, if it is there and readable.
fn restore<T: DeserializeOwned>(saved: &Obj, key: &str) -> Option<T> {
    let json: Value = serde_json::from_str(saved.get(key)?.as_str()?).ok()?;
    decode(json).ok()
}
