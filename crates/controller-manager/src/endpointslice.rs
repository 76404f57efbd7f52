//! EndpointSlices (discovery.k8s.io/v1): for every Service with a selector,
//! slices of at most 100 endpoints listing the pods it selects, one set of
//! slices per address family and port set (upstream's endpointslice
//! controller). Each endpoint carries the ready/serving/terminating
//! conditions, nodeName, zone and a targetRef to its pod; slices are named
//! `<service>-<random>`, labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`,
//! and owned by their Service, so the garbage collector removes them with
//! it. A Service with no endpoints keeps one empty placeholder slice.
//!
//! Existing slices are read live on every reconcile (as the ReplicaSet
//! controller reads pods), so slices created by an earlier reconcile are
//! never duplicated. Packing keeps every endpoint in the slice it already
//! is in and fills the free room of existing slices before creating new
//! ones, which is what upstream's reconciler does to limit churn; unlike
//! upstream it does not merge half-empty slices later.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};

use crate::Error;
use crate::endpoint::{self, HEADLESS, TRIGGER_TIME};
use crate::replicaset::{controller_reference, is_ready};

/// Upstream's `--max-endpoints-per-slice` default.
const MAX_ENDPOINTS_PER_SLICE: usize = 100;
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
const ZONE: &str = "topology.kubernetes.io/zone";

struct Context {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
}

pub async fn run(client: kube::Client, pods: Store<Pod>, changes: crate::informer::PodChanges) {
    let (nodes, nodes_reflector) = crate::reflect(Api::<Node>::all(client.clone()), watcher::Config::default());
    let controller = Controller::new(Api::<Service>::all(client.clone()), watcher::Config::default());
    let services = controller.store();
    let mapper = move |pod: Pod| endpoint::services_selecting(&services, &pod);
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY}={CONTROLLER_NAME}"));
    let context = Arc::new(Context {
        client: client.clone(),
        pods,
        nodes,
    });
    let main = controller
        .owns(Api::<EndpointSlice>::all(client.clone()), managed)
        .watches_stream(changes, mapper)
        .run(reconcile, error_policy, context)
        .for_each(|_| futures::future::ready(()));
    tokio::join!(nodes_reflector, main);
}

/// One slice's worth of identity: its address type and port set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    address_type: String,
    ports: String,
}

fn shape_of(address_type: &str, ports: &[EndpointPort]) -> Shape {
    Shape {
        address_type: address_type.to_string(),
        ports: serde_json::to_string(ports).unwrap_or_default(),
    }
}

async fn reconcile(service: Arc<Service>, context: Arc<Context>) -> Result<Action, Error> {
    if endpoint::selector_of(&service).is_none() || service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::requeue(endpoint::RESYNC));
    }
    let namespace = service.namespace().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(context.client.clone(), &namespace);
    let selector = format!("{SERVICE_NAME}={},{MANAGED_BY}={CONTROLLER_NAME}", service.name_any());
    let existing = api.list(&ListParams::default().labels(&selector)).await?.items;
    let pods = endpoint::selected_pods(&context.pods, &service);
    let desired = desired_endpoints(&service, &pods, &|n| zone_of(&context.nodes, n));
    let plan = plan(&service, &existing, desired);
    let labels = slice_labels(&service);
    let trigger = endpoint::format_time(endpoint::last_change(&service, &pods));
    for mut slice in plan.write {
        let unchanged = existing
            .iter()
            .any(|e| e.metadata.name == slice.metadata.name && same(e, &slice, &labels));
        if unchanged {
            continue;
        }
        slice.metadata.labels = Some(labels.clone());
        let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(TRIGGER_TIME.into(), trigger.clone());
        match slice.metadata.name.clone() {
            Some(name) => api.replace(&name, &PostParams::default(), &slice).await?,
            None => api.create(&PostParams::default(), &slice).await?,
        };
    }
    for name in plan.delete {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Action::requeue(endpoint::RESYNC))
}

fn zone_of(nodes: &Store<Node>, name: &str) -> Option<String> {
    let node = nodes.get(&ObjectRef::new(name))?;
    node.labels().get(ZONE).cloned()
}

