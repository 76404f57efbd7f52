//! The nodes under test: `capstan agent --simulate N` (hollow nodes) as a
//! child process against the benchmark's server. [`Agent`] is a drop
//! guard: the process gets SIGTERM by its PID (SIGKILL after 10 s).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::ListParams;

pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Starts `count` hollow nodes in `zones` zones, logging to `log`.
    pub fn start(binary: &Path, kubeconfig: &Path, count: usize, zones: u32, log: PathBuf) -> Result<Agent> {
        let stderr = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .arg("agent")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--simulate", &count.to_string(), "--simulate-zones", &zones.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {} agent", binary.display()))?;
        Ok(Agent { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `count` nodes are Ready.
    pub async fn wait_ready(&mut self, client: &kube::Client, count: usize, timeout: Duration) -> Result<()> {
        let nodes: Api<Node> = Api::all(client.clone());
        let deadline = Instant::now() + timeout;
        let mut ready = 0;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking on the agent")? {
                bail!("capstan agent exited with {status}; log:\n{}", self.log_tail(20));
            }
            let list = nodes.list(&ListParams::default()).await.context("listing nodes")?;
            ready = list.items.iter().filter(|n| is_ready(n)).count();
            if ready >= count {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!(
            "only {ready} of {count} nodes Ready within {} s; agent log:\n{}",
            timeout.as_secs(),
            self.log_tail(20)
        )
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Drop for Agent {
    fn drop(&mut self) {
        crate::api::server::stop_child(&mut self.child, "capstan agent", Duration::from_secs(10));
    }
}
