//! `apps/v1`: Deployments, ReplicaSets, StatefulSets, DaemonSets and ControllerRevisions.

use serde_json::Value;

use super::field::{Errs, child, forbidden, go_string_map, invalid, not_supported, raw, required};
use super::formats;
use super::json::{Node, same};
use super::meta::{self, MetaRules, NameRule, Selector};
use super::pod;
use super::{Input, meta_create_or_update};

/// A workload's selector: validated, then compared with the template's labels.
struct WorkloadSelector {
    selector: Option<Selector>,
}

/// `spec.selector`: required (unless `optional`), valid and non-empty; `what` names the kind in messages.
fn validate_selector(spec: &Node, what: &str, optional: bool, errs: &mut Errs) -> WorkloadSelector {
    let node = spec.field("selector");
    if !node.present() {
        if !optional {
            errs.push(required(&node.path, ""));
        }
        return WorkloadSelector { selector: None };
    }
    meta::validate_label_selector(&node, errs);
    let selector = Selector::read(&node);
    if let Some(s) = &selector
        && s.is_empty()
    {
        errs.push(invalid(
            &node.path,
            raw(s.go_repr()),
            &format!("empty selector is invalid for {what}"),
        ));
    }
    WorkloadSelector { selector }
}

/// The template's labels must satisfy the selector (an absent selector matches nothing).
fn check_template_labels(ws: &WorkloadSelector, spec: &Node, invalid_msg: &str, errs: &mut Errs) -> bool {
    let template = spec.field("template");
    let labels_node = template.field("metadata").field("labels");
    let labels = labels_node.peek_string_map();
    let selector_node = spec.field("selector");
    match &ws.selector {
        Some(s) if s.unparseable => {
            errs.push(invalid(&selector_node.path, raw(s.go_repr()), invalid_msg));
            return false;
        }
        Some(s) if s.is_empty() => return true,
        Some(s) if s.matches(&labels.clone().unwrap_or_default()) => return true,
        _ => {}
    }
    errs.push(invalid(
        &child(&template.path, "metadata.labels"),
        raw(go_string_map(labels.as_ref())),
        "`selector` does not match template `labels`",
    ));
    true
}

/// Workload templates must restart pods `Always`.
pub(super) fn require_always_restart(template: &Node, errs: &mut Errs) {
    let spec = template.field("spec");
    let policy = pod::restart_policy(&spec);
    if policy != "Always" {
        errs.push(not_supported(&spec.field("restartPolicy").path, policy, &["Always"]));
    }
}

