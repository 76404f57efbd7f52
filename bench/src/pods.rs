//! `capstan-bench pods`: pod startup latency on a real node (issue 5),
//! next to the floor the container runtime itself sets, measured in the
//! same run on the same machine.
//!
//! 1. **Raw CRI floor** ([`floor`]): Capstan's containerd on its own, driven
//!    directly over CRI as a kubelet would — `RunPodSandbox` (with CNI) +
//!    `CreateContainer` + `StartContainer` for a busybox container, one pod
//!    after another.
//! 2. **`capstan server`** with its node ([`node`]): time from spawn to the
//!    node Ready, on a fresh data dir and again on a restart (pause image
//!    present, the target's case); then pod startup latency — create →
//!    `Running` seen by a watch — for pods one after another and all at once
//!    (upstream's pod startup SLI); the server's RSS with 20 running pods
//!    (containerd is a separate process and not counted).
//!
//! Both use their own bridge, subnet and cgroup root, and are cleaned up
//! with `killall` however the benchmark ends. The real node runs under the
//! machine-wide lock the end-to-end tests take, so it never meets another
//! node on this machine.

mod floor;
mod node;

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::api::server::locate_binary;
use crate::positive_usize;
use crate::report::{self, Machine};
use crate::stats::{self, Latency};

/// The image every benchmark pod runs: Debian's static busybox.
const IMAGE: &str = "docker.io/capstan-bench/busybox:1";

#[derive(Debug, Args)]
pub struct PodsArgs {
    /// The `capstan` binary (default: the release build next to this benchmark).
    #[arg(long)]
    pub capstan: Option<PathBuf>,
    /// Pods per phase (one after another, and all at once).
    #[arg(long, default_value_t = 30, value_parser = positive_usize)]
    pub pods: usize,
    /// Sandbox+container starts measured for the raw CRI floor.
    #[arg(long, default_value_t = 10, value_parser = positive_usize)]
    pub floor_runs: usize,
    /// Running pods while the server's RSS is read.
    #[arg(long, default_value_t = 20, value_parser = positive_usize)]
    pub rss_pods: usize,
    /// Where the temporary data dirs go (default: the system's temp dir).
    /// A tmpfs such as /dev/shm keeps the node out of DiskPressure when the
    /// disk is above the kubelet's eviction threshold (10% free).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Keep the server's log here (it is removed with the data dir otherwise).
    #[arg(long)]
    pub server_log: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// The targets of `docs/targets.md` for issue 5.
#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    pub startup_p99_over_floor_ms: f64,
    pub server_rss_mib_with_20_pods: f64,
    pub node_ready_after_start_secs: f64,
}

const TARGETS: Targets = Targets {
    startup_p99_over_floor_ms: 250.0,
    server_rss_mib_with_20_pods: 150.0,
    node_ready_after_start_secs: 3.0,
};

#[derive(Debug, Serialize)]
pub struct PodsReport {
    pub benchmark: &'static str,
    pub started_at_unix: u64,
    pub machine: Machine,
    pub capstan_binary: String,
    /// Where the data dirs were (file system type matters for containerd).
    pub data_root: String,
    pub targets: Targets,
    /// RunPodSandbox + CreateContainer + StartContainer, directly on containerd.
    pub raw_cri_floor: Option<floor::Floor>,
    pub node: Option<node::NodeResults>,
    pub meets_targets: Meets,
    pub errors: Vec<String>,
    pub load_average_end: Option<[f64; 3]>,
}

#[derive(Debug, Default, Serialize)]
pub struct Meets {
    pub sequential_startup: Option<bool>,
    pub concurrent_startup: Option<bool>,
    pub server_rss: Option<bool>,
    pub node_ready_on_restart: Option<bool>,
}

