//! The API objects the proxy programs: selector-less ClusterIP Services,
//! one port each, and one EndpointSlice per Service that the benchmark
//! writes itself (as any controller would), so the endpoint count is exact
//! and no pods are needed. The endpoint addresses are never reachable: they
//! exist only as DNAT targets in the benchmark's own network namespace.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

pub const NAMESPACE: &str = "bench-services";
pub const PORT_NAME: &str = "http";
pub const SERVICE_PORT: u16 = 80;
pub const TARGET_PORT: u16 = 8080;

/// The first endpoint addresses (10.44.0.1 …), and the replacements the
/// endpoint-change phase swaps in (10.45.0.1 …): never the same address twice.
const ENDPOINTS_BASE: Ipv4Addr = Ipv4Addr::new(10, 44, 0, 0);
const REPLACEMENTS_BASE: Ipv4Addr = Ipv4Addr::new(10, 45, 0, 0);

/// One Service as the benchmark created it.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub cluster_ip: Ipv4Addr,
    pub addresses: Vec<Ipv4Addr>,
}

/// The `index`-th address after `base` (index 0 is base + 1).
fn nth(base: Ipv4Addr, index: usize) -> Ipv4Addr {
    let offset = u32::try_from(index).unwrap_or(u32::MAX - 1).saturating_add(1);
    Ipv4Addr::from(u32::from(base).saturating_add(offset))
}

/// The address that replaces an endpoint in change number `n`.
pub fn replacement(n: usize) -> Ipv4Addr {
    nth(REPLACEMENTS_BASE, n)
}

fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

fn service(name: &str) -> Result<Service> {
    let service = json!({
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"type": "ClusterIP", "ports": [
            {"name": PORT_NAME, "protocol": "TCP", "port": SERVICE_PORT, "targetPort": TARGET_PORT}
        ]},
    });
    Ok(serde_json::from_value(service)?)
}

/// Ready endpoints on one (hollow) node, as the EndpointSlice controller writes them.
fn endpoints(addresses: &[Ipv4Addr]) -> Value {
    addresses
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}, "nodeName": "bench-node"}))
        .collect()
}

fn slice(service: &str, addresses: &[Ipv4Addr]) -> Result<EndpointSlice> {
    let slice = json!({
        "metadata": {
            "name": format!("{service}-1"),
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "capstan-bench",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": PORT_NAME, "protocol": "TCP", "port": TARGET_PORT}],
        "endpoints": endpoints(addresses),
    });
    Ok(serde_json::from_value(slice)?)
}

/// Creates the namespace, `services` Services and their slices of
/// `per_service` endpoints, `concurrency` requests in flight. Returns the
/// Services in order and how long creating them took.
pub async fn create(
    client: &kube::Client,
    services: usize,
    per_service: usize,
    concurrency: usize,
) -> Result<(Vec<Backend>, Duration)> {
    let started = Instant::now();
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .context("creating the namespace")?;
    let backends: Vec<Backend> = stream::iter(0..services)
        .map(|i| create_one(client, i, per_service))
        .buffered(concurrency)
        .try_collect()
        .await?;
    Ok((backends, started.elapsed()))
}

async fn create_one(client: &kube::Client, i: usize, per_service: usize) -> Result<Backend> {
    let name = service_name(i);
    let created = Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &service(&name)?)
        .await
        .with_context(|| format!("creating Service {name}"))?;
    let cluster_ip = created
        .spec
        .and_then(|s| s.cluster_ip)
        .and_then(|ip| ip.parse().ok())
        .with_context(|| format!("Service {name} got no IPv4 ClusterIP"))?;
    let addresses: Vec<Ipv4Addr> = (0..per_service)
        .map(|j| nth(ENDPOINTS_BASE, i * per_service + j))
        .collect();
    Api::<EndpointSlice>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &slice(&name, &addresses)?)
        .await
        .with_context(|| format!("creating the EndpointSlice of {name}"))?;
    Ok(Backend {
        name,
        cluster_ip,
        addresses,
    })
}

/// Replaces endpoint `slot` of `backend` with `address` by patching its
/// slice (a merge patch replaces the endpoints list); returns the API call's latency.
pub async fn replace_endpoint(
    client: &kube::Client,
    backend: &mut Backend,
    slot: usize,
    address: Ipv4Addr,
) -> Result<Duration> {
    backend.addresses[slot] = address;
    let patch = json!({"endpoints": endpoints(&backend.addresses)});
    let started = Instant::now();
    Api::<EndpointSlice>::namespaced(client.clone(), NAMESPACE)
        .patch(
            &format!("{}-1", backend.name),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .with_context(|| format!("patching the EndpointSlice of {}", backend.name))?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_and_in_their_ranges() {
        assert_eq!(nth(ENDPOINTS_BASE, 0), Ipv4Addr::new(10, 44, 0, 1));
        assert_eq!(nth(ENDPOINTS_BASE, 9_999), Ipv4Addr::new(10, 44, 39, 16));
        assert_eq!(replacement(0), Ipv4Addr::new(10, 45, 0, 1));
        let slice = slice("svc-0001", &[nth(ENDPOINTS_BASE, 0), nth(ENDPOINTS_BASE, 1)]).unwrap();
        assert_eq!(slice.endpoints.len(), 2);
        assert_eq!(slice.endpoints[1].addresses, ["10.44.0.2"]);
        assert_eq!(slice.metadata.labels.unwrap()["kubernetes.io/service-name"], "svc-0001");
    }
}
