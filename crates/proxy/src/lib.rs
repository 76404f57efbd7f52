//! The service proxy: what kube-proxy does in its nftables mode — every
//! Service's ClusterIP, NodePort, external and LoadBalancer addresses lead
//! to its ready endpoints through rules in one nftables table of our own.
//!
//! Where to start:
//!
//! * [`run`] wires it up: [`sync`] watches Services and EndpointSlices and
//!   reprograms the kernel after each burst of changes.
//! * [`model`] turns the API objects into [`model::ServicePort`]s — which
//!   endpoints each port may use (readiness, terminating fallback, traffic
//!   policies).
//! * [`rules`] turns those into a [`rules::Ruleset`] and its nft script,
//!   whole or as a diff; [`nft`] hands scripts to the kernel; [`routes`]
//!   keeps the service CIDR on the machine.

pub mod model;
pub mod nft;
pub mod routes;
pub mod rules;
pub mod sync;

use std::time::Duration;

use ipnet::IpNet;

/// Upstream's `--nftables-min-sync-period` default.
pub const MIN_SYNC_PERIOD: Duration = Duration::from_secs(1);

/// How the proxy runs on a node.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub node_name: String,
    /// The pod range: traffic from elsewhere to a ClusterIP is masqueraded.
    pub cluster_cidr: Option<IpNet>,
    /// The Service range, routed to our dummy device.
    pub service_cidr: IpNet,
    /// Our nftables table (`ip` family).
    pub table: String,
    pub min_sync_period: Duration,
}

/// Programs Services until `shutdown`, then removes our table.
pub async fn run(client: kube::Client, options: ProxyOptions, shutdown: impl std::future::Future<Output = ()>) {
    let node = rules::NodeInfo {
        name: options.node_name.clone(),
        cluster_cidr: options.cluster_cidr,
    };
    if let Err(err) = routes::ensure(options.service_cidr) {
        tracing::error!(%err, "proxy: routing the service CIDR; ClusterIPs are unreachable from this node");
    }
    if let Err(err) = routes::allow_localnet() {
        tracing::warn!(%err, "proxy: enabling route_localnet; NodePorts on 127.0.0.1 will not answer");
    }
    tokio::select! {
        () = sync::run(client, options.table.clone(), node, options.min_sync_period) => {}
        () = shutdown => {}
    }
    if let Err(err) = nft::delete_table(&options.table) {
        tracing::warn!(%err, table = options.table, "proxy: removing our nftables table");
    }
    if let Err(err) = routes::remove() {
        tracing::warn!(%err, "proxy: removing the service route");
    }
}
