//! `capstan scheduler` and `capstan controller-manager`: one control-plane
//! component on its own, against any API server, as upstream runs
//! kube-scheduler and kube-controller-manager beside kube-apiserver.
//! `capstan server` runs the same components in-process through
//! [`Component::run`], under the same leader election.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_controller_manager::ControllerManagerOptions;
use capstan_leaderelection::{Config, LeaseLock};
use clap::Args;
use ipnet::IpNet;

#[derive(Args)]
pub struct ComponentArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,

    #[command(flatten)]
    leader_election: LeaderElectionArgs,

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

    /// The controllers to run: '*' enables all on-by-default controllers, 'foo' enables
    /// the controller named 'foo', '-foo' disables it (e.g. '*,-servicelb').
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
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
            root_ca: None,
            controllers: self.controllers.clone(),
        };
        options.validate().map_err(anyhow::Error::msg)?;
        Ok(options)
    }
}

/// Upstream's `--leader-elect*` flags.
#[derive(Args, Clone)]
pub struct LeaderElectionArgs {
    /// Elect a leader through a Lease before acting, so that several copies
    /// can run and exactly one acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,

    /// How long non-leaders wait after the last observed renewal before taking over.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    leader_elect_lease_duration: Duration,

    /// How long the leader retries renewing before it stops acting.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    leader_elect_renew_deadline: Duration,

    /// How often candidates try to acquire and the leader renews.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    leader_elect_retry_period: Duration,

    /// The namespace of the Leases (named kube-scheduler and kube-controller-manager).
    #[arg(long, default_value = "kube-system")]
    leader_elect_resource_namespace: String,
}

impl LeaderElectionArgs {
    fn config(&self) -> Config {
        Config {
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        }
    }
}

#[derive(Clone, Copy)]
pub enum Component {
    Scheduler,
    ControllerManager,
}

impl Component {
    /// The Lease the component's candidates compete for (upstream's names).
    fn lease_name(self) -> &'static str {
        match self {
            Component::Scheduler => "kube-scheduler",
            Component::ControllerManager => "kube-controller-manager",
        }
    }

    /// The user the in-process component authenticates as (upstream's).
    pub fn user(self) -> &'static str {
        match self {
            Component::Scheduler => "system:kube-scheduler",
            Component::ControllerManager => "system:kube-controller-manager",
        }
    }

    /// Runs the component until `shutdown`, acting only while it leads
    /// (unless leader election is off).
    pub async fn run(
        self,
        client: kube::Client,
        election: &LeaderElectionArgs,
        options: &ControllerManagerOptions,
        shutdown: impl Future<Output = ()>,
    ) {
        let work = || {
            let (client, options) = (client.clone(), options.clone());
            async move {
                let forever = std::future::pending::<()>();
                match self {
                    Component::Scheduler => {
                        capstan_scheduler::run(client, capstan_scheduler::SchedulerOptions::default(), forever).await
                    }
                    Component::ControllerManager => capstan_controller_manager::run(client, options, forever).await,
                }
            }
        };
        if !election.leader_elect {
            tokio::select! {
                _ = work() => {}
                _ = shutdown => {}
            }
            return;
        }
        let identity = capstan_leaderelection::identity();
        let namespace = &election.leader_elect_resource_namespace;
        let lock = LeaseLock::new(client.clone(), namespace, self.lease_name(), identity);
        capstan_leaderelection::run_while_leader(lock, election.config(), shutdown, work).await;
    }
}

impl ComponentArgs {
    pub fn run(self, component: Component) -> Result<()> {
        let mut options = self.controllers.options()?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        runtime.block_on(async {
            let text = std::fs::read_to_string(&self.kubeconfig)
                .with_context(|| format!("reading {}", self.kubeconfig.display()))?;
            options.root_ca = root_ca_of(&text);
            let client = crate::server::client(&text).await?;
            let shutdown = async {
                if let Err(err) = crate::server::shutdown_signal().await {
                    tracing::warn!(%err, "waiting for a shutdown signal");
                }
            };
            component.run(client, &self.leader_election, &options, shutdown).await;
            Ok(())
        })
    }
}

/// The cluster CA a kubeconfig trusts (its first cluster's
/// `certificate-authority-data`): what the controller manager publishes as
/// `kube-root-ca.crt` when run on its own.
fn root_ca_of(kubeconfig: &str) -> Option<String> {
    use base64::Engine as _;
    let config = kube::config::Kubeconfig::from_yaml(kubeconfig).ok()?;
    let data = config
        .clusters
        .first()?
        .cluster
        .as_ref()?
        .certificate_authority_data
        .clone()?;
    let pem = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    String::from_utf8(pem).ok()
}
