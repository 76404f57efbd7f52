//! `capstan agent`: a node joined to a server. Real nodes (a kubelet on a
//! container runtime) arrive with issue 5; today the agent runs hollow
//! nodes (`--simulate N`, see `capstan_kubelet::hollow`), the test bed for
//! the scheduler and controllers and the scale harness.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use capstan_kubelet::hollow::HollowOptions;
use capstan_kubelet::nodestatus::{self, NodeTemplate};
use clap::Args;

/// The node's flags, shared by `capstan server` and `capstan agent`, with
/// upstream kubelet's names where it has them.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// The node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,

    /// The node's InternalIP (default: the address of the default route's interface).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,

    /// Use this CRI socket instead of starting Capstan's own containerd.
    #[arg(long, value_name = "PATH")]
    pub container_runtime_endpoint: Option<PathBuf>,

    /// The port of the kubelet's HTTPS server (logs, exec, port-forward).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,

    /// The cluster DNS address pods with dnsPolicy ClusterFirst resolve through.
    #[arg(long, default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,

    /// Registry mirrors and credentials (k3s-style registries.yaml).
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,

    /// The cgroup under which pod cgroups are created (cgroupfs driver).
    #[arg(long, default_value = "/capstan")]
    pub cgroup_root: String,

    /// The Linux bridge pods are attached to.
    #[arg(long, default_value = "capstan0")]
    pub cni_bridge: String,
}

#[derive(Args)]
pub struct AgentArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,

    /// The API server URL, instead of the kubeconfig's.
    #[arg(long)]
    server: Option<String>,

    /// Run N hollow (simulated) nodes instead of a real one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub simulate: Option<u32>,

    /// Hollow nodes are named <prefix>-0 … <prefix>-(N-1).
    #[arg(long, default_value = "hollow")]
    simulate_prefix: String,

    /// Capacity (and allocatable) of each hollow node.
    #[arg(long, default_value = "cpu=4,memory=16Gi,pods=110", value_parser = nodestatus::parse_capacity)]
    simulate_capacity: nodestatus::Capacity,

    /// Hollow nodes are spread over zones zone-0 … zone-(Z-1) (`topology.kubernetes.io/zone`).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    simulate_zones: u32,
}

impl AgentArgs {
    fn options(&self, count: u32) -> Result<HollowOptions> {
        let template = NodeTemplate {
            prefix: self.simulate_prefix.clone(),
            capacity: self.simulate_capacity.clone(),
            zones: self.simulate_zones,
            boot: std::process::id().to_string(),
        };
        template.validate(count).map_err(anyhow::Error::msg)?;
        Ok(HollowOptions { template, count })
    }

    async fn client(&self) -> Result<kube::Client> {
        let text = std::fs::read_to_string(&self.kubeconfig)
            .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).context("parsing the kubeconfig")?;
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .context("configuring the API client")?;
        if let Some(server) = &self.server {
            config.cluster_url = server.parse().with_context(|| format!("--server {server:?}"))?;
        }
        Ok(kube::Client::try_from(config)?)
    }

    /// Runs the hollow nodes until SIGTERM or Ctrl-C.
    pub fn run(self, count: u32) -> Result<()> {
        let options = self.options(count)?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        runtime.block_on(async {
            let client = self.client().await?;
            let shutdown = async {
                if let Err(err) = crate::server::shutdown_signal().await {
                    tracing::warn!(%err, "waiting for a shutdown signal");
                }
            };
            capstan_kubelet::hollow::run(client, options, shutdown).await?;
            Ok(())
        })
    }
}
