//! The cluster zone: what each name under the cluster domain answers,
//! kept from Services and EndpointSlices and looked up without I/O.
//!
//! Names follow the Kubernetes DNS specification (as CoreDNS's kubernetes
//! plugin serves it): `<svc>.<ns>.svc` (A/AAAA of the ClusterIP, every ready
//! endpoint for a headless Service, a CNAME for ExternalName),
//! `<hostname>.<svc>.<ns>.svc` for endpoints with a hostname (StatefulSet
//! pods), `_<port>._<proto>.<svc>.<ns>.svc` SRV for named ports, and
//! `a-b-c-d.<ns>.pod` (answered from the name, as CoreDNS's `pods insecure`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One answer record, its owner name relative to nothing (fully qualified, no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Address { name: String, ip: IpAddr },
    Cname { name: String, target: String },
    Srv { name: String, port: u16, target: String },
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name exists and has records of the type asked for.
    Records(Vec<Record>),
    /// The name exists, but not with that type (NOERROR, empty answer).
    NoData,
    /// No such name (NXDOMAIN).
    NxDomain,
}

/// The record types this zone answers.
/// How many in-zone ExternalName hops [`Zone::lookup`] follows (a loop ends there).
const MAX_CNAME_CHAIN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    A,
    Aaaa,
    Srv,
    Cname,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    ExternalName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    name: String,
    protocol: String,
    port: u16,
}

#[derive(Debug, Clone)]
struct ServiceEntry {
    kind: Kind,
    ports: Vec<Port>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    ip: IpAddr,
    hostname: Option<String>,
}

/// The ready endpoints one EndpointSlice holds.
#[derive(Debug, Clone, Default)]
struct Slice {
    service: String,
    endpoints: Vec<Endpoint>,
    ports: Vec<Port>,
}

/// Services and their endpoints, by namespace and name.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    services: HashMap<(String, String), ServiceEntry>,
    /// (namespace, slice name) → slice.
    slices: BTreeMap<(String, String), Slice>,
}

impl Zone {
    /// Takes the Services of `fresh` (a relist), keeping the slices.
    pub fn replace_services(&mut self, fresh: &Zone) {
        self.services = fresh.services.clone();
    }

    /// Takes the EndpointSlices of `fresh` (a relist), keeping the Services.
    pub fn replace_slices(&mut self, fresh: &Zone) {
        self.slices = fresh.slices.clone();
    }

