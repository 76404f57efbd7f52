//! `capstan server`: the control plane on this machine.
//!
//! Today it opens the datastore and keeps its history compacted; the API
//! server, scheduler, controller manager and the node's components join
//! here as they are built.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_store::{CompactionPolicy, Endpoint};
use clap::Args;

#[derive(Args)]
pub struct ServerArgs {
    /// Where Capstan keeps its state: the SQLite database, certificates, agent data.
    #[arg(long, default_value = "/var/lib/capstan", env = "CAPSTAN_DATA_DIR")]
    data_dir: PathBuf,

    /// The datastore: `sqlite://PATH` (default: <data-dir>/server/db/state.db)
    /// or `etcd://HOST:PORT[,HOST:PORT...]` for an etcd v3 cluster.
    #[arg(long, env = "CAPSTAN_DATASTORE_ENDPOINT")]
    datastore_endpoint: Option<String>,

    /// How much history to keep: the store is compacted to the revision that
    /// was current this long ago (as upstream's --etcd-compaction-interval). 0 disables.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    etcd_compaction_interval: Duration,
}

impl ServerArgs {
    fn endpoint(&self) -> Result<Endpoint> {
        let default = || format!("sqlite://{}", self.data_dir.join("server/db/state.db").display());
        let text = self.datastore_endpoint.clone().unwrap_or_else(default);
        Ok(Endpoint::parse(&text)?)
    }

    fn compaction(&self) -> Option<CompactionPolicy> {
        let window = self.etcd_compaction_interval;
        (!window.is_zero()).then(|| CompactionPolicy {
            window,
            interval: (window / 5).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            ..CompactionPolicy::default()
        })
    }
}

pub fn run(args: ServerArgs) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> Result<()> {
    let endpoint = args.endpoint()?;
    if let Endpoint::Sqlite(path) = &endpoint {
        prepare_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    let store = capstan_store::open(&endpoint)
        .await
        .with_context(|| format!("opening the datastore {endpoint:?}"))?;
    let revision = store.current_revision().await?;
    tracing::info!(?endpoint, revision, "datastore open");
    tracing::warn!("the API server is not built yet (issue #3): nothing serves the Kubernetes API");

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let compactor = args
        .compaction()
        .map(|policy| tokio::spawn(capstan_store::compaction::run(store.clone(), policy, stopped)));

    shutdown_signal().await?;
    tracing::info!("shutting down");
    let _ = stop.send(true);
    if let Some(compactor) = compactor {
        compactor.await.context("compaction task")?;
    }
    Ok(())
}

/// Creates the state directory, readable by its owner only.
fn prepare_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
    }
    Ok(())
}
