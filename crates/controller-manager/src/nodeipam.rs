//! Node IPAM: gives every node a `spec.podCIDR` (and `spec.podCIDRs`) of
//! `--node-cidr-mask-size` bits from `--cluster-cidr` (upstream's
//! nodeipam controller with the RangeAllocator). Runs only with a cluster
//! CIDR, as upstream runs only with `--allocate-node-cidrs`.
//!
//! The allocation map is rebuilt from the nodes' own podCIDRs on the first
//! reconcile after the node informer has listed everything, so the
//! allocations survive restarts and no CIDR is handed out twice. Like
//! upstream's `CidrSet`, allocation continues after the last CIDR handed
//! out rather than always taking the lowest free one. A deleted node's
//! CIDR is released when the range runs out and a sweep finds its node gone
//! (upstream releases it from the delete event; the next allocation sees
//! the same free set either way). When nothing is free the node gets the
//! upstream `CIDRNotAvailable` Event and stays without a CIDR until one
//! frees up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use serde_json::json;

use crate::replicaset::{object_reference, record_event};
use crate::{ControllerManagerOptions, Error};

const COMPONENT: &str = "node-controller";

/// The CIDRs of one cluster range, numbered 0..len; upstream's `CidrSet`.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: IpNet,
    mask: u8,
    /// CIDR index -> the node holding it.
    used: HashMap<u128, String>,
    /// Where the search for a free CIDR starts.
    next: u128,
}

impl CidrSet {
    /// A set of `mask`-bit CIDRs in `cluster`; `None` picks upstream's
    /// default mask (24 for IPv4, 64 for IPv6). Errors read as upstream's.
    pub fn new(cluster: IpNet, mask: Option<u8>) -> Result<CidrSet, String> {
        let mask = mask.unwrap_or(if cluster.addr().is_ipv4() { 24 } else { 64 });
        if mask < cluster.prefix_len() || mask > cluster.max_prefix_len() {
            return Err(format!(
                "--node-cidr-mask-size {mask} must be between the cluster CIDR's prefix /{} and /{}",
                cluster.prefix_len(),
                cluster.max_prefix_len()
            ));
        }
        if mask - cluster.prefix_len() > 16 {
            return Err(format!(
                "CIDRSet: subNetMaskSize {mask} is too big for the cluster CIDR {cluster}: \
                 at most 16 more bits than its prefix"
            ));
        }
        Ok(CidrSet {
            cluster: cluster.trunc(),
            mask,
            used: HashMap::new(),
            next: 0,
        })
    }

    fn len(&self) -> u128 {
        1 << (self.mask - self.cluster.prefix_len())
    }

    fn shift(&self) -> u8 {
        self.cluster.max_prefix_len() - self.mask
    }

    fn cidr(&self, index: u128) -> IpNet {
        let base = to_u128(self.cluster.network()) + (index << self.shift());
        IpNet::new(from_u128(base, self.cluster.addr().is_ipv4()), self.mask).expect("prefix within range")
    }

    /// The index of `cidr` if it is one of this set's CIDRs.
    fn index(&self, cidr: &IpNet) -> Option<u128> {
        let fits = cidr.prefix_len() == self.mask && self.cluster.contains(cidr) && cidr.trunc() == *cidr;
        fits.then(|| (to_u128(cidr.network()) - to_u128(self.cluster.network())) >> self.shift())
    }

    /// Records that `node` holds `cidr`; false if the CIDR is not ours or
    /// another node holds it.
    pub fn occupy(&mut self, cidr: &IpNet, node: &str) -> bool {
        let Some(index) = self.index(cidr) else {
            return false;
        };
        let holder = self.used.entry(index).or_insert_with(|| node.to_string());
        holder == node
    }

    /// The next free CIDR for `node`, if any is left.
    pub fn allocate(&mut self, node: &str) -> Option<IpNet> {
        let len = self.len();
        let index = (0..len)
            .map(|i| (self.next + i) % len)
            .find(|i| !self.used.contains_key(i))?;
        self.used.insert(index, node.to_string());
        self.next = (index + 1) % len;
        Some(self.cidr(index))
    }

