//! The scheduler's view of pods and nodes (upstream `framework/types.go`):
//! everything a filter or score needs, computed once when an object enters
//! the cache so the per-node work in a scheduling cycle is arithmetic.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodAffinityTerm, Taint, WeightedPodAffinityTerm};

use crate::labels::{Labels, Selector};
use crate::quantity;

/// Requests assumed for a container that sets none, for scoring only (upstream `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Upstream `DefaultMemoryRequest`: 200 MiB.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource the scheduler accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    /// Extended resources (`example.com/gpu`, `hugepages-2Mi`, …) in base units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resource {
    /// Reads a `ResourceList` (requests, limits, allocatable).
    pub fn from_list(list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>) -> Self {
        let mut r = Resource::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, &q.0);
        }
        r
    }

    fn set(&mut self, name: &str, text: &str) {
        match name {
            "cpu" => self.milli_cpu = quantity::milli_value(text).unwrap_or(0),
            "memory" => self.memory = quantity::value(text).unwrap_or(0),
            "ephemeral-storage" => self.ephemeral_storage = quantity::value(text).unwrap_or(0),
            "pods" => self.allowed_pod_number = quantity::value(text).unwrap_or(0),
            _ if is_scalar_resource(name) => {
                self.scalar.insert(name.to_string(), quantity::value(text).unwrap_or(0));
            }
            _ => {}
        }
    }

    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Element-wise maximum, for init containers that run one at a time.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }
}

/// Extended resources (domain-prefixed names outside `kubernetes.io/`), hugepages and attachable volumes.
fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests."))
}

/// A host port a pod binds, with upstream's defaults (`0.0.0.0`, TCP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Two bindings conflict on the same port and protocol when either is the wildcard address or both are equal.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == "0.0.0.0" || other.ip == "0.0.0.0")
    }
}

/// A compiled pod (anti-)affinity term (upstream `framework.AffinityTerm`).
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub namespaces: HashSet<String>,
    pub namespace_selector: Selector,
    pub selector: Selector,
    pub topology_key: String,
    pub weight: i32,
}

impl AffinityTerm {
    fn new(owner: &Pod, owner_labels: &Labels, term: &PodAffinityTerm, weight: i32) -> Self {
        let own_ns = owner.metadata.namespace.clone().unwrap_or_default();
        let listed = term.namespaces.clone().unwrap_or_default();
        let namespaces = if listed.is_empty() && term.namespace_selector.is_none() {
            HashSet::from([own_ns])
        } else {
            listed.into_iter().collect()
        };
        let keys = |k: &Option<Vec<String>>| k.clone().unwrap_or_default();
        let selector = Selector::new(term.label_selector.as_ref())
            .with_label_values(&keys(&term.match_label_keys), owner_labels)
            .without_label_values(&keys(&term.mismatch_label_keys), owner_labels);
        AffinityTerm {
            namespaces,
            namespace_selector: Selector::new(term.namespace_selector.as_ref()),
            selector,
            topology_key: term.topology_key.clone(),
            weight,
        }
    }

