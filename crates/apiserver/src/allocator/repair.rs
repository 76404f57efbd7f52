//! Mends allocations a crash left behind, as upstream's repair controllers
//! do every few minutes: an address or port taken for a Service write that
//! never reached the store is given back, and a Service whose address has
//! no IPAddress (a data dir from before addresses were recorded) gets one.
//!
//! Something that looks leaked may belong to a write in flight, so it is
//! only given back when it still looks leaked on the next pass.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use capstan_apimachinery::{meta, registry};

use super::clusterip::{self, MANAGED_BY, Owner};
use super::nodeport::Change;
use super::{cluster_ips, needs_cluster_ip, node_ports_in_use};
use crate::ApiServer;
use crate::objects::prefix;

/// Upstream repairs every 3 minutes.
const INTERVAL: Duration = Duration::from_secs(180);

/// Runs the repair loop for as long as the server exists.
pub fn spawn(server: &Arc<ApiServer>) {
    let server = Arc::downgrade(server);
    tokio::spawn(async move {
        let mut suspects = Suspects::default();
        // The first pass right away: it records what older data dirs lack.
        loop {
            let Some(strong) = Weak::upgrade(&server) else { return };
            suspects = repair(&strong, suspects).await;
            drop(strong);
            tokio::time::sleep(INTERVAL).await;
        }
    });
}

/// What looked leaked on the previous pass.
#[derive(Default)]
struct Suspects {
    ips: HashSet<IpAddr>,
    ports: HashSet<u16>,
}

async fn repair(server: &ApiServer, previous: Suspects) -> Suspects {
    let services = services(server);
    let ips = repair_ips(server, &services, &previous.ips).await;
    let ports = repair_ports(server, &services, &previous.ports).await;
    Suspects { ips, ports }
}

fn services(server: &ApiServer) -> Vec<Arc<serde_json::Value>> {
    let resource = registry::lookup("", "v1", "services").expect("Service is a built-in kind");
    server.cache.list(&prefix(resource, None)).0
}

async fn repair_ips(
    server: &ApiServer,
    services: &[Arc<serde_json::Value>],
    previous: &HashSet<IpAddr>,
) -> HashSet<IpAddr> {
    let allocator = &server.allocators.cluster_ips;
    let mut wanted: HashMap<IpAddr, Owner> = HashMap::new();
    for service in services.iter().filter(|s| needs_cluster_ip(s)) {
        for ip in cluster_ips(service)
            .into_iter()
            .filter(|ip| allocator.cidr.contains(ip))
        {
            let owner = Owner {
                namespace: meta::namespace(service).to_string(),
                name: meta::name(service).to_string(),
            };
            wanted.insert(ip, owner);
        }
    }
    let (addresses, _) = server.cache.list(&prefix(clusterip::resource(), None));
    let mut recorded = HashSet::new();
    let mut suspects = HashSet::new();
    for address in &addresses {
        let Ok(ip) = meta::name(address).parse::<IpAddr>() else {
            continue;
        };
        recorded.insert(ip);
        let managed = meta::labels(address)
            .get(MANAGED_BY.0)
            .and_then(serde_json::Value::as_str)
            == Some(MANAGED_BY.1);
        let owner = clusterip::parent_of(address);
        if !managed || owner.is_none() || wanted.get(&ip) == owner.as_ref() {
            continue;
        }
        if previous.contains(&ip) {
            tracing::info!(%ip, "releasing a ClusterIP no Service holds");
            if let Err(err) = allocator.release(server, ip, owner.as_ref().expect("checked")).await {
                tracing::warn!(%ip, %err, "releasing a leaked ClusterIP");
            }
        } else {
            suspects.insert(ip);
        }
    }
    for (ip, owner) in wanted.iter().filter(|(ip, _)| !recorded.contains(ip)) {
        tracing::info!(%ip, service = %format!("{}/{}", owner.namespace, owner.name), "recording a ClusterIP");
        if let Err(err) = clusterip::record(server, *ip, owner).await {
            tracing::warn!(%ip, %err, "recording a ClusterIP");
        }
    }
    suspects
}

async fn repair_ports(
    server: &ApiServer,
    services: &[Arc<serde_json::Value>],
    previous: &HashSet<u16>,
) -> HashSet<u16> {
    let allocator = &server.allocators.node_ports;
    let store = server.objects.store().as_ref();
    let in_use: HashSet<u16> = services
        .iter()
        .flat_map(|s| node_ports_in_use(s))
        .filter(|p| allocator.range.contains(*p))
        .collect();
    let stored: HashSet<u16> = match allocator.allocated(store).await {
        Ok(ports) => ports.into_iter().collect(),
        Err(err) => {
            tracing::warn!(%err, "reading the NodePort allocations");
            return previous.clone();
        }
    };
    let leaked: HashSet<u16> = stored.difference(&in_use).copied().collect();
    let change = Change {
        take: in_use.difference(&stored).map(|p| Some(*p)).collect(),
        release: leaked.intersection(previous).copied().collect(),
    };
    if !change.take.is_empty() || !change.release.is_empty() {
        tracing::info!(
            recorded = change.take.len(),
            released = change.release.len(),
            "repairing NodePorts"
        );
        if let Err(err) = allocator.apply(store, &change, false).await {
            tracing::warn!(%err, "repairing NodePorts");
        }
    }
    leaked.difference(previous).copied().collect()
}
