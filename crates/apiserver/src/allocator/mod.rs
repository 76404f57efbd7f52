//! Service ClusterIPs and NodePorts: handed out when a Service is written,
//! given back when it goes — in the write path, as upstream's service
//! registry does.
//!
//! A create or update first [`patch_allocated_values`] (what the client
//! left out is kept), is validated, then [`Allocators::allocate`]s. The
//! returned [`Allocation`] is [`revert`](Allocation::revert)ed if the store
//! write fails (what was taken is given back) and
//! [`commit`](Allocation::commit)ted once it succeeds (what the update freed
//! is given back). [`clusterip`] records addresses as IPAddress objects,
//! [`nodeport`] keeps a bitmap; [`repair`] mends what a crash between the
//! two writes left behind.

pub mod clusterip;
pub mod nodeport;
pub mod repair;

use std::net::IpAddr;

use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, FieldError, ResourceType};
use serde_json::{Value, json};

use crate::ApiServer;
use clusterip::{ClusterIps, IpError, Owner};
use nodeport::{Change, NodePorts, PortError};

/// The cluster's service address and port ranges.
pub struct Allocators {
    pub cluster_ips: ClusterIps,
    pub node_ports: NodePorts,
}

/// What one Service write took and freed.
#[must_use = "an allocation must be committed or reverted"]
#[derive(Debug, Default)]
pub struct Allocation {
    owner: Option<Owner>,
    taken_ips: Vec<IpAddr>,
    taken_ports: Vec<u16>,
    freed_ips: Vec<IpAddr>,
    freed_ports: Vec<u16>,
}

impl Allocation {
    /// The write was stored: give back what it freed.
    pub async fn commit(self, server: &ApiServer) {
        give_back(server, self.owner.as_ref(), &self.freed_ips, self.freed_ports).await;
    }

    /// The write failed: give back what it took.
    pub async fn revert(self, server: &ApiServer) {
        give_back(server, self.owner.as_ref(), &self.taken_ips, self.taken_ports).await;
    }
}

async fn give_back(server: &ApiServer, owner: Option<&Owner>, ips: &[IpAddr], ports: Vec<u16>) {
    let allocators = &server.allocators;
    if let Some(owner) = owner {
        for ip in ips {
            if let Err(err) = allocators.cluster_ips.release(server, *ip, owner).await {
                tracing::warn!(%ip, %err, "releasing a ClusterIP; the repair loop will retry");
            }
        }
    }
    if !ports.is_empty() {
        let change = Change {
            take: Vec::new(),
            release: ports,
        };
        if let Err(err) = allocators
            .node_ports
            .apply(server.objects.store().as_ref(), &change, false)
            .await
        {
            tracing::warn!(%err, "releasing NodePorts; the repair loop will retry");
        }
    }
}

