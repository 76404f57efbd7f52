//! `capstan-bench services`: how fast the service proxy programs the kernel
//! at issue 6's size — 1,000 Services with 10,000 endpoints — and how fast
//! one endpoint change takes effect there.
//!
//! Everything runs for real inside a network namespace of the benchmark's
//! own ([`netns`], entered before the async runtime starts): `capstan
//! server --disable-agent --disable-dns` on 127.0.0.1 and a `capstan proxy`
//! process, so the nftables table, the sink device and the service-CIDR
//! route exist only there and vanish with the benchmark's processes.
//!
//! 1. **Setup** ([`objects`]): selector-less Services with one EndpointSlice
//!    each, written through the API before the proxy starts.
//! 2. **Initial sync**: the proxy is spawned with all objects present; the
//!    clock runs from spawn until the `service-ips` map in the kernel holds
//!    every Service: real connections to the first and last ClusterIP reach
//!    endpoints ([`dataplane`]), and the map is then checked to be complete. The proxy's own log
//!    line for that sync gives the script size and the split between
//!    building the rules and the kernel taking them.
//! 3. **Endpoint changes**: one slice patch replaces one endpoint address;
//!    the clock runs from the patch request until the kernel reports (via
//!    `nft monitor`) the committed rule of the Service's chain that leads to
//!    the new address; afterwards it is checked that the chain no longer
//!    leads to the old one and the new endpoint's chain DNATs to it.
//!    Changes are spaced by the proxy's minimum sync period, so each is
//!    measured on its own rather than batched behind the previous one.
//! 4. The proxy's resident memory, and how long it takes to remove its table.

mod dataplane;
mod kernel;
pub mod netns;
mod objects;
mod proxy;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;

use self::kernel::TableCounts;
use self::objects::Backend;
use self::proxy::{Proxy, SyncLine};
use crate::api::server::{Server, locate_binary, peak_rss_mib, process_cpu_with_children, rss_mib};
use crate::report::{self, Machine, Progress, phase};
use crate::stats::{self, Latency};
use crate::{positive_f64, positive_usize};

/// How long the proxy may take to program the initial state.
const INITIAL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one endpoint change may take to reach the kernel.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Services to program (one TCP port each).
    #[arg(long, default_value_t = 1000, value_parser = positive_usize)]
    pub services: usize,
    /// Ready endpoints per Service (one EndpointSlice each).
    #[arg(long, default_value_t = 10, value_parser = positive_usize)]
    pub endpoints_per_service: usize,
    /// Single-endpoint changes measured after the initial sync.
    #[arg(long, default_value_t = 20, value_parser = positive_usize)]
    pub changes: usize,
    /// The proxy's --nftables-min-sync-period, in milliseconds.
    #[arg(long, default_value_t = 1000.0, value_parser = positive_f64)]
    pub min_sync_period_ms: f64,
    /// Milliseconds between two connection attempts while the proxy starts.
    #[arg(long, default_value_t = 5.0, value_parser = positive_f64)]
    pub poll_ms: f64,
    /// Create requests in flight while setting up.
    #[arg(long, default_value_t = 16, value_parser = positive_usize)]
    pub create_concurrency: usize,
    /// The `capstan` binary (default: the release build next to this benchmark).
    #[arg(long)]
    pub capstan: Option<PathBuf>,
    /// Where the temporary data dirs go (default: the system's temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub changes: usize,
    pub min_sync_period_ms: f64,
    pub poll_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct ServicesReport {
    pub benchmark: &'static str,
    pub started_at_unix: u64,
    pub machine: Machine,
    pub capstan_binary: String,
    pub settings: Settings,
    /// Creating the Services and EndpointSlices through the API.
    pub setup_secs: f64,
    pub initial_sync: Option<InitialSync>,
    pub endpoint_change: Option<EndpointChanges>,
    pub proxy_memory: ProxyMemory,
    /// From SIGTERM until the proxy had removed its table and exited.
    pub proxy_stop_secs: f64,
    /// Warnings and errors the proxy logged.
    pub proxy_problems: Vec<String>,
    pub errors: Vec<String>,
    pub load_average_end: Option<[f64; 3]>,
}

