//! One scheduling cycle's algorithm (upstream `schedule_one.go`):
//! PreFilter, Filter over a sample of nodes (`percentageOfNodesToScore`),
//! Score, pick the best node — or a [`FitError`] that says why none fits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use rand::Rng;

use crate::cache::Snapshot;
use crate::framework::{Code, CycleState, Framework, Status};
use crate::types::{NodeInfo, PodInfo};

/// Below this many nodes every node is evaluated (upstream `minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this (upstream `minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// Upstream `numFeasibleNodesToFind`: with `percentage` 0 the share shrinks
/// from 50% as the cluster grows (10% at 5,000 nodes), never below 5% or 100 nodes.
pub fn num_feasible_nodes_to_find(percentage: i32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut percentage = i64::from(percentage);
    if percentage == 0 {
        percentage = (50 - num_all_nodes as i64 / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    let num = (num_all_nodes as i64 * percentage / 100) as usize;
    num.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Why a pod fits nowhere (upstream `framework.FitError`); `Display` is upstream's message.
#[derive(Debug, Clone, Default)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// The status of every node that was rejected.
    pub node_statuses: HashMap<String, Status>,
    /// Set when a PreFilter rejected the pod outright.
    pub pre_filter_msg: Option<String>,
    /// Preemption's outcome, e.g. `preemption: 0/3 nodes are available: …`.
    pub post_filter_msg: Option<String>,
}

impl FitError {
    /// The plugins that rejected the pod somewhere, which decide what events re-queue it.
    pub fn unschedulable_plugins(&self) -> HashSet<&'static str> {
        self.node_statuses.values().filter_map(|s| s.plugin).collect()
    }

    /// `"3 Insufficient cpu"`-style counts, sorted as strings like upstream.
    fn histogram(&self) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for status in self.node_statuses.values() {
            for reason in &status.reasons {
                *counts.entry(reason).or_default() += 1;
            }
        }
        let mut lines: Vec<String> = counts.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
        lines.sort();
        lines
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        match &self.pre_filter_msg {
            Some(msg) => write!(f, " {msg}.")?,
            None => {
                let reasons = self.histogram();
                if !reasons.is_empty() {
                    write!(f, " {}.", reasons.join(", "))?;
                }
            }
        }
        if let Some(msg) = &self.post_filter_msg {
            write!(f, " {msg}")?;
        }
        Ok(())
    }
}

/// The chosen node and how much of the cluster was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

/// The scheduling algorithm with its round-robin position across cycles.
pub struct Algorithm {
    pub framework: Framework,
    pub percentage_of_nodes_to_score: i32,
    next_start_node_index: usize,
}

impl Algorithm {
    pub fn new(framework: Framework, percentage_of_nodes_to_score: i32) -> Self {
        Algorithm {
            framework,
            percentage_of_nodes_to_score,
            next_start_node_index: 0,
        }
    }

    /// Picks a node for `pod`, or says why there is none.
    pub fn schedule_pod(&mut self, pod: &PodInfo, snapshot: &Snapshot) -> Result<ScheduleResult, FitError> {
        let mut fit_error = FitError {
            num_all_nodes: snapshot.nodes.len(),
            ..Default::default()
        };
        if snapshot.nodes.is_empty() {
            return Err(fit_error);
        }
        let mut state = CycleState::default();
        if let Err(status) = self.framework.run_pre_filters(&mut state, pod, snapshot) {
            fit_error.pre_filter_msg = Some(status.reasons.join(", "));
            for node in &snapshot.nodes {
                fit_error.node_statuses.insert(node.name.clone(), status.clone());
            }
            return Err(fit_error);
        }
        let (feasible, evaluated) = self.find_nodes_that_fit(&state, pod, snapshot, &mut fit_error);
        match feasible.len() {
            0 => Err(fit_error),
            1 => Ok(ScheduleResult {
                node: feasible[0].name.clone(),
                evaluated_nodes: evaluated,
                feasible_nodes: 1,
            }),
            n => {
                let scores = self.framework.run_scores(&mut state, pod, snapshot, &feasible);
                let best = select_host(&scores);
                Ok(ScheduleResult {
                    node: feasible[best].name.clone(),
                    evaluated_nodes: evaluated,
                    feasible_nodes: n,
                })
            }
        }
    }