impl Allocators {
    /// Takes what a created (`old` is `None`) or updated Service needs and
    /// writes it into `service`. Errors are upstream's: 422 for an address or
    /// port that is taken or out of range, 500 when a range is full.
    pub async fn allocate(
        &self,
        server: &ApiServer,
        resource: &ResourceType,
        service: &mut Object,
        old: Option<&Object>,
        dry_run: bool,
    ) -> Result<Allocation, ApiError> {
        let errors = init_ip_families(service, old, self.cluster_ips.family());
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource, meta::name(service), &errors));
        }
        let mut allocation = Allocation {
            owner: Some(owner_of(service)),
            ..Allocation::default()
        };
        let result = self.allocate_into(server, service, old, dry_run, &mut allocation).await;
        match result {
            Ok(()) if dry_run => Ok(Allocation::default()),
            Ok(()) => Ok(allocation),
            Err(err) => {
                if !dry_run {
                    allocation.revert(server).await;
                }
                Err(match err {
                    Failure::Invalid(errors) => ApiError::invalid(resource, meta::name(service), &errors),
                    Failure::Api(err) => err,
                })
            }
        }
    }

    async fn allocate_into(
        &self,
        server: &ApiServer,
        service: &mut Object,
        old: Option<&Object>,
        dry_run: bool,
        allocation: &mut Allocation,
    ) -> Result<(), Failure> {
        let had_ip = old.is_some_and(needs_cluster_ip);
        if needs_cluster_ip(service) && !had_ip {
            let ip = self.allocate_ip(server, service, dry_run).await?;
            allocation.taken_ips.push(ip);
        } else if had_ip && !needs_cluster_ip(service) {
            allocation.freed_ips = old.map(cluster_ips).unwrap_or_default();
        }
        let before = old.map(node_ports_in_use).unwrap_or_default();
        self.allocate_node_ports(server, service, &before, dry_run, allocation)
            .await?;
        let after = node_ports_in_use(service);
        allocation.freed_ports = before.into_iter().filter(|p| !after.contains(p)).collect();
        Ok(())
    }

    async fn allocate_ip(&self, server: &ApiServer, service: &mut Object, dry_run: bool) -> Result<IpAddr, Failure> {
        let requested = cluster_ips(service).first().copied();
        let owner = owner_of(service);
        match self.cluster_ips.allocate(server, requested, &owner, dry_run).await {
            Ok(ip) => {
                let spec = &mut service["spec"];
                spec["clusterIP"] = json!(ip.to_string());
                spec["clusterIPs"] = json!([ip.to_string()]);
                Ok(ip)
            }
            Err(IpError::Api(err)) => Err(Failure::Api(err)),
            Err(IpError::Full) => Err(Failure::Api(ApiError::internal(
                "failed to allocate a serviceIP: range is full",
            ))),
            Err(err) => {
                let shown = go_strings(&cluster_ip_texts(service));
                let why = format!(
                    "failed to allocate IP {}: {err}",
                    requested.map(|i| i.to_string()).unwrap_or_default()
                );
                Err(Failure::Invalid(vec![invalid_raw("spec.clusterIPs", &shown, &why)]))
            }
        }
    }

    /// Ports that ask for a specific NodePort keep it (if free); the others
    /// get one when the type calls for it. Ports with the same port number
    /// (TCP and UDP) share a NodePort, as upstream.
    async fn allocate_node_ports(
        &self,
        server: &ApiServer,
        service: &mut Object,
        before: &[u16],
        dry_run: bool,
        allocation: &mut Allocation,
    ) -> Result<(), Failure> {
        let store = server.objects.store().clone();
        if node_port_type(service) {
            let allocate_all = should_allocate_node_ports(service);
            let mut by_port: Vec<(i64, u16)> = Vec::new();
            let count = service
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for i in 0..count {
                let port = &service["spec"]["ports"][i];
                let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
                let requested = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) as u16;
                let shared = by_port.iter().find(|(n, _)| *n == number).map(|(_, p)| *p);
                let node_port = match (requested, shared) {
                    (0, Some(shared)) => shared,
                    (0, None) if !allocate_all => continue,
                    (0, None) => self
                        .take(&store, None, dry_run, allocation)
                        .await
                        .map_err(|e| match e {
                            PortError::Full => {
                                Failure::Api(ApiError::internal("failed to allocate a nodePort: range is full"))
                            }
                            other => {
                                Failure::Api(ApiError::internal(format!("failed to allocate a nodePort: {other}")))
                            }
                        })?,
                    (wanted, _) if before.contains(&wanted) || allocation.taken_ports.contains(&wanted) => wanted,
                    (wanted, _) => self
                        .take(&store, Some(wanted), dry_run, allocation)
                        .await
                        .map_err(|e| {
                            let path = format!("spec.ports[{i}].nodePort");
                            Failure::Invalid(vec![FieldError::invalid(path, &json!(wanted), &e.to_string())])
                        })?,
                };
                service["spec"]["ports"][i]["nodePort"] = json!(node_port);
                by_port.push((number, node_port));
            }
        }
        if needs_health_check(service) {
            let requested = health_check_port(service);
            let port = match requested {
                Some(port) if before.contains(&port) => port,
                Some(port) => self.take(&store, Some(port), dry_run, allocation).await.map_err(|e| {
                    Failure::Api(ApiError::internal(format!(
                        "failed to allocate requested HealthCheck NodePort {port}: {e}"
                    )))
                })?,
                None => self.take(&store, None, dry_run, allocation).await.map_err(|e| {
                    Failure::Api(ApiError::internal(format!(
                        "failed to allocate a HealthCheck NodePort 0: {e}"
                    )))
                })?,
            };
            service["spec"]["healthCheckNodePort"] = json!(port);
        }
        Ok(())
    }

    async fn take(
        &self,
        store: &std::sync::Arc<dyn capstan_store::Store>,
        wanted: Option<u16>,
        dry_run: bool,
        allocation: &mut Allocation,
    ) -> Result<u16, PortError> {
        let change = Change {
            take: vec![wanted],
            release: Vec::new(),
        };
        let port = self.node_ports.apply(store.as_ref(), &change, dry_run).await?[0];
        allocation.taken_ports.push(port);
        Ok(port)
    }

    /// A deleted Service's addresses and ports go back to their ranges.
    pub async fn release(&self, server: &ApiServer, service: &Object) {
        let ips = if needs_cluster_ip(service) {
            cluster_ips(service)
        } else {
            Vec::new()
        };
        give_back(server, Some(&owner_of(service)), &ips, node_ports_in_use(service)).await;
    }
}