/// The proxy programming everything from scratch.
#[derive(Debug, Serialize)]
pub struct InitialSync {
    /// Proxy spawned → every Service in the kernel's `service-ips` map.
    pub programmed_secs: f64,
    /// The first and last Service answering meant all were in (the time is
    /// then theirs; otherwise when a poll of the map found them all).
    pub first_transaction_complete: bool,
    pub service_ips: usize,
    pub table: TableCounts,
    /// Syncs the proxy logged until everything was in (1 when the first sync had it all).
    pub syncs: usize,
    /// The proxy's log line for the sync that completed the table.
    pub complete_sync: Option<SyncLine>,
    /// CPU seconds the proxy and its `nft` runs used until then (start-up, lists, sync).
    pub proxy_cpu_secs: Option<f64>,
}

/// Single endpoint changes at full size.
#[derive(Debug, Serialize)]
pub struct EndpointChanges {
    pub changes: usize,
    /// Patch request sent → the new address is in the Service's chain in the kernel.
    pub to_kernel: Latency,
    /// The PATCH call alone.
    pub api_patch: Latency,
    /// The proxy's syncs during the phase (one per change when spaced).
    pub syncs: usize,
    pub script_bytes_p50: Option<u64>,
    pub build_ms_p50: Option<f64>,
    pub apply_ms_p50: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct ProxyMemory {
    pub rss_mib_after_initial_sync: Option<f64>,
    pub rss_mib_after_changes: Option<f64>,
    pub peak_rss_mib: Option<f64>,
}

pub async fn run(args: ServicesArgs) -> Result<()> {
    let binary = locate_binary(args.capstan.as_deref())?;
    let machine = Machine::detect();
    eprintln!(
        "capstan-bench services: {}, {} services x {} endpoints, {} cores, in a network namespace of its own",
        binary.display(),
        args.services,
        args.endpoints_per_service,
        machine.cores
    );
    let started_at_unix = report::unix_now();
    let measure = measure(&args, &binary, machine, started_at_unix);
    report::run_to_report(
        measure,
        "the server and proxy were stopped",
        summary,
        args.json_out.as_deref(),
    )
    .await
}

async fn measure(args: &ServicesArgs, binary: &Path, machine: Machine, started_at_unix: u64) -> Result<ServicesReport> {
    let root = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let server_args = ["--disable-dns".to_string()];
    let (server, client) = Server::start_with(binary, &root, None, &server_args).await?;
    eprintln!("[setup] creating {} services and their EndpointSlices", args.services);
    let (mut backends, setup) = objects::create(
        &client,
        args.services,
        args.endpoints_per_service,
        args.create_concurrency,
    )
    .await?;
    eprintln!("[setup] done in {:.1} s", setup.as_secs_f64());
    let min_sync = Duration::from_secs_f64(args.min_sync_period_ms / 1000.0);
    let poll = Duration::from_secs_f64(args.poll_ms / 1000.0);
    let _endpoints = dataplane::serve_endpoints().await?;
    let mut proxy = Proxy::start(binary, &server.kubeconfig(), &root, min_sync)?;
    let mut errors = Vec::new();
    let mut memory = ProxyMemory::default();
    let initial = initial_sync(&mut proxy, &backends, poll).await;
    memory.rss_mib_after_initial_sync = rss_mib(proxy.pid());
    let (initial_sync, chains) = phase("[initial]", "initial sync", &mut errors, initial).unzip();
    let spacing = min_sync + Duration::from_millis(100);
    let endpoint_change = match &chains {
        Some(chains) => {
            let changes = endpoint_changes(&client, &mut proxy, &mut backends, chains, args.changes, spacing).await;
            phase("[changes]", "endpoint changes", &mut errors, changes)
        }
        None => None,
    };
    memory.rss_mib_after_changes = rss_mib(proxy.pid());
    memory.peak_rss_mib = peak_rss_mib(proxy.pid());
    let proxy_problems = proxy.problems(10);
    let stopped = proxy.stop();
    drop(server);
    Ok(ServicesReport {
        benchmark: "services",
        started_at_unix,
        machine,
        capstan_binary: binary.display().to_string(),
        settings: Settings {
            services: args.services,
            endpoints_per_service: args.endpoints_per_service,
            changes: args.changes,
            min_sync_period_ms: args.min_sync_period_ms,
            poll_ms: args.poll_ms,
        },
        setup_secs: stats::round3(setup.as_secs_f64()),
        initial_sync,
        endpoint_change,
        proxy_memory: memory,
        proxy_stop_secs: stats::round3(stopped.as_secs_f64()),
        proxy_problems,
        errors,
        load_average_end: report::load_average(),
    })
}

/// ClusterIP → the Service's chain, as the kernel has it.
type Chains = std::collections::BTreeMap<Ipv4Addr, String>;

/// Times the proxy's first programming of the kernel: from spawn until
/// connections to the first and the last Service reach endpoints (the
/// proxy writes its table whole, once it has listed everything). The
/// `service-ips` map is then checked to hold every Service; should it not
/// (a partial first sync), it is polled and the time is when a poll first
/// found it complete.
async fn initial_sync(proxy: &mut Proxy, backends: &[Backend], poll: Duration) -> Result<(InitialSync, Chains)> {
    let services = backends.len();
    let (first, last) = (backends[0].cluster_ip, backends[services - 1].cluster_ip);
    while !(dataplane::reaches(first).await && dataplane::reaches(last).await) {
        proxy.check_running()?;
        if proxy.started.elapsed() > INITIAL_TIMEOUT {
            bail!("no connection through the proxy within {INITIAL_TIMEOUT:?}");
        }
        tokio::time::sleep(poll).await;
    }
    let mut programmed = proxy.started.elapsed();
    let (mut chains, _) = kernel::service_chains().await?;
    let first_transaction_complete = chains.len() >= services;
    while chains.len() < services {
        proxy.check_running()?;
        if proxy.started.elapsed() > INITIAL_TIMEOUT {
            bail!("the kernel did not have all {services} services within {INITIAL_TIMEOUT:?}");
        }
        tokio::time::sleep(poll).await;
        chains = kernel::service_chains().await?.0;
        programmed = proxy.started.elapsed();
    }
    let cpu = process_cpu_with_children(proxy.pid());
    let table = kernel::table_counts().await?;
    let syncs = proxy.syncs();
    let complete = syncs.iter().position(|s| s.service_ips as usize >= services);
    let sync = InitialSync {
        programmed_secs: stats::round3(programmed.as_secs_f64()),
        first_transaction_complete,
        service_ips: chains.len(),
        table,
        syncs: complete.map_or(syncs.len(), |i| i + 1),
        complete_sync: complete.map(|i| syncs[i]),
        proxy_cpu_secs: cpu.map(|d| stats::round3(d.as_secs_f64())),
    };
    Ok((sync, chains))
}

/// Replaces one endpoint at a time and times each until the kernel has it.
async fn endpoint_changes(
    client: &kube::Client,
    proxy: &mut Proxy,
    backends: &mut [Backend],
    chains: &Chains,
    changes: usize,
    spacing: Duration,
) -> Result<EndpointChanges> {
    let mut monitor = kernel::Monitor::start().await?;
    let syncs_before = proxy.syncs().len();
    let (mut to_kernel, mut patches) = (Vec::new(), Vec::new());
    for n in 0..changes {
        tokio::time::sleep(spacing).await;
        proxy.check_running()?;
        let backend = &mut backends[(stats::mix64(n as u64) % backends.len() as u64) as usize];
        let slot = n % backend.addresses.len();
        let (old, new) = (backend.addresses[slot], objects::replacement(n));
        let chain = chains
            .get(&backend.cluster_ip)
            .with_context(|| format!("no chain for {} in the kernel", backend.cluster_ip))?;
        monitor.drain();
        let started = Instant::now();
        patches.push(objects::replace_endpoint(client, backend, slot, new).await?);
        let leads_to_new = |rule: &str| kernel::endpoint_chain(rule, new, objects::TARGET_PORT).is_some();
        let arrived = monitor.added_rule(chain, leads_to_new, CHANGE_TIMEOUT).await?;
        to_kernel.push(arrived - started);
        verify(chain, (old, new)).await?;
    }
    let syncs: Vec<SyncLine> = proxy.syncs().split_off(syncs_before);
    Ok(EndpointChanges {
        changes,
        to_kernel: latency_of(&to_kernel),
        api_patch: latency_of(&patches),
        syncs: syncs.len(),
        script_bytes_p50: median(syncs.iter().map(|s| s.script_bytes).collect()),
        build_ms_p50: median_f64(syncs.iter().map(|s| s.build_ms).collect()),
        apply_ms_p50: median_f64(syncs.iter().map(|s| s.apply_ms).collect()),
    })
}

/// After the fact (not timed): the Service chain leads to the new address
/// and not the old one, and the new endpoint's chain DNATs to it.
async fn verify(chain: &str, (old, new): (Ipv4Addr, Ipv4Addr)) -> Result<()> {
    let port = objects::TARGET_PORT;
    let (text, _) = kernel::chain(chain).await?;
    let endpoint =
        kernel::endpoint_chain(&text, new, port).with_context(|| format!("{chain} does not lead to {new}"))?;
    if kernel::endpoint_chain(&text, old, port).is_some() {
        bail!("{chain} still leads to the replaced {old}");
    }
    let (text, _) = kernel::chain(&endpoint).await?;
    let dnat = format!("dnat to {new}:{port}");
    if !text.contains(&dnat) {
        bail!("{endpoint} has no `{dnat}`:\n{text}");
    }
    Ok(())
}

impl Progress for (InitialSync, Chains) {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "kernel programmed {:.2} s after the proxy started",
            self.0.programmed_secs
        ))
    }
}

