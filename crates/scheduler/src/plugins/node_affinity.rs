//! NodeAffinity: `nodeSelector` and required node affinity filter nodes;
//! preferred node affinity terms add their weights to the score.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{NodeAffinity as Affinity, PreferredSchedulingTerm};

use crate::cache::Snapshot;
use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, ScorePlugin, Status, default_normalize_score};
use crate::labels::node_term_matches;
use crate::types::{NodeInfo, PodInfo};

pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

fn node_affinity(pod: &PodInfo) -> Option<&Affinity> {
    pod.spec().affinity.as_ref()?.node_affinity.as_ref()
}

fn preferred(pod: &PodInfo) -> &[PreferredSchedulingTerm] {
    node_affinity(pod)
        .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
        .unwrap_or_default()
}

/// Upstream `RequiredNodeAffinity.Match`: the node selector and any one required term.
pub fn required_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    let selector_ok = pod
        .spec()
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let required = node_affinity(pod).and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref());
    selector_ok
        && required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| node_term_matches(t, &node.labels, &node.name))
        })
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn pre_filter(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> Status {
        let has_selector = pod.spec().node_selector.as_ref().is_some_and(|s| !s.is_empty());
        let has_required =
            node_affinity(pod).is_some_and(|a| a.required_during_scheduling_ignored_during_execution.is_some());
        if has_selector || has_required {
            Status::success()
        } else {
            Status::skip()
        }
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if required_matches(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot, _: &[Arc<NodeInfo>]) -> Status {
        if preferred(pod).is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }

    /// Sum of the weights of the preferred terms the node matches.
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let matching = preferred(pod)
            .iter()
            .filter(|t| node_term_matches(&t.preference, &node.labels, &node.name));
        matching.map(|t| i64::from(t.weight)).sum()
    }

    fn normalize_score(&self, _: &CycleState, _: &PodInfo, _: &[Arc<NodeInfo>], scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;
    use k8s_openapi::api::core::v1::{
        Affinity as PodAffinitySpec, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    };

    fn term(key: &str, op: &str, values: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..Default::default()
        }
    }

    fn with_affinity(required: Option<Vec<NodeSelectorTerm>>, preferred: Vec<(i32, NodeSelectorTerm)>) -> Pod {
        let mut p = pod("p", &[]);
        p.spec.as_mut().unwrap().affinity = Some(PodAffinitySpec {
            node_affinity: Some(Affinity {
                required_during_scheduling_ignored_during_execution: required.map(|terms| NodeSelector {
                    node_selector_terms: terms,
                }),
                preferred_during_scheduling_ignored_during_execution: Some(
                    preferred
                        .into_iter()
                        .map(|(weight, preference)| PreferredSchedulingTerm { weight, preference })
                        .collect(),
                ),
            }),
            ..Default::default()
        });
        p
    }

    #[test]
    fn required_affinity_and_selector() {
        let n = node_info(node("n", &[], &[("zone", "a"), ("disk", "ssd")]), vec![]);
        let mut selector_pod = pod("p", &[]);
        selector_pod.spec.as_mut().unwrap().node_selector = Some([("disk".to_string(), "hdd".to_string())].into());
        let cases = [
            (pod("p", &[]), true),
            (selector_pod, false),
            (with_affinity(Some(vec![term("zone", "In", &["a"])]), vec![]), true),
            (with_affinity(Some(vec![term("zone", "In", &["b"])]), vec![]), false),
            (
                with_affinity(
                    Some(vec![term("zone", "In", &["b"]), term("disk", "Exists", &[])]),
                    vec![],
                ),
                true,
            ),
            (with_affinity(Some(vec![]), vec![]), false),
            (with_affinity(Some(vec![NodeSelectorTerm::default()]), vec![]), false),
        ];
        for (i, (p, want)) in cases.into_iter().enumerate() {
            let status = FilterPlugin::filter(&NodeAffinity, &CycleState::default(), &pod_info(p), &n);
            assert_eq!(status.is_success(), want, "case {i}");
            if !want {
                assert_eq!(status, Status::unresolvable(ERR_REASON_POD));
            }
        }
    }

    #[test]
    fn preferred_affinity_scores() {
        let nodes = [
            node_info(node("a", &[], &[("zone", "a")]), vec![]),
            node_info(node("b", &[], &[("zone", "b"), ("ssd", "true")]), vec![]),
            node_info(node("c", &[], &[]), vec![]),
        ];
        let p = pod_info(with_affinity(
            None,
            vec![(2, term("zone", "In", &["a"])), (8, term("ssd", "Exists", &[]))],
        ));
        let state = CycleState::default();
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| ScorePlugin::score(&NodeAffinity, &state, &p, n))
            .collect();
        assert_eq!(scores, vec![2, 8, 0]);
        NodeAffinity.normalize_score(&state, &p, &[], &mut scores);
        assert_eq!(scores, vec![25, 100, 0]);
    }
}