/// The address types a Service's slices use: one per IP family.
fn address_types(service: &Service) -> Vec<String> {
    let families = service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_default();
    if families.is_empty() {
        vec![endpoint::primary_family(service).to_string()]
    } else {
        families
    }
}

/// Every endpoint the Service should have, grouped by slice shape.
fn desired_endpoints(
    service: &Service,
    pods: &[Arc<Pod>],
    zone: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<Shape, (Vec<EndpointPort>, Vec<Endpoint>)> {
    let publish_not_ready = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses) == Some(true);
    let service_ports = service.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut groups: BTreeMap<Shape, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for address_type in address_types(service) {
        for pod in pods.iter().filter(|p| endpoint::should_be_in_endpoints(p, true)) {
            let Some(ip) = endpoint::pod_ip(pod, &address_type) else {
                continue;
            };
            let ports: Vec<EndpointPort> = service_ports
                .iter()
                .filter_map(|sp| {
                    endpoint::find_port(pod, sp).map(|port| EndpointPort {
                        name: Some(sp.name.clone().unwrap_or_default()),
                        port: Some(port),
                        protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                        app_protocol: sp.app_protocol.clone(),
                    })
                })
                .collect();
            let node_name = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty());
            let serving = is_ready(pod);
            let terminating = pod.metadata.deletion_timestamp.is_some();
            let endpoint = Endpoint {
                addresses: vec![ip],
                conditions: Some(EndpointConditions {
                    ready: Some(publish_not_ready || (serving && !terminating)),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                hostname: endpoint::hostname(pod, service),
                zone: node_name.as_deref().and_then(zone),
                node_name,
                target_ref: Some(endpoint::pod_reference(pod)),
                ..Endpoint::default()
            };
            let group = groups
                .entry(shape_of(&address_type, &ports))
                .or_insert_with(|| (ports, Vec::new()));
            group.1.push(endpoint);
        }
    }
    groups
}

/// What to write: slices to create (no name) or replace, and slices to delete.
#[derive(Debug, Default)]
struct Plan {
    write: Vec<EndpointSlice>,
    delete: Vec<String>,
}

fn plan(
    service: &Service,
    existing: &[EndpointSlice],
    desired: BTreeMap<Shape, (Vec<EndpointPort>, Vec<Endpoint>)>,
) -> Plan {
    let mut plan = Plan::default();
    let mut by_shape: BTreeMap<Shape, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        let shape = shape_of(&slice.address_type, slice.ports.as_deref().unwrap_or_default());
        by_shape.entry(shape).or_default().push(slice);
    }
    if desired.is_empty() {
        return placeholder_plan(service, existing);
    }
    for (shape, (ports, endpoints)) in desired {
        let current: Vec<(String, Vec<Endpoint>)> = by_shape
            .remove(&shape)
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.name_any(), s.endpoints.clone()))
            .collect();
        let packed = pack(current, endpoints, MAX_ENDPOINTS_PER_SLICE);
        plan.delete.extend(packed.unused);
        for (name, endpoints) in packed.slices {
            let original = name
                .as_ref()
                .and_then(|n| existing.iter().find(|e| e.metadata.name.as_ref() == Some(n)));
            plan.write
                .push(slice(service, original, &shape.address_type, &ports, endpoints));
        }
    }
    plan.delete
        .extend(by_shape.into_values().flatten().map(|s| s.name_any()));
    plan
}

/// A Service without endpoints keeps one empty slice of its primary
/// family, as upstream does, so that consumers can tell "no endpoints"
/// from "not processed yet".
fn placeholder_plan(service: &Service, existing: &[EndpointSlice]) -> Plan {
    let address_type = endpoint::primary_family(service);
    let is_placeholder =
        |s: &EndpointSlice| s.address_type == address_type && s.ports.as_deref().unwrap_or_default().is_empty();
    let kept = existing.iter().find(|s| is_placeholder(s));
    Plan {
        write: vec![slice(service, kept, address_type, &[], Vec::new())],
        delete: existing
            .iter()
            .filter(|s| s.metadata.name != kept.and_then(|k| k.metadata.name.clone()))
            .map(|s| s.name_any())
            .collect(),
    }
}

