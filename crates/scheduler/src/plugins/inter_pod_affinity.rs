//! InterPodAffinity: required pod affinity and anti-affinity (the incoming
//! pod's, and existing pods' anti-affinity toward it, which is symmetric)
//! filter nodes by topology domain; preferred terms on both sides, and
//! existing pods' required affinity (weight 1), score domains.

use std::collections::HashMap;
use std::sync::Arc;

use crate::cache::Snapshot;
use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, ScorePlugin, Status};
use crate::types::{AffinityTerm, NodeInfo, PodInfo};

pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// Upstream's default `hardPodAffinityWeight`.
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;
const FILTER_KEY: &str = "PreFilterInterPodAffinity";
const SCORE_KEY: &str = "PreScoreInterPodAffinity";

pub struct InterPodAffinity;

type Pair = (String, String);
type PairCounts = HashMap<Pair, i64>;

fn bump(counts: &mut PairCounts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(value) = node.labels.get(key) {
        *counts.entry((key.to_string(), value.clone())).or_insert(0) += by;
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod))
}

/// Upstream's three topology-pair counts.
#[derive(Default)]
struct FilterState {
    existing_anti_affinity: PairCounts,
    affinity: PairCounts,
    anti_affinity: PairCounts,
}

impl FilterState {
    fn new(pod: &PodInfo, snapshot: &Snapshot) -> Self {
        let mut s = FilterState::default();
        for node in snapshot.nodes.iter().filter(|n| n.pods_with_required_anti_affinity > 0) {
            for existing in node.pods.iter().filter(|p| !p.required_anti_affinity.is_empty()) {
                for term in existing.required_anti_affinity.iter().filter(|t| t.matches(pod)) {
                    bump(&mut s.existing_anti_affinity, node, &term.topology_key, 1);
                }
            }
        }
        if pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty() {
            return s;
        }
        for node in &snapshot.nodes {
            for existing in &node.pods {
                if matches_all(&pod.required_affinity, existing) {
                    for term in &pod.required_affinity {
                        bump(&mut s.affinity, node, &term.topology_key, 1);
                    }
                }
                for term in pod.required_anti_affinity.iter().filter(|t| t.matches(existing)) {
                    bump(&mut s.anti_affinity, node, &term.topology_key, 1);
                }
            }
        }
        s
    }

    fn count(counts: &PairCounts, key: &str, value: &str) -> i64 {
        // Avoids allocating a key for lookups on the hot path when the map is empty.
        if counts.is_empty() {
            return 0;
        }
        counts.get(&(key.to_string(), value.to_string())).copied().unwrap_or(0)
    }

    /// Every term's domain must already hold a matching pod — unless no pod matches
    /// anywhere and the pod matches its own terms (the first of a group).
    fn satisfies_affinity(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        let mut pods_exist = true;
        for term in &pod.required_affinity {
            let Some(value) = node.labels.get(&term.topology_key) else {
                return false;
            };
            if Self::count(&self.affinity, &term.topology_key, value) <= 0 {
                pods_exist = false;
            }
        }
        pods_exist || (self.affinity.is_empty() && matches_all(&pod.required_affinity, pod))
    }

    fn satisfies_anti_affinity(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        pod.required_anti_affinity.iter().all(|term| {
            node.labels
                .get(&term.topology_key)
                .is_none_or(|v| Self::count(&self.anti_affinity, &term.topology_key, v) <= 0)
        })
    }

    fn satisfies_existing_anti_affinity(&self, node: &NodeInfo) -> bool {
        self.existing_anti_affinity.is_empty()
            || node
                .labels
                .iter()
                .all(|(k, v)| Self::count(&self.existing_anti_affinity, k, v) <= 0)
    }
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let s = FilterState::new(pod, snapshot);
        let nothing = pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty();
        if nothing && s.existing_anti_affinity.is_empty() {
            return Status::skip();
        }
        state.write(FILTER_KEY, s);
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>(FILTER_KEY) else {
            return Status::error("InterPodAffinity: no PreFilter state");
        };
        if !s.satisfies_affinity(pod, node) {
            return Status::unresolvable(ERR_REASON_AFFINITY);
        }
        if !s.satisfies_anti_affinity(pod, node) {
            return Status::unschedulable(ERR_REASON_ANTI_AFFINITY);
        }
        if !s.satisfies_existing_anti_affinity(node) {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY);
        }
        Status::success()
    }
}

