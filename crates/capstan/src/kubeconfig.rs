//! API clients for the parts that run on their own against a server
//! (`capstan agent`, `capstan proxy`): a kubeconfig file, optionally
//! pointed at another API server URL, as upstream's `--kubeconfig` and
//! `--master` work together.

use std::path::Path;

use anyhow::{Context, Result};

/// A client from the kubeconfig at `path`; `server` replaces its cluster URL.
pub async fn client(path: &Path, server: Option<&str>) -> Result<kube::Client> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text).context("parsing the kubeconfig")?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("configuring the API client")?;
    if let Some(server) = server {
        config.cluster_url = server.parse().with_context(|| format!("--server {server:?}"))?;
    }
    Ok(kube::Client::try_from(config)?)
}
