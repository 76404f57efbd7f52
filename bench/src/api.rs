//! `capstan-bench api`: latency and throughput of the Kubernetes API served
//! by the real `capstan server` binary, on SQLite and on etcd, against the
//! targets in `shared/docs/targets.md`:
//!
//! * API write throughput ≥ 50% of the raw store rate, same run;
//! * p99 ≤ 20 ms for single-object calls at 500 req/s;
//! * LIST of 10,000 pods from the watch cache ≤ 150 ms;
//! * 1,000 concurrent watchers each see a write within p99 ≤ 100 ms.
//!
//! For each backend the benchmark starts `capstan server` (release build;
//! see [`server`]) on a fresh data dir and a free port — on etcd with a
//! fresh throwaway etcd as `--datastore-endpoint` — and talks to it with
//! kube-rs through the admin kubeconfig, as any client would. Then:
//!
//! 1. per concurrency level (`--concurrency`, default 1, 16, 64) the
//!    closed-loop phases of [`levels`]: create (interleaved with the raw
//!    store and raw engine rates), get, list, watch delivery;
//! 2. single-object calls at a fixed rate, open loop ([`rate`]);
//! 3. LIST of 10,000 pods, unpaged and paged ([`pods`]);
//! 4. watch fan-out to 1,000 watchers ([`fanout`]).
//!
//! Client: one kube-rs `Client` per server for the phases (its clones share
//! one HTTP/1.1 keep-alive pool, so `C` requests in flight use `C` TLS
//! connections), plus `--watch-clients` more for the fan-out watches. The
//! client runs on the same machine as the server; each phase records the
//! CPU used by the server, etcd and the benchmark itself.
//!
//! One JSON document goes to stdout (and `--json-out`), progress and a
//! summary table to stderr. A failing phase is reported in `errors` and
//! the run goes on. `--quick` shortens everything (for trying it out; its
//! numbers are not the targets' conditions).

mod fanout;
pub mod levels;
mod pods;
mod rate;
pub mod server;

use crate::report::{Progress, phase};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use capstan_store::Endpoint;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde::Serialize;

use self::fanout::Fanout;
use self::levels::{LevelResult, ListStats, Raw, WatchDelivery};
use self::pods::PodList;
use self::rate::FixedRate;
use self::server::{CpuUsage, FdLimit, Procs, Server};
use crate::raw::RawEngine;
use crate::report::{self, Machine};
use crate::stats;
use crate::store::Backend;
use crate::{positive_f64, positive_usize};

/// API creates/s ÷ raw store creates/s, at least.
pub const TARGET_WRITE_RATIO: f64 = 0.5;
/// p99 of single-object calls at [`TARGET_RATE`], at most.
pub const TARGET_SINGLE_P99_MS: f64 = 20.0;
pub const TARGET_RATE: f64 = 500.0;
/// LIST of [`TARGET_PODS`] pods, at most.
pub const TARGET_LIST_PODS_MS: f64 = 150.0;
pub const TARGET_PODS: usize = 10_000;
/// Delivery p99 to [`TARGET_WATCHERS`] watchers, at most.
pub const TARGET_FANOUT_P99_MS: f64 = 100.0;
pub const TARGET_WATCHERS: usize = 1_000;

const NS_CREATE: &str = "bench-create";
const NS_LIST: &str = "bench-list";
const NS_RATE: &str = "bench-rate";
const NS_PODS: &str = "bench-pods";
const NS_FANOUT: &str = "bench-fanout";