pub async fn run(args: PodsArgs) -> Result<()> {
    let binary = locate_binary(args.capstan.as_deref())?;
    let machine = Machine::detect();
    eprintln!(
        "capstan-bench pods: {}, {} pods per phase, {} cores",
        binary.display(),
        args.pods,
        machine.cores
    );
    let started_at_unix = report::unix_now();
    let data_root = args.data_root.clone().unwrap_or_else(std::env::temp_dir);
    let mut errors = Vec::new();

    eprintln!(
        "[floor] raw CRI: {} sandbox+container starts, then {} at once",
        args.floor_runs, args.pods
    );
    let raw_cri_floor = match floor::measure(&data_root, args.floor_runs, args.pods).await {
        Ok(latency) => Some(latency),
        Err(err) => {
            errors.push(format!("raw CRI floor: {err:#}"));
            None
        }
    };
    let node = match node::measure(
        &binary,
        &data_root,
        args.pods,
        args.rss_pods,
        args.server_log.as_deref(),
    )
    .await
    {
        Ok(results) => Some(results),
        Err(err) => {
            errors.push(format!("capstan node: {err:#}"));
            None
        }
    };
    let meets = meets(raw_cri_floor.as_ref(), node.as_ref());
    let report = PodsReport {
        benchmark: "pods",
        started_at_unix,
        machine,
        capstan_binary: binary.display().to_string(),
        data_root: data_root.display().to_string(),
        targets: TARGETS,
        raw_cri_floor,
        node,
        meets_targets: meets,
        errors,
        load_average_end: report::load_average(),
    };
    eprint!("{}", summary(&report));
    report::emit(&report, args.json_out.as_deref())
}

fn meets(floor: Option<&floor::Floor>, node: Option<&node::NodeResults>) -> Meets {
    let Some(node) = node else { return Meets::default() };
    let within =
        |l: Option<&Latency>, f: Option<&Latency>| Some(l?.p99_ms <= f?.p99_ms + TARGETS.startup_p99_over_floor_ms);
    Meets {
        sequential_startup: within(node.sequential.as_ref(), floor.map(|f| &f.sequential)),
        concurrent_startup: within(node.concurrent.as_ref(), floor.map(|f| &f.concurrent)),
        server_rss: node
            .server_rss_mib
            .map(|rss| rss <= TARGETS.server_rss_mib_with_20_pods),
        node_ready_on_restart: node
            .node_ready_restart_secs
            .map(|s| s <= TARGETS.node_ready_after_start_secs),
    }
}

fn summary(report: &PodsReport) -> String {
    let mut s = String::from("\n== capstan-bench pods ==\n");
    let latency = |l: &Latency| format!("p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms", l.p50_ms, l.p99_ms, l.max_ms);
    if let Some(floor) = &report.raw_cri_floor {
        s += &format!(
            "raw CRI floor (sandbox+create+start), one after another: {}\n",
            latency(&floor.sequential)
        );
        s += &format!(
            "raw CRI floor, {} at once: {}\n",
            floor.concurrent_pods,
            latency(&floor.concurrent)
        );
    }
    if let Some(node) = &report.node {
        let secs = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} s"));
        s += &format!(
            "node Ready after start: fresh {}, restart {}\n",
            secs(node.node_ready_fresh_secs),
            secs(node.node_ready_restart_secs)
        );
        if let Some(ms) = node.first_pod_after_restart_ms {
            s += &format!("first pod after the restart (not counted): {ms:.0} ms\n");
        }
        if let Some(l) = &node.sequential {
            s += &format!("{} pods one after another: {}\n", node.pods, latency(l));
        }
        if let Some(l) = &node.concurrent {
            s += &format!("{} pods at once: {}\n", node.pods, latency(l));
        }
        if let Some(rss) = node.server_rss_mib {
            s += &format!("capstan server RSS with {} pods: {rss:.1} MiB\n", node.rss_pods);
        }
    }
    for err in &report.errors {
        s += &format!("error: {err}\n");
    }
    s
}

/// Latency percentiles of a set of durations.
fn latency_of(samples: &[std::time::Duration]) -> Latency {
    let mut hist = stats::new_histogram();
    for sample in samples {
        stats::record(&mut hist, *sample);
    }
    Latency::of(&hist)
}