enum Failure {
    Invalid(Vec<FieldError>),
    Api(ApiError),
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure::Api(err)
    }
}

/// What an update leaves out is kept from the stored Service, as
/// upstream's `patchAllocatedValues`: a `kubectl replace` of a manifest
/// without `clusterIP` or `nodePort` keeps them. Fields a type change makes
/// meaningless are dropped when they were the old, allocated values
/// (upstream's `dropTypeDependentFields`).
pub fn patch_allocated_values(service: &mut Object, old: &Object) {
    if service.get("spec").is_none_or(|s| !s.is_object()) {
        return;
    }
    if needs_cluster_ip(old) && service_type(service) != "ExternalName" && cluster_ip_texts(service).is_empty() {
        for field in ["clusterIP", "clusterIPs"] {
            if let Some(value) = old.pointer(&format!("/spec/{field}")) {
                service["spec"][field] = value.clone();
            }
        }
    }
    if node_port_type(old) && node_port_type(service) {
        keep_node_ports(service, old);
    }
    if needs_health_check(old) && needs_health_check(service) && health_check_port(service).is_none() {
        service["spec"]["healthCheckNodePort"] = old["spec"]["healthCheckNodePort"].clone();
    }
    drop_type_dependent_fields(service, old);
}

fn keep_node_ports(service: &mut Object, old: &Object) {
    let old_ports: Vec<(i64, String, u64)> = ports(old)
        .iter()
        .filter_map(|p| {
            let node_port = p.get("nodePort").and_then(Value::as_u64).filter(|n| *n != 0)?;
            Some((port_number(p), protocol(p), node_port))
        })
        .collect();
    if let Some(items) = service.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for port in items.iter_mut() {
            if port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let (number, proto) = (port_number(port), protocol(port));
            if let Some((_, _, node_port)) = old_ports.iter().find(|(n, p, _)| *n == number && *p == proto) {
                port["nodePort"] = json!(node_port);
            }
        }
    }
}