#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Backends to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite,etcd")]
    pub backends: Vec<Backend>,
    /// Concurrent clients per level of the closed-loop phases, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64", value_parser = positive_usize)]
    pub concurrency: Vec<usize>,
    /// A shorter run for trying the benchmark out (every default below shrinks).
    #[arg(long)]
    pub quick: bool,
    /// Length of each closed-loop phase, in seconds [default: 4; quick: 1].
    #[arg(long, value_parser = positive_f64)]
    pub duration_secs: Option<f64>,
    /// Slices the create, raw store and raw engine phases are interleaved in [default: 4; quick: 2].
    #[arg(long, value_parser = positive_usize)]
    pub rounds: Option<usize>,
    /// Bytes of data in every benchmark ConfigMap.
    #[arg(long, default_value_t = 512, value_parser = positive_usize)]
    pub value_bytes: usize,
    /// ConfigMaps in the namespace the get and list phases read (and the list page size).
    #[arg(long, default_value_t = 500, value_parser = positive_usize)]
    pub list_objects: usize,
    /// Requests per second of the fixed-rate phase.
    #[arg(long, default_value_t = TARGET_RATE, value_parser = positive_f64)]
    pub rate: f64,
    /// Length of the fixed-rate phase, in seconds [default: 10; quick: 3].
    #[arg(long, value_parser = positive_f64)]
    pub rate_secs: Option<f64>,
    /// Pods created for the large LIST [default: 10000; quick: 2000].
    #[arg(long, value_parser = positive_usize)]
    pub pods: Option<usize>,
    /// Unpaged lists of all pods [default: 20; quick: 5].
    #[arg(long, value_parser = positive_usize)]
    pub list_repeats: Option<usize>,
    /// Paged walks through all pods [default: 5; quick: 2].
    #[arg(long, value_parser = positive_usize)]
    pub paged_repeats: Option<usize>,
    /// Page size of the paged walks.
    #[arg(long, default_value_t = 500, value_parser = positive_usize)]
    pub page_size: usize,
    /// Concurrent watches of the fan-out phase [default: 1000; quick: 200].
    #[arg(long, value_parser = positive_usize)]
    pub watchers: Option<usize>,
    /// kube-rs clients the fan-out watches are spread over.
    #[arg(long, default_value_t = 4, value_parser = positive_usize)]
    pub watch_clients: usize,
    /// Writes the fan-out watchers receive [default: 50; quick: 20].
    #[arg(long, value_parser = positive_usize)]
    pub fanout_writes: Option<usize>,
    /// Milliseconds between fan-out writes.
    #[arg(long, default_value_t = 50.0, value_parser = positive_f64)]
    pub fanout_interval_ms: f64,
    /// The capstan binary (default: release/capstan in $CARGO_TARGET_DIR, or next to this program).
    #[arg(long)]
    pub capstan: Option<PathBuf>,
    /// Where to create the servers' temporary data dirs (default: the system temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// The resolved settings of a run (as reported).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub backends: Vec<Backend>,
    pub concurrency: Vec<usize>,
    pub duration_secs: f64,
    pub rounds: usize,
    pub value_bytes: usize,
    pub list_objects: usize,
    pub rate: f64,
    pub rate_secs: f64,
    pub pods: usize,
    pub list_repeats: usize,
    pub paged_repeats: usize,
    pub page_size: usize,
    pub watchers: usize,
    pub watch_clients: usize,
    pub fanout_writes: usize,
    pub fanout_interval_ms: f64,
    #[serde(skip)]
    pub data_dir: PathBuf,
}

impl Settings {
    fn resolve(args: &ApiArgs) -> Settings {
        let q = args.quick;
        let pick = |given: Option<usize>, full: usize, quick: usize| given.unwrap_or(if q { quick } else { full });
        Settings {
            quick: q,
            backends: args.backends.clone(),
            concurrency: args.concurrency.clone(),
            duration_secs: args.duration_secs.unwrap_or(if q { 1.0 } else { 4.0 }),
            rounds: pick(args.rounds, 4, 2),
            value_bytes: args.value_bytes,
            list_objects: args.list_objects,
            rate: args.rate,
            rate_secs: args.rate_secs.unwrap_or(if q { 3.0 } else { 10.0 }),
            pods: pick(args.pods, TARGET_PODS, 2_000),
            list_repeats: pick(args.list_repeats, 20, 5),
            paged_repeats: pick(args.paged_repeats, 5, 2),
            page_size: args.page_size,
            watchers: pick(args.watchers, TARGET_WATCHERS, 200),
            watch_clients: args.watch_clients,
            fanout_writes: pick(args.fanout_writes, 50, 20),
            fanout_interval_ms: args.fanout_interval_ms,
            data_dir: args.data_dir.clone().unwrap_or_else(std::env::temp_dir),
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }
}

/// The targets, as reported next to the numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    pub write_vs_raw_store: f64,
    pub single_object_rate: f64,
    pub single_object_p99_ms: f64,
    pub list_pods: usize,
    pub list_pods_ms: f64,
    pub fanout_watchers: usize,
    pub fanout_p99_ms: f64,
}