fn forbid_deadline(template: &Node, kind: &str, errs: &mut Errs) {
    let deadline = template.field("spec").field("activeDeadlineSeconds");
    if deadline.present() {
        errs.push(forbidden(
            &deadline.path,
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

fn nonnegative(node: &Node, errs: &mut Errs) {
    if let Some(v) = node.int(errs) {
        meta::validate_nonnegative(&node.path, v, errs);
    }
}

/// `ValidatePodTemplateSpecForReplicaSet` (Deployments and ReplicaSets).
fn validate_replica_template(spec: &Node, ws: &WorkloadSelector, kind: &str, errs: &mut Errs) {
    let template = spec.field("template").object(errs);
    if check_template_labels(ws, spec, "invalid label selector", errs) {
        pod::validate_pod_template_spec(&template, errs);
        require_always_restart(&template, errs);
        forbid_deadline(&template, kind, errs);
    }
}

/// The selector may not change after creation (`apps/v1`).
fn selector_immutable(input: &Input, errs: &mut Errs) {
    let Some(old) = input.old() else { return };
    let new = input.object().field("spec").field("selector");
    let before = old.field("spec").field("selector");
    if !same(new.value, before.value) {
        let shown = Selector::read(&new).map_or_else(|| "(*v1.LabelSelector)(nil)".to_string(), |s| s.go_repr());
        errs.push(invalid(&new.path, raw(shown), "field is immutable"));
    }
}

pub(super) fn validate_deployment(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, MetaRules::kube(NameRule::Subdomain), errs);
    let spec = obj.field("spec").object(errs);
    nonnegative(&spec.field("replicas"), errs);
    let ws = validate_selector(&spec, "deployment", false, errs);
    validate_replica_template(&spec, &ws, "ReplicaSet", errs);
    validate_deployment_strategy(&spec.field("strategy").object(errs), errs);
    let min_ready = spec.field("minReadySeconds");
    nonnegative(&min_ready, errs);
    nonnegative(&spec.field("revisionHistoryLimit"), errs);
    let deadline = spec.field("progressDeadlineSeconds");
    if let Some(d) = deadline.int(errs) {
        meta::validate_nonnegative(&deadline.path, d, errs);
        if d <= min_ready.peek_int().unwrap_or(0) {
            errs.push(invalid(&deadline.path, d, "must be greater than minReadySeconds"));
        }
    }
    selector_immutable(input, errs);
}

fn validate_deployment_strategy(strategy: &Node, errs: &mut Errs) {
    let kind = strategy.field("type");
    let rolling = strategy.field("rollingUpdate").object(errs);
    match kind.string(errs) {
        "Recreate" => {
            if rolling.present() {
                errs.push(forbidden(
                    &rolling.path,
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" | "" => {
            let max_unavailable = rolling.field("maxUnavailable");
            let max_surge = rolling.field("maxSurge");
            validate_int_or_percent(&max_unavailable, errs);
            validate_int_or_percent(&max_surge, errs);
            let (unavailable, surge) = (
                int_or_percent_value(&max_unavailable).unwrap_or(25),
                int_or_percent_value(&max_surge).unwrap_or(25),
            );
            if unavailable == 0 && surge == 0 {
                errs.push(invalid(
                    &max_unavailable.path,
                    raw(go_int_or_string(max_unavailable.value)),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            not_over_100_percent(&max_unavailable, errs);
        }
        other => {
            let shown = format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}}",
                super::field::go_quote(other)
            );
            errs.push(not_supported(
                &strategy.path,
                raw(shown),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
}

/// An int-or-string as Go's `%#v` prints `intstr.IntOrString`.
pub(super) fn go_int_or_string(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            super::field::go_quote(s)
        ),
        Some(v) => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            v.as_i64().unwrap_or(0)
        ),
        None => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".to_string(),
    }
}

/// `ValidatePositiveIntOrPercent`.
pub(super) fn validate_int_or_percent(node: &Node, errs: &mut Errs) {
    match node.value {
        None => {}
        Some(Value::String(s)) => {
            for msg in formats::is_valid_percent(s) {
                errs.push(invalid(&node.path, raw(go_int_or_string(node.value)), &msg));
            }
        }
        Some(Value::Number(n)) if n.as_i64().is_some() => {
            meta::validate_nonnegative(&node.path, n.as_i64().unwrap_or(0), errs);
        }
        Some(_) => errs.push(invalid(
            &node.path,
            raw(go_int_or_string(node.value)),
            "must be an integer or percentage (e.g '5%')",
        )),
    }
}

/// The number or percentage an int-or-string holds (`None` when absent).
pub(super) fn int_or_percent_value(node: &Node) -> Option<i64> {
    match node.value? {
        Value::String(s) => Some(s.strip_suffix('%').and_then(|d| d.parse().ok()).unwrap_or(0)),
        v => Some(v.as_i64().unwrap_or(0)),
    }
}

/// `IsNotMoreThan100Percent`.
pub(super) fn not_over_100_percent(node: &Node, errs: &mut Errs) {
    if let Some(Value::String(s)) = node.value
        && formats::is_valid_percent(s).is_empty()
        && int_or_percent_value(node).unwrap_or(0) > 100
    {
        errs.push(invalid(
            &node.path,
            raw(go_int_or_string(node.value)),
            "must not be greater than 100%",
        ));
    }
}

pub(super) fn validate_replica_set(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, MetaRules::kube(NameRule::Subdomain), errs);
    let spec = obj.field("spec").object(errs);
    nonnegative(&spec.field("replicas"), errs);
    nonnegative(&spec.field("minReadySeconds"), errs);
    let ws = validate_selector(&spec, "deployment", false, errs);
    validate_replica_template(&spec, &ws, "ReplicaSet", errs);
    selector_immutable(input, errs);
}

pub(super) fn validate_daemon_set(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, MetaRules::kube(NameRule::Subdomain), errs);
    let spec = obj.field("spec").object(errs);
    let node = spec.field("selector");
    meta::validate_label_selector(&node, errs);
    let ws = WorkloadSelector {
        selector: Selector::read(&node),
    };
    let template = spec.field("template").object(errs);
    let labels = template.field("metadata").field("labels").peek_string_map();
    let matches = match &ws.selector {
        Some(s) if s.unparseable => true,
        Some(s) => s.is_empty() || s.matches(&labels.clone().unwrap_or_default()),
        None => false,
    };
    if !matches {
        errs.push(invalid(
            &child(&template.path, "metadata.labels"),
            raw(go_string_map(labels.as_ref())),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(s) = ws.selector.as_ref().filter(|s| s.is_empty()) {
        errs.push(invalid(
            &node.path,
            raw(s.go_repr()),
            "empty selector is invalid for daemonset",
        ));
    }
    pod::validate_pod_template_spec(&template, errs);
    require_always_restart(&template, errs);
    forbid_deadline(&template, "DaemonSet", errs);
    nonnegative(&spec.field("minReadySeconds"), errs);
    nonnegative(&spec.field("templateGeneration"), errs);
    validate_daemon_set_strategy(&spec.field("updateStrategy").object(errs), errs);
    nonnegative(&spec.field("revisionHistoryLimit"), errs);
    selector_immutable(input, errs);
}

fn validate_daemon_set_strategy(strategy: &Node, errs: &mut Errs) {
    match strategy.field("type").string(errs) {
        "OnDelete" => {}
        "RollingUpdate" | "" => {
            let rolling = strategy.field("rollingUpdate").object(errs);
            let max_unavailable = rolling.field("maxUnavailable");
            let max_surge = rolling.field("maxSurge");
            validate_int_or_percent(&max_unavailable, errs);
            validate_int_or_percent(&max_surge, errs);
            not_over_100_percent(&max_unavailable, errs);
            not_over_100_percent(&max_surge, errs);
            let unavailable = int_or_percent_value(&max_unavailable).unwrap_or(1) != 0;
            let surge = int_or_percent_value(&max_surge).unwrap_or(0) != 0;
            if unavailable && surge {
                errs.push(invalid(
                    &max_surge.path,
                    raw(go_int_or_string(max_surge.value)),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !unavailable && !surge {
                errs.push(required(&max_unavailable.path, "cannot be 0 when maxSurge is 0"));
            }
        }
        other => {
            let shown = format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}",
                super::field::go_quote(other)
            );
            errs.push(not_supported(
                &strategy.path,
                raw(shown),
                &["RollingUpdate", "OnDelete"],
            ));
        }
    }
}

pub(super) fn validate_stateful_set(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    meta_create_or_update(input, MetaRules::kube(NameRule::Label), errs);
    let spec = obj.field("spec").object(errs);
    let policy = spec.field("podManagementPolicy");
    if let Some(p) = policy.str(errs)
        && !p.is_empty()
        && p != "OrderedReady"
        && p != "Parallel"
    {
        errs.push(invalid(&policy.path, p, "must be 'OrderedReady' or 'Parallel'"));
    }
    validate_stateful_set_strategy(&spec.field("updateStrategy").object(errs), errs);
    let retention = spec.field("persistentVolumeClaimRetentionPolicy").object(errs);
    for field in ["whenDeleted", "whenScaled"] {
        let node = retention.field(field);
        if let Some(v) = node.str(errs)
            && v != "Retain"
            && v != "Delete"
        {
            errs.push(not_supported(&node.path, v, &["Retain", "Delete"]));
        }
    }
    nonnegative(&spec.field("replicas"), errs);
    nonnegative(&spec.field("minReadySeconds"), errs);
    let start = spec.field("ordinals").field("start");
    if let Some(s) = start.int(errs) {
        meta::validate_nonnegative("spec.ordinals.start", s, errs);
    }
    let ws = validate_selector(&spec, "statefulset", false, errs);
    let template = spec.field("template").object(errs);
    if check_template_labels(&ws, &spec, "", errs) {
        let metadata = template.field("metadata").object(errs);
        meta::validate_labels(
            &Node::new(metadata.field("labels").value, child(&template.path, "labels")),
            errs,
        );
        meta::validate_annotations(
            &Node::new(
                metadata.field("annotations").value,
                child(&template.path, "annotations"),
            ),
            errs,
        );
    }
    require_always_restart(&template, errs);
    forbid_deadline(&template, "StatefulSet", errs);
    if let Some(old) = input.old() {
        validate_stateful_set_update(&spec, &old.field("spec"), errs);
    }
}

fn validate_stateful_set_strategy(strategy: &Node, errs: &mut Errs) {
    let rolling = strategy.field("rollingUpdate").object(errs);
    match strategy.field("type").string(errs) {
        "OnDelete" => {
            if rolling.present() {
                errs.push(invalid(
                    &rolling.path,
                    raw(rolling.value.map(Value::to_string).unwrap_or_default()),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" | "" => {
            nonnegative(&rolling.field("partition"), errs);
            let max_unavailable = rolling.field("maxUnavailable");
            if max_unavailable.present() {
                validate_int_or_percent(&max_unavailable, errs);
                if int_or_percent_value(&max_unavailable) == Some(0) {
                    errs.push(invalid(&max_unavailable.path, raw(go_int_or_string(max_unavailable.value)), "cannot be 0"));
                }
                not_over_100_percent(&max_unavailable, errs);
            }
        }
        other => errs.push(invalid(
            &strategy.path,
            raw(format!(
                "apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}}",
                super::field::go_quote(other)
            )),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
}

/// Only replicas, ordinals, template, updateStrategy, the PVC retention policy and minReadySeconds may change.
fn validate_stateful_set_update(spec: &Node, old: &Node, errs: &mut Errs) {
    const MUTABLE: &[&str] = &[
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let rest = |n: &Node| -> Value {
        let mut v = n.value.cloned().unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            for f in MUTABLE {
                m.remove(*f);
            }
        }
        v
    };
    if !same(Some(&rest(spec)), Some(&rest(old))) {
        errs.push(forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

pub(super) fn validate_controller_revision(input: &Input, errs: &mut Errs) {
    let obj = input.object();
    let rules = MetaRules::kube(NameRule::Subdomain);
    meta_create_or_update(input, rules, errs);
    if input.old.is_some() {
        meta::validate_object_meta(&obj.field("metadata"), rules, errs);
    }
    if !obj.field("data").present() {
        errs.push(required("data", "data is mandatory"));
    }
    nonnegative(&obj.field("revision"), errs);
    if let Some(old) = input.old()
        && !same(obj.field("data").value, old.field("data").value)
    {
        errs.push(invalid(
            "data",
            raw(obj.field("data").value.map(Value::to_string).unwrap_or_default()),
            "field is immutable",
        ));
    }
}
