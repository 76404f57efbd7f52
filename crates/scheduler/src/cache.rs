//! The scheduler cache (upstream `internal/cache`): nodes and the pods
//! bound or *assumed* on them. A pod is assumed the moment the scheduler
//! picks its node, before the binding reaches the API server, so the next
//! cycle already sees its resources taken; the informer's copy of the bound
//! pod later confirms it, a failed binding forgets it.
//!
//! [`Snapshot`] is the immutable view one cycle works on. Updating it only
//! replaces the nodes that changed since the last cycle.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::types::{NodeInfo, PodInfo};

/// Where a pod sits in the cache.
#[derive(Debug, Clone)]
struct PodState {
    node: String,
    assumed: bool,
}

#[derive(Debug, Default)]
pub struct Cache {
    nodes: HashMap<String, Arc<NodeInfo>>,
    pods: HashMap<String, PodState>,
    /// Nodes changed since the last snapshot update.
    dirty: HashSet<String>,
    /// Bumped when nodes are added or removed, which forces a full snapshot rebuild.
    node_set_generation: u64,
    generation: u64,
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        self.generation += 1;
        self.dirty.insert(name.to_string());
        let generation = self.generation;
        let info = self
            .nodes
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(NodeInfo::new(name)));
        let info = Arc::make_mut(info);
        info.generation = generation;
        info
    }

    /// Adds or updates a node from the informer. Returns whether it is new and
    /// whether anything the filters read changed (heartbeats change nothing).
    pub fn upsert_node(&mut self, node: Node) -> (bool, bool) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let before = self
            .nodes
            .get(&name)
            .filter(|n| n.node.is_some())
            .map(|n| Self::fingerprint(n));
        let info = self.node_mut(&name);
        info.set_node(Arc::new(node));
        let changed = before.as_ref() != Some(&Self::fingerprint(info));
        if before.is_none() {
            self.node_set_generation += 1;
        }
        (before.is_none(), changed)
    }

    fn fingerprint(
        n: &NodeInfo,
    ) -> (
        crate::labels::Labels,
        Vec<k8s_openapi::api::core::v1::Taint>,
        bool,
        crate::types::Resource,
    ) {
        (
            n.labels.clone(),
            n.taints.clone(),
            n.unschedulable,
            n.allocatable.clone(),
        )
    }

    /// Whether the cache holds this pod bound (or assumed) on a node.
    pub fn has_pod(&self, key: &str) -> bool {
        self.pods.contains_key(key)
    }

    /// Removes a node; its pods stay accounted until their own deletions arrive.
    pub fn remove_node(&mut self, name: &str) {
        let Some(info) = self.nodes.get(name) else { return };
        if info.pods.is_empty() {
            self.nodes.remove(name);
            self.generation += 1;
        } else {
            self.node_mut(name).node = None;
        }
        self.node_set_generation += 1;
    }

    /// Adds or updates a bound pod from the informer, confirming an assumed one.
    pub fn upsert_pod(&mut self, pod: Arc<Pod>) {
        let info = Arc::new(PodInfo::new(pod));
        let Some(node) = info.node_name().map(str::to_string) else {
            return;
        };
        self.remove_pod(&info.key);
        self.add_to_node(&node, info, false);
    }

    /// Removes a pod, bound or assumed.
    pub fn remove_pod(&mut self, key: &str) {
        if let Some(state) = self.pods.remove(key) {
            let emptied = {
                let info = self.node_mut(&state.node);
                info.remove_pod(key);
                info.node.is_none() && info.pods.is_empty()
            };
            if emptied {
                self.nodes.remove(&state.node);
            }
        }
    }

    /// Accounts a pod on `node` before its binding is confirmed.
    pub fn assume_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.remove_pod(&pod.key);
        self.add_to_node(node, pod, true);
    }

    /// Drops an assumed pod whose binding failed; bound pods are left alone.
    pub fn forget_pod(&mut self, key: &str) {
        if self.pods.get(key).is_some_and(|s| s.assumed) {
            self.remove_pod(key);
        }
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.pods.get(key).is_some_and(|s| s.assumed)
    }

    fn add_to_node(&mut self, node: &str, info: Arc<PodInfo>, assumed: bool) {
        self.pods.insert(
            info.key.clone(),
            PodState {
                node: node.to_string(),
                assumed,
            },
        );
        self.node_mut(node).add_pod(info);
    }

    pub fn node_count(&self) -> usize {
        self.nodes.values().filter(|n| n.node.is_some()).count()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Brings `snapshot` up to date, copying only what changed.
    pub fn update_snapshot(&mut self, snapshot: &mut Snapshot) {
        if snapshot.generation == self.generation {
            return;
        }
        if snapshot.node_set_generation != self.node_set_generation {
            let mut nodes: Vec<Arc<NodeInfo>> = self.nodes.values().filter(|n| n.node.is_some()).cloned().collect();
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            *snapshot = Snapshot::new(nodes);
        } else {
            for name in &self.dirty {
                if let (Some(&i), Some(info)) = (snapshot.index.get(name), self.nodes.get(name)) {
                    snapshot.nodes[i] = info.clone();
                }
            }
        }
        self.dirty.clear();
        snapshot.generation = self.generation;
        snapshot.node_set_generation = self.node_set_generation;
    }
}

