//! What the kernel holds: the proxy's nftables table read back with the
//! `nft` tool (the same view an administrator has), in the benchmark's
//! network namespace.
//!
//! Reading a table of 11,000 chains is not free — `nft list chain` fetches
//! the whole table first (a quarter of a second here) and holds the netlink
//! lock the proxy's own `nft` needs — so nothing here polls a listing:
//! [`Monitor`] is told by the kernel when a transaction commits, and the
//! listings only verify afterwards. (The monitor is used for small
//! changes only: with a listener the kernel builds an event for every
//! object of a commit, which would slow the proxy's initial sync.)

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::api::server::die_with_parent;

/// The proxy's table (`capstan proxy` always uses this one).
pub const TABLE: &str = "capstan-proxy";

/// Runs `nft <args>`; its stdout, and how long the call took.
async fn nft(args: &[&str]) -> Result<(String, Duration)> {
    let started = Instant::now();
    let output = tokio::process::Command::new("nft")
        .args(args)
        .output()
        .await
        .context("running nft (is nftables installed?)")?;
    if !output.status.success() {
        bail!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok((String::from_utf8_lossy(&output.stdout).into_owned(), started.elapsed()))
}

/// The `service-ips` map: ClusterIP → the chain its traffic goes to (the
/// benchmark's Services have one port each). Fails while the table is absent.
pub async fn service_chains() -> Result<(BTreeMap<Ipv4Addr, String>, Duration)> {
    let (json, took) = nft(&["-j", "list", "map", "ip", TABLE, "service-ips"]).await?;
    Ok((parse_service_ips(&json)?, took))
}

fn parse_service_ips(json: &str) -> Result<BTreeMap<Ipv4Addr, String>> {
    let value: Value = serde_json::from_str(json).context("parsing nft's JSON")?;
    let map = value["nftables"]
        .as_array()
        .and_then(|items| items.iter().find_map(|item| item.get("map")))
        .context("no map in nft's answer")?;
    let elements = map["elem"].as_array().map_or(&[][..], Vec::as_slice);
    Ok(elements
        .iter()
        .filter_map(|element| {
            let ip = element[0]["concat"][0].as_str()?.parse().ok()?;
            let target = element[1]["goto"]["target"].as_str()?;
            Some((ip, target.to_string()))
        })
        .collect())
}

/// One chain as `nft list chain` prints it.
pub async fn chain(name: &str) -> Result<(String, Duration)> {
    nft(&["list", "chain", "ip", TABLE, name]).await
}

/// The per-endpoint chain a service chain jumps to for `ip:port`, if any.
/// The proxy names them `sep-<hash>-<ns>/<service>/<port>/<ip>.<port>`.
pub fn endpoint_chain(service_chain: &str, ip: Ipv4Addr, port: u16) -> Option<String> {
    let suffix = format!("/{ip}.{port}");
    service_chain
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '{' | '}' | '"'))
        .find(|token| token.starts_with("sep-") && token.ends_with(&suffix))
        .map(str::to_string)
}

/// `nft monitor`: every rule the kernel commits, stamped when it arrives.
/// The kernel sends the events once the transaction is committed, so an
/// event's arrival is the moment the rule is in force.
pub struct Monitor {
    _child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
}

/// Tables the monitor's readiness probe creates (and deletes once seen).
const PROBE_TABLE: &str = "capstan-bench-probe";