    pub fn apply_service(&mut self, service: &Service) {
        let key = key_of(&service.metadata);
        let spec = service.spec.clone().unwrap_or_default();
        let kind = match spec.type_.as_deref() {
            Some("ExternalName") => Kind::ExternalName(spec.external_name.unwrap_or_default()),
            _ if spec.cluster_ip.as_deref() == Some("None") => Kind::Headless,
            _ => {
                let ips = spec
                    .cluster_ips
                    .or(spec.cluster_ip.map(|ip| vec![ip]))
                    .unwrap_or_default();
                Kind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect())
            }
        };
        let ports = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| Port {
                name: p.name.unwrap_or_default(),
                protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
                port: u16::try_from(p.port).unwrap_or(0),
            })
            .collect();
        self.services.insert(key, ServiceEntry { kind, ports });
    }

    pub fn delete_service(&mut self, service: &Service) {
        self.services.remove(&key_of(&service.metadata));
    }

    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let key = key_of(&slice.metadata);
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()
        else {
            self.slices.remove(&key);
            return;
        };
        let endpoints = slice
            .endpoints
            .iter()
            // Upstream: a nil `ready` means ready.
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .flat_map(|e| {
                e.addresses.iter().filter_map(|a| a.parse().ok()).map(|ip| Endpoint {
                    ip,
                    hostname: e.hostname.clone(),
                })
            })
            .collect();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .map(|p| Port {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: p.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
            })
            .collect();
        self.slices.insert(
            key,
            Slice {
                service,
                endpoints,
                ports,
            },
        );
    }

    pub fn delete_slice(&mut self, slice: &EndpointSlice) {
        self.slices.remove(&key_of(&slice.metadata));
    }

    fn slices_of<'a>(&'a self, namespace: &'a str, service: &'a str) -> impl Iterator<Item = &'a Slice> + 'a {
        self.slices
            .range((namespace.to_string(), String::new())..)
            .take_while(move |((ns, _), _)| ns == namespace)
            .map(|(_, slice)| slice)
            .filter(move |slice| slice.service == service)
    }

    fn endpoints<'a>(&'a self, namespace: &'a str, service: &'a str) -> Vec<&'a Endpoint> {
        let mut all: Vec<&Endpoint> = self.slices_of(namespace, service).flat_map(|s| &s.endpoints).collect();
        all.sort_by_key(|e| e.ip);
        all.dedup_by_key(|e| e.ip);
        all
    }

    /// Answers `name` (lowercase, no trailing dot) within `domain`. An
    /// ExternalName pointing inside the domain is followed, as CoreDNS
    /// does: stub resolvers do not chase a CNAME themselves.
    pub fn lookup(&self, domain: &str, name: &str, qtype: QueryType) -> Answer {
        let mut answer = self.lookup_one(domain, name, qtype);
        for _ in 0..MAX_CNAME_CHAIN {
            let Answer::Records(found) = &answer else { break };
            let Some(Record::Cname { target, .. }) = found.last() else {
                break;
            };
            if qtype == QueryType::Cname || strip_domain(target, domain).is_none() {
                break;
            }
            let target = target.clone();
            match self.lookup_one(domain, &target, qtype) {
                Answer::Records(more) => {
                    if let Answer::Records(found) = &mut answer {
                        found.extend(more);
                    }
                }
                _ => break,
            }
        }
        answer
    }

    fn lookup_one(&self, domain: &str, name: &str, qtype: QueryType) -> Answer {
        let Some(relative) = strip_domain(name, domain) else {
            return Answer::NxDomain;
        };
        let labels: Vec<&str> = relative.rsplit('.').filter(|l| !l.is_empty()).collect();
        match labels.as_slice() {
            [] | ["svc"] | ["pod"] | ["svc", _] | ["pod", _] => Answer::NoData,
            ["svc", ns, svc] => self.service_records(domain, ns, svc, name, qtype),
            ["svc", ns, svc, host] => self.endpoint_records(ns, svc, host, name, qtype),
            ["svc", ns, svc, proto, port] => self.srv_records(domain, (ns, svc), (proto, port), name, qtype),
            ["pod", _ns, dashed] => pod_record(dashed, name, qtype),
            _ => Answer::NxDomain,
        }
    }

    fn service_records(&self, domain: &str, ns: &str, svc: &str, name: &str, qtype: QueryType) -> Answer {
        let Some(entry) = self.services.get(&(ns.to_string(), svc.to_string())) else {
            return Answer::NxDomain;
        };
        match (&entry.kind, qtype) {
            (Kind::ExternalName(target), _) => records(vec![Record::Cname {
                name: name.to_string(),
                target: target.trim_end_matches('.').to_string(),
            }]),
            (_, QueryType::Srv) => {
                let named = entry.ports.iter().filter(|p| !p.name.is_empty());
                let found: Vec<Record> = named
                    .flat_map(|p| {
                        let srv = format!("_{}._{}.{svc}.{ns}.svc.{domain}", p.name, p.protocol.to_lowercase());
                        match self.srv_records(
                            domain,
                            (ns, svc),
                            (&srv_label(&p.protocol), &format!("_{}", p.name)),
                            &srv,
                            qtype,
                        ) {
                            Answer::Records(records) => records,
                            _ => Vec::new(),
                        }
                    })
                    .collect();
                records(found)
            }
            (Kind::ClusterIp(ips), _) => addresses(name, ips.iter().copied(), qtype),
            (Kind::Headless, _) => {
                let endpoints = self.endpoints(ns, svc);
                if endpoints.is_empty() {
                    return Answer::NxDomain;
                }
                addresses(name, endpoints.iter().map(|e| e.ip), qtype)
            }
        }
    }

    /// `<hostname>.<svc>.<ns>.svc`: an endpoint by its hostname, or by its
    /// dashed address (`10-42-0-5`), as CoreDNS answers for headless Services.
    fn endpoint_records(&self, ns: &str, svc: &str, host: &str, name: &str, qtype: QueryType) -> Answer {
        let matching: Vec<IpAddr> = self
            .endpoints(ns, svc)
            .into_iter()
            .filter(|e| e.hostname.as_deref() == Some(host) || dashed(&e.ip) == host)
            .map(|e| e.ip)
            .collect();
        if matching.is_empty() {
            return Answer::NxDomain;
        }
        addresses(name, matching.into_iter(), qtype)
    }

    /// `_<port>._<proto>.<svc>.<ns>.svc`: one SRV per endpoint of a headless
    /// Service, or one pointing at the Service's own name.
    fn srv_records(
        &self,
        domain: &str,
        (ns, svc): (&str, &str),
        (proto, port): (&str, &str),
        name: &str,
        qtype: QueryType,
    ) -> Answer {
        let (Some(port_name), Some(proto)) = (port.strip_prefix('_'), proto.strip_prefix('_')) else {
            return Answer::NxDomain;
        };
        let Some(entry) = self.services.get(&(ns.to_string(), svc.to_string())) else {
            return Answer::NxDomain;
        };
        let Some(port) = entry
            .ports
            .iter()
            .find(|p| p.name == port_name && p.protocol.eq_ignore_ascii_case(proto))
        else {
            return Answer::NxDomain;
        };
        if qtype != QueryType::Srv {
            return Answer::NoData;
        }
        let service_name = format!("{svc}.{ns}.svc.{domain}");
        match entry.kind {
            Kind::Headless => {
                let target_port = self
                    .slices_of(ns, svc)
                    .flat_map(|s| &s.ports)
                    .find(|p| p.name == port.name)
                    .map_or(port.port, |p| p.port);
                records(
                    self.endpoints(ns, svc)
                        .into_iter()
                        .map(|e| Record::Srv {
                            name: name.to_string(),
                            port: target_port,
                            target: format!("{}.{service_name}", e.hostname.clone().unwrap_or_else(|| dashed(&e.ip))),
                        })
                        .collect(),
                )
            }
            _ => records(vec![Record::Srv {
                name: name.to_string(),
                port: port.port,
                target: service_name,
            }]),
        }
    }
}

