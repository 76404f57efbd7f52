//! autoscaling/v1 and v2 (`pkg/apis/autoscaling/{v1,v2}/defaults.go`).

use serde_json::{Value, json};

use super::{Obj, child, is_empty_list, is_unset, present, set_if_unset};

/// At least one replica. (v1's CPU target is filled in by conversion, not here.)
pub(super) fn hpa_v1(object: &mut Obj) {
    if let Some(spec) = child(object, "spec") {
        set_if_unset(spec, "minReplicas", 1);
    }
}

/// At least one replica, 80% CPU utilization when no metric is given, and a
/// complete scaling behavior when any behavior is given.
pub(super) fn hpa_v2(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    set_if_unset(spec, "minReplicas", 1);
    if is_empty_list(spec, "metrics") {
        let cpu = json!({
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
        });
        spec.insert("metrics".into(), json!([cpu]));
    }
    if let Some(behavior) = present(spec, "behavior") {
        scaling_rules(behavior, "scaleUp", scale_up_policies(), Some(0));
        scaling_rules(behavior, "scaleDown", scale_down_policies(), None);
    }
}

/// Scale up by at most 4 pods or 100% per 15 seconds, whichever is more,
/// without a stabilization window.
fn scale_up_policies() -> Value {
    json!([
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ])
}

/// Scale down by up to 100% per 15 seconds; the stabilization window stays
/// unset, as the controller's command-line flag supplies it.
fn scale_down_policies() -> Value {
    json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
}

/// `GenerateHPAScale{Up,Down}Rules`: the defaults, overridden field by field
/// by what the object sets.
fn scaling_rules(behavior: &mut Obj, key: &str, policies: Value, stabilization: Option<i64>) {
    let Some(rules) = child(behavior, key) else {
        return;
    };
    if let Some(seconds) = stabilization {
        set_if_unset(rules, "stabilizationWindowSeconds", seconds);
    }
    set_if_unset(rules, "selectPolicy", "Max");
    if is_unset(rules, "policies") {
        rules.insert("policies".into(), policies);
    }
}