const TARGETS: Targets = Targets {
    write_vs_raw_store: TARGET_WRITE_RATIO,
    single_object_rate: TARGET_RATE,
    single_object_p99_ms: TARGET_SINGLE_P99_MS,
    list_pods: TARGET_PODS,
    list_pods_ms: TARGET_LIST_PODS_MS,
    fanout_watchers: TARGET_WATCHERS,
    fanout_p99_ms: TARGET_FANOUT_P99_MS,
};

/// The whole run, as printed on stdout.
#[derive(Debug, Serialize)]
pub struct ApiReport {
    pub benchmark: &'static str,
    pub started_at_unix: u64,
    pub machine: Machine,
    pub load_average_end: Option<[f64; 3]>,
    pub capstan_binary: String,
    pub client: &'static str,
    pub settings: Settings,
    pub targets: Targets,
    pub fd_limit: FdLimit,
    pub backends: Vec<BackendResult>,
    /// Every target checked on every backend and met (null if a check could not run).
    pub all_targets_met: Option<bool>,
    pub total_elapsed_secs: f64,
}

const CLIENT: &str = "kube-rs 5 over HTTPS (HTTP/1.1, rustls), admin kubeconfig; one shared Client per server \
                      (C requests in flight = C pooled keep-alive connections), plus --watch-clients clients \
                      for the fan-out watches; same machine as the server";

/// A phase's result with the CPU the processes spent on it.
#[derive(Debug, Clone, Serialize)]
pub struct Measured<T> {
    #[serde(flatten)]
    pub result: T,
    pub cpu: CpuUsage,
}

/// Everything measured on one backend.
#[derive(Debug, Serialize)]
pub struct BackendResult {
    pub backend: Backend,
    /// Spawn to a passing `/readyz`.
    pub server_start_secs: Option<f64>,
    pub server_fd_limit: Option<u64>,
    /// Peak resident memory of the server over the whole run on this backend.
    pub server_peak_rss_mib: Option<f64>,
    /// Size of a benchmark ConfigMap as the API returns it (the raw phases write values this large).
    pub stored_configmap_bytes: Option<usize>,
    pub levels: Vec<LevelResult>,
    pub fixed_rate: Option<Measured<FixedRate>>,
    pub list_pods: Option<Measured<PodList>>,
    pub fanout: Option<Measured<Fanout>>,
    pub meets_targets: TargetChecks,
    pub errors: Vec<String>,
}

/// Which targets this backend met (null: not measured, or the phase failed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetChecks {
    /// API create ≥ 0.5 × raw store create at every measured level.
    pub write_vs_raw_store: Option<bool>,
    pub single_object_p99: Option<bool>,
    pub list_pods: Option<bool>,
    pub fanout: Option<bool>,
}

impl TargetChecks {
    fn of(r: &BackendResult, s: &Settings) -> TargetChecks {
        let levels: Vec<Option<bool>> = r.levels.iter().map(|l| l.meets_target).collect();
        let write = if levels.is_empty() || levels.iter().any(Option::is_none) {
            None
        } else {
            Some(levels.iter().all(|m| *m == Some(true)))
        };
        TargetChecks {
            write_vs_raw_store: write,
            single_object_p99: r.fixed_rate.as_ref().map(|m| m.result.meets_target),
            // Smaller runs (--quick) say nothing about a target defined at
            // 10,000 pods or 1,000 watchers.
            list_pods: r
                .list_pods
                .as_ref()
                .filter(|_| s.pods >= TARGET_PODS)
                .map(|m| m.result.meets_target),
            fanout: r
                .fanout
                .as_ref()
                .filter(|_| s.watchers >= TARGET_WATCHERS)
                .map(|m| m.result.meets_target),
        }
    }

