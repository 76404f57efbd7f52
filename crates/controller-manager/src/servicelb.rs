//! The built-in service load balancer: k3s's ServiceLB (once klipper-lb)
//! without its `svclb-*` pods. Registered as `service-lb-controller`, the
//! name upstream gives the controller that fills LoadBalancer status, with
//! the aliases `service` (upstream's old name) and `servicelb` (k3s's, as in
//! `k3s server --disable=servicelb`).
//!
//! For every Service of type LoadBalancer without `spec.loadBalancerClass`
//! (a class belongs to its own controller, as upstream), it writes the
//! addresses of the nodes that would run a ready svclb pod for it into
//! `status.loadBalancer.ingress` (each an `ipMode: VIP`). No pods are needed:
//! the node proxy (`capstan-proxy`) already forwards traffic for an ingress
//! IP and service port to the endpoints.
//!
//! Which nodes, as k3s decides through its svclb DaemonSet ([`plan`]):
//! - the node is Ready (a svclb pod is Ready only on a Ready node; only the
//!   address depends on this, not where the pod is);
//! - the pod may be placed there — DaemonSet placement
//!   ([`crate::daemonset::node_should_run`]) of a pod with k3s's tolerations
//!   (control-plane/master `NoSchedule`, `CriticalAddonsOnly`) and, when any
//!   node carries the label `svccontroller.k3s.cattle.io/enablelb`, the node
//!   selector `enablelb=true` (plus `lbpool=<pool>` when the Service is
//!   labelled with a pool). Like DaemonSet pods it tolerates cordoned nodes;
//! - the pod's host ports are free: each svclb pod holds the Service's
//!   ports as hostPorts, so a second LoadBalancer Service wanting the same
//!   port and protocol finds no room on a node the first one holds (nor
//!   where a running pod has that hostPort) and stays `<pending>` there,
//!   with a `SyncLoadBalancerFailed` Event naming the holder. As with pods,
//!   whoever is placed keeps the node (also under a `NoSchedule` taint or
//!   while NotReady, as DaemonSet pods stay); waiting Services are placed
//!   oldest first (creation time, then name);
//! - with `externalTrafficPolicy: Local`, the node has a ready endpoint.
//!
//! Addresses: ExternalIPs if any chosen node has one, else InternalIPs
//! (k3s's rule, across all chosen nodes), ordered by the Service's
//! `ipFamilies`, each family sorted as text.
//!
//! Events follow upstream's cloud service controller (`EnsuringLoadBalancer`,
//! `EnsuredLoadBalancer`, `SyncLoadBalancerFailed`, `UnAvailableLoadBalancer`,
//! `DeletingLoadBalancer`, `DeletedLoadBalancer`) and k3s's
//! `UpdatedLoadBalancer` when the addresses change.
//!
//! Where this differs: the scheduler does not see the virtual svclb pods,
//! so a pod with a hostPort can still land where one holds that port; the
//! pod then wins the node (it exists). Like k3s, `loadBalancerIP` is
//! ignored. Where the virtual pods are is kept in memory; after a restart it
//! is read back from the addresses in the Services' status, so a Service
//! that held ports without listing addresses then (all its nodes NotReady,
//! or `Local` without endpoints) loses its precedence over an older Service
//! waiting for them. A Service that is no longer a LoadBalancer has its
//! ingress cleared whoever wrote it (a class cannot be told apart then: it
//! must go with the type). There is no finalizer, as there is nothing
//! outside the cluster to clean up. k3s leaves `ipMode` to the API server's
//! default (`VIP`); this writes it.
//!
//! One outcome depends on every other LoadBalancer Service (the ports they
//! hold), so rather than a per-Service `Controller` this runs one pass over
//! all of them whenever a Service, a node, a pod with host ports or (for
//! `Local` Services) an EndpointSlice changes; a pass writes only Services
//! whose status differs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Node, Pod, PodSpec, Service, Toleration};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::daemonset::node_should_run;
use crate::informer::PodChanges;
use crate::replicaset::{object_reference, record_event};

/// The canonical name, for `--controllers` and the Events' source.
pub const NAME: &str = "service-lb-controller";
/// Nodes labelled with this (any value) make ServiceLB use only those labelled `true`.
pub const ENABLE_LB: &str = "svccontroller.k3s.cattle.io/enablelb";
/// A Service labelled with a pool uses only nodes labelled with the same pool (with [`ENABLE_LB`]).
pub const LB_POOL: &str = "svccontroller.k3s.cattle.io/lbpool";
/// How long a pass that failed waits before it runs again.
const RETRY: Duration = Duration::from_secs(1);

/// One port a svclb pod would hold on its node.
type HostPort = (i32, String);

/// What one LoadBalancer Service gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Balancer {
    pub ingress: Vec<LoadBalancerIngress>,
    /// The nodes its svclb pods would be on, holding its ports (Ready or not).
    pub nodes: BTreeSet<String>,
    /// Nodes it would have used but another Service holds one of its ports there.
    pub conflicts: Vec<Conflict>,
}

