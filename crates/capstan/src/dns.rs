//! Cluster DNS in `capstan server`: the server that answers for the
//! cluster domain (see `capstan_dns`), and the `kube-dns` Service in
//! kube-system with this server as its endpoint — so pods on every node
//! reach it at the cluster DNS address through the service proxy, and
//! `kubectl cluster-info` lists it. Upstream runs CoreDNS as pods behind
//! that Service; here the endpoint is the server's node address.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use clap::Args;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[derive(Args, Clone, Debug)]
pub struct DnsArgs {
    /// Where the DNS server answers, UDP and TCP: the `kube-dns` endpoint.
    /// The wildcard means the node IP and 127.0.0.1; on loopback only,
    /// pods cannot use it.
    #[arg(long, default_value = "0.0.0.0:10053")]
    pub dns_listen: SocketAddr,

    /// A resolver for names outside the cluster domain (repeatable; default:
    /// the nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream", value_name = "IP:PORT")]
    pub dns_upstreams: Vec<SocketAddr>,

    /// Do not run cluster DNS in this process.
    #[arg(long)]
    pub disable_dns: bool,
}

impl DnsArgs {
    fn upstreams(&self) -> Vec<SocketAddr> {
        if !self.dns_upstreams.is_empty() {
            return self.dns_upstreams.clone();
        }
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        nameservers(&resolv)
    }

    /// Binds, publishes the `kube-dns` Service and its endpoint, then serves DNS until `shutdown`.
    pub async fn run(
        self,
        client: kube::Client,
        cluster: ClusterNetwork,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let options = capstan_dns::DnsOptions {
            listen: listen_addresses(self.dns_listen, cluster.node_ip),
            cluster_domain: cluster.domain.clone(),
            upstreams: self.upstreams(),
            client_networks: vec![cluster.cluster_cidr, cluster.service_cidr],
        };
        let bound = capstan_dns::bind(options).await?;
        let listen = bound.local_addr();
        ensure_service(&client, cluster.dns_ip).await?;
        if listen.ip().is_loopback() {
            tracing::warn!(%listen, "cluster DNS listens where pods cannot reach it: kube-dns gets no endpoint");
        } else {
            publish_endpoint(&client, &cluster.node_name, listen).await?;
        }
        bound.run(client, shutdown).await;
        Ok(())
    }
}

/// What cluster DNS needs to know about the cluster around it.
pub struct ClusterNetwork {
    /// The `kube-dns` ClusterIP (`--cluster-dns`).
    pub dns_ip: IpAddr,
    pub domain: String,
    pub cluster_cidr: IpNet,
    pub service_cidr: IpNet,
    /// This server's name (its endpoint slice is named for it) and address.
    pub node_name: String,
    pub node_ip: Option<IpAddr>,
}

/// `--dns-listen` made specific (see `capstan_dns::DnsOptions::listen`):
/// the wildcard becomes the node's address — the `kube-dns` endpoint,
/// listed first — and loopback, for processes on this machine.
fn listen_addresses(listen: SocketAddr, node_ip: Option<IpAddr>) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let loopback = match listen {
        SocketAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
        SocketAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    };
    let node = node_ip.map(|ip| SocketAddr::new(ip, listen.port()));
    node.into_iter()
        .chain([SocketAddr::new(loopback, listen.port())])
        .collect()
}

/// This server as the endpoint of `kube-dns`: an EndpointSlice of its own
/// (several servers each add theirs) and the legacy Endpoints object that
/// `kubectl get endpoints` shows. Applied server-side, so restarts converge.
async fn publish_endpoint(client: &kube::Client, server: &str, endpoint: SocketAddr) -> Result<()> {
    let params = PatchParams::apply("capstan-dns").force();
    let ports = |key: &str| {
        json!([
            {"name": "dns", key: endpoint.port(), "protocol": "UDP"},
            {"name": "dns-tcp", key: endpoint.port(), "protocol": "TCP"},
        ])
    };
    let ip = endpoint.ip().to_string();
    let name = format!("kube-dns-{server}");
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/service-name": "kube-dns",
            "endpointslice.kubernetes.io/managed-by": "capstan-dns",
        }},
        "addressType": if endpoint.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}, "nodeName": server}],
        "ports": ports("port"),
    });
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    slices
        .patch(&name, &params, &Patch::Apply(slice))
        .await
        .context("publishing the kube-dns endpoint slice")?;
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip, "nodeName": server}], "ports": ports("port")}],
    });
    let legacy: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    legacy
        .patch("kube-dns", &params, &Patch::Apply(endpoints))
        .await
        .context("publishing the kube-dns endpoints")?;
    tracing::info!(%endpoint, "kube-dns endpoint published");
    Ok(())
}

/// The `nameserver` lines of a resolv.conf, on port 53.
fn nameservers(resolv: &str) -> Vec<SocketAddr> {
    resolv
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The Service upstream's DNS add-on installs, labelled so `kubectl
/// cluster-info` lists it.
async fn ensure_service(client: &kube::Client, cluster_ip: IpAddr) -> Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    if services.get_opt("kube-dns").await?.is_some() {
        return Ok(());
    }
    let service: Service = serde_json::from_value(json!({
        "metadata": {
            "name": "kube-dns",
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "KubeDNS",
            },
        },
        "spec": {
            "clusterIP": cluster_ip.to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"},
            ],
        },
    }))?;
    match services.create(&PostParams::default(), &service).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err).context("creating the kube-dns Service"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nameservers_from_resolv_conf() {
        let resolv =
            "# comment\nsearch example.test\nnameserver 192.0.2.1\nnameserver  2001:db8::1 \noptions ndots:2\n";
        let found: Vec<String> = super::nameservers(resolv).iter().map(|s| s.to_string()).collect();
        assert_eq!(found, ["192.0.2.1:53", "[2001:db8::1]:53"]);
    }

    #[test]
    fn the_wildcard_becomes_the_node_address_and_loopback() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let node = Some("192.0.2.7".parse().unwrap());
        let listen = |s: &str, node| super::listen_addresses(at(s), node);
        assert_eq!(listen("0.0.0.0:53", node), [at("192.0.2.7:53"), at("127.0.0.1:53")]);
        assert_eq!(listen("0.0.0.0:0", None), [at("127.0.0.1:0")]);
        assert_eq!(listen("10.99.0.1:10053", node), [at("10.99.0.1:10053")]);
        assert_eq!(listen("127.0.0.1:0", node), [at("127.0.0.1:0")]);
    }
}
