//! `capstan-bench scheduler`: scheduling throughput of `capstan server` on
//! thousands of hollow nodes, modelled on upstream's scheduler_perf, against
//! the targets in `shared/docs/targets.md`:
//!
//! * (a) basic pods, 5,000 nodes / 10,000 pods: ≥ 1,000 pods/s;
//! * (b) required pod anti-affinity per hostname, 5,000 / 2,000: ≥ 300 pods/s;
//! * (c) topology spread over zones (DoNotSchedule, maxSkew 1), 5,000 / 5,000: ≥ 700 pods/s;
//! * (d) a 10,000-replica Deployment from create to all pods Running;
//! * and the peak RSS of `capstan server` during (a).
//!
//! Setup: one release `capstan server` (the API benchmark's [`Server`]; with
//! `--cluster-cidr 10.0.0.0/8` when the binary has that flag, so node IPAM
//! has a range for every node) and one `capstan agent --simulate N` child
//! process, shared by all scenarios in the order given. Each scenario has
//! its own namespace; its pods are deleted (and gone) before the next one
//! starts, so no scenario schedules against another's pods.
//!
//! Measured as upstream does: pods are created `--create-concurrency` at a
//! time while a watch notes when each is first seen bound; the pods bound
//! in each second are the samples (see [`throughput`]), reported as
//! average, p50, p90 and p99, next to the total time from the first
//! create to the last pod bound (and, for the Deployment, Running as the
//! hollow nodes report it). The targets are checked against the average,
//! and only at full size (5,000 nodes, `--pods` 10,000).

mod agent;
mod throughput;
mod workload;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;

use self::agent::Agent;
use self::throughput::Throughput;
use self::workload::{Scenario, Seen};
use crate::api::ensure_namespace;
use crate::api::server::{self, CpuTotals, CpuUsage, Procs, Server};
use crate::report::{self, Machine, Progress, phase};
use crate::stats;
use crate::{positive_f64, positive_usize};

pub const TARGET_BASIC: f64 = 1_000.0;
pub const TARGET_ANTI_AFFINITY: f64 = 300.0;
pub const TARGET_TOPOLOGY_SPREAD: f64 = 700.0;
/// The size the targets are defined at.
pub const FULL_NODES: usize = 5_000;
pub const FULL_PODS: usize = 10_000;

/// How long the hollow nodes may take to register and turn Ready.
const NODES_READY_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerArgs {
    /// Hollow nodes (`capstan agent --simulate N`).
    #[arg(long, default_value_t = FULL_NODES, value_parser = positive_usize)]
    pub nodes: usize,
    /// Pods of the basic scenario and replicas of the Deployment; the
    /// anti-affinity scenario creates a fifth of this, topology spread half.
    #[arg(long, default_value_t = FULL_PODS, value_parser = positive_usize)]
    pub pods: usize,
    /// Scenarios to run, in this order, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "basic,anti-affinity,topology-spread,deployment"
    )]
    pub scenarios: Vec<Scenario>,
    /// Zones the nodes are spread over (`topology.kubernetes.io/zone`).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub zones: u32,
    /// Pod creations in flight at once.
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub create_concurrency: usize,
    /// How long one scenario may take, in seconds.
    #[arg(long, default_value_t = 900.0, value_parser = positive_f64)]
    pub timeout_secs: f64,
    /// The capstan binary (default: release/capstan in $CARGO_TARGET_DIR, or next to this program).
    #[arg(long)]
    pub capstan: Option<PathBuf>,
    /// Where to create the server's temporary data dir (default: the system temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

impl SchedulerArgs {
    /// Pods (or replicas) of one scenario.
    pub fn pods_of(&self, scenario: Scenario) -> usize {
        match scenario {
            Scenario::Basic | Scenario::Deployment => self.pods,
            Scenario::AntiAffinity => (self.pods / 5).max(1),
            Scenario::TopologySpread => (self.pods / 2).max(1),
        }
    }

