//! The scheduling framework (upstream `pkg/scheduler/framework`): plugin
//! traits, statuses, per-cycle state, and the runner that calls the
//! default profile's plugins in upstream's order with upstream's weights.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::cache::Snapshot;
use crate::plugins;
use crate::types::{NodeInfo, PodInfo};

/// The highest score a plugin may give a node after normalization.
pub const MAX_NODE_SCORE: i64 = 100;

/// Outcome kinds, as upstream: `UnschedulableAndUnresolvable` tells
/// preemption that evicting pods on that node would not help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success,
    Unschedulable,
    UnschedulableAndUnresolvable,
    /// From a pre-phase: the plugin has nothing to do for this pod.
    Skip,
    Error,
}

/// A plugin's verdict with the reasons printed in `FailedScheduling` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    /// The plugin that failed, set by the [`Framework`] runner; it decides which
    /// cluster events re-queue an unschedulable pod.
    pub plugin: Option<&'static str>,
}

impl Status {
    pub fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: vec![],
            plugin: None,
        }
    }

    pub fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: vec![],
            plugin: None,
        }
    }

    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Status {
            code: Code::Unschedulable,
            reasons: vec![reason.into()],
            plugin: None,
        }
    }

    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Status {
            code: Code::UnschedulableAndUnresolvable,
            reasons: vec![reason.into()],
            plugin: None,
        }
    }

    pub fn error(reason: impl Into<String>) -> Self {
        Status {
            code: Code::Error,
            reasons: vec![reason.into()],
            plugin: None,
        }
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }
}

/// Data plugins compute once per scheduling cycle and read for every node.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
    skip_filters: HashSet<&'static str>,
    skip_scores: HashSet<&'static str>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|v| v.downcast_ref())
    }
}

/// A Filter plugin: can this pod run on this node?
pub trait FilterPlugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// Computes cluster-wide state once per cycle. `Skip` means `filter` need not run;
    /// a failure rejects every node with this status.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// A Score plugin: how good is this feasible node, 0..=100 after `normalize_score`?
pub trait ScorePlugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// Computes state over the feasible nodes once per cycle; `Skip` leaves this plugin out.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
        _nodes: &[Arc<NodeInfo>],
    ) -> Status {
        Status::success()
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;

    /// Maps raw scores onto 0..=100 (upstream `ScoreExtensions.NormalizeScore`).
    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, _nodes: &[Arc<NodeInfo>], _scores: &mut [i64]) {}
}

/// Upstream `helper.DefaultNormalizeScore`: scale to `max_priority` by the
/// highest score, optionally reversed (fewer is better).
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    for s in scores.iter_mut() {
        *s = match (max, reverse) {
            (0, true) => max_priority,
            (0, false) => *s,
            (m, false) => max_priority * *s / m,
            (m, true) => max_priority - max_priority * *s / m,
        };
    }
}

/// The plugins of one profile, in upstream's default order.
pub struct Framework {
    filters: Vec<Box<dyn FilterPlugin>>,
    scores: Vec<(Box<dyn ScorePlugin>, i64)>,
}

impl Framework {
    /// Upstream's default profile (volume plugins and ImageLocality excepted).
    pub fn default_profile() -> Self {
        use plugins::*;
        Framework {
            filters: vec![
                Box::new(node_unschedulable::NodeUnschedulable),
                Box::new(node_name::NodeName),
                Box::new(taint_toleration::TaintToleration),
                Box::new(node_affinity::NodeAffinity),
                Box::new(node_ports::NodePorts),
                Box::new(node_resources_fit::NodeResourcesFit),
                Box::new(pod_topology_spread::PodTopologySpread),
                Box::new(inter_pod_affinity::InterPodAffinity),
            ],
            scores: vec![
                (Box::new(taint_toleration::TaintToleration), 3),
                (Box::new(node_affinity::NodeAffinity), 2),
                (Box::new(node_resources_fit::NodeResourcesFit), 1),
                (Box::new(pod_topology_spread::PodTopologySpread), 2),
                (Box::new(inter_pod_affinity::InterPodAffinity), 2),
                (Box::new(balanced_allocation::BalancedAllocation), 1),
            ],
        }
    }

    /// Runs every PreFilter; the first failure is returned and ends the cycle.
    pub fn run_pre_filters(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Result<(), Status> {
        for plugin in &self.filters {
            let status = plugin.pre_filter(state, pod, snapshot);
            match status.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_filters.insert(plugin.name());
                }
                _ => {
                    return Err(Status {
                        plugin: Some(plugin.name()),
                        ..status
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs the Filters on one node, stopping at the first that rejects it, as upstream.
    pub fn run_filters(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for plugin in &self.filters {
            if state.skip_filters.contains(plugin.name()) {
                continue;
            }
            let status = plugin.filter(state, pod, node);
            if !status.is_success() {
                return Status {
                    plugin: Some(plugin.name()),
                    ..status
                };
            }
        }
        Status::success()
    }

    /// Scores feasible nodes: weighted sum of each plugin's normalized scores.
    pub fn run_scores(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nodes: &[Arc<NodeInfo>],
    ) -> Vec<i64> {
        for (plugin, _) in &self.scores {
            if plugin.pre_score(state, pod, snapshot, nodes).code == Code::Skip {
                state.skip_scores.insert(plugin.name());
            }
        }
        let mut totals = vec![0i64; nodes.len()];
        let mut scores = vec![0i64; nodes.len()];
        for (plugin, weight) in &self.scores {
            if state.skip_scores.contains(plugin.name()) {
                continue;
            }
            for (s, node) in scores.iter_mut().zip(nodes) {
                *s = plugin.score(state, pod, node);
            }
            plugin.normalize_score(state, pod, nodes, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * weight;
            }
        }
        totals
    }

    pub fn has_score_plugins(&self) -> bool {
        !self.scores.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize() {
        let cases: [(&[i64], bool, &[i64]); 4] = [
            (&[0, 0], false, &[0, 0]),
            (&[0, 0], true, &[100, 100]),
            (&[1, 2, 4], false, &[25, 50, 100]),
            (&[1, 2, 4], true, &[75, 50, 0]),
        ];
        for (input, reverse, want) in cases {
            let mut s = input.to_vec();
            default_normalize_score(MAX_NODE_SCORE, reverse, &mut s);
            assert_eq!(s, want);
        }
    }
}
