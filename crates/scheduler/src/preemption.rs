//! Preemption (upstream `DefaultPreemption` PostFilter): when a pod fits
//! nowhere, find a node where evicting lower-priority pods makes it fit,
//! evicting as few and as unimportant pods as possible. The caller then sets
//! the pod's `status.nominatedNodeName` and deletes the victims gracefully.
//!
//! PodDisruptionBudgets are not consulted yet, and each what-if check
//! recomputes PreFilter state on a copy of the snapshot (simple, and
//! preemption is rare).

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;

use crate::cache::Snapshot;
use crate::framework::{CycleState, Framework, Status};
use crate::schedule_one::{FitError, preemption_might_help};
use crate::types::{NodeInfo, PodInfo};

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
/// Upstream's defaults: dry-run at least 10% of the potential nodes, and at least 100.
const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// A node and the pods to evict from it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
}

/// Upstream `PodEligibleToPreemptOthers`: `Err` holds the reason why not.
pub fn eligible(pod: &PodInfo, snapshot: &Snapshot) -> Result<(), String> {
    if pod.spec().preemption_policy.as_deref() == Some("Never") {
        return Err("not eligible due to preemptionPolicy=Never.".into());
    }
    let nominated = crate::schedule_one::nominated_node(pod).and_then(|n| snapshot.get(n));
    if nominated.is_some_and(|node| node.pods.iter().any(|p| p.terminating && p.priority < pod.priority)) {
        return Err("not eligible due to a terminating pod on the nominated node.".into());
    }
    Ok(())
}

/// Finds the best candidate, or returns upstream's PostFilter message for the FitError.
pub fn preempt(framework: &Framework, pod: &PodInfo, snapshot: &Snapshot, fit: &FitError) -> Result<Candidate, String> {
    eligible(pod, snapshot).map_err(|msg| format!("preemption: {msg}"))?;
    let mut statuses: HashMap<String, Status> = HashMap::new();
    let potential: Vec<&Arc<NodeInfo>> = snapshot
        .nodes
        .iter()
        .filter(|n| {
            let helpful = fit.node_statuses.get(&n.name).is_none_or(preemption_might_help);
            if !helpful {
                statuses.insert(n.name.clone(), Status::unresolvable(NOT_HELPFUL));
            }
            helpful
        })
        .collect();
    let wanted = (potential.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES_ABSOLUTE)
        .min(potential.len());
    let offset = if potential.is_empty() {
        0
    } else {
        rand::rng().random_range(0..potential.len())
    };
    let mut candidates = Vec::new();
    for i in 0..potential.len() {
        let node = potential[(offset + i) % potential.len()];
        match select_victims_on_node(framework, pod, snapshot, node) {
            Ok(victims) => candidates.push(Candidate {
                node: node.name.clone(),
                victims,
            }),
            Err(status) => {
                statuses.insert(node.name.clone(), status);
            }
        }
        if candidates.len() >= wanted {
            break;
        }
    }
    pick_one(candidates).ok_or_else(|| {
        let err = FitError {
            num_all_nodes: snapshot.nodes.len(),
            node_statuses: statuses,
            ..Default::default()
        };
        format!("preemption: {err}")
    })
}

/// Whether `pod` passes every filter on `node`, within `snapshot` (which already contains `node`).
fn fits(framework: &Framework, pod: &PodInfo, snapshot: &Snapshot, node: &NodeInfo) -> Status {
    let mut state = CycleState::default();
    if let Err(status) = framework.run_pre_filters(&mut state, pod, snapshot) {
        return status;
    }
    framework.run_filters(&state, pod, node)
}