    /// Whether `pod` is selected by this term. Namespace labels are not cached,
    /// so a non-empty `namespaceSelector` only sees an empty label set.
    pub fn matches(&self, pod: &PodInfo) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace) || self.namespace_selector.matches(&Labels::new());
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// A pod as the scheduler sees it (upstream `framework.PodInfo`).
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub priority: i32,
    pub requests: Resource,
    /// CPU and memory with upstream's defaults for unset requests, for scoring.
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<AffinityTerm>,
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    pub terminating: bool,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let (requests, non_zero_cpu, non_zero_memory) = pod_requests(&pod);
        let mut info = PodInfo {
            key: format!("{namespace}/{name}"),
            namespace,
            name,
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
            requests,
            non_zero_cpu,
            non_zero_memory,
            host_ports: host_ports(&pod),
            required_affinity: vec![],
            required_anti_affinity: vec![],
            preferred_affinity: vec![],
            preferred_anti_affinity: vec![],
            terminating: pod.metadata.deletion_timestamp.is_some(),
            labels,
            pod,
        };
        info.compile_affinity();
        info
    }

    fn compile_affinity(&mut self) {
        let affinity = self.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .map(|t| AffinityTerm::new(&self.pod, &self.labels, t, 1))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<AffinityTerm> {
            let terms = terms.into_iter().flatten();
            terms
                .map(|t| AffinityTerm::new(&self.pod, &self.labels, &t.pod_affinity_term, t.weight))
                .collect()
        };
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let req_a = required(pa.and_then(|p| p.required_during_scheduling_ignored_during_execution.as_ref()));
        let req_aa = required(paa.and_then(|p| p.required_during_scheduling_ignored_during_execution.as_ref()));
        let pref_a = preferred(pa.and_then(|p| p.preferred_during_scheduling_ignored_during_execution.as_ref()));
        let pref_aa = preferred(paa.and_then(|p| p.preferred_during_scheduling_ignored_during_execution.as_ref()));
        self.required_affinity = req_a;
        self.required_anti_affinity = req_aa;
        self.preferred_affinity = pref_a;
        self.preferred_anti_affinity = pref_aa;
    }

    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    pub fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        static EMPTY: std::sync::OnceLock<k8s_openapi::api::core::v1::PodSpec> = std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }

    pub fn node_name(&self) -> Option<&str> {
        self.spec().node_name.as_deref().filter(|n| !n.is_empty())
    }
}

fn container_requests(c: &Container) -> Resource {
    Resource::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// Upstream `resourcehelper.PodRequests`: containers plus running sidecars,
/// or the largest init container (with the sidecars started before it), plus overhead.
/// Also returns CPU and memory with defaults for unset container requests.
fn pod_requests(pod: &Pod) -> (Resource, i64, i64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (Resource::default(), 0, 0);
    };
    let mut total = Resource::default();
    let (mut nz_cpu, mut nz_mem) = (0, 0);
    for c in &spec.containers {
        let r = container_requests(c);
        nz_cpu += if r.milli_cpu == 0 {
            DEFAULT_MILLI_CPU_REQUEST
        } else {
            r.milli_cpu
        };
        nz_mem += if r.memory == 0 {
            DEFAULT_MEMORY_REQUEST
        } else {
            r.memory
        };
        total.add(&r);
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            init_max.set_max(&sidecars);
        } else {
            let mut with_sidecars = sidecars.clone();
            with_sidecars.add(&r);
            init_max.set_max(&with_sidecars);
        }
    }
    total.add(&sidecars);
    nz_cpu += sidecars.milli_cpu;
    nz_mem += sidecars.memory;
    total.set_max(&init_max);
    nz_cpu = nz_cpu.max(init_max.milli_cpu);
    nz_mem = nz_mem.max(init_max.memory);
    let overhead = Resource::from_list(spec.overhead.as_ref());
    total.add(&overhead);
    (total, nz_cpu + overhead.milli_cpu, nz_mem + overhead.memory)
}

fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else { return vec![] };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let ports = spec
        .containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten());
    ports
        .filter_map(|p| {
            let port = p.host_port.filter(|&h| h > 0)?;
            Some(HostPort {
                ip: p
                    .host_ip
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into()),
                protocol: p
                    .protocol
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| "TCP".into()),
                port,
            })
        })
        .collect()
}

/// A node and the pods on it, bound or assumed (upstream `framework.NodeInfo`).
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub node: Option<Arc<Node>>,
    pub name: String,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resource,
    pub requested: Resource,
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub pods: Vec<Arc<PodInfo>>,
    pub pods_with_affinity: usize,
    pub pods_with_required_anti_affinity: usize,
    pub used_ports: Vec<HostPort>,
    /// Bumped on every change, so snapshots can tell what moved.
    pub generation: u64,
}

impl NodeInfo {
    pub fn new(name: &str) -> Self {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        let spec = node.spec.as_ref();
        self.labels = node.metadata.labels.clone().unwrap_or_default();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        self.allocatable = Resource::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
        self.node = Some(node);
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.requested.allowed_pod_number += 1;
        self.non_zero_cpu += pod.non_zero_cpu;
        self.non_zero_memory += pod.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.pods.push(pod);
    }