/// A port another LoadBalancer Service or a pod already holds on a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    pub port: i32,
    pub protocol: String,
    /// `LoadBalancer service <namespace>/<name>` or `pod <namespace>/<name>`.
    pub holder: String,
    pub node: String,
}

/// Whether this controller serves the Service: a LoadBalancer without a class.
pub fn wants_load_balancer(service: &Service) -> bool {
    let spec = service.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec.and_then(|s| s.load_balancer_class.as_ref()).is_none()
        && service.metadata.deletion_timestamp.is_none()
}

fn key(service: &Service) -> String {
    format!("{}/{}", service.namespace().unwrap_or_default(), service.name_any())
}

/// How a conflict names the Service's svclb pods.
fn holder_of(service: &Service) -> String {
    format!("LoadBalancer service {}", key(service))
}

/// What [`plan`] reads.
pub struct Cluster<'a> {
    pub services: &'a [Arc<Service>],
    pub nodes: &'a [Arc<Node>],
    /// Pods whose host ports no svclb pod can share.
    pub pods: &'a [Arc<Pod>],
    /// The nodes a Service's svclb pods were on after the previous pass
    /// ([`Balancer::nodes`]); they keep their ports there.
    pub held: &'a dyn Fn(&Service) -> BTreeSet<String>,
    /// The nodes with a ready endpoint of a Service (for `externalTrafficPolicy: Local`).
    pub local_nodes: &'a dyn Fn(&Service) -> BTreeSet<String>,
}

/// Every LoadBalancer Service this controller serves, keyed `namespace/name`,
/// and what it gets: the scheduling of k3s's svclb pods, replayed. Host
/// ports of real pods come first (they exist; svclb pods here do not), then
/// svclb pods already placed stay while DaemonSet pods would (a
/// `NoSchedule` taint or a NotReady node does not move them), then waiting
/// ones are placed, oldest Service first, where their host ports are free.
pub fn plan(cluster: &Cluster) -> BTreeMap<String, Balancer> {
    let mut services: Vec<&Service> = cluster
        .services
        .iter()
        .map(Arc::as_ref)
        .filter(|s| wants_load_balancer(s))
        .collect();
    services.sort_by_key(|s| (s.creation_timestamp().map(|t| t.0), key(s)));
    let mut nodes: Vec<&Node> = cluster.nodes.iter().map(Arc::as_ref).collect();
    nodes.sort_by_key(|n| n.name_any());
    let selective = nodes.iter().any(|n| n.labels().contains_key(ENABLE_LB));
    let pods: Vec<PodSpec> = services.iter().map(|s| svclb_pod(s, selective)).collect();
    let mut ports = HostPorts::default();
    ports.occupy(cluster.pods);
    let mut plan: BTreeMap<String, Balancer> = BTreeMap::new();
    for (service, pod) in services.iter().zip(&pods) {
        let held = (cluster.held)(service);
        let balancer = plan.entry(key(service)).or_default();
        let stays = |n: &&&Node| held.contains(&n.name_any()) && node_should_run(n, pod).1;
        for node in nodes.iter().filter(stays) {
            if ports.claim(service, node).is_ok() {
                balancer.nodes.insert(node.name_any());
            }
        }
    }
    for (service, pod) in services.iter().zip(&pods) {
        let balancer = plan.entry(key(service)).or_default();
        let fits = |n: &&&Node| !balancer.nodes.contains(&n.name_any()) && node_should_run(n, pod).0;
        let candidates: Vec<&Node> = nodes.iter().filter(fits).copied().collect();
        for node in candidates {
            match ports.claim(service, node) {
                Ok(()) => {
                    balancer.nodes.insert(node.name_any());
                }
                Err(conflicts) => balancer.conflicts.extend(conflicts),
            }
        }
    }
    for service in services {
        let balancer = plan.entry(key(service)).or_default();
        let local = is_local(service).then(|| (cluster.local_nodes)(service));
        let serving: Vec<&Node> = nodes
            .iter()
            .filter(|n| balancer.nodes.contains(&n.name_any()) && is_ready(n))
            .filter(|n| local.as_ref().is_none_or(|l| l.contains(&n.name_any())))
            .copied()
            .collect();
        balancer.ingress = ingress(service, &serving);
    }
    plan
}

/// Which Service's svclb pod holds each host port on each node (the
/// scheduler's NodePorts filter: one pod per port and protocol on a node).
#[derive(Default)]
struct HostPorts(HashMap<(String, HostPort), String>);

