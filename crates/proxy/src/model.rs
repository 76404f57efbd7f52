//! What the proxy programs, derived from Services and EndpointSlices: one
//! [`ServicePort`] per port of every Service that has a ClusterIP, with the
//! endpoints traffic may go to — pure data, so the rules can be tested
//! without a kernel.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(text: Option<&str>) -> Protocol {
        match text {
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            _ => Protocol::Tcp,
        }
    }

    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
}

/// One port of one Service, with everything its rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub cluster_ips: Vec<IpAddr>,
    pub node_port: Option<u16>,
    /// `externalIPs` and LoadBalancer ingress IPs: reached from outside.
    pub external_ips: Vec<IpAddr>,
    /// `sessionAffinity: ClientIP` and its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    pub internal_local: bool,
    pub external_local: bool,
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// A stable, readable id for chain names: `ns/name:port`.
    pub fn id(&self) -> String {
        let port = if self.port_name.is_empty() {
            self.port.to_string()
        } else {
            self.port_name.clone()
        };
        format!("{}/{}:{port}", self.namespace, self.name)
    }

    /// The endpoints cluster traffic goes to: ready ones; if none, the
    /// serving-but-terminating ones (upstream's terminating-endpoints
    /// fallback); restricted to this node for `internalTrafficPolicy: Local`.
    pub fn cluster_endpoints(&self, node: &str) -> Vec<&Endpoint> {
        usable(&self.endpoints, |e| {
            !self.internal_local || e.node_name.as_deref() == Some(node)
        })
    }

    /// The same for traffic from outside (NodePort, external and LB IPs).
    pub fn external_endpoints(&self, node: &str) -> Vec<&Endpoint> {
        usable(&self.endpoints, |e| {
            !self.external_local || e.node_name.as_deref() == Some(node)
        })
    }
}

fn usable(endpoints: &[Endpoint], allowed: impl Fn(&Endpoint) -> bool) -> Vec<&Endpoint> {
    let allowed: Vec<&Endpoint> = endpoints.iter().filter(|e| allowed(e)).collect();
    let ready: Vec<&Endpoint> = allowed.iter().copied().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    allowed.into_iter().filter(|e| e.serving && e.terminating).collect()
}

/// Services and EndpointSlices as last seen, keyed by namespace and name.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub services: BTreeMap<(String, String), Service>,
    pub slices: BTreeMap<(String, String), EndpointSlice>,
}

impl State {
    /// Every ServicePort to program, in a stable order.
    pub fn service_ports(&self) -> Vec<ServicePort> {
        let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
        for ((namespace, _), slice) in &self.slices {
            if let Some(service) = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                by_service
                    .entry((namespace.clone(), service.clone()))
                    .or_default()
                    .push(slice);
            }
        }
        self.services
            .iter()
            .flat_map(|(key, service)| service_ports(service, by_service.get(key).map_or(&[][..], Vec::as_slice)))
            .collect()
    }
}

fn service_ports(service: &Service, slices: &[&EndpointSlice]) -> Vec<ServicePort> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let cluster_ips: Vec<IpAddr> = spec
        .cluster_ips
        .clone()
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if cluster_ips.is_empty() || spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let mut external_ips: Vec<IpAddr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        let ingress = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        external_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_ref()?.parse::<IpAddr>().ok()),
        );
    }
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .map_or(10800, |t| t.max(1) as u32)
    });
    spec.ports
        .iter()
        .flatten()
        .map(|port| {
            let port_name = port.name.clone().unwrap_or_default();
            let protocol = Protocol::parse(port.protocol.as_deref());
            ServicePort {
                namespace: service.metadata.namespace.clone().unwrap_or_default(),
                name: service.metadata.name.clone().unwrap_or_default(),
                port_name: port_name.clone(),
                protocol,
                port: port.port as u16,
                cluster_ips: cluster_ips.clone(),
                node_port: port.node_port.filter(|p| *p > 0).map(|p| p as u16),
                external_ips: external_ips.clone(),
                affinity_timeout,
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                endpoints: endpoints_for(slices, &port_name, protocol),
            }
        })
        .collect()
}

/// A Service port's endpoints: the slice port with the same name and protocol.
fn endpoints_for(slices: &[&EndpointSlice], port_name: &str, protocol: Protocol) -> Vec<Endpoint> {
    let mut found = Vec::new();
    for slice in slices {
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == port_name && Protocol::parse(p.protocol.as_deref()) == protocol
        });
        let Some(port) = port.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            let ready = conditions.ready.unwrap_or(true);
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse() else { continue };
                found.push(Endpoint {
                    ip,
                    port,
                    ready,
                    serving: conditions.serving.unwrap_or(ready),
                    terminating: conditions.terminating.unwrap_or(false),
                    node_name: endpoint.node_name.clone(),
                });
            }
        }
    }
    found.sort_by_key(|e| (e.ip, e.port));
    found.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
    found
}