fn slice(
    service: &Service,
    original: Option<&EndpointSlice>,
    address_type: &str,
    ports: &[EndpointPort],
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let metadata = match original {
        Some(original) => original.metadata.clone(),
        None => ObjectMeta {
            generate_name: Some(format!("{}-", service.name_any())),
            namespace: service.namespace(),
            owner_references: Some(vec![controller_reference(service)]),
            ..ObjectMeta::default()
        },
    };
    EndpointSlice {
        metadata,
        address_type: address_type.to_string(),
        endpoints,
        ports: (!ports.is_empty()).then(|| ports.to_vec()),
    }
}

/// The Service's labels (but for the two the controller owns), the
/// Service's name, the controller's mark, and the headless marker.
fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.labels().clone();
    labels.insert(SERVICE_NAME.into(), service.name_any());
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    if endpoint::is_headless(service) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels
}

/// Whether an existing slice already holds what `wanted` would write.
fn same(existing: &EndpointSlice, wanted: &EndpointSlice, labels: &BTreeMap<String, String>) -> bool {
    let sorted = |s: &EndpointSlice| {
        let mut endpoints = s.endpoints.clone();
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        endpoints
    };
    existing.labels() == labels && existing.ports == wanted.ports && sorted(existing) == sorted(wanted)
}

/// Slices after packing: existing (named) or new, and existing ones left empty.
#[derive(Debug, PartialEq)]
struct Packed {
    slices: Vec<(Option<String>, Vec<Endpoint>)>,
    unused: Vec<String>,
}

/// Distributes `desired` over slices of at most `max` endpoints: every
/// endpoint still wanted stays in the slice it is in (updated), the rest
/// fill the fullest slices with room first, then new slices.
fn pack(existing: Vec<(String, Vec<Endpoint>)>, desired: Vec<Endpoint>, max: usize) -> Packed {
    let mut pending: BTreeMap<Vec<String>, Endpoint> = desired.into_iter().map(|e| (e.addresses.clone(), e)).collect();
    let mut slices: Vec<(Option<String>, Vec<Endpoint>)> = Vec::new();
    let mut unused = Vec::new();
    for (name, endpoints) in existing {
        let kept: Vec<Endpoint> = endpoints
            .iter()
            .filter_map(|e| pending.remove(&e.addresses))
            .take(max)
            .collect();
        if kept.is_empty() {
            unused.push(name);
        } else {
            slices.push((Some(name), kept));
        }
    }
    let mut pending = pending.into_values();
    slices.sort_by_key(|(_, endpoints)| std::cmp::Reverse(endpoints.len()));
    for (_, endpoints) in &mut slices {
        endpoints.extend(pending.by_ref().take(max - endpoints.len()));
    }
    let rest: Vec<Endpoint> = pending.collect();
    slices.extend(rest.chunks(max).map(|chunk| (None, chunk.to_vec())));
    // A slice that was emptied may be reused rather than deleted and a new one created.
    for (name, endpoints) in &mut slices {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
        if name.is_none() && !unused.is_empty() {
            *name = Some(unused.remove(0));
        }
    }
    Packed { slices, unused }
}

