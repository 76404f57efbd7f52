//! `capstan scheduler` and `capstan controller-manager`: one control-plane
//! component on its own, against any API server, as upstream runs
//! kube-scheduler and kube-controller-manager beside kube-apiserver.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_controller_manager::ControllerManagerOptions;
use clap::Args;
use ipnet::IpNet;

#[derive(Args)]
pub struct ComponentArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,

    #[command(flatten)]
    controllers: ControllerFlags,
}

/// The controller manager's flags, with upstream kube-controller-manager's
/// names and defaults; shared by `capstan server` and `capstan controller-manager`.
#[derive(Args, Clone)]
pub struct ControllerFlags {
    /// The range pod IPs come from; each node gets a --node-cidr-mask-size
    /// slice of it as its podCIDR. `capstan server` defaults it to 10.42.0.0/16
    /// (as k3s); without it no podCIDRs are allocated.
    #[arg(long)]
    pub cluster_cidr: Option<IpNet>,

    /// The prefix length of each node's podCIDR (default: 24 for IPv4, 64 for IPv6).
    #[arg(long)]
    node_cidr_mask_size: Option<u8>,

    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    node_monitor_period: Duration,

    /// How long a node may go without a heartbeat before it is marked Unknown.
    #[arg(long, default_value = "50s", value_parser = humantime::parse_duration)]
    node_monitor_grace_period: Duration,

    /// The same, for a node that never posted a Ready condition.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    node_startup_grace_period: Duration,

    /// Nodes per second given NoExecute taints (their pods evicted) in a healthy zone.
    #[arg(long, default_value_t = 0.1)]
    node_eviction_rate: f32,

    /// Nodes per second given NoExecute taints in a partially disrupted zone.
    #[arg(long, default_value_t = 0.01)]
    secondary_node_eviction_rate: f32,

    /// The share of not-ready nodes (at least 3) that makes a zone partially disrupted.
    #[arg(long, default_value_t = 0.55)]
    unhealthy_zone_threshold: f32,

    /// Zones up to this size stop evicting when partially disrupted.
    #[arg(long, default_value_t = 50)]
    large_cluster_size_threshold: u32,

    /// Finished pods kept before the oldest are deleted; 0 disables.
    #[arg(long, default_value_t = 12500)]
    terminated_pod_gc_threshold: u32,

    /// How often pod GC runs (fixed at 20 s upstream; for tests).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration, hide = true)]
    pod_gc_period: Duration,

    /// How long a node is missing before pod GC deletes its pods (fixed at 40 s upstream; for tests).
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration, hide = true)]
    pod_gc_quarantine: Duration,
}

impl ControllerFlags {
    /// The controller manager's options, checked as upstream checks them.
    pub fn options(&self) -> Result<ControllerManagerOptions> {
        let options = ControllerManagerOptions {
            cluster_cidr: self.cluster_cidr,
            node_cidr_mask_size: self.node_cidr_mask_size,
            node_monitor_period: self.node_monitor_period,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_startup_grace_period: self.node_startup_grace_period,
            node_eviction_rate: self.node_eviction_rate,
            secondary_node_eviction_rate: self.secondary_node_eviction_rate,
            unhealthy_zone_threshold: self.unhealthy_zone_threshold,
            large_cluster_size_threshold: self.large_cluster_size_threshold,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            pod_gc_period: self.pod_gc_period,
            pod_gc_quarantine: self.pod_gc_quarantine,
        };
        options.validate().map_err(anyhow::Error::msg)?;
        Ok(options)
    }
}

pub enum Component {
    Scheduler,
    ControllerManager,
}

impl ComponentArgs {
    pub fn run(self, component: Component) -> Result<()> {
        let options = self.controllers.options()?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        runtime.block_on(async {
            let text = std::fs::read_to_string(&self.kubeconfig)
                .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
            let client = crate::server::client(&text).await?;
            let shutdown = async {
                if let Err(err) = crate::server::shutdown_signal().await {
                    tracing::warn!(%err, "waiting for a shutdown signal");
                }
            };
            match component {
                Component::Scheduler => {
                    capstan_scheduler::run(client, capstan_scheduler::SchedulerOptions::default(), shutdown).await
                }
                Component::ControllerManager => capstan_controller_manager::run(client, options, shutdown).await,
            }
            Ok(())
        })
    }
}
