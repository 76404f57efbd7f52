//! The system under test: a real `capstan proxy` process against the
//! benchmark's server, logging each sync's size and timing (the proxy's
//! debug line "proxy rules synced") to a file the benchmark reads back.
//! [`Proxy`] is a drop guard: the process gets SIGTERM by its PID (and
//! SIGKILL if it lingers), and the kernel kills it should the benchmark die
//! first.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tempfile::TempDir;

use crate::api::server::{die_with_parent, stop_child};

/// How long the proxy may take to remove its table after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Proxy {
    child: Child,
    /// When the process was spawned: the start of the initial-sync clock.
    pub started: Instant,
    log: PathBuf,
    /// Declared after `child`: removed once the process is gone.
    _dir: TempDir,
}

impl Proxy {
    /// Spawns `capstan proxy` against the server of `kubeconfig`.
    pub fn start(binary: &Path, kubeconfig: &Path, root: &Path, min_sync_period: Duration) -> Result<Proxy> {
        let dir = tempfile::Builder::new()
            .prefix("capstan-bench-proxy-")
            .tempdir_in(root)
            .with_context(|| format!("creating a temporary directory in {}", root.display()))?;
        let log = dir.path().join("proxy.log");
        let stderr = File::create(&log).context("creating the proxy log")?;
        let mut command = Command::new(binary);
        command
            .arg("proxy")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--hostname-override", "bench-node", "--service-cidr", "10.43.0.0/16"])
            .arg("--nftables-min-sync-period")
            .arg(format!("{}ms", min_sync_period.as_millis()))
            .env("RUST_LOG", "warn,capstan_proxy=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        die_with_parent(&mut command);
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("starting {} proxy", binary.display()))?;
        Ok(Proxy {
            child,
            started,
            log,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails (quoting the log) if the proxy has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking on the proxy")? {
            bail!("capstan proxy exited with {status}; log:\n{}", self.log_tail(20));
        }
        Ok(())
    }

    /// Every sync the proxy has logged so far, in order.
    pub fn syncs(&self) -> Vec<SyncLine> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(SyncLine::parse).collect()
    }

    /// Warnings and errors the proxy logged (at most `limit`).
    pub fn problems(&self, limit: usize) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .take(limit)
            .map(str::to_string)
            .collect()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then waits while the proxy removes its table; how long that took.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        stop_child(&mut self.child, "capstan proxy", STOP_TIMEOUT);
        started.elapsed()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        stop_child(&mut self.child, "capstan proxy", STOP_TIMEOUT);
    }
}

/// One "proxy rules synced" line: the size of what was programmed and
/// where the time went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SyncLine {
    pub service_ips: u64,
    pub chains: u64,
    /// Bytes of the nft script handed to the kernel (whole table, or the diff).
    pub script_bytes: u64,
    /// Building the ruleset and the script in memory.
    pub build_ms: f64,
    /// `nft -f -` taking the transaction.
    pub apply_ms: f64,
}

impl SyncLine {
    fn parse(line: &str) -> Option<SyncLine> {
        if !line.contains("proxy rules synced") {
            return None;
        }
        let field = |name: &str| {
            let prefix = format!("{name}=");
            line.split_whitespace()
                .find_map(|token| token.strip_prefix(prefix.as_str()))
                .and_then(|v| v.parse::<f64>().ok())
        };
        let whole = |name: &str| field(name).map(|v| v as u64);
        Some(SyncLine {
            service_ips: whole("service_ips")?,
            chains: whole("chains")?,
            script_bytes: whole("script_bytes")?,
            build_ms: field("build_ms")?,
            apply_ms: field("apply_ms")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proxys_sync_line() {
        let line = "2026-12-07T14:40:00.123456Z DEBUG capstan_proxy::sync: proxy rules synced service_ips=1000 \
                    chains=11000 script_bytes=2345678 build_ms=81.5 apply_ms=912.25";
        assert_eq!(
            SyncLine::parse(line),
            Some(SyncLine {
                service_ips: 1000,
                chains: 11000,
                script_bytes: 2_345_678,
                build_ms: 81.5,
                apply_ms: 912.25,
            })
        );
        assert_eq!(SyncLine::parse("INFO capstan_proxy: service proxy starting"), None);
    }
}