fn srv_label(protocol: &str) -> String {
    format!("_{}", protocol.to_lowercase())
}

fn records(found: Vec<Record>) -> Answer {
    if found.is_empty() {
        Answer::NoData
    } else {
        Answer::Records(found)
    }
}

fn addresses(name: &str, ips: impl Iterator<Item = IpAddr>, qtype: QueryType) -> Answer {
    let wanted = |ip: &IpAddr| match qtype {
        QueryType::A => ip.is_ipv4(),
        QueryType::Aaaa => ip.is_ipv6(),
        _ => false,
    };
    records(
        ips.filter(wanted)
            .map(|ip| Record::Address {
                name: name.to_string(),
                ip,
            })
            .collect(),
    )
}

/// `a-b-c-d.<ns>.pod` → a.b.c.d (IPv6: colons written as dashes).
fn pod_record(dashed_ip: &str, name: &str, qtype: QueryType) -> Answer {
    let ip: Option<IpAddr> = dashed_ip
        .replace('-', ".")
        .parse()
        .ok()
        .or_else(|| dashed_ip.replace('-', ":").parse().ok());
    match ip {
        Some(ip) => addresses(name, std::iter::once(ip), qtype),
        None => Answer::NxDomain,
    }
}

fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

fn strip_domain<'a>(name: &'a str, domain: &str) -> Option<&'a str> {
    if name == domain {
        return Some("");
    }
    name.strip_suffix(domain)?.strip_suffix('.')
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOMAIN: &str = "cluster.local";

    fn zone() -> Zone {
        let mut zone = Zone::default();
        let service = |v: serde_json::Value| -> Service { serde_json::from_value(v).unwrap() };
        let slice = |v: serde_json::Value| -> EndpointSlice { serde_json::from_value(v).unwrap() };
        zone.apply_service(&service(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.1.5", "clusterIPs": ["10.43.1.5"], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})));
        zone.apply_service(&service(json!({"metadata": {"name": "db", "namespace": "data"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})));
        zone.apply_service(&service(json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "db.example.test."}})));
        zone.apply_slice(&slice(
            json!({"metadata": {"name": "db-abc", "namespace": "data", "labels": {SERVICE_NAME_LABEL: "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.7"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.8"], "hostname": "db-1"},
                {"addresses": ["10.42.0.9"], "hostname": "db-2", "conditions": {"ready": false}},
            ]}),
        ));
        zone
    }

    fn ips(answer: Answer) -> Vec<String> {
        let Answer::Records(records) = answer else {
            panic!("{answer:?}")
        };
        records
            .into_iter()
            .map(|r| match r {
                Record::Address { ip, .. } => ip.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn cluster_ip_services_answer_their_address() {
        let zone = zone();
        assert_eq!(
            ips(zone.lookup(DOMAIN, "web.default.svc.cluster.local", QueryType::A)),
            ["10.43.1.5"]
        );
        assert_eq!(
            zone.lookup(DOMAIN, "web.default.svc.cluster.local", QueryType::Aaaa),
            Answer::NoData
        );
        assert_eq!(
            zone.lookup(DOMAIN, "nope.default.svc.cluster.local", QueryType::A),
            Answer::NxDomain
        );
        assert_eq!(
            zone.lookup(DOMAIN, "web.other.svc.cluster.local", QueryType::A),
            Answer::NxDomain
        );
    }

    #[test]
    fn headless_services_answer_ready_endpoints_and_hostnames() {
        let zone = zone();
        assert_eq!(
            ips(zone.lookup(DOMAIN, "db.data.svc.cluster.local", QueryType::A)),
            ["10.42.0.7", "10.42.0.8"]
        );
        assert_eq!(
            ips(zone.lookup(DOMAIN, "db-1.db.data.svc.cluster.local", QueryType::A)),
            ["10.42.0.8"]
        );
        assert_eq!(
            zone.lookup(DOMAIN, "db-2.db.data.svc.cluster.local", QueryType::A),
            Answer::NxDomain
        );
        assert_eq!(
            ips(zone.lookup(DOMAIN, "10-42-0-7.db.data.svc.cluster.local", QueryType::A)),
            ["10.42.0.7"]
        );
    }

    #[test]
    fn srv_for_named_ports() {
        let zone = zone();
        assert_eq!(
            zone.lookup(DOMAIN, "_http._tcp.web.default.svc.cluster.local", QueryType::Srv),
            Answer::Records(vec![Record::Srv {
                name: "_http._tcp.web.default.svc.cluster.local".into(),
                port: 80,
                target: "web.default.svc.cluster.local".into(),
            }])
        );
        let Answer::Records(headless) = zone.lookup(DOMAIN, "_pg._tcp.db.data.svc.cluster.local", QueryType::Srv)
        else {
            panic!()
        };
        let targets: Vec<_> = headless
            .iter()
            .map(|r| match r {
                Record::Srv { target, port, .. } => format!("{target}:{port}"),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            targets,
            [
                "db-0.db.data.svc.cluster.local:5432",
                "db-1.db.data.svc.cluster.local:5432"
            ]
        );
        assert_eq!(
            zone.lookup(DOMAIN, "_nope._tcp.web.default.svc.cluster.local", QueryType::Srv),
            Answer::NxDomain
        );
    }

    #[test]
    fn external_names_and_pods() {
        let zone = zone();
        assert_eq!(
            zone.lookup(DOMAIN, "ext.default.svc.cluster.local", QueryType::A),
            Answer::Records(vec![Record::Cname {
                name: "ext.default.svc.cluster.local".into(),
                target: "db.example.test".into(),
            }])
        );
        assert_eq!(
            ips(zone.lookup(DOMAIN, "10-42-0-12.default.pod.cluster.local", QueryType::A)),
            ["10.42.0.12"]
        );
        assert_eq!(
            zone.lookup(DOMAIN, "x-y.default.pod.cluster.local", QueryType::A),
            Answer::NxDomain
        );
        assert_eq!(zone.lookup(DOMAIN, "svc.cluster.local", QueryType::A), Answer::NoData);
        assert_eq!(zone.lookup(DOMAIN, "example.com", QueryType::A), Answer::NxDomain);
    }

    #[test]
    fn external_names_inside_the_domain_are_followed() {
        let mut zone = zone();
        let alias = |name: &str, target: &str| -> Service {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": target}}))
            .unwrap()
        };
        zone.apply_service(&alias("alias", "web.default.svc.cluster.local."));
        zone.apply_service(&alias("loop", "loop.default.svc.cluster.local"));
        let Answer::Records(found) = zone.lookup(DOMAIN, "alias.default.svc.cluster.local", QueryType::A) else {
            panic!("no answer")
        };
        assert_eq!(
            found[0],
            Record::Cname {
                name: "alias.default.svc.cluster.local".into(),
                target: "web.default.svc.cluster.local".into()
            }
        );
        assert_eq!(found[1..], ips_records(&zone, "web.default.svc.cluster.local")[..]);
        let Answer::Records(looped) = zone.lookup(DOMAIN, "loop.default.svc.cluster.local", QueryType::A) else {
            panic!("no answer")
        };
        assert_eq!(looped.len(), 1 + MAX_CNAME_CHAIN, "a loop stops");
    }

    fn ips_records(zone: &Zone, name: &str) -> Vec<Record> {
        match zone.lookup(DOMAIN, name, QueryType::A) {
            Answer::Records(found) => found,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn deleting_a_slice_removes_its_endpoints() {
        let mut zone = zone();
        let slice: EndpointSlice = serde_json::from_value(
            json!({"metadata": {"name": "db-abc", "namespace": "data"}, "addressType": "IPv4", "endpoints": []}),
        )
        .unwrap();
        zone.delete_slice(&slice);
        assert_eq!(
            zone.lookup(DOMAIN, "db.data.svc.cluster.local", QueryType::A),
            Answer::NxDomain
        );
    }
}