impl Monitor {
    /// Starts `nft monitor` and waits until it reports a probe table of
    /// ours, so that no event after this returns is missed.
    pub async fn start() -> Result<Monitor> {
        let mut command = std::process::Command::new("nft");
        command
            .arg("monitor")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        let mut child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .context("starting nft monitor")?;
        let stdout = child.stdout.take().context("nft monitor's stdout")?;
        let (send, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if send.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let mut monitor = Monitor { _child: child, lines };
        monitor.probe().await?;
        Ok(monitor)
    }

    /// Creates probe tables until the monitor reports one, waiting longer
    /// each time. Patience matters: on start the monitor dumps the whole
    /// ruleset, and restarts the dump whenever the ruleset changes under it
    /// — probing faster than a big table dumps would starve it for ever.
    async fn probe(&mut self) -> Result<()> {
        let mut result = Err(anyhow::anyhow!("nft monitor reported none of the probe tables"));
        let mut created = Vec::new();
        for attempt in 0..5u32 {
            let table = format!("{PROBE_TABLE}-{attempt}");
            nft(&["add", "table", "ip", &table]).await?;
            created.push(table.clone());
            if self
                .reported(&format!("add table ip {table}"), Duration::from_secs(1 << attempt))
                .await?
            {
                result = Ok(());
                break;
            }
        }
        for table in created {
            nft(&["delete", "table", "ip", &table]).await?;
        }
        result
    }

    /// Whether a line starting with `wanted` arrives within `patience`.
    async fn reported(&mut self, wanted: &str, patience: Duration) -> Result<bool> {
        Ok(self.line(|line| line.starts_with(wanted), patience).await?.is_some())
    }

    /// When a line that `matches` arrived, or None if none did within `patience`.
    async fn line(&mut self, matches: impl Fn(&str) -> bool, patience: Duration) -> Result<Option<Instant>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some((at, line))) if matches(&line) => return Ok(Some(at)),
                Ok(Some(_)) => {}
                Ok(None) => bail!("nft monitor exited"),
                Err(_) => return Ok(None),
            }
        }
    }

    /// Waits for a rule added to `chain` that `matches`; when it arrived.
    pub async fn added_rule(
        &mut self,
        chain: &str,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<Instant> {
        let prefix = format!("add rule ip {TABLE} {chain} ");
        self.line(|line| line.starts_with(&prefix) && matches(line), timeout)
            .await?
            .with_context(|| format!("no matching rule in {chain} within {timeout:?}"))
    }

    /// Forgets the events so far (those of earlier changes).
    pub fn drain(&mut self) {
        while self.lines.try_recv().is_ok() {}
    }
}

/// Sizes of the whole table, counted once the proxy has programmed it.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TableCounts {
    pub chains: usize,
    pub rules: usize,
    /// `dnat to` rules: one per programmed endpoint.
    pub dnat_rules: usize,
    /// Bytes of `nft list table` output.
    pub listing_bytes: usize,
}

pub async fn table_counts() -> Result<TableCounts> {
    let (text, _) = nft(&["list", "table", "ip", TABLE]).await?;
    Ok(count(&text))
}

fn count(listing: &str) -> TableCounts {
    let mut counts = TableCounts {
        listing_bytes: listing.len(),
        ..TableCounts::default()
    };
    let mut in_map = false;
    for line in listing.lines().map(str::trim) {
        if line.starts_with("chain ") {
            counts.chains += 1;
            in_map = false;
        } else if line.starts_with("map ") || line.starts_with("set ") {
            in_map = true;
        } else if line == "}" {
            in_map = false;
        } else if !in_map && !line.is_empty() && !line.starts_with("type ") && !line.starts_with("table ") {
            counts.rules += 1;
            counts.dnat_rules += usize::from(line.contains("dnat to"));
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_service_map() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "ip",
            "name": "service-ips", "table": "capstan-proxy", "map": "verdict", "elem": [
            [{"concat": ["10.43.0.5", "tcp", 80]}, {"goto": {"target": "svc-1234abcd-bench/svc-0001/http"}}]]}}]}"#;
        let map = parse_service_ips(json).unwrap();
        assert_eq!(map[&Ipv4Addr::new(10, 43, 0, 5)], "svc-1234abcd-bench/svc-0001/http");
    }

    #[test]
    fn finds_endpoint_chains_exactly() {
        let chain = "table ip capstan-proxy {\n\tchain svc-1 {\n\t\tnumgen random mod 2 vmap { 0 : goto \
                     sep-aa-ns/svc/http/10.44.0.10.8080, 1 : goto sep-bb-ns/svc/http/10.44.0.1.8080 }\n\t}\n}";
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            endpoint_chain(chain, ip("10.44.0.1"), 8080).as_deref(),
            Some("sep-bb-ns/svc/http/10.44.0.1.8080")
        );
        assert_eq!(endpoint_chain(chain, ip("10.44.0.2"), 8080), None);
        assert_eq!(endpoint_chain(chain, ip("10.44.0.1"), 80), None);
    }

    #[test]
    fn counts_chains_and_rules_but_not_map_elements() {
        let listing = "table ip capstan-proxy {\n\tmap service-ips {\n\t\ttype ipv4_addr : verdict\n\t\telements = { 1 }\n\t}\n\
                       \tchain sep-1 {\n\t\tip saddr 10.44.0.1 jump mark-for-masquerade\n\t\tmeta l4proto tcp dnat to 10.44.0.1:8080\n\t}\n\
                       \tchain svc-1 {\n\t\tnumgen random mod 1 vmap { 0 : goto sep-1 }\n\t}\n}\n";
        let counts = count(listing);
        assert_eq!((counts.chains, counts.rules, counts.dnat_rules), (2, 3, 1));
    }
}