    fn all(&self) -> Option<bool> {
        let checks = [
            self.write_vs_raw_store,
            self.single_object_p99,
            self.list_pods,
            self.fanout,
        ];
        checks.iter().try_fold(true, |all, c| c.map(|c| all && c))
    }
}

/// What every phase needs: the server's client and processes, the settings.
pub struct Ctx {
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
    pub procs: Procs,
    pub s: Arc<Settings>,
    /// Zero point of the watch phases' timestamps.
    pub epoch: Instant,
    pub stored_bytes: usize,
}

impl Ctx {
    /// The data of a benchmark ConfigMap: `--value-bytes` printable bytes.
    pub fn payload(&self, seed: u64) -> String {
        String::from_utf8_lossy(&stats::filler(self.s.value_bytes, seed)).into_owned()
    }
}

/// A ConfigMap with one data key.
pub fn config_map(name: &str, payload: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("v".to_string(), payload.to_string())])),
        ..ConfigMap::default()
    }
}

/// The name of the `i`-th ConfigMap of `bench-list`.
pub fn list_name(i: u64) -> String {
    format!("list-{i:05}")
}

/// Creates a namespace (already existing is fine).
pub async fn ensure_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(err) => Err(err).with_context(|| format!("creating namespace {name}")),
    }
}