/// The nodes one scheduling cycle sees (upstream `internal/cache.Snapshot`).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    generation: u64,
    node_set_generation: u64,
}

impl Snapshot {
    pub fn new(nodes: Vec<Arc<NodeInfo>>) -> Self {
        let index = nodes.iter().enumerate().map(|(i, n)| (n.name.clone(), i)).collect();
        Snapshot {
            nodes,
            index,
            generation: u64::MAX,
            node_set_generation: u64::MAX,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// A copy with one node replaced, for preemption's what-if checks.
    pub fn with_node(&self, info: NodeInfo) -> Snapshot {
        let mut copy = self.clone();
        if let Some(&i) = self.index.get(&info.name) {
            copy.nodes[i] = Arc::new(info);
        }
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::testing::*;

    fn bound(name: &str, node: &str, cpu: &str) -> Arc<Pod> {
        let mut p = pod(name, &[("cpu", cpu)]);
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        Arc::new(p)
    }

    #[test]
    fn snapshot_follows_changes() {
        let mut cache = Cache::new();
        cache.upsert_node(node("n1", &[("cpu", "4")], &[]));
        cache.upsert_node(node("n2", &[("cpu", "4")], &[]));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes.len(), 2);
        cache.upsert_pod(bound("a", "n1", "1"));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 1000);
        cache.remove_node("n2");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.nodes.len(), 1);
    }

    #[test]
    fn assume_confirm_forget() {
        let mut cache = Cache::new();
        cache.upsert_node(node("n1", &[("cpu", "4")], &[]));
        let info = Arc::new(PodInfo::new(Arc::new(pod("a", &[("cpu", "1")]))));
        cache.assume_pod(info.clone(), "n1");
        assert!(cache.is_assumed("default/a"));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 1000);
        cache.upsert_pod(bound("a", "n1", "1"));
        assert!(!cache.is_assumed("default/a"));
        cache.forget_pod("default/a");
        assert_eq!(cache.pod_count(), 1, "bound pods are not forgotten");
        cache.assume_pod(Arc::new(PodInfo::new(Arc::new(pod("b", &[("cpu", "1")])))), "n1");
        cache.forget_pod("default/b");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 1000);
    }

    #[test]
    fn pods_before_their_node_are_kept() {
        let mut cache = Cache::new();
        cache.upsert_pod(bound("a", "n1", "1"));
        assert_eq!(cache.node_count(), 0);
        cache.upsert_node(node("n1", &[("cpu", "4")], &[]));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("n1").unwrap().requested.milli_cpu, 1000);
    }
}