    /// Removes a pod by key; false when it was not here.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        let Some(i) = self.pods.iter().position(|p| p.key == key) else {
            return false;
        };
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.requested.allowed_pod_number -= 1;
        self.non_zero_cpu -= pod.non_zero_cpu;
        self.non_zero_memory -= pod.non_zero_memory;
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        true
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for tests: pods and nodes in one line each.
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    pub fn resources(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    pub fn pod(name: &str, requests: &[(&str, &str)]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.spec = Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests: Some(resources(requests)),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    pub fn with_labels(mut p: Pod, pairs: &[(&str, &str)]) -> Pod {
        p.metadata.labels = Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        p
    }

    pub fn node(name: &str, allocatable: &[(&str, &str)], labels: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        let mut l: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        l.insert("kubernetes.io/hostname".into(), name.into());
        n.metadata.labels = Some(l);
        n.spec = Some(NodeSpec::default());
        n.status = Some(NodeStatus {
            allocatable: Some(resources(allocatable)),
            ..Default::default()
        });
        n
    }

    pub fn node_info(node: Node, pods: Vec<Pod>) -> NodeInfo {
        let mut info = NodeInfo::new(node.metadata.name.as_deref().unwrap_or_default());
        info.set_node(Arc::new(node));
        for p in pods {
            info.add_pod(Arc::new(PodInfo::new(Arc::new(p))));
        }
        info
    }

    pub fn pod_info(p: Pod) -> PodInfo {
        PodInfo::new(Arc::new(p))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn container(requests: &[(&str, &str)], sidecar: bool) -> Container {
        Container {
            resources: Some(ResourceRequirements {
                requests: Some(resources(requests)),
                ..Default::default()
            }),
            restart_policy: sidecar.then(|| "Always".to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn requests_follow_upstream_pod_requests() {
        let cases: Vec<(Vec<Container>, Vec<Container>, i64, i64)> = vec![
            (vec![container(&[("cpu", "1")], false)], vec![], 1000, 1000),
            (vec![container(&[], false)], vec![], 0, DEFAULT_MILLI_CPU_REQUEST),
            // A large init container dominates.
            (
                vec![container(&[("cpu", "1")], false)],
                vec![container(&[("cpu", "2")], false)],
                2000,
                2000,
            ),
            // A sidecar adds to the containers and to later init containers.
            (
                vec![container(&[("cpu", "1")], false)],
                vec![container(&[("cpu", "500m")], true), container(&[("cpu", "1")], false)],
                1500,
                1500,
            ),
        ];
        for (i, (containers, inits, want, want_nz)) in cases.into_iter().enumerate() {
            let mut p = pod("p", &[]);
            let spec = p.spec.as_mut().unwrap();
            spec.containers = containers;
            spec.init_containers = Some(inits);
            let info = pod_info(p);
            assert_eq!(info.requests.milli_cpu, want, "case {i}");
            assert_eq!(info.non_zero_cpu, want_nz, "case {i}");
        }
    }

    #[test]
    fn extended_resources_are_scalar() {
        let info = pod_info(pod(
            "p",
            &[("example.com/gpu", "2"), ("hugepages-2Mi", "4Mi"), ("memory", "1Gi")],
        ));
        assert_eq!(info.requests.scalar("example.com/gpu"), 2);
        assert_eq!(info.requests.scalar("hugepages-2Mi"), 4 << 20);
        assert_eq!(info.requests.memory, 1 << 30);
    }

    #[test]
    fn node_info_accounts_pods() {
        let mut n = node_info(
            node("n", &[("cpu", "4")], &[]),
            vec![pod("a", &[("cpu", "1")]), pod("b", &[])],
        );
        assert_eq!(n.requested.milli_cpu, 1000);
        assert_eq!(n.requested.allowed_pod_number, 2);
        assert_eq!(n.non_zero_cpu, 1000 + DEFAULT_MILLI_CPU_REQUEST);
        assert!(n.remove_pod("default/a"));
        assert!(!n.remove_pod("default/a"));
        assert_eq!(n.requested.milli_cpu, 0);
        assert_eq!(n.requested.allowed_pod_number, 1);
    }
}