    fn full_size(&self) -> bool {
        self.nodes >= FULL_NODES && self.pods >= FULL_PODS
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }
}

/// The resolved settings of a run (as reported).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub nodes: usize,
    pub zones: u32,
    pub scenarios: Vec<Scenario>,
    pub pods_per_scenario: Vec<usize>,
    pub create_concurrency: usize,
    pub timeout_secs: f64,
    /// Extra `capstan server` flags this run used.
    pub server_args: Vec<String>,
    pub setup: &'static str,
}

const SETUP: &str = "one capstan server and one capstan agent --simulate for all scenarios, in order; \
                     each scenario in its own namespace, its pods deleted and gone before the next";

#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    pub nodes: usize,
    pub basic_pods_per_sec: f64,
    pub anti_affinity_pods_per_sec: f64,
    pub topology_spread_pods_per_sec: f64,
}

const TARGETS: Targets = Targets {
    nodes: FULL_NODES,
    basic_pods_per_sec: TARGET_BASIC,
    anti_affinity_pods_per_sec: TARGET_ANTI_AFFINITY,
    topology_spread_pods_per_sec: TARGET_TOPOLOGY_SPREAD,
};

fn target_of(scenario: Scenario) -> Option<f64> {
    match scenario {
        Scenario::Basic => Some(TARGET_BASIC),
        Scenario::AntiAffinity => Some(TARGET_ANTI_AFFINITY),
        Scenario::TopologySpread => Some(TARGET_TOPOLOGY_SPREAD),
        Scenario::Deployment => None,
    }
}

/// One scenario's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: Scenario,
    pub upstream: &'static str,
    pub pods: usize,
    /// From the first create request to the last answer (the Deployment: one request).
    pub create_secs: f64,
    /// Pods bound per second (per-second samples).
    pub scheduling: Option<Throughput>,
    /// From the first create to the last pod bound.
    pub scheduled_secs: f64,
    /// Pods ÷ `scheduled_secs`.
    pub overall_pods_per_sec: f64,
    /// Pods turning Running per second (the Deployment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Throughput>,
    /// From creating the Deployment to its last pod Running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_running_secs: Option<f64>,
    pub target_pods_per_sec: Option<f64>,
    /// Average ≥ target (null below full size or without a target).
    pub meets_target: Option<bool>,
    /// The server's peak RSS (VmHWM) since it started, read after this scenario.
    pub server_peak_rss_mib: Option<f64>,
    pub cpu: CpuUsage,
    /// Average cores the hollow nodes' agent used (it counts in `other_cores` too).
    pub agent_cores: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct SchedulerReport {
    pub benchmark: &'static str,
    pub started_at_unix: u64,
    pub machine: Machine,
    pub load_average_end: Option<[f64; 3]>,
    pub capstan_binary: String,
    pub settings: Settings,
    pub targets: Targets,
    pub server_start_secs: Option<f64>,
    /// Agent start to all nodes Ready.
    pub nodes_ready_secs: Option<f64>,
    pub scenarios: Vec<ScenarioResult>,
    /// The server's peak RSS during the basic scenario (a), as asked by the targets.
    pub server_peak_rss_mib_basic: Option<f64>,
    pub server_peak_rss_mib: Option<f64>,
    pub agent_peak_rss_mib: Option<f64>,
    /// Every target checked and met (null if none could be checked).
    pub all_targets_met: Option<bool>,
    pub errors: Vec<String>,
    pub total_elapsed_secs: f64,
}

/// The running system the scenarios share.
struct Bench<'a> {
    args: &'a SchedulerArgs,
    client: kube::Client,
    procs: Procs,
    server: &'a Server,
    agent_pid: u32,
}