pub async fn run(args: ApiArgs) -> Result<()> {
    let started = Instant::now();
    let started_at_unix = report::unix_now();
    let settings = Arc::new(Settings::resolve(&args));
    ensure!(
        settings.data_dir.is_dir(),
        "--data-dir {} is not a directory",
        settings.data_dir.display()
    );
    let binary = server::locate_binary(args.capstan.as_deref())?;
    let fd_limit = server::raise_fd_limit(settings.watchers as u64 + 1024);
    if let Some(problem) = &fd_limit.problem {
        eprintln!("warning: open-file limit: {problem}");
    }
    let machine = Machine::detect();
    eprintln!(
        "capstan-bench api: {}, backends {:?}, concurrency {:?}, {} s per phase, {} cores{}",
        binary.display(),
        settings.backends,
        settings.concurrency,
        settings.duration_secs,
        machine.cores,
        if settings.quick { ", quick" } else { "" }
    );

    let mut backends = Vec::new();
    for &backend in &settings.backends {
        backends.push(run_backend(backend, &settings, &binary, started).await);
    }
    let all_targets_met = backends
        .iter()
        .try_fold(true, |all, b| b.meets_targets.all().map(|m| all && m));
    let report = ApiReport {
        benchmark: "api",
        started_at_unix,
        machine,
        load_average_end: report::load_average(),
        capstan_binary: binary.display().to_string(),
        client: CLIENT,
        settings: (*settings).clone(),
        targets: TARGETS,
        fd_limit,
        backends,
        all_targets_met,
        total_elapsed_secs: stats::round3(started.elapsed().as_secs_f64()),
    };
    eprint!("{}", summary(&report));
    report::emit(&report, args.json_out.as_deref())?;
    eprintln!("total elapsed: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Every phase on one backend, on its own server (and etcd).
async fn run_backend(backend: Backend, s: &Arc<Settings>, binary: &Path, epoch: Instant) -> BackendResult {
    let tag = format!("[{backend}]");
    let mut r = BackendResult {
        backend,
        server_start_secs: None,
        server_fd_limit: None,
        server_peak_rss_mib: None,
        stored_configmap_bytes: None,
        levels: Vec::new(),
        fixed_rate: None,
        list_pods: None,
        fanout: None,
        meets_targets: TargetChecks::default(),
        errors: Vec::new(),
    };

    // Locals drop in reverse order: the raw stores, then the server, then
    // etcd and the raw stores' directory.
    let raw_dir = match tempfile::Builder::new()
        .prefix("capstan-bench-raw-")
        .tempdir_in(&s.data_dir)
        .context("creating the raw store directory")
    {
        Ok(dir) => dir,
        Err(err) => {
            phase::<()>(&tag, "start", &mut r.errors, Err(err));
            return r;
        }
    };
    let etcd = match backend {
        Backend::Sqlite => None,
        Backend::Etcd => {
            eprintln!("{tag} starting etcd ...");
            match phase(&tag, "etcd", &mut r.errors, server::start_etcd().await) {
                Some(etcd) => Some(etcd),
                None => return r,
            }
        }
    };
    let etcd_url = etcd.as_ref().map(|e| e.endpoint().to_string());
    eprintln!("{tag} starting capstan server ...");
    let spawned = Instant::now();
    let Some((server, client)) = phase(
        &tag,
        "server",
        &mut r.errors,
        Server::start(binary, &s.data_dir, etcd_url.as_deref()).await,
    ) else {
        return r;
    };
    r.server_start_secs = Some(stats::round3(spawned.elapsed().as_secs_f64()));
    r.server_fd_limit = server.fd_limit();
    eprintln!(
        "{tag} server ready in {:.2} s on port {}",
        spawned.elapsed().as_secs_f64(),
        server.port
    );
    let procs = Procs {
        server: server.pid(),
        etcd: etcd.as_ref().and_then(|_| server::child_named("etcd")),
    };

    let prepared = prepare(&client, s).await;
    let Some(stored_bytes) = phase(&tag, "prepare", &mut r.errors, prepared) else {
        return finish(r, &server, s);
    };
    r.stored_configmap_bytes = Some(stored_bytes);
    let ctx = Arc::new(Ctx {
        client,
        kubeconfig: server.kubeconfig(),
        procs,
        s: Arc::clone(s),
        epoch,
        stored_bytes,
    });
    eprintln!("{tag} preloading {} ConfigMaps ...", s.list_objects);
    let preloaded = levels::preload_list_namespace(&ctx).await;
    if phase(&tag, "preload", &mut r.errors, preloaded).is_none() {
        return finish(r, &server, s);
    }

    eprintln!("{tag} opening the raw store and raw engine ...");
    let (store_endpoint, engine) = match &etcd_url {
        None => (
            Endpoint::Sqlite(raw_dir.path().join("raw-store.db")),
            RawEngine::sqlite(raw_dir.path().join("raw-engine.db")).await,
        ),
        Some(url) => (Endpoint::Etcd(vec![url.clone()]), RawEngine::etcd(url).await),
    };
    let raw_store = stats::guarded(levels::open_raw_store(store_endpoint)).await;
    let raw_store = phase(&tag, "raw_store_open", &mut r.errors, raw_store);
    let engine = phase(&tag, "raw_engine_open", &mut r.errors, engine);
    if let Some(store) = raw_store {
        let mut raw = Raw {
            store,
            engine,
            slices: 0,
        };
        for &c in &s.concurrency {
            let level_tag = format!("[{backend} C={c}]");
            r.levels.push(levels::run_level(&ctx, &mut raw, c, &level_tag).await);
        }
    }

    eprintln!("{tag} fixed rate: {} req/s for {} s ...", s.rate, s.rate_secs);
    let fixed = levels::measured(&ctx.procs, stats::guarded(rate::run(Arc::clone(&ctx)))).await;
    r.fixed_rate = phase(&tag, "fixed_rate", &mut r.errors, fixed);

    let pods = {
        let (ctx, tag) = (Arc::clone(&ctx), tag.clone());
        levels::measured(
            &ctx.procs.clone(),
            stats::guarded(async move { pods::run(ctx, &tag).await }),
        )
        .await
    };
    r.list_pods = phase(&tag, "list_pods", &mut r.errors, pods);

    let fanned = {
        let (ctx, tag) = (Arc::clone(&ctx), tag.clone());
        levels::measured(
            &ctx.procs.clone(),
            stats::guarded(async move { fanout::run(ctx, &tag).await }),
        )
        .await
    };
    r.fanout = phase(&tag, "fanout", &mut r.errors, fanned);
    finish(r, &server, s)
}

/// Fills in what is read from the server at the end.
fn finish(mut r: BackendResult, server: &Server, s: &Settings) -> BackendResult {
    r.server_peak_rss_mib = server.peak_rss_mib();
    r.meets_targets = TargetChecks::of(&r, s);
    if !r.errors.is_empty() {
        let tail = server.log_tail(10);
        if !tail.is_empty() {
            eprintln!("[{}] last lines of the server log:\n{tail}", r.backend);
        }
    }
    r
}

/// Namespaces and a warm-up (connections, first-write costs); returns the
/// size of a benchmark ConfigMap as stored and returned.
async fn prepare(client: &kube::Client, s: &Settings) -> Result<usize> {
    for ns in [NS_CREATE, NS_LIST, NS_RATE, NS_PODS] {
        ensure_namespace(client, ns).await?;
    }
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS_CREATE);
    let payload = String::from_utf8_lossy(&stats::filler(s.value_bytes, 1)).into_owned();
    let mut stored = 0;
    for i in 0..crate::raw::WARM_UP_WRITES {
        let created = api
            .create(&PostParams::default(), &config_map(&format!("warmup-{i:03}"), &payload))
            .await
            .context("warming up the server")?;
        stored = serde_json::to_vec(&created).context("encoding a ConfigMap")?.len();
    }
    Ok(stored)
}

impl Progress for usize {}
impl Progress for (Server, kube::Client) {}
impl Progress for capstan_store::testing::EtcdServer {}

impl<T: Progress> Progress for Measured<T> {
    fn progress(&self) -> Option<String> {
        Some(format!("{}; {}", self.result.progress()?, levels::cpu_note(&self.cpu)))
    }
}

impl Progress for ListStats {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "{:.0} lists/s of {} objects, p50 {:.2} ms, p99 {:.2} ms",
            self.lists.ops_per_sec, self.objects_per_list, self.lists.latency.p50_ms, self.lists.latency.p99_ms
        ))
    }
}

