//! `capstan-bench`: benchmark programs for Capstan. Each subcommand prints one
//! JSON document on stdout (for tooling and the issue tracker) and a short
//! human summary plus progress on stderr.

mod api;
mod dns;
mod lease_churn;
mod pods;
mod raw;
mod report;
mod scheduler;
mod services;
mod stats;
mod store;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "capstan-bench",
    version,
    about = "Benchmark programs for Capstan (JSON on stdout, summary on stderr)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Put/get/list/watch throughput and latency of the store on each backend
    /// at several concurrency levels, against the raw engine underneath.
    Store(store::StoreArgs),
    /// Database size of the SQLite store under node-lease churn with
    /// compaction, in compressed simulated time.
    LeaseChurn(lease_churn::ChurnArgs),
    /// Create/get/list/watch latency and throughput of the Kubernetes API
    /// served by `capstan server` (SQLite and etcd) against the targets.
    Api(api::ApiArgs),
    /// Scheduling throughput on thousands of hollow nodes (upstream
    /// scheduler_perf's scenarios) and the server's peak memory.
    Scheduler(scheduler::SchedulerArgs),
    /// Pod startup latency on a real node (containerd) next to the raw CRI
    /// floor, node Ready time and the server's memory with running pods.
    Pods(pods::PodsArgs),
    /// Service proxy at 1,000 Services / 10,000 endpoints: initial sync and
    /// single endpoint changes to the kernel, inside a network namespace of
    /// its own (needs root).
    Services(services::ServicesArgs),
    /// Cluster DNS queries/s and latency from UDP clients on loopback (A
    /// records of Services, NXDOMAIN) against `capstan server`.
    Dns(dns::DnsArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Services(_) = cli.command {
        // Before the runtime's threads exist, so that they and every child are inside.
        services::netns::enter()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Command::Store(args) => runtime.block_on(store::run(args)),
        Command::LeaseChurn(args) => runtime.block_on(lease_churn::run(args)),
        Command::Api(args) => runtime.block_on(api::run(args)),
        Command::Scheduler(args) => runtime.block_on(scheduler::run(args)),
        Command::Pods(args) => runtime.block_on(pods::run(args)),
        Command::Services(args) => runtime.block_on(services::run(args)),
        Command::Dns(args) => runtime.block_on(dns::run(args)),
    }
}

/// Parses a positive integer (counts and concurrency levels).
fn positive_usize(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a positive, finite number of seconds (fractions allowed for quick runs).
fn positive_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be a positive number".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn store_defaults() {
        let cli = Cli::try_parse_from(["capstan-bench", "store"]).unwrap();
        let Command::Store(args) = cli.command else {
            panic!("not store")
        };
        assert_eq!(args.backends, vec![store::Backend::Sqlite, store::Backend::Etcd]);
        assert_eq!(args.concurrency, vec![1, 16, 64]);
        assert_eq!(args.duration_secs, 5.0);
        assert_eq!(args.value_bytes, 512);
        assert_eq!(args.json_out, None);
    }

    #[test]
    fn store_lists_and_overrides() {
        let cli = Cli::try_parse_from([
            "capstan-bench",
            "store",
            "--backends",
            "etcd",
            "--concurrency",
            "2,8",
            "--duration-secs",
            "0.5",
            "--value-bytes",
            "100",
            "--json-out",
            "/tmp/x.json",
        ])
        .unwrap();
        let Command::Store(args) = cli.command else {
            panic!("not store")
        };
        assert_eq!(args.backends, vec![store::Backend::Etcd]);
        assert_eq!(args.concurrency, vec![2, 8]);
        assert_eq!(args.duration_secs, 0.5);
        assert_eq!(args.value_bytes, 100);
        assert_eq!(args.json_out.as_deref(), Some(std::path::Path::new("/tmp/x.json")));
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &["store", "--backends", "postgres"][..],
            &["store", "--concurrency", "0"],
            &["store", "--duration-secs", "-1"],
            &["store", "--value-bytes", "8"],
            &["lease-churn", "--nodes", "0"],
            &["lease-churn", "--hours", "nan"],
        ] {
            let argv = std::iter::once("capstan-bench").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn services_and_dns_defaults() {
        let cli = Cli::try_parse_from(["capstan-bench", "services"]).unwrap();
        let Command::Services(args) = cli.command else {
            panic!("not services")
        };
        assert_eq!(
            (args.services, args.endpoints_per_service, args.changes),
            (1000, 10, 20)
        );
        assert_eq!(args.min_sync_period_ms, 1000.0);
        let cli = Cli::try_parse_from(["capstan-bench", "dns", "--concurrency", "2,16"]).unwrap();
        let Command::Dns(args) = cli.command else {
            panic!("not dns")
        };
        assert_eq!((args.services, args.duration_secs), (100, 5.0));
        assert_eq!(args.concurrency, vec![2, 16]);
        assert!(Cli::try_parse_from(["capstan-bench", "services", "--services", "0"]).is_err());
        assert!(Cli::try_parse_from(["capstan-bench", "dns", "--timeout-ms", "-5"]).is_err());
    }

    #[test]
    fn lease_churn_defaults() {
        let cli = Cli::try_parse_from(["capstan-bench", "lease-churn", "--hours", "2"]).unwrap();
        let Command::LeaseChurn(args) = cli.command else {
            panic!("not lease-churn")
        };
        assert_eq!(args.nodes, 1000);
        assert_eq!(args.renew_secs, 10.0);
        assert_eq!(args.hours, 2.0);
        assert_eq!(args.window_secs, 300);
        assert_eq!(args.interval_secs, 60);
        assert_eq!(args.concurrency, 64);
        assert_eq!(args.total_writes(), 720_000);
    }
}
