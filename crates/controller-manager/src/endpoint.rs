//! Endpoints: for every Service with a selector, an Endpoints object of the
//! same name listing the IPs and ports of the pods it selects (upstream's
//! endpoint controller). Ready pods go under `addresses`, the others under
//! `notReadyAddresses` (all under `addresses` with
//! `publishNotReadyAddresses`); addresses exposing the same ports share a
//! subset; past 1000 addresses the list is truncated and annotated
//! `endpoints.kubernetes.io/over-capacity: truncated`. Endpoints of
//! selector-less Services belong to their users and are left alone.
//!
//! Pods are read from an informer and mapped to the Services selecting
//! them. A pod relabelled away from a Service is not mapped back to it, so
//! every Service is also resynced every few minutes (upstream keeps the old
//! labels to catch that at once). The Endpoints of a deleted Service are
//! removed from the Service watch's deletions and relists, as upstream
//! deletes them when the Service goes and at start.
//!
//! The pod selection, readiness and port rules live here and are shared
//! with the EndpointSlice controller (upstream's `endpointutil`).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};

use crate::Error;
use crate::replicaset::is_ready;

/// Upstream's `maxCapacity`: addresses in one Endpoints object.
const MAX_CAPACITY: usize = 1000;
pub(crate) const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
pub(crate) const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
pub(crate) const HEADLESS: &str = "service.kubernetes.io/headless";
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Annotation of the Endpoints leader-election locks, which are never cleaned up.
const LEADER: &str = "control-plane.alpha.kubernetes.io/leader";
pub(crate) const RESYNC: Duration = Duration::from_secs(300);

struct Context {
    client: kube::Client,
    pods: Store<Pod>,
}

pub async fn run(client: kube::Client, pods: Store<Pod>, changes: crate::informer::PodChanges) {
    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default());
    let services = controller.store();
    let mapper = {
        let services = services.clone();
        move |pod: Pod| services_selecting(&services, &pod)
    };
    let context = Arc::new(Context {
        client: client.clone(),
        pods: pods.clone(),
    });
    let main = controller
        .watches_stream(changes, mapper)
        .watches(Api::<Endpoints>::all(client.clone()), watcher::Config::default(), |e| {
            Some(ObjectRef::<Service>::new(&e.name_any()).within(&e.namespace().unwrap_or_default()))
        })
        .run(reconcile, error_policy, context)
        .for_each(|_| futures::future::ready(()));
    let cleanup = remove_leftovers(client);
    tokio::join!(main, cleanup);
}

/// The Services in a pod's namespace whose selector matches its labels.
pub(crate) fn services_selecting(services: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let namespace = pod.namespace().unwrap_or_default();
    services
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|s| selector_of(s).is_some_and(|sel| selects(sel, pod)))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// A Service's selector; a Service without one has no managed endpoints.
pub(crate) fn selector_of(service: &Service) -> Option<&BTreeMap<String, String>> {
    let selector = service.spec.as_ref()?.selector.as_ref()?;
    (!selector.is_empty()).then_some(selector)
}

fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.labels();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pods of the Service's namespace its selector matches.
pub(crate) fn selected_pods(pods: &Store<Pod>, service: &Service) -> Vec<Arc<Pod>> {
    let Some(selector) = selector_of(service) else {
        return Vec::new();
    };
    let namespace = service.namespace();
    let mut selected: Vec<Arc<Pod>> = pods
        .state()
        .into_iter()
        .filter(|p| p.namespace() == namespace && selects(selector, p))
        .collect();
    selected.sort_by_key(|p| p.name_any());
    selected
}

async fn reconcile(service: Arc<Service>, context: Arc<Context>) -> Result<Action, Error> {
    if selector_of(&service).is_none() || service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::requeue(RESYNC));
    }
    let api: Api<Endpoints> = Api::namespaced(context.client.clone(), &service.namespace().unwrap_or_default());
    let pods = selected_pods(&context.pods, &service);
    let current = api.get_opt(&service.name_any()).await?;
    let Some(endpoints) = desired(&service, &pods, current.as_ref()) else {
        return Ok(Action::requeue(RESYNC));
    };
    let params = PostParams::default();
    match current {
        Some(_) => api.replace(&service.name_any(), &params, &endpoints).await?,
        None => api.create(&params, &endpoints).await?,
    };
    Ok(Action::requeue(RESYNC))
}