impl Progress for WatchDelivery {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "after ack p50 {:.2} ms, p99 {:.2} ms; end to end p99 {:.2} ms; writes {:.0}/s; missing {}",
            self.delivery.p50_ms, self.delivery.p99_ms, self.end_to_end.p99_ms, self.writes.ops_per_sec, self.missing
        ))
    }
}

impl Progress for FixedRate {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "{:.1} req/s achieved of {}, p50 {:.2} ms, p99 {:.2} ms (get p99 {:.2}, create p99 {:.2}), {} failed, max {} in flight",
            self.achieved_rate,
            self.target_rate,
            self.all.p50_ms,
            self.all.p99_ms,
            self.get.p99_ms,
            self.create.p99_ms,
            self.failed,
            self.max_in_flight
        ))
    }
}

impl Progress for PodList {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "{} pods ({:.1} MiB): unpaged p50 {:.1} ms, p99 {:.1} ms; typed p50 {:.1} ms; paged walk p50 {:.1} ms ({} pages, page p99 {:.1} ms)",
            self.pods,
            self.response_mib,
            self.unpaged.p50_ms,
            self.unpaged.p99_ms,
            self.typed.p50_ms,
            self.paged_walk.p50_ms,
            self.pages_per_list,
            self.page.p99_ms
        ))
    }
}

impl Progress for Fanout {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "{} watchers × {} writes: after ack p50 {:.1} ms, p99 {:.1} ms; slowest watcher per write p99 {:.1} ms; missing {}, broken {}",
            self.watchers,
            self.writes,
            self.delivery.p50_ms,
            self.delivery.p99_ms,
            self.slowest_watcher.p99_ms,
            self.missing,
            self.broken_watches
        ))
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "ok",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