impl HostPorts {
    /// Records the host ports of pods bound to a node and not finished (the
    /// scheduler's view: also those of `hostNetwork` pods, which the API
    /// server defaults to their container ports).
    fn occupy(&mut self, pods: &[Arc<Pod>]) {
        for pod in pods {
            let Some(spec) = pod.spec.as_ref() else { continue };
            let Some(node) = spec.node_name.clone().filter(|n| !n.is_empty()) else {
                continue;
            };
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            let holder = format!("pod {}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
            let ports = spec.containers.iter().flat_map(|c| c.ports.iter().flatten());
            for port in ports.filter(|p| p.host_port.is_some_and(|h| h > 0)) {
                let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
                let host_port = (port.host_port.unwrap_or_default(), protocol);
                self.0
                    .entry((node.clone(), host_port))
                    .or_insert_with(|| holder.clone());
            }
        }
    }

    /// Places the Service's pod on the node if all its ports are free there.
    fn claim(&mut self, service: &Service, node: &Node) -> Result<(), Vec<Conflict>> {
        let (node, owner) = (node.name_any(), holder_of(service));
        let wanted = host_ports(service);
        let conflicts: Vec<Conflict> = wanted
            .iter()
            .filter_map(|port| {
                let holder = self.0.get(&(node.clone(), port.clone())).filter(|h| **h != owner)?;
                Some(Conflict {
                    port: port.0,
                    protocol: port.1.clone(),
                    holder: holder.clone(),
                    node: node.clone(),
                })
            })
            .collect();
        if !conflicts.is_empty() {
            return Err(conflicts);
        }
        for port in wanted {
            self.0.insert((node.clone(), port), owner.clone());
        }
        Ok(())
    }
}

/// Upstream's node Ready condition being `True`.
fn is_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The placement-relevant part of the pod k3s's svclb DaemonSet would run.
fn svclb_pod(service: &Service, selective: bool) -> PodSpec {
    let toleration = |key: &str, effect: Option<&str>| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: effect.map(Into::into),
        ..Toleration::default()
    };
    let node_selector = selective.then(|| {
        let mut selector = BTreeMap::from([(ENABLE_LB.to_string(), "true".to_string())]);
        if let Some(pool) = service.labels().get(LB_POOL).filter(|p| !p.is_empty()) {
            selector.insert(LB_POOL.into(), pool.clone());
        }
        selector
    });
    PodSpec {
        node_selector,
        tolerations: Some(vec![
            toleration("node-role.kubernetes.io/master", Some("NoSchedule")),
            toleration("node-role.kubernetes.io/control-plane", Some("NoSchedule")),
            toleration("CriticalAddonsOnly", None),
        ]),
        ..PodSpec::default()
    }
}

/// The Service's ports as the hostPorts of its svclb pod.
fn host_ports(service: &Service) -> Vec<HostPort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .map(|p| (p.port, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
        .collect()
}

/// Upstream's `RequestsOnlyLocalTraffic` for a LoadBalancer.
fn is_local(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local")
}

/// k3s's `podIPs` + `filterByIPFamily`: the chosen nodes' ExternalIPs if
/// any has one, else their InternalIPs; per family in `ipFamilies` order.
fn ingress(service: &Service, nodes: &[&Node]) -> Vec<LoadBalancerIngress> {
    let addresses = |kind: &str| -> BTreeSet<String> {
        nodes
            .iter()
            .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
            .flatten()
            .filter(|a| a.type_ == kind)
            .map(|a| a.address.clone())
            .collect()
    };
    let external = addresses("ExternalIP");
    let chosen = if external.is_empty() {
        addresses("InternalIP")
    } else {
        external
    };
    let families = service.spec.as_ref().and_then(|s| s.ip_families.clone());
    let families = families
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| vec!["IPv4".into()]);
    let family_of = |ip: &str| match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Some("IPv4"),
        Ok(IpAddr::V6(_)) => Some("IPv6"),
        Err(_) => None,
    };
    families
        .iter()
        .flat_map(|family| chosen.iter().filter(move |ip| family_of(ip) == Some(family.as_str())))
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.clone()),
            ip_mode: Some("VIP".into()),
            ..LoadBalancerIngress::default()
        })
        .collect()
}

