//! TaintToleration: `NoSchedule`/`NoExecute` taints a pod does not tolerate
//! keep it off a node; untolerated `PreferNoSchedule` taints lower the score.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, ScorePlugin, Status, default_normalize_score};
use crate::types::{NodeInfo, PodInfo};

pub struct TaintToleration;

/// Upstream `Toleration.ToleratesTaint`: an empty key with `Exists` tolerates everything.
pub fn toleration_matches(t: &Toleration, taint: &Taint) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if t.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

pub fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| toleration_matches(t, taint))
}

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tolerations = pod.spec().tolerations.as_deref().unwrap_or_default();
        let untolerated = node
            .taints
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .find(|t| !tolerates(tolerations, t));
        match untolerated {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    /// Counts untolerated `PreferNoSchedule` taints; only tolerations for that effect (or any effect) count.
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let tolerations: Vec<Toleration> = pod
            .spec()
            .tolerations
            .iter()
            .flatten()
            .filter(|t| matches!(t.effect.as_deref(), None | Some("") | Some("PreferNoSchedule")))
            .cloned()
            .collect();
        let prefer = node.taints.iter().filter(|t| t.effect == "PreferNoSchedule");
        prefer.filter(|t| !tolerates(&tolerations, t)).count() as i64
    }

    fn normalize_score(&self, _: &CycleState, _: &PodInfo, _: &[std::sync::Arc<NodeInfo>], scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            value: Some(value.into()),
            effect: Some(effect.into()),
            ..Default::default()
        }
    }

    #[test]
    fn toleration_matching() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        let cases = [
            (toleration("dedicated", "Equal", "gpu", "NoSchedule"), true),
            (toleration("dedicated", "Equal", "cpu", "NoSchedule"), false),
            (toleration("dedicated", "Exists", "", ""), true),
            (toleration("", "Exists", "", ""), true),
            (toleration("dedicated", "Equal", "gpu", "NoExecute"), false),
            (toleration("other", "Exists", "", ""), false),
            (toleration("dedicated", "Bogus", "gpu", ""), false),
        ];
        for (i, (tol, want)) in cases.iter().enumerate() {
            assert_eq!(toleration_matches(tol, &t), *want, "case {i}");
        }
    }

    #[test]
    fn filter_reports_upstream_reason() {
        let mut n = node_info(node("n", &[], &[]), vec![]);
        n.taints = vec![
            taint("a", "b", "PreferNoSchedule"),
            taint("dedicated", "gpu", "NoSchedule"),
        ];
        let status = FilterPlugin::filter(&TaintToleration, &CycleState::default(), &pod_info(pod("p", &[])), &n);
        assert_eq!(
            status,
            Status::unresolvable("node(s) had untolerated taint {dedicated: gpu}")
        );
        let mut p = pod("p", &[]);
        p.spec.as_mut().unwrap().tolerations = Some(vec![toleration("dedicated", "Exists", "", "")]);
        assert!(FilterPlugin::filter(&TaintToleration, &CycleState::default(), &pod_info(p), &n).is_success());
    }

    #[test]
    fn prefer_no_schedule_scores() {
        let mut clean = node_info(node("a", &[], &[]), vec![]);
        clean.taints = vec![];
        let mut one = node_info(node("b", &[], &[]), vec![]);
        one.taints = vec![taint("x", "", "PreferNoSchedule")];
        let mut two = node_info(node("c", &[], &[]), vec![]);
        two.taints = vec![taint("x", "", "PreferNoSchedule"), taint("y", "", "PreferNoSchedule")];
        let p = pod_info(pod("p", &[]));
        let state = CycleState::default();
        let mut scores: Vec<i64> = [&clean, &one, &two]
            .iter()
            .map(|n| TaintToleration.score(&state, &p, n))
            .collect();
        assert_eq!(scores, vec![0, 1, 2]);
        TaintToleration.normalize_score(&state, &p, &[], &mut scores);
        assert_eq!(scores, vec![100, 50, 0]);
    }
}