/// The human summary: a table of the levels, then one line per target.
fn summary(report: &ApiReport) -> String {
    let num = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    let ratio = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    let lat =
        |l: Option<&stats::Latency>| l.map_or_else(|| "-".to_string(), |l| format!("{:.1}/{:.1}", l.p50_ms, l.p99_ms));
    let row = |c: [String; 13]| {
        format!(
            "{:<6} {:>3} | {:>7} {:>11} | {:>7} {:>7} {:>6} {:>6} | {:>7} {:>11} | {:>6} {:>11} | {:>11}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12]
        )
    };
    let mut out = format!(
        "\nCapstan API benchmark: {} s per closed-loop phase, {}-byte ConfigMaps, {} cores{}.\n\
         Latencies are p50/p99 in ms. store/s = raw Capstan store creates, engine/s = raw engine puts;\n\
         vs store / vs engine = API creates/s ÷ those (target ≥ {TARGET_WRITE_RATIO}); watch = delay after the writer's ack.\n",
        report.settings.duration_secs,
        report.settings.value_bytes,
        report.machine.cores,
        if report.settings.quick { ", QUICK run" } else { "" }
    );
    if let (Some(start), Some(end)) = (report.machine.load_average, report.load_average_end) {
        let _ = writeln!(
            out,
            "Load average (1 min) {:.1} at the start, {:.1} at the end.",
            start[0], end[0]
        );
    }
    out += &row([
        "backend", "C", "create/s", "create", "store/s", "engine/s", "vs st", "vs en", "get/s", "get", "list/s",
        "list", "watch",
    ]
    .map(String::from));
    for b in &report.backends {
        for l in &b.levels {
            out += &row([
                b.backend.to_string(),
                l.concurrency.to_string(),
                num(l.create.as_ref().map(|m| m.result.ops_per_sec)),
                lat(l.create.as_ref().map(|m| &m.result.latency)),
                num(l.raw_store_create.map(|t| t.ops_per_sec)),
                num(l.raw_engine_put.map(|t| t.ops_per_sec)),
                ratio(l.create_vs_store) + if l.meets_target == Some(false) { "!" } else { "" },
                ratio(l.create_vs_engine)
                    + if l.meets_target_vs_engine == Some(false) {
                        "!"
                    } else {
                        ""
                    },
                num(l.get.as_ref().map(|m| m.result.ops_per_sec)),
                lat(l.get.as_ref().map(|m| &m.result.latency)),
                num(l.list.as_ref().map(|m| m.result.lists.ops_per_sec)),
                lat(l.list.as_ref().map(|m| &m.result.lists.latency)),
                lat(l.watch.as_ref().map(|m| &m.result.delivery)),
            ]);
        }
    }
    for b in &report.backends {
        let t = &b.meets_targets;
        let name = b.backend;
        let _ = writeln!(
            out,
            "{name}: write ≥ {TARGET_WRITE_RATIO} × raw store at every C: {}",
            verdict(t.write_vs_raw_store)
        );
        if let Some(f) = &b.fixed_rate {
            let f = &f.result;
            let _ = writeln!(
                out,
                "{name}: {} req/s for {} s (get/create): achieved {:.1}/s, p50 {:.2} ms, p99 {:.2} ms, {} failed (target p99 ≤ {TARGET_SINGLE_P99_MS} ms): {}",
                f.target_rate,
                f.duration_secs,
                f.achieved_rate,
                f.all.p50_ms,
                f.all.p99_ms,
                f.failed,
                verdict(t.single_object_p99)
            );
        }
        if let Some(p) = &b.list_pods {
            let p = &p.result;
            let _ = writeln!(
                out,
                "{name}: LIST {} pods ({:.1} MiB): p50 {:.1} ms, p99 {:.1} ms (target ≤ {TARGET_LIST_PODS_MS} ms at {TARGET_PODS}): {}; \
                 typed p50 {:.1} ms; paged by {} p50 {:.1} ms",
                p.pods,
                p.response_mib,
                p.unpaged.p50_ms,
                p.unpaged.p99_ms,
                verdict(t.list_pods),
                p.typed.p50_ms,
                p.page_size,
                p.paged_walk.p50_ms
            );
        }
        if let Some(f) = &b.fanout {
            let f = &f.result;
            let _ = writeln!(
                out,
                "{name}: fan-out {} watchers × {} writes: after ack p50 {:.1} ms, p99 {:.1} ms, slowest per write p99 {:.1} ms, \
                 missing {} (target p99 ≤ {TARGET_FANOUT_P99_MS} ms at {TARGET_WATCHERS}): {}",
                f.watchers,
                f.writes,
                f.delivery.p50_ms,
                f.delivery.p99_ms,
                f.slowest_watcher.p99_ms,
                f.missing,
                verdict(t.fanout)
            );
        }
        if let Some(rss) = b.server_peak_rss_mib {
            let _ = writeln!(out, "{name}: server peak RSS {rss:.0} MiB");
        }
        for err in &b.errors {
            let _ = writeln!(out, "error [{name}] {err}");
        }
    }
    let _ = writeln!(out, "all targets met: {}", verdict(report.all_targets_met));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiArgs,
    }

    fn settings(argv: &[&str]) -> Settings {
        let args = Cli::try_parse_from(std::iter::once("api").chain(argv.iter().copied()))
            .unwrap()
            .api;
        Settings::resolve(&args)
    }

    #[test]
    fn defaults_match_the_targets() {
        let s = settings(&[]);
        assert_eq!(s.backends, vec![Backend::Sqlite, Backend::Etcd]);
        assert_eq!(s.concurrency, vec![1, 16, 64]);
        assert_eq!(
            (s.pods, s.watchers, s.rate),
            (TARGET_PODS, TARGET_WATCHERS, TARGET_RATE)
        );
        assert_eq!((s.duration_secs, s.rate_secs, s.list_repeats), (4.0, 10.0, 20));
    }

    #[test]
    fn quick_shrinks_but_explicit_values_win() {
        let s = settings(&["--quick", "--pods", "500"]);
        assert!(s.quick);
        assert_eq!((s.duration_secs, s.watchers, s.pods), (1.0, 200, 500));
        assert!(Cli::try_parse_from(["api", "--watchers", "0"]).is_err());
    }

    #[test]
    fn target_checks() {
        let s = settings(&[]);
        let mut r = BackendResult {
            backend: Backend::Sqlite,
            server_start_secs: None,
            server_fd_limit: None,
            server_peak_rss_mib: None,
            stored_configmap_bytes: None,
            levels: Vec::new(),
            fixed_rate: None,
            list_pods: None,
            fanout: None,
            meets_targets: TargetChecks::default(),
            errors: Vec::new(),
        };
        assert_eq!(TargetChecks::of(&r, &s).all(), None);
        r.levels.push(LevelResult {
            concurrency: 1,
            create: None,
            raw_store_create: None,
            raw_engine_put: None,
            create_vs_store: Some(0.7),
            meets_target: Some(true),
            create_vs_engine: None,
            meets_target_vs_engine: None,
            get: None,
            list: None,
            watch: None,
            errors: Vec::new(),
        });
        let checks = TargetChecks::of(&r, &s);
        assert_eq!(checks.write_vs_raw_store, Some(true));
        assert_eq!(checks.fanout, None);
        let report_json = serde_json::to_value(&r).unwrap();
        assert_eq!(report_json["levels"][0]["create_vs_store"], 0.7);
        assert!(summary_for(r).contains("sqlite"));
    }

    fn summary_for(r: BackendResult) -> String {
        let s = settings(&["--backends", "sqlite"]);
        summary(&ApiReport {
            benchmark: "api",
            started_at_unix: 0,
            machine: Machine::detect(),
            load_average_end: None,
            capstan_binary: String::new(),
            client: CLIENT,
            settings: s,
            targets: TARGETS,
            fd_limit: server::raise_fd_limit(64),
            backends: vec![r],
            all_targets_met: None,
            total_elapsed_secs: 0.0,
        })
    }

    #[test]
    fn config_maps_and_names() {
        let cm = config_map("x", "abc");
        assert_eq!(cm.metadata.name.as_deref(), Some("x"));
        assert_eq!(cm.data.unwrap()["v"], "abc");
        assert_eq!(list_name(7), "list-00007");
    }
}