fn drop_type_dependent_fields(service: &mut Object, old: &Object) {
    if service_type(service) == "ExternalName"
        && needs_cluster_ip(old)
        && cluster_ips(service) == cluster_ips(old)
        && let Some(spec) = service["spec"].as_object_mut()
    {
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            spec.remove(field);
        }
    }
    if !node_port_type(service) {
        let old_ports = node_ports_in_use(old);
        if let Some(items) = service.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for port in items.iter_mut() {
                let node_port = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) as u16;
                if node_port != 0 && old_ports.contains(&node_port) {
                    port.as_object_mut().map(|p| p.remove("nodePort"));
                }
            }
        }
    }
    if !needs_health_check(service)
        && health_check_port(service).is_some()
        && health_check_port(service) == health_check_port(old)
    {
        service["spec"].as_object_mut().map(|s| s.remove("healthCheckNodePort"));
    }
    let load_balancer = service_type(service) == "LoadBalancer";
    let external = externally_accessible(service);
    for (field, needed) in [
        ("allocateLoadBalancerNodePorts", load_balancer),
        ("loadBalancerClass", load_balancer),
        ("externalTrafficPolicy", external),
    ] {
        let pointer = format!("/spec/{field}");
        if !needed && service.pointer(&pointer).is_some() && service.pointer(&pointer) == old.pointer(&pointer) {
            service["spec"].as_object_mut().map(|s| s.remove(field));
        }
    }
}

