//! `capstan scheduler` and `capstan controller-manager`: one control-plane
//! component on its own, against any API server, as upstream runs
//! kube-scheduler and kube-controller-manager beside kube-apiserver.
//! `capstan server` runs the same components in-process through
//! [`Component::run`], under the same leader election.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_leaderelection::{Config, LeaseLock};
use clap::Args;

#[derive(Args)]
pub struct ComponentArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,

    #[command(flatten)]
    leader_election: LeaderElectionArgs,
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
    pub async fn run(self, client: kube::Client, election: &LeaderElectionArgs, shutdown: impl Future<Output = ()>) {
        let work = || {
            let client = client.clone();
            async move {
                let forever = std::future::pending::<()>();
                match self {
                    Component::Scheduler => {
                        capstan_scheduler::run(client, capstan_scheduler::SchedulerOptions::default(), forever).await
                    }
                    Component::ControllerManager => capstan_controller_manager::run(client, forever).await,
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
            component.run(client, &self.leader_election, shutdown).await;
            Ok(())
        })
    }
}