pub async fn run(args: SchedulerArgs) -> Result<()> {
    let started = Instant::now();
    let started_at_unix = report::unix_now();
    let data_dir = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    ensure!(
        data_dir.is_dir(),
        "--data-dir {} is not a directory",
        data_dir.display()
    );
    let binary = server::locate_binary(args.capstan.as_deref())?;
    let server_args = cluster_cidr_args(&binary);
    let machine = Machine::detect();
    eprintln!(
        "capstan-bench scheduler: {}, {} nodes, scenarios {:?}, {} cores",
        binary.display(),
        args.nodes,
        args.scenarios,
        machine.cores
    );
    let mut report = SchedulerReport {
        benchmark: "scheduler",
        started_at_unix,
        machine,
        load_average_end: None,
        capstan_binary: binary.display().to_string(),
        settings: Settings {
            nodes: args.nodes,
            zones: args.zones,
            scenarios: args.scenarios.clone(),
            pods_per_scenario: args.scenarios.iter().map(|&s| args.pods_of(s)).collect(),
            create_concurrency: args.create_concurrency,
            timeout_secs: args.timeout_secs,
            server_args: server_args.clone(),
            setup: SETUP,
        },
        targets: TARGETS,
        server_start_secs: None,
        nodes_ready_secs: None,
        scenarios: Vec::new(),
        server_peak_rss_mib_basic: None,
        server_peak_rss_mib: None,
        agent_peak_rss_mib: None,
        all_targets_met: None,
        errors: Vec::new(),
        total_elapsed_secs: 0.0,
    };
    run_all(&args, &binary, &data_dir, &server_args, &mut report).await;
    report.all_targets_met = report
        .scenarios
        .iter()
        .filter_map(|s| s.meets_target)
        .reduce(|all, met| all && met);
    report.load_average_end = report::load_average();
    report.total_elapsed_secs = stats::round3(started.elapsed().as_secs_f64());
    eprint!("{}", summary(&report));
    report::emit(&report, args.json_out.as_deref())
}

/// Server, agent, then each scenario; failures go to `report.errors`.
async fn run_all(
    args: &SchedulerArgs,
    binary: &Path,
    data_dir: &Path,
    server_args: &[String],
    report: &mut SchedulerReport,
) {
    let tag = "[scheduler]";
    let errors = &mut report.errors;
    eprintln!("{tag} starting capstan server ...");
    let spawned = Instant::now();
    let Some((server, client)) = phase(
        tag,
        "server",
        errors,
        Server::start_with(binary, data_dir, None, server_args).await,
    ) else {
        return;
    };
    report.server_start_secs = Some(stats::round3(spawned.elapsed().as_secs_f64()));
    let logs = match tempfile::Builder::new()
        .prefix("capstan-bench-agent-")
        .tempdir_in(data_dir)
    {
        Ok(dir) => dir,
        Err(err) => {
            errors.push(format!("agent log dir: {err}"));
            return;
        }
    };
    eprintln!("{tag} starting {} hollow nodes ...", args.nodes);
    let spawned = Instant::now();
    let agent = Agent::start(
        binary,
        &server.kubeconfig(),
        args.nodes,
        args.zones,
        logs.path().join("agent.log"),
    );
    let Some(mut agent) = phase(tag, "agent", errors, agent) else {
        return;
    };
    let ready = agent.wait_ready(&client, args.nodes, NODES_READY_TIMEOUT).await;
    phase(
        tag,
        "nodes_ready",
        errors,
        ready.map(|()| spawned.elapsed().as_secs_f64()),
    );
    report.nodes_ready_secs = Some(stats::round3(spawned.elapsed().as_secs_f64()));
    let bench = Bench {
        args,
        client,
        procs: Procs {
            server: server.pid(),
            etcd: None,
        },
        server: &server,
        agent_pid: agent.pid(),
    };
    for (i, &scenario) in args.scenarios.iter().enumerate() {
        let name = format!("{scenario:?}");
        eprintln!(
            "{tag} {name}: {} pods on {} nodes ...",
            args.pods_of(scenario),
            args.nodes
        );
        let result = phase(tag, &name, errors, bench.scenario(scenario).await);
        if let Some(result) = result {
            if scenario == Scenario::Basic {
                report.server_peak_rss_mib_basic = result.server_peak_rss_mib;
            }
            report.scenarios.push(result);
        }
        if i + 1 < args.scenarios.len() {
            let cleaned = workload::clean(&bench.client, &scenario.namespace(), args.timeout()).await;
            phase(tag, &format!("{name} cleanup"), errors, cleaned);
        }
    }
    report.server_peak_rss_mib = server.peak_rss_mib();
    report.agent_peak_rss_mib = server::peak_rss_mib(agent.pid());
    if !errors.is_empty() {
        eprintln!("{tag} last lines of the server log:\n{}", server.log_tail(10));
    }
}

