//! NodeResourcesFit: the pod's requests must fit in the node's allocatable
//! minus what its pods already request; the score prefers the least
//! allocated nodes (upstream's default `LeastAllocated` strategy, cpu and
//! memory with weight 1, using default requests for containers that set none).

use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, ScorePlugin, Status};
use crate::types::{NodeInfo, PodInfo};

pub struct NodeResourcesFit;

/// The reasons a pod does not fit, in upstream's order and wording.
pub fn insufficient_resources(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let (req, alloc, used) = (&pod.requests, &node.allocatable, &node.requested);
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        reasons.push("Too many pods".to_string());
    }
    let checks = [
        ("cpu", req.milli_cpu, alloc.milli_cpu - used.milli_cpu),
        ("memory", req.memory, alloc.memory - used.memory),
        (
            "ephemeral-storage",
            req.ephemeral_storage,
            alloc.ephemeral_storage - used.ephemeral_storage,
        ),
    ];
    for (name, want, free) in checks {
        if want > 0 && want > free {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    for (name, &want) in &req.scalar {
        if want > 0 && want > alloc.scalar(name) - used.scalar(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient_resources(pod, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: crate::framework::Code::Unschedulable,
                reasons,
                plugin: None,
            }
        }
    }
}

/// Upstream `leastRequestedScore`: the free share of capacity, 0..=100.
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let cpu = least_requested_score(node.non_zero_cpu + pod.non_zero_cpu, node.allocatable.milli_cpu);
        let memory = least_requested_score(node.non_zero_memory + pod.non_zero_memory, node.allocatable.memory);
        (cpu + memory) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;

    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

    #[test]
    fn fit_reasons() {
        let alloc = [("cpu", "2"), ("memory", "4Gi"), ("pods", "2"), ("example.com/gpu", "1")];
        let existing = vec![pod("e", &[("cpu", "1500m"), ("memory", "1Gi")])];
        let cases: [Case; 6] = [
            (&[("cpu", "500m")], &[]),
            (&[("cpu", "501m")], &["Insufficient cpu"]),
            (
                &[("cpu", "1"), ("memory", "4Gi")],
                &["Insufficient cpu", "Insufficient memory"],
            ),
            (&[("example.com/gpu", "1")], &[]),
            (&[("example.com/gpu", "2")], &["Insufficient example.com/gpu"]),
            (&[("ephemeral-storage", "1Gi")], &["Insufficient ephemeral-storage"]),
        ];
        for (i, (requests, want)) in cases.iter().enumerate() {
            let n = node_info(node("n", &alloc, &[]), existing.clone());
            assert_eq!(
                insufficient_resources(&pod_info(pod("p", requests)), &n),
                *want,
                "case {i}"
            );
        }
        let full = node_info(node("n", &alloc, &[]), vec![pod("a", &[]), pod("b", &[])]);
        let status = FilterPlugin::filter(
            &NodeResourcesFit,
            &CycleState::default(),
            &pod_info(pod("p", &[])),
            &full,
        );
        assert_eq!(status, Status::unschedulable("Too many pods"));
    }

    #[test]
    fn least_allocated() {
        // Upstream's example: node 4000m/10000 bytes, pod 3000m/5000 → cpu 25, memory 50 → 37.
        let n = node_info(node("n", &[("cpu", "4"), ("memory", "10000")], &[]), vec![]);
        let p = pod_info(pod("p", &[("cpu", "3"), ("memory", "5000")]));
        assert_eq!(
            ScorePlugin::score(&NodeResourcesFit, &CycleState::default(), &p, &n),
            37
        );
        assert_eq!(least_requested_score(5, 4), 0);
        assert_eq!(least_requested_score(0, 0), 0);
        // A pod without requests counts as 100m and 200Mi.
        let n = node_info(node("n", &[("cpu", "1"), ("memory", "2000Mi")], &[]), vec![]);
        let p = pod_info(pod("p", &[]));
        assert_eq!(
            ScorePlugin::score(&NodeResourcesFit, &CycleState::default(), &p, &n),
            90
        );
    }
}