impl Progress for EndpointChanges {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "{} changes, {} proxy syncs, to the kernel p50 {:.0} ms",
            self.changes, self.syncs, self.to_kernel.p50_ms
        ))
    }
}

fn latency_of(samples: &[Duration]) -> Latency {
    let mut hist = stats::new_histogram();
    for sample in samples {
        stats::record(&mut hist, *sample);
    }
    Latency::of(&hist)
}

fn median(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

fn median_f64(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

fn summary(report: &ServicesReport) -> String {
    let s = &report.settings;
    let mut out = format!(
        "\n== capstan-bench services: {} services, {} endpoints ==\n",
        s.services,
        s.services * s.endpoints_per_service
    );
    out += &format!("setup through the API: {:.1} s\n", report.setup_secs);
    if let Some(initial) = &report.initial_sync {
        out += &format!(
            "initial sync: kernel complete {:.2} s after the proxy started ({} chains, {} dnat rules, {} sync(s))\n",
            initial.programmed_secs, initial.table.chains, initial.table.dnat_rules, initial.syncs
        );
        if let Some(sync) = &initial.complete_sync {
            out += &format!(
                "  that sync: script {:.1} MiB, build {:.0} ms, nft apply {:.0} ms\n",
                sync.script_bytes as f64 / (1024.0 * 1024.0),
                sync.build_ms,
                sync.apply_ms
            );
        }
    }
    if let Some(change) = &report.endpoint_change {
        out += &format!(
            "one endpoint change -> kernel: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} changes; API patch p50 {:.1} ms)\n",
            change.to_kernel.p50_ms,
            change.to_kernel.p99_ms,
            change.to_kernel.max_ms,
            change.changes,
            change.api_patch.p50_ms
        );
        if let (Some(bytes), Some(build), Some(apply)) =
            (change.script_bytes_p50, change.build_ms_p50, change.apply_ms_p50)
        {
            out += &format!("  per sync (p50): script {bytes} bytes, build {build:.0} ms, nft apply {apply:.0} ms\n");
        }
    }
    let mib = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} MiB"));
    out += &format!(
        "proxy RSS: {} after the initial sync, {} at the end, peak {}\n",
        mib(report.proxy_memory.rss_mib_after_initial_sync),
        mib(report.proxy_memory.rss_mib_after_changes),
        mib(report.proxy_memory.peak_rss_mib)
    );
    for err in &report.errors {
        out += &format!("error: {err}\n");
    }
    out
}