    /// Frees the CIDRs of nodes for which `gone` says true.
    pub fn release_where(&mut self, gone: impl Fn(&str) -> bool) {
        self.used.retain(|_, node| !gone(node));
    }

    /// Frees the CIDR held by `node`.
    pub fn release(&mut self, node: &str) {
        self.release_where(|n| n == node);
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => v6.into(),
    }
}

fn from_u128(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from(std::net::Ipv4Addr::from(value as u32))
    } else {
        IpAddr::from(std::net::Ipv6Addr::from(value))
    }
}

/// The allocation set over the node informer: rebuilt from every listed
/// node's podCIDRs on first use, so allocations survive restarts.
struct Allocator {
    nodes: Store<Node>,
    set: Mutex<Option<CidrSet>>,
    empty: CidrSet,
}

impl Allocator {
    fn with_set<T>(&self, f: impl FnOnce(&mut CidrSet) -> T) -> T {
        let mut guard = self.set.lock().expect("cidr set lock");
        let set = guard.get_or_insert_with(|| {
            let mut set = self.empty.clone();
            for node in self.nodes.state() {
                for cidr in pod_cidrs(&node) {
                    set.occupy(&cidr, &node.name_any());
                }
            }
            set
        });
        f(set)
    }

    /// Records the node's own podCIDRs; false if one conflicts.
    fn occupy(&self, node: &Node) -> bool {
        let name = node.name_any();
        self.with_set(|set| pod_cidrs(node).iter().all(|cidr| set.occupy(cidr, &name)))
    }

    /// A free CIDR for `node`; when none is, the CIDRs of nodes gone from
    /// the informer are released first.
    fn allocate(&self, node: &str) -> Option<IpNet> {
        self.with_set(|set| {
            set.allocate(node).or_else(|| {
                set.release_where(|holder| self.nodes.get(&ObjectRef::new(holder)).is_none());
                set.allocate(node)
            })
        })
    }

    fn release(&self, node: &str) {
        self.with_set(|set| set.release(node));
    }
}

struct Context {
    client: kube::Client,
    allocator: Allocator,
}