impl Bench<'_> {
    async fn scenario(&self, scenario: Scenario) -> Result<ScenarioResult> {
        let count = self.args.pods_of(scenario);
        let namespace = scenario.namespace();
        ensure_namespace(&self.client, &namespace).await?;
        let (seen, watch) = workload::record(&self.client, &namespace).await?;
        let cpu = self.procs.sample();
        let agent_cpu = server::process_cpu(self.agent_pid);
        let start = Instant::now();
        if scenario == Scenario::Deployment {
            let api = Api::namespaced(self.client.clone(), &namespace);
            api.create(&PostParams::default(), &scenario.deployment(count)?)
                .await
                .context("creating the deployment")?;
        } else {
            workload::create_pods(&self.client, scenario, count, self.args.create_concurrency).await?;
        }
        let create_secs = start.elapsed().as_secs_f64();
        let timeout = self.args.timeout().saturating_sub(start.elapsed());
        let waited = workload::wait_for(&seen, count, timeout, "scheduled", |s| s.bound.len()).await;
        let waited = match (waited, scenario) {
            (Ok(()), Scenario::Deployment) => {
                let timeout = self.args.timeout().saturating_sub(start.elapsed());
                workload::wait_for(&seen, count, timeout, "Running", |s| s.running.len()).await
            }
            (result, _) => result,
        };
        watch.abort();
        waited?;
        let cpu = CpuTotals::since(&self.procs, cpu).usage();
        let mut result = self.result(scenario, count, &seen, start, create_secs, cpu);
        result.agent_cores = server::process_cpu(self.agent_pid)
            .zip(agent_cpu)
            .map(|(end, begin)| stats::round3((end - begin).as_secs_f64() / start.elapsed().as_secs_f64()));
        Ok(result)
    }

    fn result(
        &self,
        scenario: Scenario,
        pods: usize,
        seen: &Mutex<Seen>,
        start: Instant,
        create_secs: f64,
        cpu: CpuUsage,
    ) -> ScenarioResult {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let since = |times: &std::collections::HashMap<String, Instant>| -> Vec<Duration> {
            times.values().map(|t| t.saturating_duration_since(start)).collect()
        };
        let bound = since(&seen.bound);
        let scheduled_secs = bound.iter().max().copied().unwrap_or_default().as_secs_f64();
        let scheduling = throughput::summarize(&throughput::per_second(&bound));
        let deployment = scenario == Scenario::Deployment;
        let running = since(&seen.running);
        let target = target_of(scenario);
        ScenarioResult {
            scenario,
            upstream: scenario.upstream(),
            pods,
            create_secs: stats::round3(create_secs),
            meets_target: target
                .filter(|_| self.args.full_size())
                .and_then(|t| scheduling.as_ref().map(|s| s.average >= t)),
            scheduling,
            scheduled_secs: stats::round3(scheduled_secs),
            overall_pods_per_sec: stats::round3(pods as f64 / scheduled_secs.max(1e-3)),
            running: deployment
                .then(|| throughput::summarize(&throughput::per_second(&running)))
                .flatten(),
            all_running_secs: deployment
                .then(|| stats::round3(running.iter().max().copied().unwrap_or_default().as_secs_f64())),
            target_pods_per_sec: target,
            server_peak_rss_mib: self.server.peak_rss_mib(),
            cpu,
            agent_cores: None,
        }
    }
}

