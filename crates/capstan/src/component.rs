//! `capstan scheduler` and `capstan controller-manager`: one control-plane
//! component on its own, against any API server, as upstream runs
//! kube-scheduler and kube-controller-manager beside kube-apiserver.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub struct ComponentArgs {
    /// The kubeconfig to reach the API server with.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
}

pub enum Component {
    Scheduler,
    ControllerManager,
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
            match component {
                Component::Scheduler => {
                    capstan_scheduler::run(client, capstan_scheduler::SchedulerOptions::default(), shutdown).await
                }
                Component::ControllerManager => capstan_controller_manager::run(client, shutdown).await,
            }
            Ok(())
        })
    }
}