/// Why a Service got no address although nodes would have served it.
fn conflict_message(conflicts: &[Conflict]) -> Option<String> {
    let mut by_port: BTreeMap<(i32, &str, &str), Vec<&str>> = BTreeMap::new();
    for c in conflicts {
        let nodes = by_port.entry((c.port, &c.protocol, &c.holder)).or_default();
        nodes.push(&c.node);
    }
    let parts: Vec<String> = by_port
        .into_iter()
        .map(|((port, protocol, holder), nodes)| {
            let noun = if nodes.len() == 1 { "node" } else { "nodes" };
            format!(
                "port {port}/{protocol} is already used by {holder} on {noun} {}",
                nodes.join(", ")
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

// ---- The controller ----

/// The caches one pass reads.
struct Caches {
    services: Store<Service>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    /// The controller manager's shared pod cache.
    pods: Store<Pod>,
}

/// What the controller last reported for one Service, so that Events mark
/// changes instead of repeating on every pass.
#[derive(Debug, Clone, PartialEq)]
struct Reported {
    uid: Option<String>,
    /// The parts of the spec a load balancer is built from.
    spec: String,
    ips: Vec<String>,
    /// Why there are no addresses.
    problem: Option<Problem>,
}

/// Why a served Service has no addresses.
#[derive(Debug, Clone, PartialEq)]
enum Problem {
    /// No node would run a ready svclb pod for it.
    NoNodes,
    /// Nodes would, but its ports are taken there (the message says by whom).
    PortsTaken(String),
}

/// What the controller carries from one pass to the next.
#[derive(Default)]
struct Memory {
    /// What was last reported per Service, by `namespace/name`.
    reported: HashMap<String, Reported>,
    /// Where each Service's svclb pods are ([`Balancer::nodes`]).
    placed: HashMap<String, BTreeSet<String>>,
}

/// Runs the controller: a pass once the caches are filled and after every
/// relevant change.
pub async fn run(client: kube::Client, pods: Store<Pod>, pod_changes: PodChanges) {
    let (caches, mut changes) = watch(&client, pods, pod_changes);
    // The caches fill from the same streams that report changes.
    tokio::select! {
        _ = caches.ready() => {}
        _ = (&mut changes).for_each(|_| async {}) => return,
    }
    let mut memory = Memory::default();
    loop {
        let retry = match sync_all(&client, &caches, &mut memory).await {
            Ok(()) => None,
            Err(error) => {
                tracing::warn!(%error, "{NAME}");
                Some(RETRY)
            }
        };
        tokio::select! {
            change = changes.next() => if change.is_none() { return },
            _ = tokio::time::sleep(retry.unwrap_or(Duration::from_secs(3600))) => {}
        }
        // One pass covers every change that has already arrived.
        while let Some(Some(())) = changes.next().now_or_never() {}
    }
}

/// The caches, and one stream of the changes that can move a balancer.
fn watch(client: &kube::Client, pods: Store<Pod>, pod_changes: PodChanges) -> (Caches, BoxStream<'static, ()>) {
    let (services, service_changes) = cache(Api::<Service>::all(client.clone()), |s: &Service| {
        wants_load_balancer(s) || !ips_of(s).is_empty() || is_type(s, "LoadBalancer")
    });
    let (nodes, node_changes) = node_cache(Api::<Node>::all(client.clone()));
    let lookup = services.clone();
    let (slices, slice_changes) = cache(
        Api::<EndpointSlice>::all(client.clone()),
        move |slice: &EndpointSlice| serves_local(&lookup, slice),
    );
    let pod_changes = pod_changes
        .filter_map(|pod| futures::future::ready(pod.is_ok_and(|p| has_host_ports(&p)).then_some(())))
        .boxed();
    let caches = Caches {
        services,
        nodes,
        slices,
        pods,
    };
    let streams = [service_changes, node_changes, slice_changes, pod_changes];
    (caches, futures::stream::select_all(streams).boxed())
}

impl Caches {
    async fn ready(&self) {
        let _ = tokio::join!(
            self.services.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.slices.wait_until_ready(),
            self.pods.wait_until_ready()
        );
    }
}

/// A cache of `api` and a stream that yields after each change `relevant`
/// accepts, once the cache holds it.
fn cache<K>(api: Api<K>, relevant: impl Fn(&K) -> bool + Send + 'static) -> (Store<K>, BoxStream<'static, ()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    let changes = events.filter_map(move |event| {
        let changed = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o)) => relevant(&o),
            Ok(watcher::Event::InitDone) => true,
            Ok(watcher::Event::Init) | Err(_) => false,
        };
        futures::future::ready(changed.then_some(()))
    });
    (store, changes.boxed())
}

/// The node cache; only changes to what placement and addresses depend on
/// count (heartbeats alone do not).
fn node_cache(api: Api<Node>) -> (Store<Node>, BoxStream<'static, ()>) {
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    let mut seen: HashMap<String, String> = HashMap::new();
    let changes = events.filter_map(move |event| {
        let changed = match event {
            Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node)) => {
                let print = node_fingerprint(&node);
                seen.insert(node.name_any(), print.clone()) != Some(print)
            }
            Ok(watcher::Event::Delete(node)) => seen.remove(&node.name_any()).is_some(),
            Ok(watcher::Event::InitDone) => true,
            Ok(watcher::Event::Init) | Err(_) => false,
        };
        futures::future::ready(changed.then_some(()))
    });
    (store, changes.boxed())
}

fn node_fingerprint(node: &Node) -> String {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_ref());
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    serde_json::to_string(&(node.labels(), taints, addresses, is_ready(node))).unwrap_or_default()
}

fn is_type(service: &Service, kind: &str) -> bool {
    service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some(kind)
}

fn ips_of(service: &Service) -> Vec<String> {
    ingress_of(service)
        .iter()
        .map(|i| i.ip.clone().or(i.hostname.clone()).unwrap_or_default())
        .collect()
}

fn ingress_of(service: &Service) -> Vec<LoadBalancerIngress> {
    let status = service.status.as_ref().and_then(|s| s.load_balancer.as_ref());
    status.and_then(|lb| lb.ingress.clone()).unwrap_or_default()
}

/// Whether a pod holds host ports (its changes can free or take a node).
fn has_host_ports(pod: &Pod) -> bool {
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    let mut ports = containers.flat_map(|c| c.ports.iter().flatten());
    ports.any(|p| p.host_port.is_some_and(|h| h > 0))
}

