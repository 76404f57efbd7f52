//! `capstan agent`: a node joined to a server. Real nodes (a kubelet on a
//! container runtime) arrive with issue 5; today the agent runs hollow
//! nodes (`--simulate N`, see `capstan_kubelet::hollow`), the test bed for
//! the scheduler and controllers and the scale harness.

use std::path::PathBuf;

use anyhow::{Context, Result};
use capstan_kubelet::hollow::HollowOptions;
use capstan_kubelet::nodestatus::{self, NodeTemplate};
use clap::Args;

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