/// Reachable from outside the cluster: upstream's `ExternallyAccessible`.
fn externally_accessible(service: &Object) -> bool {
    node_port_type(service)
        || service_type(service) == "ClusterIP"
            && service
                .pointer("/spec/externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|ips| !ips.is_empty())
}

/// `ipFamilyPolicy` and `ipFamilies` as upstream's `initIPFamilyFields`
/// sets them on a single-stack cluster of `family`.
fn init_ip_families(service: &mut Object, old: Option<&Object>, family: &str) -> Vec<FieldError> {
    if service_type(service) == "ExternalName" {
        return Vec::new();
    }
    let selectorless = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_none_or(|s| s.is_empty());
    let headless_selectorless = is_headless(service) && selectorless;
    if service
        .pointer("/spec/ipFamilyPolicy")
        .and_then(Value::as_str)
        .is_none()
    {
        let policy = match old
            .and_then(|o| o.pointer("/spec/ipFamilyPolicy"))
            .and_then(Value::as_str)
        {
            Some(old_policy) => old_policy.to_string(),
            None if headless_selectorless => "RequireDualStack".to_string(),
            None => "SingleStack".to_string(),
        };
        service["spec"]["ipFamilyPolicy"] = json!(policy);
    }
    let policy = service["spec"]["ipFamilyPolicy"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut families: Vec<String> = service
        .pointer("/spec/ipFamilies")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let mut errors = Vec::new();
    if !is_headless(service) {
        for (i, ip) in cluster_ips(service).iter().enumerate() {
            let ip_family = clusterip::family_of(ip);
            if ip_family != family {
                let shown = go_strings(&cluster_ip_texts(service));
                errors.push(invalid_raw(
                    &format!("spec.clusterIPs[{i}]"),
                    &shown,
                    &format!("{ip_family} is not configured on this cluster"),
                ));
            } else if families.len() <= i {
                families.push(ip_family.to_string());
            }
        }
    }
    if headless_selectorless {
        if families.is_empty() {
            families.push(family.to_string());
        }
        if families.len() < 2 && policy != "SingleStack" {
            families.push(if families[0] == "IPv4" { "IPv6" } else { "IPv4" }.to_string());
        }
        service["spec"]["ipFamilies"] = json!(families);
        return errors;
    }
    if policy == "RequireDualStack" {
        errors.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            &json!(policy),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, f) in families.iter().enumerate() {
        if f != family {
            errors.push(FieldError::invalid(
                format!("spec.ipFamilies[{i}]"),
                &json!(f),
                "not configured on this cluster",
            ));
        }
    }
    if families.is_empty() {
        families.push(family.to_string());
    }
    service["spec"]["ipFamilies"] = json!(families);
    errors
}

fn owner_of(service: &Object) -> Owner {
    Owner {
        namespace: meta::namespace(service).to_string(),
        name: meta::name(service).to_string(),
    }
}

pub fn service_type(service: &Object) -> &str {
    service
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// `spec.clusterIPs`, or `spec.clusterIP` when only that is set.
fn cluster_ip_texts(service: &Object) -> Vec<String> {
    let listed: Vec<String> = service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    match service.pointer("/spec/clusterIP").and_then(Value::as_str) {
        Some(ip) if !ip.is_empty() => vec![ip.to_string()],
        _ => Vec::new(),
    }
}

/// The Service's cluster IPs that are addresses (not `None`).
pub fn cluster_ips(service: &Object) -> Vec<IpAddr> {
    cluster_ip_texts(service)
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

pub fn is_headless(service: &Object) -> bool {
    cluster_ip_texts(service).first().is_some_and(|ip| ip == "None")
}

pub fn needs_cluster_ip(service: &Object) -> bool {
    service_type(service) != "ExternalName" && !is_headless(service)
}

fn node_port_type(service: &Object) -> bool {
    matches!(service_type(service), "NodePort" | "LoadBalancer")
}

fn should_allocate_node_ports(service: &Object) -> bool {
    match service_type(service) {
        "NodePort" => true,
        "LoadBalancer" => {
            service
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                != Some(false)
        }
        _ => false,
    }
}

fn needs_health_check(service: &Object) -> bool {
    service_type(service) == "LoadBalancer"
        && service.pointer("/spec/externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
}

fn health_check_port(service: &Object) -> Option<u16> {
    service
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_u64)
        .filter(|p| *p != 0)
        .map(|p| p as u16)
}

fn ports(service: &Object) -> &[Value] {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn port_number(port: &Value) -> i64 {
    port.get("port").and_then(Value::as_i64).unwrap_or(0)
}

fn protocol(port: &Value) -> String {
    port.get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP")
        .to_string()
}

/// Every NodePort the Service holds, its health-check port included.
pub fn node_ports_in_use(service: &Object) -> Vec<u16> {
    let mut held: Vec<u16> = ports(service)
        .iter()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter(|p| *p != 0)
        .map(|p| p as u16)
        .collect();
    if needs_health_check(service) {
        held.extend(health_check_port(service));
    }
    held.sort_unstable();
    held.dedup();
    held
}

fn go_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn invalid_raw(field: &str, shown: &str, why: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid",
        field: field.to_string(),
        detail: format!("Invalid value: {shown}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_without_allocated_values_keeps_them() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.7.7", "clusterIPs": ["10.43.7.7"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}});
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "TCP"}]}});
        patch_allocated_values(&mut new, &old);
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.7.7"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], json!(30080));
        assert!(
            new["spec"]["ports"][1].get("nodePort").is_none(),
            "53/TCP never had a node port"
        );
    }

    #[test]
    fn leaving_nodeport_drops_the_allocated_ports() {
        let old =
            json!({"spec": {"type": "NodePort", "clusterIP": "10.43.7.7", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.43.7.7", "ports": [{"port": 80, "nodePort": 30080}]}});
        patch_allocated_values(&mut new, &old);
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(node_ports_in_use(&old), vec![30080]);
    }

    #[test]
    fn families_default_to_the_clusters() {
        let mut service = json!({"spec": {"type": "ClusterIP", "selector": {"app": "x"}}});
        assert!(init_ip_families(&mut service, None, "IPv4").is_empty());
        assert_eq!(service["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(service["spec"]["ipFamilies"], json!(["IPv4"]));

        let mut headless = json!({"spec": {"clusterIP": "None"}});
        assert!(init_ip_families(&mut headless, None, "IPv4").is_empty());
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));

        let mut dual = json!({"spec": {"ipFamilyPolicy": "RequireDualStack", "selector": {"a": "b"}}});
        let errors = init_ip_families(&mut dual, None, "IPv4");
        assert_eq!(
            errors[0].to_message(),
            "spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
        );
        let mut v6 = json!({"spec": {"clusterIP": "fd00::5", "selector": {"a": "b"}}});
        let errors = init_ip_families(&mut v6, None, "IPv4");
        assert_eq!(
            errors[0].to_message(),
            "spec.clusterIPs[0]: Invalid value: []string{\"fd00::5\"}: IPv6 is not configured on this cluster"
        );
    }
}
