//! The Kubernetes API server.
//!
//! Requests enter at [`handler::dispatch`], which routes health, version
//! and discovery documents, and hands every resource URL — parsed into a
//! [`request::ResourceRequest`] — to the one generic REST implementation in
//! [`rest`]. That layer is driven by the resource registry
//! (`capstan_apimachinery::registry`) and the per-kind rules in
//! [`strategy`]; [`objects`] keeps objects in the `capstan-store`, and
//! [`watchcache`] holds them all in memory for lists and watches.
//! [`pki`] and [`tls`] give the server its certificates and client
//! identities; [`authn`] and [`authz`] decide who may do what; [`Listening`]
//! puts it all together on a port.

pub mod admission;
pub mod allocator;
pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod codec;
pub mod discovery;
pub mod handler;
pub mod metrics;
pub mod negotiate;
pub mod objects;
pub mod patch;
pub mod pki;
pub mod proxy;
pub mod request;
pub mod rest;
pub mod serve;
pub mod serviceaccount;
pub mod strategy;
pub mod tls;
pub mod version;
pub mod versions;
pub mod watchcache;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use capstan_store::Store;
use ipnet::IpNet;

pub use allocator::nodeport::PortRange;

use crate::objects::Objects;

pub use serve::{Listening, ServeOptions};

/// Settings that shape what the API serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The port clients reach the API on (the `kubernetes` Service targets it).
    pub port: u16,
    /// Where Service ClusterIPs come from (`--service-cidr`).
    pub service_cidr: IpNet,
    /// Where NodePorts come from (`--service-node-port-range`).
    pub node_port_range: PortRange,
    /// Where pods reach this API server (`--advertise-address`): the
    /// endpoint of the `kubernetes` Service. None publishes no endpoint.
    pub advertise_address: Option<IpAddr>,
}

impl Config {
    /// The first address of the service CIDR: the `kubernetes` Service's ClusterIP.
    pub fn service_ip(&self) -> IpAddr {
        allocator::clusterip::ClusterIps {
            cidr: self.service_cidr,
        }
        .first()
    }

    fn allocators(&self) -> allocator::Allocators {
        allocator::Allocators {
            cluster_ips: allocator::clusterip::ClusterIps {
                cidr: self.service_cidr,
            },
            node_ports: allocator::nodeport::NodePorts {
                range: self.node_port_range,
            },
        }
    }
}

/// The shared state of a running API server.
pub struct ApiServer {
    pub config: Config,
    pub objects: Objects,
    pub authorizer: authz::Chain,
    pub cache: Arc<watchcache::WatchCache>,
    pub metrics: Arc<metrics::Metrics>,
    pub tokens: serviceaccount::TokenIssuer,
    pub allocators: allocator::Allocators,
    /// How to call kubelets (`pods/log`, `exec`, `attach`, `portforward`); set once the PKI is loaded.
    pub kubelet_client: OnceLock<proxy::KubeletClient>,
    bootstrapped: AtomicBool,
}

impl ApiServer {
    pub fn new(config: Config, store: Arc<dyn Store>, tokens: serviceaccount::TokenIssuer) -> Arc<ApiServer> {
        let metrics = metrics::Metrics::new();
        Arc::new(ApiServer {
            allocators: config.allocators(),
            config,
            cache: watchcache::WatchCache::start(store.clone()),
            objects: Objects::new(store, metrics.clone()),
            metrics,
            tokens,
            authorizer: authz::Chain(vec![Box::new(authz::Masters), Box::new(authz::BasicUser)]),
            kubelet_client: OnceLock::new(),
            bootstrapped: AtomicBool::new(false),
        })
    }

    /// The kubelet client, or 503 when none is configured (an API server started without its PKI).
    pub fn kubelet_client(&self) -> Result<&proxy::KubeletClient, capstan_apimachinery::ApiError> {
        self.kubelet_client
            .get()
            .ok_or_else(|| capstan_apimachinery::ApiError::service_unavailable("no kubelet client is configured"))
    }

    /// Creates the built-in namespaces and Services; `/readyz` fails until done.
    pub async fn bootstrap(&self) -> Result<(), capstan_apimachinery::ApiError> {
        bootstrap::run(self).await?;
        self.bootstrapped.store(true, Ordering::Release);
        Ok(())
    }

    /// Ready to serve: built-in objects exist and the watch cache is loaded.
    pub fn is_bootstrapped(&self) -> bool {
        self.bootstrapped.load(Ordering::Acquire) && self.cache.is_ready()
    }

    /// The HTTP application: every path goes through [`handler::dispatch`].
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(handler::dispatch).with_state(self.clone())
    }
}
