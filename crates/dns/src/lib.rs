//! Cluster DNS: the names of the Kubernetes DNS specification under the
//! cluster domain (`cluster.local`), answered from Services and
//! EndpointSlices, with every other name forwarded to upstream resolvers.
//!
//! Where to start:
//!
//! * [`bind`] then [`Bound::run`] put it together: a [`watch`] on Services and EndpointSlices
//!   keeps the zone current, and [`server`] answers on UDP and TCP.
//! * [`clients`] decides who is answered at all.
//! * [`records`] is the zone itself — which name answers what — as pure
//!   lookups with unit tests; start there to change what a name returns.

pub mod clients;
pub mod records;
pub mod server;
pub mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ipnet::IpNet;

/// How the DNS server runs.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// Where to answer (UDP and TCP). A port 0 after the first means "the
    /// first one's port". Specific addresses, not the wildcard: a UDP
    /// socket on the wildcard answers from whatever address the route
    /// picks, and a client that reached us through the Service's DNAT
    /// drops an answer that conntrack cannot map back.
    pub listen: Vec<SocketAddr>,
    /// The cluster domain, e.g. `cluster.local`.
    pub cluster_domain: String,
    /// Resolvers for names outside the cluster domain; none means SERVFAIL.
    pub upstreams: Vec<SocketAddr>,
    /// Sources served besides loopback and Node addresses: the pod and
    /// service ranges (see [`clients`]).
    pub client_networks: Vec<IpNet>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the DNS server to {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the DNS server has no address to listen on")]
    NoAddress,
}

/// The bound sockets, before anything is answered: the caller learns the
/// port (the listen addresses may ask for port 0) and publishes it first.
pub struct Bound {
    udp: Vec<tokio::net::UdpSocket>,
    tcp: Vec<tokio::net::TcpListener>,
    local: SocketAddr,
    options: DnsOptions,
}

/// Binds UDP and TCP on every `options.listen` address (one port for all).
pub async fn bind(options: DnsOptions) -> Result<Bound, Error> {
    let first = *options.listen.first().ok_or(Error::NoAddress)?;
    let (mut udp, mut tcp, mut port) = (Vec::new(), Vec::new(), first.port());
    for address in &options.listen {
        let address = match address.port() {
            0 => SocketAddr::new(address.ip(), port),
            _ => *address,
        };
        let bind_error = |source| Error::Bind { address, source };
        let socket = tokio::net::UdpSocket::bind(address).await.map_err(bind_error)?;
        port = socket.local_addr().map_err(bind_error)?.port();
        let address = SocketAddr::new(address.ip(), port);
        tcp.push(tokio::net::TcpListener::bind(address).await.map_err(bind_error)?);
        udp.push(socket);
    }
    let local = SocketAddr::new(first.ip(), port);
    Ok(Bound {
        udp,
        tcp,
        local,
        options,
    })
}

impl Bound {
    /// The first listen address, with the port the kernel chose.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves cluster DNS until `shutdown` resolves.
    pub async fn run(self, client: kube::Client, shutdown: impl std::future::Future<Output = ()>) {
        let listen = self.local_addr();
        let zone = Arc::new(RwLock::new(records::Zone::default()));
        let clients = Arc::new(RwLock::new(clients::Clients::new(self.options.client_networks.clone())));
        let handler = server::Handler {
            zone: zone.clone(),
            clients: clients.clone(),
            domain: self.options.cluster_domain.trim_end_matches('.').to_lowercase(),
            upstreams: self.options.upstreams.clone(),
        };
        let mut dns = hickory_server::Server::new(handler);
        self.udp.into_iter().for_each(|socket| dns.register_socket(socket));
        for listener in self.tcp {
            dns.register_listener(listener, Duration::from_secs(5), 64);
        }
        tracing::info!(%listen, domain = %self.options.cluster_domain, "serving cluster DNS");
        tokio::select! {
            () = watch::run(client, zone, clients) => {}
            () = shutdown => {}
        }
        if let Err(err) = dns.shutdown_gracefully().await {
            tracing::debug!(%err, "stopping the DNS server");
        }
    }
}
