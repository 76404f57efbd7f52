//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory
//! would be used in equal shares after placing the pod, so neither runs out
//! while the other idles. Uses actual requests, not defaults.

use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{CycleState, MAX_NODE_SCORE, ScorePlugin, Status};
use crate::types::{NodeInfo, PodInfo};

pub struct BalancedAllocation;

/// Upstream `balancedResourceScorer`: 100 × (1 − standard deviation of the used fractions).
pub fn balanced_score(requested: &[i64], allocatable: &[i64]) -> i64 {
    let fractions: Vec<f64> = requested
        .iter()
        .zip(allocatable)
        .filter(|&(_, &a)| a != 0)
        .map(|(&r, &a)| (r as f64 / a as f64).min(1.0))
        .collect();
    let std = match fractions.len() {
        0 | 1 => 0.0,
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions.iter().map(|f| (f - mean) * (f - mean)).sum::<f64>() / n as f64).sqrt()
        }
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    /// Best-effort pods do not change the balance; upstream skips them.
    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot, _: &[Arc<NodeInfo>]) -> Status {
        if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
            Status::skip()
        } else {
            Status::success()
        }
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let requested = [
            node.requested.milli_cpu + pod.requests.milli_cpu,
            node.requested.memory + pod.requests.memory,
        ];
        balanced_score(&requested, &[node.allocatable.milli_cpu, node.allocatable.memory])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;

    #[test]
    fn balanced_scores() {
        let cases: [(&[i64], &[i64], i64); 5] = [
            (&[3000, 5000], &[4000, 10000], 87),
            (&[2000, 5000], &[4000, 10000], 100),
            (&[4000, 0], &[4000, 10000], 50),
            (&[8000, 0], &[4000, 10000], 50),
            (&[1000, 1000], &[0, 0], 100),
        ];
        for (requested, allocatable, want) in cases {
            assert_eq!(
                balanced_score(requested, allocatable),
                want,
                "{requested:?}/{allocatable:?}"
            );
        }
    }

    #[test]
    fn skips_best_effort_pods() {
        let p = pod_info(pod("p", &[]));
        let status = BalancedAllocation.pre_score(&mut CycleState::default(), &p, &Snapshot::default(), &[]);
        assert_eq!(status, Status::skip());
        let n = node_info(node("n", &[("cpu", "4"), ("memory", "10000")], &[]), vec![]);
        let p = pod_info(pod("p", &[("cpu", "3"), ("memory", "5000")]));
        assert_eq!(BalancedAllocation.score(&CycleState::default(), &p, &n), 87);
    }
}
