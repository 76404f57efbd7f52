//! PodTopologySpread: `whenUnsatisfiable: DoNotSchedule` constraints filter
//! nodes whose domain would exceed `maxSkew` over the least loaded domain;
//! `ScheduleAnyway` constraints score nodes in emptier domains higher.
//! System default constraints (for pods without any) are not applied.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::node_affinity::required_matches;
use super::taint_toleration::tolerates;
use crate::cache::Snapshot;
use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, ScorePlugin, Status};
use crate::labels::Selector;
use crate::types::{NodeInfo, PodInfo};

pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const HOSTNAME: &str = "kubernetes.io/hostname";
const FILTER_KEY: &str = "PreFilterPodTopologySpread";
const SCORE_KEY: &str = "PreScorePodTopologySpread";

pub struct PodTopologySpread;

/// A compiled constraint.
#[derive(Debug, Clone)]
struct Constraint {
    max_skew: i64,
    min_domains: i64,
    topology_key: String,
    selector: Selector,
    honor_affinity: bool,
    honor_taints: bool,
}

fn constraints(pod: &PodInfo, when: &str) -> Vec<Constraint> {
    let all = pod.spec().topology_spread_constraints.iter().flatten();
    all.filter(|c| c.when_unsatisfiable == when)
        .map(|c| compile(pod, c))
        .collect()
}

fn compile(pod: &PodInfo, c: &TopologySpreadConstraint) -> Constraint {
    let keys = c.match_label_keys.clone().unwrap_or_default();
    Constraint {
        max_skew: i64::from(c.max_skew),
        min_domains: i64::from(c.min_domains.unwrap_or(1)),
        topology_key: c.topology_key.clone(),
        selector: Selector::new(c.label_selector.as_ref()).with_label_values(&keys, &pod.labels),
        honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
        honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
    }
}

impl Constraint {
    /// Upstream `matchNodeInclusionPolicies`: which nodes' pods count toward domains.
    fn includes(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        if self.honor_affinity && !required_matches(pod, node) {
            return false;
        }
        if self.honor_taints {
            let tolerations = pod.spec().tolerations.as_deref().unwrap_or_default();
            let hard = node
                .taints
                .iter()
                .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
            return hard.clone().all(|t| tolerates(tolerations, t));
        }
        true
    }

    fn count(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let matching = node
            .pods
            .iter()
            .filter(|p| !p.terminating && p.namespace == pod.namespace);
        matching.filter(|p| self.selector.matches(&p.labels)).count() as i64
    }
}

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints.iter().all(|c| node.labels.contains_key(&c.topology_key))
}

/// Matching pods per domain value, per constraint, and the global minimum.
struct FilterState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
}

