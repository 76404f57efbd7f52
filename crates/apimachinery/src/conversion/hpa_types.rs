//! What the HPA round-trip annotations hold, and how it maps to v2.
//!
//! The annotations are Go's `json.Marshal` of upstream structs, so the types
//! here declare their fields in Go's order and print Go's zero values:
//!
//! * `metrics` and `current-metrics` hold `[]autoscalingv1.MetricSpec` and
//!   `[]autoscalingv1.MetricStatus` — the v2beta1-style metric types that
//!   `k8s.io/api/autoscaling/v1` keeps for the annotations only;
//! * `conditions` holds `[]autoscalingv1.HorizontalPodAutoscalerCondition`;
//! * `behavior` holds the *internal* `autoscaling.HorizontalPodAutoscalerBehavior`,
//!   which has no JSON tags: its keys are Go's field names (`ScaleUp`,
//!   `StabilizationWindowSeconds`, …) and nil fields print as `null`.
//!
//! The v2 side uses `k8s-openapi`'s types. The mapping functions follow the
//! `Convert_*` functions of `pkg/apis/autoscaling/v1/conversion.go`, lossy
//! corners included (an Object metric's target value is a plain quantity in
//! v1, so it comes back as `value: "0"` when v2 had none).

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricSource, ContainerResourceMetricStatus, CrossVersionObjectReference, ExternalMetricSource,
    ExternalMetricStatus, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscalerBehavior, MetricIdentifier,
    MetricSpec, MetricStatus, MetricTarget, MetricValueStatus, ObjectMetricSource, ObjectMetricStatus,
    PodsMetricSource, PodsMetricStatus, ResourceMetricSource, ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const RESOURCE: &str = "Resource";
const CPU: &str = "cpu";
const UTILIZATION: &str = "Utilization";
const VALUE: &str = "Value";
const AVERAGE_VALUE: &str = "AverageValue";

/// A Go `resource.Quantity` held by value (not by pointer): its zero value
/// prints as `"0"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct GoQuantity(Quantity);

impl Default for GoQuantity {
    fn default() -> Self {
        GoQuantity(Quantity("0".into()))
    }
}

fn held(quantity: Option<&Quantity>) -> GoQuantity {
    quantity.cloned().map(GoQuantity).unwrap_or_default()
}

/// `metav1.LabelSelector` in Go's field order.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct GoSelector {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    match_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    match_expressions: Vec<GoRequirement>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct GoRequirement {
    key: String,
    operator: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    values: Vec<String>,
}

fn selector_to_go(selector: Option<&LabelSelector>) -> Option<GoSelector> {
    selector.map(|s| GoSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: s.match_expressions.iter().flatten().map(requirement_to_go).collect(),
    })
}

fn requirement_to_go(r: &LabelSelectorRequirement) -> GoRequirement {
    GoRequirement {
        key: r.key.clone(),
        operator: r.operator.clone(),
        values: r.values.clone().unwrap_or_default(),
    }
}

fn selector_from_go(selector: Option<GoSelector>) -> Option<LabelSelector> {
    selector.map(|s| LabelSelector {
        match_labels: Some(s.match_labels).filter(|m| !m.is_empty()),
        match_expressions: Some(s.match_expressions.into_iter().map(requirement_from_go).collect())
            .filter(|e: &Vec<_>| !e.is_empty()),
    })
}

fn requirement_from_go(r: GoRequirement) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: r.key,
        operator: r.operator,
        values: Some(r.values).filter(|v| !v.is_empty()),
    }
}

/// `autoscalingv1.CrossVersionObjectReference`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1Reference {
    kind: String,
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    api_version: String,
}

fn reference_to_v1(r: &CrossVersionObjectReference) -> V1Reference {
    V1Reference {
        kind: r.kind.clone(),
        name: r.name.clone(),
        api_version: r.api_version.clone().unwrap_or_default(),
    }
}