/// `--cluster-cidr 10.0.0.0/8` when the server has node IPAM, so that
/// every one of thousands of nodes can get a range; nothing otherwise.
fn cluster_cidr_args(binary: &Path) -> Vec<String> {
    let help = std::process::Command::new(binary).args(["server", "--help"]).output();
    let has_flag = help.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("--cluster-cidr"));
    if has_flag {
        vec!["--cluster-cidr".into(), "10.0.0.0/8".into()]
    } else {
        Vec::new()
    }
}

impl Progress for Agent {}
impl Progress for f64 {
    fn progress(&self) -> Option<String> {
        Some(format!("{self:.1} s"))
    }
}

impl Progress for ScenarioResult {
    fn progress(&self) -> Option<String> {
        let s = self.scheduling.as_ref()?;
        let mut line = format!(
            "{} pods scheduled in {:.1} s: avg {:.0} pods/s, p50 {:.0}, p90 {:.0}, p99 {:.0}",
            self.pods, self.scheduled_secs, s.average, s.p50, s.p90, s.p99
        );
        if let Some(secs) = self.all_running_secs {
            let _ = write!(line, "; all Running after {secs:.1} s");
        }
        let _ = write!(line, "; {}", crate::api::levels::cpu_note(&self.cpu));
        if let Some(cores) = self.agent_cores {
            let _ = write!(line, " (agent {cores:.2})");
        }
        Some(line)
    }
}

/// The human summary on stderr.
fn summary(report: &SchedulerReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nscheduler throughput, {} nodes (pods/s: avg p50 p90 p99; total s):",
        report.settings.nodes
    );
    for r in &report.scenarios {
        let s = r.scheduling.clone().unwrap_or(Throughput {
            average: 0.0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            max: 0.0,
            samples: 0,
        });
        let target = match (r.target_pods_per_sec, r.meets_target) {
            (Some(t), Some(met)) => format!("target {t:.0}: {}", if met { "met" } else { "MISSED" }),
            (Some(t), None) => format!("target {t:.0}: not checked below full size"),
            (None, _) => r
                .all_running_secs
                .map_or(String::new(), |s| format!("all Running {s:.1} s")),
        };
        let _ = writeln!(
            out,
            "  {:<16} {:>6} pods  {:>7.0} {:>7.0} {:>7.0} {:>7.0}  {:>7.1} s  {target}",
            format!("{:?}", r.scenario),
            r.pods,
            s.average,
            s.p50,
            s.p90,
            s.p99,
            r.scheduled_secs
        );
    }
    let mib = |m: Option<f64>| m.map_or("?".to_string(), |m| format!("{m:.0} MiB"));
    let _ = writeln!(
        out,
        "  server peak RSS: {} during basic, {} overall; agent {}",
        mib(report.server_peak_rss_mib_basic),
        mib(report.server_peak_rss_mib),
        mib(report.agent_peak_rss_mib)
    );
    for err in &report.errors {
        let _ = writeln!(out, "  error: {err}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SchedulerArgs,
    }

    #[test]
    fn defaults_are_the_targets_sizes_and_pods_scale_per_scenario() {
        let args = Cli::try_parse_from(["x"]).unwrap().args;
        assert_eq!((args.nodes, args.pods), (5_000, 10_000));
        assert!(args.full_size());
        let pods: Vec<usize> = args.scenarios.iter().map(|&s| args.pods_of(s)).collect();
        assert_eq!(pods, [10_000, 2_000, 5_000, 10_000]);
        let small = Cli::try_parse_from(["x", "--nodes", "500", "--pods", "1000", "--scenarios", "anti-affinity"])
            .unwrap()
            .args;
        assert_eq!(small.scenarios, [Scenario::AntiAffinity]);
        assert_eq!(small.pods_of(Scenario::AntiAffinity), 200);
        assert!(!small.full_size());
        assert!(Cli::try_parse_from(["x", "--nodes", "0"]).is_err());
    }
}