pub async fn run(client: kube::Client, options: ControllerManagerOptions) {
    let Some(cluster) = options.cluster_cidr else {
        return;
    };
    let empty = match CidrSet::new(cluster, options.node_cidr_mask_size) {
        Ok(set) => set,
        Err(error) => return tracing::error!(%error, "node IPAM controller not started"),
    };
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let allocator = Allocator {
        nodes: controller.store(),
        set: Mutex::new(None),
        empty,
    };
    controller
        .run(reconcile, error_policy, Arc::new(Context { client, allocator }))
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The node's current podCIDRs, parsed.
fn pod_cidrs(node: &Node) -> Vec<IpNet> {
    let spec = node.spec.as_ref();
    let listed = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    let all = listed.into_iter().chain(spec.and_then(|s| s.pod_cidr.clone()));
    all.filter_map(|c| c.parse().ok()).collect()
}

async fn reconcile(node: Arc<Node>, context: Arc<Context>) -> Result<Action, Error> {
    let allocator = &context.allocator;
    let _ = allocator.nodes.wait_until_ready().await;
    let name = node.name_any();
    if !pod_cidrs(&node).is_empty() {
        if !allocator.occupy(&node) {
            tracing::warn!(node = name, "podCIDR outside the cluster CIDR or held by another node");
        }
        return Ok(Action::await_change());
    }
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(cidr) = allocator.allocate(&name) else {
        record_event(
            &context.client,
            &object_reference(node.as_ref()),
            "Normal",
            "CIDRNotAvailable",
            &format!("Node {name} status is now: CIDRNotAvailable"),
            COMPONENT,
        )
        .await;
        return Err(Error::Pending(format!("no CIDR left for node {name}")));
    };
    let patch = json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    let api: Api<Node> = Api::all(context.client.clone());
    if let Err(error) = api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        allocator.release(&name);
        return Err(error.into());
    }
    tracing::info!(node = name, %cidr, "allocated podCIDR");
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Node>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "node IPAM controller");
    Action::requeue(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_distinct_cidrs_inside_the_range_until_exhausted() {
        let mut set = CidrSet::new(net("10.42.0.0/22"), Some(24)).unwrap();
        let got: Vec<String> = (0..4)
            .map(|i| set.allocate(&format!("n{i}")).unwrap().to_string())
            .collect();
        assert_eq!(got, ["10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24", "10.42.3.0/24"]);
        assert_eq!(set.allocate("n4"), None, "the range is exhausted");
        set.release("n2");
        assert_eq!(
            set.allocate("n4"),
            Some(net("10.42.2.0/24")),
            "a released CIDR is reused"
        );
    }

    #[test]
    fn rebuilt_allocations_are_never_handed_out_again() {
        let mut set = CidrSet::new(net("10.42.0.0/16"), None).unwrap();
        assert!(set.occupy(&net("10.42.0.0/24"), "a"));
        assert!(set.occupy(&net("10.42.1.0/24"), "b"));
        assert!(set.occupy(&net("10.42.1.0/24"), "b"), "occupying again is idempotent");
        assert!(!set.occupy(&net("10.42.1.0/24"), "c"), "held by another node");
        assert!(!set.occupy(&net("10.99.0.0/24"), "c"), "outside the cluster CIDR");
        assert!(!set.occupy(&net("10.42.2.0/25"), "c"), "wrong mask size");
        assert_eq!(set.allocate("c"), Some(net("10.42.2.0/24")));
    }

    #[test]
    fn allocation_continues_after_the_last_one_and_wraps() {
        let mut set = CidrSet::new(net("10.0.0.0/30"), Some(32)).unwrap();
        assert_eq!(set.allocate("a"), Some(net("10.0.0.0/32")));
        assert_eq!(set.allocate("b"), Some(net("10.0.0.1/32")));
        set.release("a");
        assert_eq!(set.allocate("c"), Some(net("10.0.0.2/32")), "not the lowest free one");
        assert_eq!(set.allocate("d"), Some(net("10.0.0.3/32")));
        assert_eq!(set.allocate("e"), Some(net("10.0.0.0/32")), "wraps around");
    }

    fn node(name: &str, cidr: Option<&str>) -> Node {
        let spec = cidr.map(|c| serde_json::from_value(json!({"podCIDR": c, "podCIDRs": [c]})).unwrap());
        Node {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec,
            status: None,
        }
    }

    #[test]
    fn a_restarted_allocator_keeps_existing_allocations_and_frees_deleted_nodes() {
        let (nodes, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(node("a", Some("10.42.0.0/24"))));
        writer.apply_watcher_event(&watcher::Event::InitApply(node("b", Some("10.42.1.0/24"))));
        writer.apply_watcher_event(&watcher::Event::InitApply(node("c", None)));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let allocator = Allocator {
            nodes,
            set: Mutex::new(None),
            empty: CidrSet::new(net("10.42.0.0/23"), Some(24)).unwrap(),
        };
        assert!(allocator.occupy(&node("a", Some("10.42.0.0/24"))));
        assert!(
            !allocator.occupy(&node("x", Some("10.42.1.0/24"))),
            "b's, known from the list"
        );
        assert_eq!(allocator.allocate("c"), None, "both CIDRs are held");
        writer.apply_watcher_event(&watcher::Event::Delete(node("a", Some("10.42.0.0/24"))));
        assert_eq!(
            allocator.allocate("c"),
            Some(net("10.42.0.0/24")),
            "a's CIDR, freed when a went"
        );
    }

    #[test]
    fn ipv6_ranges_and_bad_mask_sizes() {
        let mut set = CidrSet::new(net("fd00:42::/56"), None).unwrap();
        assert_eq!(set.allocate("a"), Some(net("fd00:42::/64")));
        assert_eq!(set.allocate("b"), Some(net("fd00:42:0:1::/64")));
        assert!(
            CidrSet::new(net("10.42.0.0/16"), Some(8)).is_err(),
            "mask below the prefix"
        );
        assert!(CidrSet::new(net("10.42.0.0/8"), Some(30)).is_err(), "more than 16 bits");
        assert!(CidrSet::new(net("10.42.0.0/16"), Some(33)).is_err());
    }
}