fn reference_from_v1(r: V1Reference) -> CrossVersionObjectReference {
    CrossVersionObjectReference {
        kind: r.kind,
        name: r.name,
        api_version: Some(r.api_version).filter(|v| !v.is_empty()),
    }
}

// ---- metric specs ----

/// `autoscalingv1.MetricSpec`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct V1MetricSpec {
    #[serde(rename = "type")]
    type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<V1ObjectSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pods: Option<V1PodsSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<V1ResourceSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_resource: Option<V1ContainerResourceSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external: Option<V1ExternalSource>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1ObjectSource {
    target: V1Reference,
    metric_name: String,
    target_value: GoQuantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<GoSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    average_value: Option<Quantity>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1PodsSource {
    metric_name: String,
    target_average_value: GoQuantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<GoSelector>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1ResourceSource {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_average_utilization: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_average_value: Option<Quantity>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1ContainerResourceSource {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_average_utilization: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_average_value: Option<Quantity>,
    container: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1ExternalSource {
    metric_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_selector: Option<GoSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_value: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_average_value: Option<Quantity>,
}

/// The CPU utilization target of a v2 metric, if it is the metric v1's
/// `targetCPUUtilizationPercentage` stands for.
pub(super) fn cpu_target(metric: &MetricSpec) -> Option<i32> {
    let resource = metric
        .resource
        .as_ref()
        .filter(|r| metric.type_ == RESOURCE && r.name == CPU)?;
    resource.target.average_utilization
}

/// The v2 metric of v1's `targetCPUUtilizationPercentage`.
pub(super) fn cpu_metric(utilization: i32) -> MetricSpec {
    MetricSpec {
        type_: RESOURCE.into(),
        resource: Some(ResourceMetricSource {
            name: CPU.into(),
            target: MetricTarget {
                type_: UTILIZATION.into(),
                average_utilization: Some(utilization),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }
}

pub(super) fn metric_spec_to_v1(m: &MetricSpec) -> V1MetricSpec {
    V1MetricSpec {
        type_: m.type_.clone(),
        object: m.object.as_ref().map(object_source_to_v1),
        pods: m.pods.as_ref().map(pods_source_to_v1),
        resource: m.resource.as_ref().map(resource_source_to_v1),
        container_resource: m.container_resource.as_ref().map(container_source_to_v1),
        external: m.external.as_ref().map(external_source_to_v1),
    }
}

pub(super) fn metric_spec_from_v1(m: V1MetricSpec) -> MetricSpec {
    MetricSpec {
        type_: m.type_,
        object: m.object.map(object_source_from_v1),
        pods: m.pods.map(pods_source_from_v1),
        resource: m.resource.map(resource_source_from_v1),
        container_resource: m.container_resource.map(container_source_from_v1),
        external: m.external.map(external_source_from_v1),
    }
}

fn object_source_to_v1(s: &ObjectMetricSource) -> V1ObjectSource {
    V1ObjectSource {
        target: reference_to_v1(&s.described_object),
        metric_name: s.metric.name.clone(),
        target_value: held(s.target.value.as_ref()),
        selector: selector_to_go(s.metric.selector.as_ref()),
        average_value: s.target.average_value.clone(),
    }
}

fn object_source_from_v1(s: V1ObjectSource) -> ObjectMetricSource {
    let type_ = if s.average_value.is_none() {
        VALUE
    } else {
        AVERAGE_VALUE
    };
    ObjectMetricSource {
        described_object: reference_from_v1(s.target),
        metric: identifier(s.metric_name, s.selector),
        target: MetricTarget {
            type_: type_.into(),
            value: Some(s.target_value.0),
            average_value: s.average_value,
            average_utilization: None,
        },
    }
}

fn pods_source_to_v1(s: &PodsMetricSource) -> V1PodsSource {
    V1PodsSource {
        metric_name: s.metric.name.clone(),
        target_average_value: held(s.target.average_value.as_ref()),
        selector: selector_to_go(s.metric.selector.as_ref()),
    }
}

fn pods_source_from_v1(s: V1PodsSource) -> PodsMetricSource {
    PodsMetricSource {
        metric: identifier(s.metric_name, s.selector),
        target: MetricTarget {
            type_: AVERAGE_VALUE.into(),
            average_value: Some(s.target_average_value.0),
            ..MetricTarget::default()
        },
    }
}

fn resource_source_to_v1(s: &ResourceMetricSource) -> V1ResourceSource {
    V1ResourceSource {
        name: s.name.clone(),
        target_average_utilization: s.target.average_utilization,
        target_average_value: s.target.average_value.clone(),
    }
}

fn resource_source_from_v1(s: V1ResourceSource) -> ResourceMetricSource {
    ResourceMetricSource {
        name: s.name,
        target: resource_target(s.target_average_utilization, s.target_average_value),
    }
}

fn container_source_to_v1(s: &ContainerResourceMetricSource) -> V1ContainerResourceSource {
    V1ContainerResourceSource {
        name: s.name.clone(),
        target_average_utilization: s.target.average_utilization,
        target_average_value: s.target.average_value.clone(),
        container: s.container.clone(),
    }
}

fn container_source_from_v1(s: V1ContainerResourceSource) -> ContainerResourceMetricSource {
    ContainerResourceMetricSource {
        name: s.name,
        container: s.container,
        target: resource_target(s.target_average_utilization, s.target_average_value),
    }
}

/// A resource target is a utilization if v1 gave one, else an average value.
fn resource_target(utilization: Option<i32>, average_value: Option<Quantity>) -> MetricTarget {
    let type_ = if utilization.is_none() {
        AVERAGE_VALUE
    } else {
        UTILIZATION
    };
    MetricTarget {
        type_: type_.into(),
        average_utilization: utilization,
        average_value,
        value: None,
    }
}

fn external_source_to_v1(s: &ExternalMetricSource) -> V1ExternalSource {
    V1ExternalSource {
        metric_name: s.metric.name.clone(),
        metric_selector: selector_to_go(s.metric.selector.as_ref()),
        target_value: s.target.value.clone(),
        target_average_value: s.target.average_value.clone(),
    }
}

fn external_source_from_v1(s: V1ExternalSource) -> ExternalMetricSource {
    let type_ = if s.target_value.is_none() { AVERAGE_VALUE } else { VALUE };
    ExternalMetricSource {
        metric: identifier(s.metric_name, s.metric_selector),
        target: MetricTarget {
            type_: type_.into(),
            value: s.target_value,
            average_value: s.target_average_value,
            average_utilization: None,
        },
    }
}

fn identifier(name: String, selector: Option<GoSelector>) -> MetricIdentifier {
    MetricIdentifier {
        name,
        selector: selector_from_go(selector),
    }
}

// ---- metric statuses ----

/// `autoscalingv1.MetricStatus`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct V1MetricStatus {
    #[serde(rename = "type")]
    type_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<V1ObjectStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pods: Option<V1PodsStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<V1ResourceStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_resource: Option<V1ContainerResourceStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external: Option<V1ExternalStatus>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1ObjectStatus {
    target: V1Reference,
    metric_name: String,
    current_value: GoQuantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<GoSelector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    average_value: Option<Quantity>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1PodsStatus {
    metric_name: String,
    current_average_value: GoQuantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    selector: Option<GoSelector>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1ResourceStatus {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_average_utilization: Option<i32>,
    current_average_value: GoQuantity,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1ContainerResourceStatus {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_average_utilization: Option<i32>,
    current_average_value: GoQuantity,
    container: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct V1ExternalStatus {
    metric_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    metric_selector: Option<GoSelector>,
    current_value: GoQuantity,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_average_value: Option<Quantity>,
}

/// The current CPU utilization of a v2 metric status, if it reports one.
pub(super) fn cpu_current(metric: &MetricStatus) -> Option<i32> {
    let resource = metric
        .resource
        .as_ref()
        .filter(|r| metric.type_ == RESOURCE && r.name == CPU)?;
    resource.current.average_utilization
}

/// The v2 metric status of v1's `currentCPUUtilizationPercentage`.
pub(super) fn cpu_status(utilization: i32) -> MetricStatus {
    MetricStatus {
        type_: RESOURCE.into(),
        resource: Some(ResourceMetricStatus {
            name: CPU.into(),
            current: MetricValueStatus {
                average_utilization: Some(utilization),
                ..MetricValueStatus::default()
            },
        }),
        ..MetricStatus::default()
    }
}

pub(super) fn metric_status_to_v1(m: &MetricStatus) -> V1MetricStatus {
    V1MetricStatus {
        type_: m.type_.clone(),
        object: m.object.as_ref().map(object_status_to_v1),
        pods: m.pods.as_ref().map(pods_status_to_v1),
        resource: m.resource.as_ref().map(resource_status_to_v1),
        container_resource: m.container_resource.as_ref().map(container_status_to_v1),
        external: m.external.as_ref().map(external_status_to_v1),
    }
}

pub(super) fn metric_status_from_v1(m: V1MetricStatus) -> MetricStatus {
    MetricStatus {
        type_: m.type_,
        object: m.object.map(object_status_from_v1),
        pods: m.pods.map(pods_status_from_v1),
        resource: m.resource.map(resource_status_from_v1),
        container_resource: m.container_resource.map(container_status_from_v1),
        external: m.external.map(external_status_from_v1),
    }
}

fn object_status_to_v1(s: &ObjectMetricStatus) -> V1ObjectStatus {
    V1ObjectStatus {
        target: reference_to_v1(&s.described_object),
        metric_name: s.metric.name.clone(),
        current_value: held(s.current.value.as_ref()),
        selector: selector_to_go(s.metric.selector.as_ref()),
        average_value: s.current.average_value.clone(),
    }
}

fn object_status_from_v1(s: V1ObjectStatus) -> ObjectMetricStatus {
    ObjectMetricStatus {
        described_object: reference_from_v1(s.target),
        metric: identifier(s.metric_name, s.selector),
        current: MetricValueStatus {
            value: Some(s.current_value.0),
            average_value: s.average_value,
            average_utilization: None,
        },
    }
}

fn pods_status_to_v1(s: &PodsMetricStatus) -> V1PodsStatus {
    V1PodsStatus {
        metric_name: s.metric.name.clone(),
        current_average_value: held(s.current.average_value.as_ref()),
        selector: selector_to_go(s.metric.selector.as_ref()),
    }
}

fn pods_status_from_v1(s: V1PodsStatus) -> PodsMetricStatus {
    PodsMetricStatus {
        metric: identifier(s.metric_name, s.selector),
        current: MetricValueStatus {
            average_value: Some(s.current_average_value.0),
            ..MetricValueStatus::default()
        },
    }
}

fn resource_status_to_v1(s: &ResourceMetricStatus) -> V1ResourceStatus {
    V1ResourceStatus {
        name: s.name.clone(),
        current_average_utilization: s.current.average_utilization,
        current_average_value: held(s.current.average_value.as_ref()),
    }
}

fn resource_status_from_v1(s: V1ResourceStatus) -> ResourceMetricStatus {
    ResourceMetricStatus {
        name: s.name,
        current: resource_current(s.current_average_utilization, s.current_average_value),
    }
}

fn container_status_to_v1(s: &ContainerResourceMetricStatus) -> V1ContainerResourceStatus {
    V1ContainerResourceStatus {
        name: s.name.clone(),
        current_average_utilization: s.current.average_utilization,
        current_average_value: held(s.current.average_value.as_ref()),
        container: s.container.clone(),
    }
}

fn container_status_from_v1(s: V1ContainerResourceStatus) -> ContainerResourceMetricStatus {
    ContainerResourceMetricStatus {
        name: s.name,
        container: s.container,
        current: resource_current(s.current_average_utilization, s.current_average_value),
    }
}

fn resource_current(utilization: Option<i32>, average_value: GoQuantity) -> MetricValueStatus {
    MetricValueStatus {
        average_utilization: utilization,
        average_value: Some(average_value.0),
        value: None,
    }
}

fn external_status_to_v1(s: &ExternalMetricStatus) -> V1ExternalStatus {
    V1ExternalStatus {
        metric_name: s.metric.name.clone(),
        metric_selector: selector_to_go(s.metric.selector.as_ref()),
        current_value: held(s.current.value.as_ref()),
        current_average_value: s.current.average_value.clone(),
    }
}

fn external_status_from_v1(s: V1ExternalStatus) -> ExternalMetricStatus {
    ExternalMetricStatus {
        metric: identifier(s.metric_name, s.metric_selector),
        current: MetricValueStatus {
            value: Some(s.current_value.0),
            average_value: s.current_average_value,
            average_utilization: None,
        },
    }
}

// ---- conditions ----

/// `HorizontalPodAutoscalerCondition`, the same in v1 (annotation) and v2.
/// `lastTransitionTime` is a Go `metav1.Time` held by value: `null` when unset.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    last_transition_time: Value,
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
}

// ---- behavior ----

/// The internal `autoscaling.HorizontalPodAutoscalerBehavior`, as Go prints a
/// struct without JSON tags. Go matches keys case-insensitively when reading,
/// so the v2 spellings are accepted too.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct GoBehavior {
    #[serde(alias = "scaleUp")]
    scale_up: Option<GoRules>,
    #[serde(alias = "scaleDown")]
    scale_down: Option<GoRules>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct GoRules {
    #[serde(alias = "stabilizationWindowSeconds")]
    stabilization_window_seconds: Option<i32>,
    #[serde(alias = "selectPolicy")]
    select_policy: Option<String>,
    #[serde(alias = "policies")]
    policies: Option<Vec<GoPolicy>>,
    #[serde(alias = "tolerance")]
    tolerance: Option<Quantity>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct GoPolicy {
    #[serde(rename = "Type", alias = "type")]
    type_: String,
    #[serde(alias = "value")]
    value: i32,
    #[serde(alias = "periodSeconds")]
    period_seconds: i32,
}

pub(super) fn behavior_to_go(b: &HorizontalPodAutoscalerBehavior) -> GoBehavior {
    GoBehavior {
        scale_up: b.scale_up.as_ref().map(rules_to_go),
        scale_down: b.scale_down.as_ref().map(rules_to_go),
    }
}

/// The v2 behavior, unless the annotation set neither direction (upstream
/// then leaves `behavior` unset).
pub(super) fn behavior_from_go(b: GoBehavior) -> Option<HorizontalPodAutoscalerBehavior> {
    if b.scale_up.is_none() && b.scale_down.is_none() {
        return None;
    }
    Some(HorizontalPodAutoscalerBehavior {
        scale_up: b.scale_up.map(rules_from_go),
        scale_down: b.scale_down.map(rules_from_go),
    })
}

fn rules_to_go(r: &HPAScalingRules) -> GoRules {
    GoRules {
        stabilization_window_seconds: r.stabilization_window_seconds,
        select_policy: r.select_policy.clone(),
        policies: r.policies.as_ref().map(|p| p.iter().map(policy_to_go).collect()),
        tolerance: r.tolerance.clone(),
    }
}

fn rules_from_go(r: GoRules) -> HPAScalingRules {
    let policies: Vec<HPAScalingPolicy> = r.policies.into_iter().flatten().map(policy_from_go).collect();
    HPAScalingRules {
        stabilization_window_seconds: r.stabilization_window_seconds,
        select_policy: r.select_policy,
        policies: Some(policies).filter(|p| !p.is_empty()),
        tolerance: r.tolerance,
    }
}

fn policy_to_go(p: &HPAScalingPolicy) -> GoPolicy {
    GoPolicy {
        type_: p.type_.clone(),
        value: p.value,
        period_seconds: p.period_seconds,
    }
}

fn policy_from_go(p: GoPolicy) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: p.type_,
        value: p.value,
        period_seconds: p.period_seconds,
    }
}