/// The Endpoints the Service should have; `None` when `current` already
/// says that (its trigger time is then left as it is).
fn desired(service: &Service, pods: &[Arc<Pod>], current: Option<&Endpoints>) -> Option<Endpoints> {
    let (subsets, truncated) = truncate(subsets_for(service, pods));
    let labels = endpoints_labels(service);
    let unchanged = current.is_some_and(|c| {
        c.subsets.clone().unwrap_or_default() == subsets
            && c.labels() == &labels
            && c.annotations().contains_key(OVER_CAPACITY) == truncated
    });
    if unchanged {
        return None;
    }
    let mut annotations = current.map(|c| c.annotations().clone()).unwrap_or_default();
    annotations.remove(OVER_CAPACITY);
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    }
    annotations.insert(TRIGGER_TIME.into(), format_time(last_change(service, pods)));
    Some(Endpoints {
        metadata: ObjectMeta {
            name: Some(service.name_any()),
            namespace: service.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            resource_version: current.and_then(|c| c.resource_version()),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// The Service's labels, plus upstream's markers: headless Services, and
/// "do not mirror" for the EndpointSlice mirroring controller.
fn endpoints_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.labels().clone();
    labels.insert(SKIP_MIRROR.into(), "true".into());
    if is_headless(service) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels
}

pub(crate) fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Upstream's `ShouldPodBeInEndpoints`: a pod with an IP that has not
/// finished for good (terminating pods only when `include_terminating`).
pub(crate) fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status.is_some_and(|s| s.pod_ip.as_ref().is_some_and(|ip| !ip.is_empty()));
    if !has_ip || (!include_terminating && pod.metadata.deletion_timestamp.is_some()) {
        return false;
    }
    let phase = status.and_then(|s| s.phase.as_deref());
    let restart = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref());
    match restart {
        Some("Never") => !matches!(phase, Some("Failed") | Some("Succeeded")),
        Some("OnFailure") => phase != Some("Succeeded"),
        _ => true,
    }
}

/// The Service's primary IP family, as upstream decides it: its first
/// `ipFamilies` entry, else the family of its ClusterIP, else IPv4.
pub(crate) fn primary_family(service: &Service) -> &'static str {
    let spec = service.spec.as_ref();
    let first = spec.and_then(|s| s.ip_families.as_ref()).and_then(|f| f.first());
    match first.map(String::as_str) {
        Some("IPv6") => "IPv6",
        Some(_) => "IPv4",
        None => {
            let ip = spec
                .and_then(|s| s.cluster_ip.as_deref())
                .and_then(|ip| ip.parse().ok());
            family_of(ip.unwrap_or(IpAddr::from([0, 0, 0, 0])))
        }
    }
}

pub(crate) fn family_of(ip: IpAddr) -> &'static str {
    if ip.is_ipv6() { "IPv6" } else { "IPv4" }
}

/// The pod's IP in `family`, if it has one.
pub(crate) fn pod_ip(pod: &Pod, family: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.clone());
    let ips: Vec<String> = listed.chain(status.pod_ip.clone()).collect();
    ips.into_iter()
        .find(|ip| ip.parse::<IpAddr>().is_ok_and(|ip| family_of(ip) == family))
}

/// Upstream's `ShouldSetHostname`: a pod of a headless Service whose
/// subdomain is the Service's name gets its hostname published.
pub(crate) fn hostname(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.clone().filter(|h| !h.is_empty())?;
    let matches = spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace
        && is_headless(service);
    matches.then_some(hostname)
}

/// Upstream's `FindPort`: a numeric targetPort as is, a named one from the
/// pod's container ports of the same name and protocol.
pub(crate) fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
            containers
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                .map(|p| p.container_port)
        }
    }
}

pub(crate) fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.uid(),
        ..ObjectReference::default()
    }
}

