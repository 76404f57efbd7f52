//! Cluster DNS: the names of the Kubernetes DNS specification under the
//! cluster domain (`cluster.local`), answered from Services and
//! EndpointSlices, with every other name forwarded to upstream resolvers.
//!
//! Where to start:
//!
//! * [`run`] puts it together: a [`watch`] on Services and EndpointSlices
//!   keeps the zone current, and [`server`] answers on UDP and TCP.
//! * [`records`] is the zone itself — which name answers what — as pure
//!   lookups with unit tests; start there to change what a name returns.

pub mod records;
pub mod server;
pub mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How the DNS server runs.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// Where to answer (UDP and TCP).
    pub listen: SocketAddr,
    /// The cluster domain, e.g. `cluster.local`.
    pub cluster_domain: String,
    /// Resolvers for names outside the cluster domain; none means SERVFAIL.
    pub upstreams: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the DNS server to {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Serves cluster DNS until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    options: DnsOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let bind_error = |source| Error::Bind {
        address: options.listen,
        source,
    };
    let udp = tokio::net::UdpSocket::bind(options.listen).await.map_err(bind_error)?;
    let tcp = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(bind_error)?;
    let zone = Arc::new(RwLock::new(records::Zone::default()));
    let handler = server::Handler {
        zone: zone.clone(),
        domain: options.cluster_domain.trim_end_matches('.').to_lowercase(),
        upstreams: options.upstreams.clone(),
    };
    let mut dns = hickory_server::Server::new(handler);
    dns.register_socket(udp);
    dns.register_listener(tcp, Duration::from_secs(5), 64);
    tracing::info!(listen = %options.listen, domain = %options.cluster_domain, "serving cluster DNS");
    tokio::select! {
        () = watch::run(client, zone) => {}
        () = shutdown => {}
    }
    if let Err(err) = dns.shutdown_gracefully().await {
        tracing::debug!(%err, "stopping the DNS server");
    }
    Ok(())
}
