//! apps/v1 (`pkg/apis/apps/v1/defaults.go`).

use serde_json::json;

use super::{Obj, child, items, pod, present, set_if_empty, set_if_unset, str_of};

pub(super) fn apply(kind: &str, object: &mut Obj) {
    let defaults: fn(&mut Obj) = match kind {
        "Deployment" => deployment,
        "ReplicaSet" => |spec| set_if_unset(spec, "replicas", 1),
        "StatefulSet" => stateful_set,
        "DaemonSet" => daemon_set,
        _ => return,
    };
    if let Some(spec) = child(object, "spec") {
        defaults(spec);
        pod::template(spec, "template");
    }
}

/// One replica, a 25%/25% rolling update (only under the `RollingUpdate`
/// strategy), ten old ReplicaSets kept, ten minutes to make progress.
fn deployment(spec: &mut Obj) {
    set_if_unset(spec, "replicas", 1);
    if let Some(strategy) = child(spec, "strategy") {
        set_if_empty(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling_update) = child(strategy, "rollingUpdate")
        {
            set_if_unset(rolling_update, "maxUnavailable", "25%");
            set_if_unset(rolling_update, "maxSurge", "25%");
        }
    }
    set_if_unset(spec, "revisionHistoryLimit", 10);
    set_if_unset(spec, "progressDeadlineSeconds", 600);
}

/// A rolling update one node at a time without surge, ten revisions kept.
fn daemon_set(spec: &mut Obj) {
    if let Some(strategy) = child(spec, "updateStrategy") {
        set_if_empty(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling_update) = child(strategy, "rollingUpdate")
        {
            set_if_unset(rolling_update, "maxUnavailable", 1);
            set_if_unset(rolling_update, "maxSurge", 0);
        }
    }
    set_if_unset(spec, "revisionHistoryLimit", 10);
}

/// Ordered pod management; a rolling update whose partition is defaulted
/// only when the `rollingUpdate` block exists (upstream creates it only when
/// it also had to choose the strategy type); claims retained.
fn stateful_set(spec: &mut Obj) {
    set_if_empty(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child(spec, "updateStrategy") {
        if super::is_empty_str(strategy, "type") {
            strategy.insert("type".into(), "RollingUpdate".into());
            set_if_unset(strategy, "rollingUpdate", json!({}));
        }
        if str_of(strategy, "type") == "RollingUpdate"
            && let Some(rolling_update) = present(strategy, "rollingUpdate")
        {
            set_if_unset(rolling_update, "partition", 0);
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        set_if_empty(policy, "whenDeleted", "Retain");
        set_if_empty(policy, "whenScaled", "Retain");
    }
    set_if_unset(spec, "replicas", 1);
    set_if_unset(spec, "revisionHistoryLimit", 10);
    for claim in items(spec, "volumeClaimTemplates") {
        pod::claim(claim);
    }
}