impl FilterState {
    /// The least loaded domain's count, or 0 while there are fewer domains than `minDomains`.
    fn min_match(&self, i: usize) -> i64 {
        let counts = &self.counts[i];
        if (counts.len() as i64) < self.constraints[i].min_domains {
            return 0;
        }
        counts.values().copied().min().unwrap_or(i64::from(i32::MAX))
    }
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let constraints = constraints(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return Status::skip();
        }
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in snapshot.nodes.iter().filter(|n| has_all_keys(n, &constraints)) {
            for (c, counts) in constraints.iter().zip(counts.iter_mut()) {
                if c.includes(pod, node) {
                    *counts.entry(node.labels[&c.topology_key].clone()).or_insert(0) += c.count(pod, node);
                }
            }
        }
        state.write(FILTER_KEY, FilterState { constraints, counts });
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>(FILTER_KEY) else {
            return Status::error("PodTopologySpread: no PreFilter state");
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let self_match = i64::from(c.selector.matches(&pod.labels));
            let count = s.counts[i].get(value).copied().unwrap_or(0);
            if count + self_match - s.min_match(i) > c.max_skew {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

/// Counts per domain over all nodes, for the domains of the feasible nodes.
struct ScoreState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    ignored: HashSet<String>,
}

impl ScoreState {
    fn new(constraints: Vec<Constraint>, nodes: &[Arc<NodeInfo>]) -> Self {
        let mut counts = vec![HashMap::new(); constraints.len()];
        let mut ignored = HashSet::new();
        for node in nodes {
            if !has_all_keys(node, &constraints) {
                ignored.insert(node.name.clone());
                continue;
            }
            for (c, counts) in constraints.iter().zip(counts.iter_mut()) {
                if c.topology_key != HOSTNAME {
                    counts.entry(node.labels[&c.topology_key].clone()).or_insert(0);
                }
            }
        }
        let weights = constraints
            .iter()
            .zip(&counts)
            .map(|(c, counts)| {
                let size = if c.topology_key == HOSTNAME {
                    nodes.len() - ignored.len()
                } else {
                    counts.len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        ScoreState {
            constraints,
            counts,
            weights,
            ignored,
        }
    }
}

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot, nodes: &[Arc<NodeInfo>]) -> Status {
        let constraints = constraints(pod, "ScheduleAnyway");
        if constraints.is_empty() {
            return Status::skip();
        }
        let mut s = ScoreState::new(constraints, nodes);
        for node in snapshot.nodes.iter().filter(|n| has_all_keys(n, &s.constraints)) {
            for (c, counts) in s.constraints.iter().zip(s.counts.iter_mut()) {
                if !c.includes(pod, node) {
                    continue;
                }
                if let Some(count) = counts.get_mut(&node.labels[&c.topology_key]) {
                    *count += c.count(pod, node);
                }
            }
        }
        state.write(SCORE_KEY, s);
        Status::success()
    }

    /// Upstream: Σ count × log(domains + 2) + (maxSkew − 1), rounded; fewer matching pods is better.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(s) = state.read::<ScoreState>(SCORE_KEY) else {
            return 0;
        };
        if s.ignored.contains(&node.name) {
            return 0;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == HOSTNAME {
                c.count(pod, node)
            } else {
                s.counts[i].get(value).copied().unwrap_or(0)
            };
            score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize_score(&self, state: &CycleState, _: &PodInfo, nodes: &[Arc<NodeInfo>], scores: &mut [i64]) {
        let Some(s) = state.read::<ScoreState>(SCORE_KEY) else {
            return;
        };
        let valid = |i: usize| !s.ignored.contains(&nodes[i].name);
        let considered: Vec<i64> = (0..scores.len()).filter(|&i| valid(i)).map(|i| scores[i]).collect();
        let min = considered.iter().copied().min().unwrap_or(0);
        let max = considered.iter().copied().max().unwrap_or(0);
        for (i, score) in scores.iter_mut().enumerate() {
            *score = match (valid(i), max) {
                (false, _) => 0,
                (true, 0) => MAX_NODE_SCORE,
                (true, max) => MAX_NODE_SCORE * (max + min - *score) / max,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn spread(p: Pod, key: &str, max_skew: i32, when: &str) -> Pod {
        let mut p = with_labels(p, &[("app", "web")]);
        p.spec.as_mut().unwrap().topology_spread_constraints = Some(vec![TopologySpreadConstraint {
            max_skew,
            topology_key: key.into(),
            when_unsatisfiable: when.into(),
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        p
    }

    fn web(name: &str) -> Pod {
        with_labels(pod(name, &[]), &[("app", "web")])
    }

    /// Zone a: n1 (2 web pods), n2 (1); zone b: n3 (0), n4 (0); n5 has no zone label.
    fn cluster() -> Snapshot {
        Snapshot::new(vec![
            Arc::new(node_info(node("n1", &[], &[("zone", "a")]), vec![web("w1"), web("w2")])),
            Arc::new(node_info(node("n2", &[], &[("zone", "a")]), vec![web("w3")])),
            Arc::new(node_info(node("n3", &[], &[("zone", "b")]), vec![pod("other", &[])])),
            Arc::new(node_info(node("n4", &[], &[("zone", "b")]), vec![])),
            Arc::new(node_info(node("n5", &[], &[]), vec![web("w4")])),
        ])
    }

    fn filter_all(p: &PodInfo, snapshot: &Snapshot) -> Vec<Status> {
        let mut state = CycleState::default();
        assert!(PodTopologySpread.pre_filter(&mut state, p, snapshot).is_success());
        snapshot
            .nodes
            .iter()
            .map(|n| PodTopologySpread.filter(&state, p, n))
            .collect()
    }

    #[test]
    fn do_not_schedule_by_zone() {
        let snapshot = cluster();
        let p = pod_info(spread(pod("p", &[]), "zone", 1, "DoNotSchedule"));
        let got = filter_all(&p, &snapshot);
        let ok: Vec<bool> = got.iter().map(|s| s.is_success()).collect();
        // zone a has 3, zone b 0: only zone b fits; n5 lacks the label.
        assert_eq!(ok, vec![false, false, true, true, false]);
        assert_eq!(got[0], Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH));
        assert_eq!(got[4], Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH));
        let p = pod_info(spread(pod("p", &[]), "zone", 3, "DoNotSchedule"));
        let ok: Vec<bool> = filter_all(&p, &snapshot).iter().map(|s| s.is_success()).collect();
        assert_eq!(ok, vec![false, false, true, true, false], "3 + 1 - 0 > 3");
    }

    #[test]
    fn do_not_schedule_by_hostname_and_min_domains() {
        let snapshot = cluster();
        let p = pod_info(spread(pod("p", &[]), HOSTNAME, 1, "DoNotSchedule"));
        let ok: Vec<bool> = filter_all(&p, &snapshot).iter().map(|s| s.is_success()).collect();
        // n5 (1 pod) counts too, as it has a hostname: min is 0, so only empty nodes fit.
        assert_eq!(ok, vec![false, false, true, true, false]);
        let mut raw = spread(pod("p", &[]), "zone", 3, "DoNotSchedule");
        raw.spec.as_mut().unwrap().topology_spread_constraints.as_mut().unwrap()[0].min_domains = Some(3);
        let ok: Vec<bool> = filter_all(&pod_info(raw), &snapshot)
            .iter()
            .map(|s| s.is_success())
            .collect();
        assert_eq!(
            ok,
            vec![false, false, true, true, false],
            "min domains not met: global min is 0"
        );
    }

    #[test]
    fn node_affinity_policy_limits_domains() {
        let snapshot = cluster();
        let mut raw = spread(pod("p", &[]), "zone", 1, "DoNotSchedule");
        raw.spec.as_mut().unwrap().node_selector = Some([("zone".to_string(), "a".to_string())].into());
        let ok: Vec<bool> = filter_all(&pod_info(raw), &snapshot)
            .iter()
            .map(|s| s.is_success())
            .collect();
        // Only zone a counts, so its own minimum is 3 and the skew stays 1.
        assert_eq!(ok, vec![true, true, true, true, false]);
    }

    #[test]
    fn schedule_anyway_scores() {
        let snapshot = cluster();
        let p = pod_info(spread(pod("p", &[]), "zone", 1, "ScheduleAnyway"));
        let feasible: Vec<Arc<NodeInfo>> = snapshot.nodes.clone();
        let mut state = CycleState::default();
        assert!(
            PodTopologySpread
                .pre_score(&mut state, &p, &snapshot, &feasible)
                .is_success()
        );
        let mut scores: Vec<i64> = feasible
            .iter()
            .map(|n| PodTopologySpread.score(&state, &p, n))
            .collect();
        // 2 domains: weight ln 4 ≈ 1.386; zone a 3 pods → 4, zone b → 0.
        assert_eq!(scores, vec![4, 4, 0, 0, 0]);
        PodTopologySpread.normalize_score(&state, &p, &feasible, &mut scores);
        assert_eq!(scores, vec![0, 0, 100, 100, 0]);
    }
}