/// Upstream `SelectVictimsOnNode`: remove every lower-priority pod; if the pod then
/// fits, add them back most important first, keeping each that still leaves room.
pub fn select_victims_on_node(
    framework: &Framework,
    pod: &PodInfo,
    snapshot: &Snapshot,
    node: &NodeInfo,
) -> Result<Vec<Arc<PodInfo>>, Status> {
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(NO_VICTIMS));
    }
    let mut trial = node.clone();
    for victim in &potential {
        trial.remove_pod(&victim.key);
    }
    let status = fits(framework, pod, &snapshot.with_node(trial.clone()), &trial);
    if !status.is_success() {
        return Err(status);
    }
    potential.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| start_time(a).cmp(&start_time(b)))
    });
    let mut victims = Vec::new();
    for p in potential {
        trial.add_pod(p.clone());
        if !fits(framework, pod, &snapshot.with_node(trial.clone()), &trial).is_success() {
            trial.remove_pod(&p.key);
            victims.push(p);
        }
    }
    Ok(victims)
}

fn start_time(p: &PodInfo) -> Option<k8s_openapi::jiff::Timestamp> {
    p.pod.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

/// Upstream `pickOneNodeForPreemption` without PDBs: lowest highest-victim priority,
/// then smallest priority sum, then fewest victims.
pub fn pick_one(candidates: Vec<Candidate>) -> Option<Candidate> {
    candidates.into_iter().min_by_key(|c| {
        let highest = c.victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN);
        // Offset so that negative priorities still add up to a positive cost, as upstream.
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum();
        (highest, sum, c.victims.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule_one::Algorithm;
    use crate::types::testing::*;
    use k8s_openapi::api::core::v1::{Pod, Taint};

    fn prio(mut p: Pod, priority: i32) -> Pod {
        p.spec.as_mut().unwrap().priority = Some(priority);
        p
    }

    fn try_preempt(nodes: Vec<NodeInfo>, incoming: Pod) -> Result<Candidate, String> {
        let snapshot = Snapshot::new(nodes.into_iter().map(Arc::new).collect());
        let pod = pod_info(incoming);
        let mut alg = Algorithm::new(Framework::default_profile(), 0);
        let fit = alg.schedule_pod(&pod, &snapshot).unwrap_err();
        preempt(&alg.framework, &pod, &snapshot, &fit)
    }

    const ALLOC: [(&str, &str); 2] = [("cpu", "2"), ("pods", "110")];

    #[test]
    fn evicts_the_fewest_least_important_pods() {
        let n1 = node_info(
            node("n1", &ALLOC, &[]),
            vec![prio(pod("a", &[("cpu", "1")]), 10), prio(pod("b", &[("cpu", "1")]), 5)],
        );
        let n2 = node_info(node("n2", &ALLOC, &[]), vec![prio(pod("c", &[("cpu", "2")]), 50)]);
        let got = try_preempt(vec![n1, n2], prio(pod("p", &[("cpu", "1")]), 100)).unwrap();
        assert_eq!(got.node, "n1");
        let victims: Vec<&str> = got.victims.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(victims, vec!["b"], "a is reprieved: evicting b alone makes room");
    }

    #[test]
    fn never_evicts_equal_or_higher_priority() {
        let n1 = node_info(node("n1", &ALLOC, &[]), vec![prio(pod("a", &[("cpu", "2")]), 100)]);
        let err = try_preempt(vec![n1], prio(pod("p", &[("cpu", "1")]), 100)).unwrap_err();
        assert_eq!(
            err,
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn unresolvable_nodes_are_not_helpful() {
        let mut n1 = node_info(node("n1", &ALLOC, &[]), vec![prio(pod("a", &[("cpu", "2")]), 0)]);
        n1.taints = vec![Taint {
            key: "k".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }];
        let err = try_preempt(vec![n1], prio(pod("p", &[("cpu", "1")]), 100)).unwrap_err();
        assert_eq!(
            err,
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn preemption_policy_never() {
        let n1 = node_info(node("n1", &ALLOC, &[]), vec![prio(pod("a", &[("cpu", "2")]), 0)]);
        let mut p = prio(pod("p", &[("cpu", "1")]), 100);
        p.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let err = try_preempt(vec![n1], p).unwrap_err();
        assert_eq!(err, "preemption: not eligible due to preemptionPolicy=Never.");
    }
}
