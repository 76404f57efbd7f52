//! Cluster DNS in `capstan server`: the `kube-dns` Service in kube-system
//! (so pods and `kubectl cluster-info` find it) and the server that answers
//! for the cluster domain (see `capstan_dns`).

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use clap::Args;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;

#[derive(Args, Clone, Debug)]
pub struct DnsArgs {
    /// Where the DNS server answers, UDP and TCP.
    #[arg(long, default_value = "127.0.0.1:10053")]
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

    /// Creates the `kube-dns` Service, then serves DNS until `shutdown`.
    pub async fn run(
        self,
        client: kube::Client,
        (cluster_dns, cluster_domain): (IpAddr, String),
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        ensure_service(&client, cluster_dns).await?;
        let options = capstan_dns::DnsOptions {
            listen: self.dns_listen,
            cluster_domain,
            upstreams: self.upstreams(),
        };
        capstan_dns::run(client, options, shutdown).await?;
        Ok(())
    }
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
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
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
}
