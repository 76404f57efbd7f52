//! `capstan proxy`: the service proxy on its own, against any API server,
//! as upstream runs kube-proxy beside the kubelet. `capstan server` and
//! `capstan agent` run the same proxy (`capstan_proxy::run`) in-process.
//! Flags carry kube-proxy's names where it has them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ipnet::IpNet;

/// The nftables table the proxy owns (the same in every Capstan process).
const TABLE: &str = "capstan-proxy";

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,

    /// The API server URL, instead of the kubeconfig's (kube-proxy's --master).
    #[arg(long, visible_alias = "master")]
    server: Option<String>,

    /// The name of the Node this proxy runs on (default: the host name); decides
    /// which endpoints are local for internalTrafficPolicy/externalTrafficPolicy Local.
    #[arg(long, visible_alias = "node-name")]
    hostname_override: Option<String>,

    /// The pod range: traffic to a ClusterIP from outside it is masqueraded.
    #[arg(long)]
    cluster_cidr: Option<IpNet>,

    /// The cluster's Service range (as the server's --service-cidr): routed to
    /// the sink device so service addresses never leave the machine.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: IpNet,

    /// The minimum time between two rule syncs; changes arriving sooner are
    /// batched into the next sync (e.g. 500ms, 1s, 5s).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    nftables_min_sync_period: Duration,
}

impl ProxyArgs {
    fn options(&self) -> capstan_proxy::ProxyOptions {
        capstan_proxy::ProxyOptions {
            node_name: self.hostname_override.clone().unwrap_or_else(crate::agent::host_name),
            cluster_cidr: self.cluster_cidr.map(|cidr| cidr.trunc()),
            service_cidr: self.service_cidr.trunc(),
            table: TABLE.into(),
            min_sync_period: self.nftables_min_sync_period,
        }
    }

    /// Programs Services until SIGTERM or Ctrl-C, then removes the rules.
    pub fn run(self) -> Result<()> {
        let options = self.options();
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        runtime.block_on(async {
            let client = crate::kubeconfig::client(&self.kubeconfig, self.server.as_deref()).await?;
            tracing::info!(node = options.node_name, service_cidr = %options.service_cidr, "service proxy starting");
            let shutdown = async {
                if let Err(err) = crate::server::shutdown_signal().await {
                    tracing::warn!(%err, "waiting for a shutdown signal");
                }
            };
            capstan_proxy::run(client, options, shutdown).await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    #[test]
    fn defaults_and_upstream_names() {
        let cli = Cli::try_parse_from(["proxy", "--kubeconfig", "/k", "--node-name", "n1"]).unwrap();
        let options = cli.proxy.options();
        assert_eq!(options.node_name, "n1");
        assert_eq!(options.service_cidr.to_string(), "10.43.0.0/16");
        assert_eq!(options.min_sync_period, capstan_proxy::MIN_SYNC_PERIOD);
        assert_eq!(options.cluster_cidr, None);
        let cli = Cli::try_parse_from([
            "proxy",
            "--kubeconfig",
            "/k",
            "--master",
            "https://127.0.0.1:6443",
            "--hostname-override",
            "n2",
            "--cluster-cidr",
            "10.42.1.0/16",
            "--nftables-min-sync-period",
            "250ms",
        ])
        .unwrap();
        assert_eq!(cli.proxy.server.as_deref(), Some("https://127.0.0.1:6443"));
        let options = cli.proxy.options();
        assert_eq!(options.node_name, "n2");
        assert_eq!(options.cluster_cidr.unwrap().to_string(), "10.42.0.0/16");
        assert_eq!(options.min_sync_period, Duration::from_millis(250));
    }
}