/// The subsets for a Service: each pod's address with the ports it
/// resolves, repacked so that addresses with equal port sets share one
/// subset (upstream's `RepackSubsets`), sorted for stable comparison.
pub(crate) fn subsets_for(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish_not_ready = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses) == Some(true);
    let service_ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let family = primary_family(service);
    // Port set (as a sortable key) -> (ports, ready addresses, not-ready addresses).
    type Group = (Vec<EndpointPort>, Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in pods.iter().filter(|p| should_be_in_endpoints(p, publish_not_ready)) {
        let Some(ip) = pod_ip(pod, family) else { continue };
        let address = EndpointAddress {
            ip,
            hostname: hostname(pod, service),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(pod_reference(pod)),
        };
        let mut ports: Vec<EndpointPort> = service_ports
            .iter()
            .filter_map(|sp| {
                find_port(pod, sp).map(|port| EndpointPort {
                    name: sp.name.clone(),
                    port,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        // A Service with ports none of which this pod has: no address (headless port-less ones list all).
        if ports.is_empty() && !(service_ports.is_empty() && is_headless(service)) {
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let group = groups.entry(key).or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish_not_ready || is_ready(pod) {
            group.1.push(address);
        } else {
            group.2.push(address);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Upstream's `truncateEndpoints`: past [`MAX_CAPACITY`] addresses, keeps
/// ready addresses before not-ready ones, each subset keeping its share.
/// Returns the subsets and whether anything was cut.
pub(crate) fn truncate(mut subsets: Vec<EndpointSubset>) -> (Vec<EndpointSubset>, bool) {
    let ready: usize = subsets.iter().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).sum();
    let not_ready: usize = subsets
        .iter()
        .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        .sum();
    if ready + not_ready <= MAX_CAPACITY {
        return (subsets, false);
    }
    let ready_budget = ready.min(MAX_CAPACITY);
    let not_ready_budget = MAX_CAPACITY - ready_budget;
    let ready_counts: Vec<usize> = subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .collect();
    let not_ready_counts: Vec<usize> = subsets
        .iter()
        .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        .collect();
    let ready_keep = shares(&ready_counts, ready_budget);
    let not_ready_keep = shares(&not_ready_counts, not_ready_budget);
    for (i, subset) in subsets.iter_mut().enumerate() {
        cut(&mut subset.addresses, ready_keep[i]);
        cut(&mut subset.not_ready_addresses, not_ready_keep[i]);
    }
    subsets.retain(|s| s.addresses.is_some() || s.not_ready_addresses.is_some());
    (subsets, true)
}

fn cut(addresses: &mut Option<Vec<EndpointAddress>>, keep: usize) {
    if let Some(list) = addresses {
        list.truncate(keep);
        if list.is_empty() {
            *addresses = None;
        }
    }
}

/// Splits `budget` over groups in proportion to their sizes (rounding
/// down, the remainder to the first groups with room).
fn shares(counts: &[usize], budget: usize) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return vec![0; counts.len()];
    }
    let mut keep: Vec<usize> = counts.iter().map(|c| c * budget / total).collect();
    let mut left = budget - keep.iter().sum::<usize>();
    for (i, count) in counts.iter().enumerate() {
        let extra = left.min(count - keep[i]);
        keep[i] += extra;
        left -= extra;
    }
    keep
}

/// When the endpoints last had reason to change: the latest of the
/// Service's creation and each pod's creation or readiness change
/// (upstream's trigger-time tracker, read from the objects).
pub(crate) fn last_change(service: &Service, pods: &[Arc<Pod>]) -> Timestamp {
    let created = |meta: &ObjectMeta| meta.creation_timestamp.as_ref().map(|t| t.0);
    let pod_change = |pod: &Pod| {
        let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
        let ready = conditions.into_iter().flatten().find(|c| c.type_ == "Ready");
        ready
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
            .max(created(&pod.metadata))
    };
    pods.iter()
        .filter_map(|p| pod_change(p))
        .chain(created(&service.metadata))
        .max()
        .unwrap_or_else(Timestamp::now)
}

/// RFC 3339 with nanoseconds, as Go's `time.RFC3339Nano` in UTC.
pub(crate) fn format_time(time: Timestamp) -> String {
    time.to_string()
}

fn error_policy(_: Arc<Service>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "endpoint controller");
    Action::requeue(Duration::from_secs(1))
}

/// Deletes the Endpoints of deleted Services, as upstream does when a
/// Service goes and, at start, for Services deleted while it was down
/// (here after every relist, which may also have missed a deletion).
/// Endpoints created without a Service are otherwise left alone, as
/// upstream leaves them. A failed deletion is retried at the next relist.
async fn remove_leftovers(client: kube::Client) {
    let services = watcher(Api::<Service>::all(client.clone()), watcher::Config::default()).default_backoff();
    let mut services = std::pin::pin!(services);
    let mut listed: HashSet<(String, String)> = HashSet::new();
    while let Some(event) = services.next().await {
        let result = match event {
            Ok(watcher::Event::Delete(service)) => remove_if_orphan(&client, &key_of(&service)).await,
            Ok(watcher::Event::Init) => {
                listed.clear();
                Ok(())
            }
            Ok(watcher::Event::InitApply(service)) => {
                listed.insert(key_of(&service));
                Ok(())
            }
            Ok(watcher::Event::InitDone) => remove_unlisted(&client, &listed).await,
            Ok(watcher::Event::Apply(_)) => Ok(()),
            Err(error) => Err(Error::Pending(error.to_string())),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "endpoint controller: removing the Endpoints of deleted Services");
        }
    }
}

fn key_of(object: &impl ResourceExt) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// Removes the Endpoints whose Service was not in the last full list
/// (leader-election locks excepted, as upstream).
async fn remove_unlisted(client: &kube::Client, listed: &HashSet<(String, String)>) -> Result<(), Error> {
    let all = Api::<Endpoints>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    for endpoints in all.items {
        let key = key_of(&endpoints);
        if !listed.contains(&key) && !endpoints.annotations().contains_key(LEADER) {
            remove_if_orphan(client, &key).await?;
        }
    }
    Ok(())
}

/// Deletes the Endpoints `(namespace, name)` unless a Service of that name
/// exists (read live: the Service may have been created again meanwhile).
async fn remove_if_orphan(client: &kube::Client, (namespace, name): &(String, String)) -> Result<(), Error> {
    if Api::<Service>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let api: Api<Endpoints> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec,
        }))
        .unwrap()
    }

    /// A running pod with `ip`, ready or not, with a container port "http" on 8080.
    pub(crate) fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                             "labels": {"app": "web"}, "creationTimestamp": "2026-01-01T00:00:01Z"},
                "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i",
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" },
                     "lastTransitionTime": "2026-01-01T00:00:05Z"}]},
            }))
            .unwrap(),
        )
    }

    fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        addresses.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_with_ports_resolved_by_name() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.5", "ports": [
            {"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "admin", "port": 90, "targetPort": 9090, "protocol": "TCP"}]}));
        let pods = [pod("b", "10.42.0.3", true), pod("a", "10.42.0.2", false)];
        let subsets = subsets_for(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.42.0.3"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.42.0.2"]);
        let ports: Vec<(Option<&str>, i32)> = subsets[0]
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref(), p.port))
            .collect();
        assert_eq!(ports, [(Some("admin"), 9090), (Some("web"), 8080)]);
        let address = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(address.node_name.as_deref(), Some("node-1"));
        assert_eq!(address.target_ref.as_ref().unwrap().uid.as_deref(), Some("uid-b"));
    }

    #[test]
    fn publish_not_ready_lists_everyone_as_ready() {
        let svc = service(json!({"selector": {"app": "web"}, "publishNotReadyAddresses": true,
            "ports": [{"port": 80, "targetPort": 8080}]}));
        let subsets = subsets_for(&svc, &[pod("a", "10.42.0.2", false)]);
        assert_eq!(ips(&subsets[0].addresses), ["10.42.0.2"]);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn pods_without_the_named_port_or_ip_or_finished_are_left_out() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "grpc"}]}));
        assert!(subsets_for(&svc, &[pod("a", "10.42.0.2", true)]).is_empty());
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let mut no_ip = (*pod("a", "10.42.0.2", true)).clone();
        no_ip.status.as_mut().unwrap().pod_ip = None;
        no_ip.status.as_mut().unwrap().pod_ips = None;
        let mut done = (*pod("b", "10.42.0.3", true)).clone();
        done.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(subsets_for(&svc, &[Arc::new(no_ip), Arc::new(done)]).is_empty());
    }

    #[test]
    fn headless_services_publish_hostnames_and_portless_addresses() {
        let svc = service(json!({"selector": {"app": "web"}, "clusterIP": "None"}));
        let mut p = (*pod("a", "10.42.0.2", true)).clone();
        p.spec.as_mut().unwrap().hostname = Some("web-0".into());
        p.spec.as_mut().unwrap().subdomain = Some("web".into());
        let subsets = subsets_for(&svc, &[Arc::new(p)]);
        let address = &subsets[0].addresses.as_ref().unwrap()[0];
        assert_eq!(address.hostname.as_deref(), Some("web-0"));
        assert!(subsets[0].ports.is_none());
        assert_eq!(endpoints_labels(&svc).get(HEADLESS).map(String::as_str), Some(""));
    }

    #[test]
    fn over_capacity_keeps_ready_addresses_first() {
        let address = |i: usize| EndpointAddress {
            ip: format!("10.0.{}.{}", i / 256, i % 256),
            ..EndpointAddress::default()
        };
        let subset = |ready: std::ops::Range<usize>, not_ready: std::ops::Range<usize>| EndpointSubset {
            addresses: Some(ready.map(address).collect()),
            not_ready_addresses: Some(not_ready.map(address).collect()),
            ports: None,
        };
        let (kept, truncated) = truncate(vec![subset(0..600, 600..900), subset(900..1500, 1500..1600)]);
        assert!(truncated);
        let count = |f: fn(&EndpointSubset) -> usize| kept.iter().map(f).sum::<usize>();
        assert_eq!(count(|s| s.addresses.as_ref().map_or(0, Vec::len)), 1000);
        assert_eq!(count(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len)), 0);
        assert_eq!(
            kept[0].addresses.as_ref().unwrap().len(),
            500,
            "each subset keeps its share"
        );
        let (kept, truncated) = truncate(vec![subset(0..10, 10..20)]);
        assert!(!truncated);
        assert_eq!(kept[0].not_ready_addresses.as_ref().unwrap().len(), 10);
    }

    #[test]
    fn ip_family_follows_the_service() {
        let svc = service(json!({"selector": {"app": "web"}, "ipFamilies": ["IPv6"], "ports": [{"port": 80}]}));
        let mut p = (*pod("a", "10.42.0.2", true)).clone();
        p.status.as_mut().unwrap().pod_ips = Some(vec![
            serde_json::from_value(json!({"ip": "10.42.0.2"})).unwrap(),
            serde_json::from_value(json!({"ip": "fd00::2"})).unwrap(),
        ]);
        let subsets = subsets_for(&svc, &[Arc::new(p)]);
        assert_eq!(ips(&subsets[0].addresses), ["fd00::2"]);
    }

    #[test]
    fn endpoints_are_written_only_when_they_change_and_flag_truncation() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let pods: Vec<Arc<Pod>> = (0..1001)
            .map(|i| pod(&format!("p{i}"), &format!("10.42.{}.{}", i / 250, i % 250 + 1), true))
            .collect();
        let first = desired(&svc, &pods, None).unwrap();
        assert_eq!(first.annotations()[OVER_CAPACITY], "truncated");
        assert_eq!(first.annotations()[TRIGGER_TIME], "2026-01-01T00:00:05Z");
        assert_eq!(first.labels()[SKIP_MIRROR], "true");
        assert_eq!(
            first.subsets.as_ref().unwrap()[0].addresses.as_ref().unwrap().len(),
            1000
        );
        assert!(
            desired(&svc, &pods, Some(&first)).is_none(),
            "nothing changed: no write"
        );
        let fewer = desired(&svc, &pods[..10], Some(&first)).unwrap();
        assert!(!fewer.annotations().contains_key(OVER_CAPACITY));
    }

    #[test]
    fn trigger_time_is_the_latest_change() {
        let svc = service(json!({"selector": {"app": "web"}}));
        let time = last_change(&svc, &[pod("a", "10.42.0.2", true)]);
        assert_eq!(format_time(time), "2026-01-01T00:00:05Z");
    }
}