    /// Filters nodes round-robin from where the last cycle stopped until enough fit.
    /// A nominated node (from an earlier preemption) is tried first and wins if it fits.
    fn find_nodes_that_fit(
        &mut self,
        state: &CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        fit_error: &mut FitError,
    ) -> (Vec<Arc<NodeInfo>>, usize) {
        let nominated = nominated_node(pod).and_then(|n| snapshot.get(n));
        if let Some(node) = nominated.filter(|n| self.framework.run_filters(state, pod, n).is_success()) {
            return (vec![node.clone()], 1);
        }
        let all = snapshot.nodes.len();
        let want = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, all);
        let mut feasible = Vec::with_capacity(want.min(all));
        let mut evaluated = 0;
        for i in 0..all {
            let node = &snapshot.nodes[(self.next_start_node_index + i) % all];
            evaluated += 1;
            let status = self.framework.run_filters(state, pod, node);
            if status.is_success() {
                feasible.push(node.clone());
                if feasible.len() >= want {
                    break;
                }
            } else {
                fit_error.node_statuses.insert(node.name.clone(), status);
            }
        }
        self.next_start_node_index = (self.next_start_node_index + evaluated) % all;
        (feasible, evaluated)
    }
}

pub fn nominated_node(pod: &PodInfo) -> Option<&str> {
    pod.pod
        .status
        .as_ref()?
        .nominated_node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

/// The highest score, ties broken uniformly at random (reservoir sampling, as upstream).
pub fn select_host(scores: &[i64]) -> usize {
    let mut rng = rand::rng();
    let mut best = 0;
    let mut ties = 0u32;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
            ties = 1;
        } else if s == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

/// Whether a failure could be fixed by evicting pods (everything but unresolvable statuses).
pub fn preemption_might_help(status: &Status) -> bool {
    status.code != Code::UnschedulableAndUnresolvable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;
    use k8s_openapi::api::core::v1::Taint;

    #[test]
    fn feasible_nodes_to_find() {
        let cases = [
            (0, 50, 50),
            (0, 100, 100),
            (0, 1000, 420),
            (0, 5000, 500),
            (0, 6000, 300),
            (0, 50000, 2500),
        ];
        for (pct, all, want) in cases {
            assert_eq!(num_feasible_nodes_to_find(pct, all), want, "{pct}% of {all}");
        }
        assert_eq!(num_feasible_nodes_to_find(100, 5000), 5000);
        assert_eq!(num_feasible_nodes_to_find(1, 5000), 100);
    }

    fn snapshot(nodes: Vec<NodeInfo>) -> Snapshot {
        Snapshot::new(nodes.into_iter().map(Arc::new).collect())
    }

    #[test]
    fn fit_error_message_matches_upstream() {
        let mut tainted = node_info(node("n1", &[("cpu", "4"), ("pods", "110")], &[]), vec![]);
        tainted.taints = vec![Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        }];
        let small = |name| node_info(node(name, &[("cpu", "1"), ("pods", "110")], &[]), vec![]);
        let s = snapshot(vec![tainted, small("n2"), small("n3")]);
        let mut alg = Algorithm::new(Framework::default_profile(), 0);
        let err = alg.schedule_pod(&pod_info(pod("p", &[("cpu", "2")])), &s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
        );
        let with_preemption = FitError {
            post_filter_msg: Some(
                "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.".into(),
            ),
            ..err
        };
        assert!(with_preemption.to_string().ends_with(
            "2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        ));
        assert_eq!(FitError::default().to_string(), "0/0 nodes are available:");
    }

    #[test]
    fn picks_the_least_allocated_node() {
        let s = snapshot(vec![
            node_info(
                node("busy", &[("cpu", "4"), ("memory", "8Gi"), ("pods", "110")], &[]),
                vec![pod("e", &[("cpu", "3")])],
            ),
            node_info(
                node("idle", &[("cpu", "4"), ("memory", "8Gi"), ("pods", "110")], &[]),
                vec![],
            ),
        ]);
        let mut alg = Algorithm::new(Framework::default_profile(), 0);
        let got = alg.schedule_pod(&pod_info(pod("p", &[("cpu", "500m")])), &s).unwrap();
        assert_eq!(
            got,
            ScheduleResult {
                node: "idle".into(),
                evaluated_nodes: 2,
                feasible_nodes: 2
            }
        );
    }

    #[test]
    fn round_robin_over_a_sample() {
        let nodes =
            (0..200).map(|i| node_info(node(&format!("n{i:03}"), &[("cpu", "4"), ("pods", "110")], &[]), vec![]));
        let s = snapshot(nodes.collect());
        let mut alg = Algorithm::new(Framework::default_profile(), 50);
        let got = alg.schedule_pod(&pod_info(pod("p", &[])), &s).unwrap();
        assert_eq!((got.evaluated_nodes, got.feasible_nodes), (100, 100));
        assert_eq!(alg.next_start_node_index, 100);
    }

    #[test]
    fn select_host_takes_the_maximum() {
        assert_eq!(select_host(&[1, 5, 3]), 1);
        for _ in 0..20 {
            assert!([1, 2].contains(&select_host(&[1, 5, 5])));
        }
    }
}