/// Whether an EndpointSlice belongs to a served `externalTrafficPolicy:
/// Local` Service, the only kind whose addresses follow endpoints.
fn serves_local(services: &Store<Service>, slice: &EndpointSlice) -> bool {
    let Some(name) = slice.labels().get(crate::endpointslice::SERVICE_NAME) else {
        return false;
    };
    let reference = ObjectRef::new(name).within(&slice.namespace().unwrap_or_default());
    services
        .get(&reference)
        .is_some_and(|s| wants_load_balancer(&s) && is_local(&s))
}

/// One pass: every Service's status brought to the plan.
async fn sync_all(client: &kube::Client, caches: &Caches, memory: &mut Memory) -> Result<(), kube::Error> {
    let services = caches.services.state();
    let nodes = caches.nodes.state();
    let slices = caches.slices.state();
    let pods: Vec<Arc<Pod>> = caches.pods.state().into_iter().filter(|p| has_host_ports(p)).collect();
    let placed = &memory.placed;
    let plan = plan(&Cluster {
        services: &services,
        nodes: &nodes,
        pods: &pods,
        held: &|s| {
            placed
                .get(&key(s))
                .cloned()
                .unwrap_or_else(|| nodes_in_status(s, &nodes))
        },
        local_nodes: &|s| ready_endpoint_nodes(&slices, s),
    });
    memory.placed = plan.iter().map(|(k, b)| (k.clone(), b.nodes.clone())).collect();
    let reported = &mut memory.reported;
    reported.retain(|k, _| plan.contains_key(k));
    let mut failed = None;
    for service in &services {
        let outcome = match plan.get(&key(service)) {
            Some(balancer) => ensure(client, service, balancer, reported).await,
            None => clear(client, service).await,
        };
        if let Err(error) = outcome {
            tracing::debug!(service = key(service), %error, "{NAME}");
            failed = Some(error);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// The nodes whose addresses a Service's status lists: where its pods were
/// before this controller (re)started.
fn nodes_in_status(service: &Service, nodes: &[Arc<Node>]) -> BTreeSet<String> {
    let ips = ips_of(service);
    let listed = |n: &Node| {
        let addresses = n.status.as_ref().and_then(|s| s.addresses.as_ref());
        addresses.into_iter().flatten().any(|a| ips.contains(&a.address))
    };
    nodes.iter().filter(|n| listed(n)).map(|n| n.name_any()).collect()
}

/// The nodes with a ready pod endpoint of `service` (k3s's `readyNodes`).
fn ready_endpoint_nodes(slices: &[Arc<EndpointSlice>], service: &Service) -> BTreeSet<String> {
    let name = service.name_any();
    slices
        .iter()
        .filter(|s| s.namespace() == service.namespace())
        .filter(|s| s.labels().get(crate::endpointslice::SERVICE_NAME) == Some(&name))
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.target_ref.as_ref().and_then(|r| r.kind.as_deref()) == Some("Pod"))
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .filter_map(|e| e.node_name.clone())
        .collect()
}

/// Brings a served Service to its balancer, with upstream's Events: on a
/// new or changed spec `EnsuringLoadBalancer` and the result; afterwards
/// only when the result changes.
async fn ensure(
    client: &kube::Client,
    service: &Service,
    balancer: &Balancer,
    reported: &mut HashMap<String, Reported>,
) -> Result<(), kube::Error> {
    let now = Reported {
        uid: service.metadata.uid.clone(),
        spec: spec_fingerprint(service),
        ips: balancer.ingress.iter().filter_map(|i| i.ip.clone()).collect(),
        problem: balancer.ingress.is_empty().then(|| problem(balancer)),
    };
    let before = reported.get(&key(service)).filter(|r| r.uid == now.uid).cloned();
    let fresh = before.as_ref().is_none_or(|b| b.spec != now.spec);
    if fresh {
        event(
            client,
            service,
            "Normal",
            "EnsuringLoadBalancer",
            "Ensuring load balancer",
        )
        .await;
    }
    let current = ingress_of(service);
    if current != balancer.ingress {
        write_ingress(client, service, &balancer.ingress).await?;
    }
    let previous_ips = before.as_ref().map_or_else(|| ips_of(service), |b| b.ips.clone());
    if fresh || before.as_ref() != Some(&now) {
        report(client, service, fresh, &previous_ips, &now).await;
    }
    reported.insert(key(service), now);
    Ok(())
}

/// The Events for an outcome (see [`ensure`]).
async fn report(client: &kube::Client, service: &Service, fresh: bool, previous: &[String], now: &Reported) {
    match &now.problem {
        None => {
            if fresh {
                event(
                    client,
                    service,
                    "Normal",
                    "EnsuredLoadBalancer",
                    "Ensured load balancer",
                )
                .await;
            }
            if previous != now.ips {
                let message = format!(
                    "Updated LoadBalancer with new IPs: {} -> {}",
                    go_list(previous),
                    go_list(&now.ips)
                );
                event(client, service, "Normal", "UpdatedLoadBalancer", &message).await;
            }
        }
        Some(Problem::PortsTaken(why)) => {
            let message = format!("Error syncing load balancer: failed to ensure load balancer: {why}");
            event(client, service, "Warning", "SyncLoadBalancerFailed", &message).await;
        }
        Some(Problem::NoNodes) => {
            let message = "There are no available nodes for LoadBalancer";
            event(client, service, "Warning", "UnAvailableLoadBalancer", message).await;
        }
    }
}

/// A list as Go's `%v` prints it, as in k3s's message: `[a b]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

fn problem(balancer: &Balancer) -> Problem {
    conflict_message(&balancer.conflicts).map_or(Problem::NoNodes, Problem::PortsTaken)
}

fn spec_fingerprint(service: &Service) -> String {
    let spec = service.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_ref());
    let families = spec.and_then(|s| s.ip_families.as_ref());
    let policy = spec.and_then(|s| s.external_traffic_policy.as_ref());
    let pool = service.labels().get(LB_POOL);
    serde_json::to_string(&(ports, families, policy, pool)).unwrap_or_default()
}

/// A Service that is not (or no longer) served: a leftover ingress of a
/// Service that stopped being a LoadBalancer is removed, with upstream's
/// `DeletingLoadBalancer`/`DeletedLoadBalancer`. LoadBalancers of another
/// class are left to their controller.
async fn clear(client: &kube::Client, service: &Service) -> Result<(), kube::Error> {
    if is_type(service, "LoadBalancer") || ingress_of(service).is_empty() {
        return Ok(());
    }
    event(
        client,
        service,
        "Normal",
        "DeletingLoadBalancer",
        "Deleting load balancer",
    )
    .await;
    write_ingress(client, service, &[]).await?;
    event(
        client,
        service,
        "Normal",
        "DeletedLoadBalancer",
        "Deleted load balancer",
    )
    .await;
    Ok(())
}

/// Writes `status.loadBalancer.ingress` through the status subresource; a
/// Service deleted meanwhile needs nothing more.
async fn write_ingress(
    client: &kube::Client,
    service: &Service,
    ingress: &[LoadBalancerIngress],
) -> Result<(), kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), &service.namespace().unwrap_or_default());
    let ingress = (!ingress.is_empty()).then_some(ingress);
    let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    match api
        .patch_status(&service.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

async fn event(client: &kube::Client, service: &Service, type_: &str, reason: &str, message: &str) {
    record_event(client, &object_reference(service), type_, reason, message, NAME).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn service(name: &str, created: &str, spec: Value) -> Arc<Service> {
        let mut spec = spec;
        let fields = spec.as_object_mut().unwrap();
        fields.entry("type").or_insert(json!("LoadBalancer"));
        fields.entry("ipFamilies").or_insert(json!(["IPv4"]));
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
                "spec": spec,
            }))
            .unwrap(),
        )
    }

    fn tcp(port: i32) -> Value {
        json!({"ports": [{"port": port, "protocol": "TCP"}]})
    }

    fn node(name: &str, ready: bool, addresses: Value, labels: Value, taints: Value) -> Arc<Node> {
        let status = if ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"taints": taints},
                "status": {"addresses": addresses, "conditions": [{"type": "Ready", "status": status}]},
            }))
            .unwrap(),
        )
    }

    fn internal(name: &str, ip: &str) -> Arc<Node> {
        node(
            name,
            true,
            json!([{"type": "InternalIP", "address": ip}]),
            json!({}),
            json!([]),
        )
    }

    fn ips(plan: &BTreeMap<String, Balancer>, key: &str) -> Vec<String> {
        plan[key].ingress.iter().map(|i| i.ip.clone().unwrap()).collect()
    }

    /// The plan with nothing placed before and no endpoints.
    fn fresh_plan(services: &[Arc<Service>], nodes: &[Arc<Node>]) -> BTreeMap<String, Balancer> {
        plan(&Cluster {
            services,
            nodes,
            pods: &[],
            held: &|_| BTreeSet::new(),
            local_nodes: &|_| BTreeSet::new(),
        })
    }

    fn names(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_load_balancer_gets_every_ready_node_as_a_vip() {
        let nodes = [
            internal("a", "10.0.0.2"),
            internal("b", "10.0.0.10"),
            node(
                "c",
                false,
                json!([{"type": "InternalIP", "address": "10.0.0.3"}]),
                json!({}),
                json!([]),
            ),
        ];
        let plan = fresh_plan(&[service("web", "2026-01-01T00:00:00Z", tcp(80))], &nodes);
        assert_eq!(
            ips(&plan, "default/web"),
            ["10.0.0.10", "10.0.0.2"],
            "k3s sorts as text"
        );
        assert!(
            plan["default/web"]
                .ingress
                .iter()
                .all(|i| i.ip_mode.as_deref() == Some("VIP"))
        );
        assert!(plan["default/web"].conflicts.is_empty());
    }

    #[test]
    fn external_ips_win_over_internal_ones_across_all_nodes() {
        let both =
            json!([{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "ExternalIP", "address": "192.0.2.1"}]);
        let nodes = [node("a", true, both, json!({}), json!([])), internal("b", "10.0.0.2")];
        let plan = fresh_plan(&[service("web", "2026-01-01T00:00:00Z", tcp(80))], &nodes);
        assert_eq!(ips(&plan, "default/web"), ["192.0.2.1"]);
    }

    #[test]
    fn services_of_another_class_or_type_are_not_served() {
        let mut classed = tcp(80);
        classed["loadBalancerClass"] = json!("example.com/other");
        let mut cluster_ip = tcp(81);
        cluster_ip["type"] = json!("ClusterIP");
        let services = [
            service("other", "2026-01-01T00:00:00Z", classed),
            service("plain", "2026-01-01T00:00:00Z", cluster_ip),
        ];
        let plan = fresh_plan(&services, &[internal("a", "10.0.0.1")]);
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn the_older_service_holds_a_port_and_protocol() {
        let mut udp = tcp(80);
        udp["ports"][0]["protocol"] = json!("UDP");
        let services = [
            service("second", "2026-01-02T00:00:00Z", tcp(80)),
            service("first", "2026-01-01T00:00:00Z", tcp(80)),
            service("udp", "2026-01-03T00:00:00Z", udp),
            service("other-port", "2026-01-04T00:00:00Z", tcp(8080)),
        ];
        let nodes = [internal("a", "10.0.0.1"), internal("b", "10.0.0.2")];
        let plan = fresh_plan(&services, &nodes);
        assert_eq!(ips(&plan, "default/first"), ["10.0.0.1", "10.0.0.2"]);
        assert!(plan["default/second"].ingress.is_empty());
        assert_eq!(
            conflict_message(&plan["default/second"].conflicts).unwrap(),
            "port 80/TCP is already used by LoadBalancer service default/first on nodes a, b"
        );
        assert_eq!(ips(&plan, "default/udp"), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&plan, "default/other-port"), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn a_port_is_held_per_node_so_disjoint_pools_share_it() {
        let pool = |p: &str| json!({ENABLE_LB: "true", LB_POOL: p});
        let address = |ip: &str| json!([{"type": "InternalIP", "address": ip}]);
        let nodes = [
            node("a", true, address("10.0.0.1"), pool("one"), json!([])),
            node("b", true, address("10.0.0.2"), pool("two"), json!([])),
        ];
        let in_pool = |name: &str, p: &str| {
            let mut s = (*service(name, "2026-01-01T00:00:00Z", tcp(80))).clone();
            s.metadata.labels = Some(BTreeMap::from([(LB_POOL.to_string(), p.to_string())]));
            Arc::new(s)
        };
        let plan = fresh_plan(&[in_pool("x", "one"), in_pool("y", "two")], &nodes);
        assert_eq!(ips(&plan, "default/x"), ["10.0.0.1"]);
        assert_eq!(ips(&plan, "default/y"), ["10.0.0.2"]);
    }

    #[test]
    fn once_a_node_is_labelled_enablelb_only_true_ones_serve() {
        let address = |ip: &str| json!([{"type": "InternalIP", "address": ip}]);
        let nodes = [
            node("a", true, address("10.0.0.1"), json!({ENABLE_LB: "true"}), json!([])),
            node("b", true, address("10.0.0.2"), json!({ENABLE_LB: "false"}), json!([])),
            internal("c", "10.0.0.3"),
        ];
        let plan = fresh_plan(&[service("web", "2026-01-01T00:00:00Z", tcp(80))], &nodes);
        assert_eq!(ips(&plan, "default/web"), ["10.0.0.1"]);
    }

    #[test]
    fn taints_the_svclb_pod_does_not_tolerate_exclude_a_node() {
        let address = |ip: &str| json!([{"type": "InternalIP", "address": ip}]);
        let taint = |key: &str, effect: &str| json!([{"key": key, "effect": effect}]);
        let nodes = [
            node(
                "cp",
                true,
                address("10.0.0.1"),
                json!({}),
                taint("node-role.kubernetes.io/control-plane", "NoSchedule"),
            ),
            node(
                "cordoned",
                true,
                address("10.0.0.2"),
                json!({}),
                taint("node.kubernetes.io/unschedulable", "NoSchedule"),
            ),
            node("gpu", true, address("10.0.0.3"), json!({}), taint("gpu", "NoSchedule")),
        ];
        let plan = fresh_plan(&[service("web", "2026-01-01T00:00:00Z", tcp(80))], &nodes);
        assert_eq!(ips(&plan, "default/web"), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn local_traffic_policy_keeps_nodes_with_a_ready_endpoint() {
        let mut spec = tcp(80);
        spec["externalTrafficPolicy"] = json!("Local");
        let services = [
            service("web", "2026-01-01T00:00:00Z", spec),
            service("other", "2026-01-02T00:00:00Z", tcp(80)),
        ];
        let nodes = [internal("a", "10.0.0.1"), internal("b", "10.0.0.2")];
        let plan = plan(&Cluster {
            services: &services,
            nodes: &nodes,
            pods: &[],
            held: &|_| BTreeSet::new(),
            local_nodes: &|_| names(&["b"]),
        });
        assert_eq!(ips(&plan, "default/web"), ["10.0.0.2"]);
        assert!(
            plan["default/other"].ingress.is_empty(),
            "the svclb pods hold the port on every node"
        );
    }

    #[test]
    fn addresses_follow_the_ip_families_order() {
        let addresses =
            json!([{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "InternalIP", "address": "fd00::1"}]);
        let nodes = [node("a", true, addresses, json!({}), json!([]))];
        let mut spec = tcp(80);
        spec["ipFamilies"] = json!(["IPv6", "IPv4"]);
        let dual = service("dual", "2026-01-01T00:00:00Z", spec);
        let single = service("single", "2026-01-01T00:00:00Z", tcp(81));
        let plan = fresh_plan(&[dual, single], &nodes);
        assert_eq!(ips(&plan, "default/dual"), ["fd00::1", "10.0.0.1"]);
        assert_eq!(ips(&plan, "default/single"), ["10.0.0.1"]);
    }

    #[test]
    fn an_older_service_waits_for_a_port_a_newer_one_already_holds() {
        let services = [
            service("old", "2026-01-01T00:00:00Z", tcp(80)),
            service("new", "2026-01-02T00:00:00Z", tcp(80)),
        ];
        let nodes = [internal("a", "10.0.0.1"), internal("b", "10.0.0.2")];
        let held = |s: &Service| {
            if s.name_any() == "new" {
                names(&["a"])
            } else {
                BTreeSet::new()
            }
        };
        let plan = plan(&Cluster {
            services: &services,
            nodes: &nodes,
            pods: &[],
            held: &held,
            local_nodes: &|_| BTreeSet::new(),
        });
        assert_eq!(ips(&plan, "default/new"), ["10.0.0.1"], "it keeps node a ...");
        assert_eq!(
            ips(&plan, "default/old"),
            ["10.0.0.2"],
            "... and the older one gets the free node"
        );
        assert_eq!(plan["default/old"].conflicts.len(), 1);
        assert_eq!(
            plan["default/old"].conflicts[0].holder,
            "LoadBalancer service default/new"
        );
    }

    #[test]
    fn placed_pods_stay_under_no_schedule_and_on_not_ready_nodes() {
        let address = |ip: &str| json!([{"type": "InternalIP", "address": ip}]);
        let taint = |effect: &str| json!([{"key": "gpu", "effect": effect}]);
        let nodes = [
            node("no-schedule", true, address("10.0.0.1"), json!({}), taint("NoSchedule")),
            node("no-execute", true, address("10.0.0.2"), json!({}), taint("NoExecute")),
            node(
                "not-ready",
                false,
                address("10.0.0.3"),
                json!({}),
                json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
            ),
        ];
        let services = [service("web", "2026-01-01T00:00:00Z", tcp(80))];
        let plan = plan(&Cluster {
            services: &services,
            nodes: &nodes,
            pods: &[],
            held: &|_| names(&["no-schedule", "no-execute", "not-ready"]),
            local_nodes: &|_| BTreeSet::new(),
        });
        assert_eq!(plan["default/web"].nodes, names(&["no-schedule", "not-ready"]));
        assert_eq!(
            ips(&plan, "default/web"),
            ["10.0.0.1"],
            "a NotReady node serves nothing"
        );
        assert!(
            fresh_plan(&services, &nodes)["default/web"].nodes.is_empty(),
            "no new pod goes to a node tainted by condition or by hand"
        );
    }

    #[test]
    fn host_ports_of_running_pods_keep_their_node_out() {
        let pod = |name: &str, node: &str, phase: &str| -> Arc<Pod> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "kube-system"},
                    "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"containerPort": 8080, "hostPort": 80}]}]},
                    "status": {"phase": phase},
                }))
                .unwrap(),
            )
        };
        let pods = [pod("ingress", "a", "Running"), pod("done", "b", "Succeeded")];
        let services = [service("web", "2026-01-01T00:00:00Z", tcp(80))];
        let nodes = [internal("a", "10.0.0.1"), internal("b", "10.0.0.2")];
        let plan = plan(&Cluster {
            services: &services,
            nodes: &nodes,
            pods: &pods,
            held: &|_| names(&["a"]),
            local_nodes: &|_| BTreeSet::new(),
        });
        assert_eq!(ips(&plan, "default/web"), ["10.0.0.2"]);
        assert_eq!(
            conflict_message(&plan["default/web"].conflicts).unwrap(),
            "port 80/TCP is already used by pod kube-system/ingress on node a"
        );
    }

    #[test]
    fn endpoints_on_a_node_count_when_ready_pods() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.42.0.2"], "conditions": {"ready": true}, "nodeName": "a", "targetRef": {"kind": "Pod", "name": "p"}},
                {"addresses": ["10.42.1.2"], "conditions": {"ready": false}, "nodeName": "b", "targetRef": {"kind": "Pod", "name": "q"}},
            ],
        }))
        .unwrap();
        let web = service("web", "2026-01-01T00:00:00Z", tcp(80));
        assert_eq!(
            ready_endpoint_nodes(&[Arc::new(slice)], &web),
            BTreeSet::from(["a".to_string()])
        );
    }
}