fn error_policy(_: Arc<Service>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "endpointslice controller");
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::tests::{pod, service};
    use serde_json::json;

    fn ep(ip: &str) -> Endpoint {
        Endpoint {
            addresses: vec![ip.to_string()],
            ..Endpoint::default()
        }
    }

    fn ips(endpoints: &[Endpoint]) -> Vec<&str> {
        endpoints.iter().map(|e| e.addresses[0].as_str()).collect()
    }

    #[test]
    fn packs_at_most_max_per_slice() {
        let desired: Vec<Endpoint> = (0..250).map(|i| ep(&format!("10.0.{}.{}", i / 256, i % 256))).collect();
        let packed = pack(Vec::new(), desired, 100);
        let sizes: Vec<usize> = packed.slices.iter().map(|(_, e)| e.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert!(packed.slices.iter().all(|(name, _)| name.is_none()));
    }

    #[test]
    fn endpoints_stay_in_their_slice_and_new_ones_fill_free_room() {
        let existing = vec![
            ("a".to_string(), vec![ep("10.0.0.1"), ep("10.0.0.2")]),
            ("b".to_string(), vec![ep("10.0.0.3")]),
            ("c".to_string(), vec![ep("10.0.0.9")]),
        ];
        let desired = vec![
            ep("10.0.0.1"),
            ep("10.0.0.2"),
            ep("10.0.0.3"),
            ep("10.0.0.4"),
            ep("10.0.0.5"),
        ];
        let packed = pack(existing, desired, 3);
        assert_eq!(packed.unused, ["c"], "a slice left empty is deleted");
        let slices: Vec<(Option<&str>, Vec<&str>)> =
            packed.slices.iter().map(|(n, e)| (n.as_deref(), ips(e))).collect();
        assert_eq!(
            slices,
            [
                (Some("a"), vec!["10.0.0.1", "10.0.0.2", "10.0.0.4"]),
                (Some("b"), vec!["10.0.0.3", "10.0.0.5"]),
            ]
        );
    }

    #[test]
    fn an_emptied_slice_is_reused_for_new_endpoints() {
        let existing = vec![
            ("a".to_string(), vec![ep("10.0.0.1")]),
            ("b".to_string(), vec![ep("10.0.0.2")]),
        ];
        let packed = pack(existing, vec![ep("10.0.0.1"), ep("10.0.0.7"), ep("10.0.0.8")], 2);
        assert!(packed.unused.is_empty());
        let names: Vec<Option<&str>> = packed.slices.iter().map(|(n, _)| n.as_deref()).collect();
        assert_eq!(names, [Some("a"), Some("b")]);
    }

    #[test]
    fn endpoints_carry_conditions_node_zone_and_ports() {
        let svc = service(json!({"selector": {"app": "web"}, "ipFamilies": ["IPv4"],
            "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]}));
        let mut terminating = (*pod("t", "10.42.0.4", true)).clone();
        terminating.metadata.deletion_timestamp = terminating.metadata.creation_timestamp.clone();
        let pods = [
            pod("a", "10.42.0.2", true),
            pod("b", "10.42.0.3", false),
            Arc::new(terminating),
        ];
        let groups = desired_endpoints(&svc, &pods, &|node| Some(format!("zone-of-{node}")));
        assert_eq!(groups.len(), 1);
        let (ports, endpoints) = groups.values().next().unwrap();
        assert_eq!(ports[0].port, Some(8080));
        assert_eq!(ports[0].name.as_deref(), Some("web"));
        let conditions: Vec<(bool, bool, bool)> = endpoints
            .iter()
            .map(|e| {
                let c = e.conditions.as_ref().unwrap();
                (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
            })
            .collect();
        assert_eq!(
            conditions,
            [(true, true, false), (false, false, false), (false, true, true)]
        );
        assert_eq!(endpoints[0].zone.as_deref(), Some("zone-of-node-1"));
        assert_eq!(endpoints[0].node_name.as_deref(), Some("node-1"));
        assert_eq!(endpoints[0].target_ref.as_ref().unwrap().name.as_deref(), Some("a"));
    }

    #[test]
    fn one_slice_set_per_address_family() {
        let svc = service(json!({"selector": {"app": "web"}, "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80}]}));
        let mut p = (*pod("a", "10.42.0.2", true)).clone();
        p.status.as_mut().unwrap().pod_ips = Some(vec![
            serde_json::from_value(json!({"ip": "10.42.0.2"})).unwrap(),
            serde_json::from_value(json!({"ip": "fd00::2"})).unwrap(),
        ]);
        let groups = desired_endpoints(&svc, &[Arc::new(p)], &|_| None);
        let types: Vec<&str> = groups.keys().map(|s| s.address_type.as_str()).collect();
        assert_eq!(types, ["IPv4", "IPv6"]);
    }

    #[test]
    fn a_service_without_endpoints_keeps_one_placeholder() {
        let svc = service(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        let plan = plan(&svc, &[], BTreeMap::new());
        assert_eq!(plan.write.len(), 1);
        let placeholder = &plan.write[0];
        assert!(placeholder.endpoints.is_empty() && placeholder.ports.is_none());
        assert_eq!(placeholder.address_type, "IPv4");
        assert_eq!(placeholder.metadata.generate_name.as_deref(), Some("web-"));
        let owner = &placeholder.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Service", Some(true)));
    }
}