/// Score per topology key and value.
type TopologyScore = HashMap<String, HashMap<String, i64>>;

fn add_terms(scores: &mut TopologyScore, terms: &[AffinityTerm], target: &PodInfo, node: &NodeInfo, sign: i64) {
    for term in terms {
        add_term(scores, term, i64::from(term.weight), target, node, sign);
    }
}

fn add_term(
    scores: &mut TopologyScore,
    term: &AffinityTerm,
    weight: i64,
    target: &PodInfo,
    node: &NodeInfo,
    sign: i64,
) {
    if !term.matches(target) {
        return;
    }
    if let Some(value) = node.labels.get(&term.topology_key) {
        *scores
            .entry(term.topology_key.clone())
            .or_default()
            .entry(value.clone())
            .or_insert(0) += weight * sign;
    }
}

/// Upstream `processExistingPod`: both pods' preferences, and the existing pod's hard affinity.
fn process_existing(scores: &mut TopologyScore, pod: &PodInfo, existing: &PodInfo, node: &NodeInfo) {
    add_terms(scores, &pod.preferred_affinity, existing, node, 1);
    add_terms(scores, &pod.preferred_anti_affinity, existing, node, -1);
    for term in &existing.required_affinity {
        add_term(scores, term, HARD_POD_AFFINITY_WEIGHT, pod, node, 1);
    }
    add_terms(scores, &existing.preferred_affinity, pod, node, 1);
    add_terms(scores, &existing.preferred_anti_affinity, pod, node, -1);
}

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot, _: &[Arc<NodeInfo>]) -> Status {
        let has_constraints = !(pod.preferred_affinity.is_empty() && pod.preferred_anti_affinity.is_empty());
        let mut scores = TopologyScore::new();
        for node in snapshot
            .nodes
            .iter()
            .filter(|n| has_constraints || n.pods_with_affinity > 0)
        {
            if node.labels.is_empty() {
                continue;
            }
            for existing in node.pods.iter().filter(|p| has_constraints || p.has_affinity()) {
                process_existing(&mut scores, pod, existing, node);
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(SCORE_KEY, scores);
        Status::success()
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(scores) = state.read::<TopologyScore>(SCORE_KEY) else {
            return 0;
        };
        let per_key = scores
            .iter()
            .filter_map(|(key, values)| values.get(node.labels.get(key)?));
        per_key.sum()
    }

    /// Min-max scaling onto 0..=100.
    fn normalize_score(&self, _: &CycleState, _: &PodInfo, _: &[Arc<NodeInfo>], scores: &mut [i64]) {
        let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
            return;
        };
        for s in scores.iter_mut() {
            *s = if max > min {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / (max - min) as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;
    use k8s_openapi::api::core::v1::{
        Affinity, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn term(app: &str, key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..Default::default()
            }),
            topology_key: key.into(),
            ..Default::default()
        }
    }

    fn app(name: &str, app: &str) -> Pod {
        with_labels(pod(name, &[]), &[("app", app)])
    }

    fn with_required(mut p: Pod, affinity: Vec<PodAffinityTerm>, anti: Vec<PodAffinityTerm>) -> Pod {
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(affinity),
                ..Default::default()
            }),
            pod_anti_affinity: Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(anti),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn with_preferred(mut p: Pod, affinity: Vec<(i32, PodAffinityTerm)>, anti: Vec<(i32, PodAffinityTerm)>) -> Pod {
        let weighted = |v: Vec<(i32, PodAffinityTerm)>| {
            Some(
                v.into_iter()
                    .map(|(weight, pod_affinity_term)| WeightedPodAffinityTerm {
                        weight,
                        pod_affinity_term,
                    })
                    .collect(),
            )
        };
        p.spec.as_mut().unwrap().affinity = Some(Affinity {
            pod_affinity: Some(PodAffinity {
                preferred_during_scheduling_ignored_during_execution: weighted(affinity),
                ..Default::default()
            }),
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: weighted(anti),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    /// Zone a: n1 (db), n2 (empty); zone b: n3 (web).
    fn cluster(extra_on_n3: Vec<Pod>) -> Snapshot {
        let mut n3 = vec![app("w", "web")];
        n3.extend(extra_on_n3);
        Snapshot::new(vec![
            Arc::new(node_info(node("n1", &[], &[("zone", "a")]), vec![app("d", "db")])),
            Arc::new(node_info(node("n2", &[], &[("zone", "a")]), vec![])),
            Arc::new(node_info(node("n3", &[], &[("zone", "b")]), n3)),
        ])
    }

    fn filter_all(p: Pod, snapshot: &Snapshot) -> Vec<Status> {
        let p = pod_info(p);
        let mut state = CycleState::default();
        let pre = InterPodAffinity.pre_filter(&mut state, &p, snapshot);
        if pre.code == crate::framework::Code::Skip {
            return snapshot.nodes.iter().map(|_| Status::success()).collect();
        }
        snapshot
            .nodes
            .iter()
            .map(|n| InterPodAffinity.filter(&state, &p, n))
            .collect()
    }

    fn ok(statuses: &[Status]) -> Vec<bool> {
        statuses.iter().map(Status::is_success).collect()
    }

    #[test]
    fn required_affinity() {
        let s = cluster(vec![]);
        let got = filter_all(with_required(app("p", "x"), vec![term("db", "zone")], vec![]), &s);
        assert_eq!(ok(&got), vec![true, true, false]);
        assert_eq!(got[2], Status::unresolvable(ERR_REASON_AFFINITY));
        let got = filter_all(
            with_required(app("p", "x"), vec![term("db", "kubernetes.io/hostname")], vec![]),
            &s,
        );
        assert_eq!(ok(&got), vec![true, false, false]);
        // Nothing matches "cache" anywhere, and the pod is not a cache itself: nowhere.
        let got = filter_all(with_required(app("p", "x"), vec![term("cache", "zone")], vec![]), &s);
        assert_eq!(ok(&got), vec![false, false, false]);
        // The first pod of a self-affine group goes anywhere with the key.
        let got = filter_all(
            with_required(app("p", "cache"), vec![term("cache", "zone")], vec![]),
            &s,
        );
        assert_eq!(ok(&got), vec![true, true, true]);
    }

    #[test]
    fn required_anti_affinity() {
        let s = cluster(vec![]);
        let got = filter_all(with_required(app("p", "x"), vec![], vec![term("web", "zone")]), &s);
        assert_eq!(ok(&got), vec![true, true, false]);
        assert_eq!(got[2], Status::unschedulable(ERR_REASON_ANTI_AFFINITY));
        let got = filter_all(
            with_required(app("p", "x"), vec![], vec![term("db", "kubernetes.io/hostname")]),
            &s,
        );
        assert_eq!(ok(&got), vec![false, true, true]);
    }

    #[test]
    fn existing_pods_anti_affinity_is_symmetric() {
        let guard = with_required(app("g", "guard"), vec![], vec![term("web", "zone")]);
        let s = cluster(vec![guard]);
        let got = filter_all(app("p", "web"), &s);
        assert_eq!(ok(&got), vec![true, true, false]);
        assert_eq!(got[2], Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY));
        assert_eq!(ok(&filter_all(app("p", "other"), &s)), vec![true, true, true]);
    }

    #[test]
    fn preferred_scores() {
        let s = cluster(vec![]);
        let p = pod_info(with_preferred(
            app("p", "x"),
            vec![(10, term("db", "zone"))],
            vec![(5, term("web", "zone"))],
        ));
        let mut state = CycleState::default();
        assert!(InterPodAffinity.pre_score(&mut state, &p, &s, &s.nodes).is_success());
        let mut scores: Vec<i64> = s.nodes.iter().map(|n| InterPodAffinity.score(&state, &p, n)).collect();
        assert_eq!(scores, vec![10, 10, -5]);
        InterPodAffinity.normalize_score(&state, &p, &s.nodes, &mut scores);
        assert_eq!(scores, vec![100, 100, 0]);
        // Existing pods' required affinity attracts the incoming pod with weight 1.
        let s = cluster(vec![with_required(
            app("f", "follower"),
            vec![term("x", "zone")],
            vec![],
        )]);
        let p = pod_info(app("p", "x"));
        let mut state = CycleState::default();
        assert!(InterPodAffinity.pre_score(&mut state, &p, &s, &s.nodes).is_success());
        let scores: Vec<i64> = s.nodes.iter().map(|n| InterPodAffinity.score(&state, &p, n)).collect();
        assert_eq!(scores, vec![0, 0, 1]);
        let mut state = CycleState::default();
        let plain = cluster(vec![]);
        assert_eq!(
            InterPodAffinity.pre_score(&mut state, &p, &plain, &plain.nodes),
            Status::skip()
        );
    }
}
