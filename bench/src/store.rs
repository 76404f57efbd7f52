//! `capstan-bench store`: throughput and latency of the [`Store`] trait on
//! each backend, next to the raw engine underneath.
//!
//! For every backend and concurrency level `C` a fresh store (a new SQLite
//! file, or a new throwaway etcd) goes through these phases, each a closed
//! loop of `C` workers for `--duration-secs`:
//!
//! * **put** — `create` of fresh keys `/bench/put/...`: every operation is a
//!   durable write that allocates a revision and a history row.
//! * **raw put** — the same puts straight on the engine with the same
//!   durability (see [`crate::raw`]), at the same `C`: a second SQLite file
//!   in the same directory, or plain puts on the same etcd. Put and raw put
//!   run interleaved in `--rounds` slices (raw, Capstan, raw, Capstan, ...)
//!   so that both see the same machine. `put_vs_raw` = Capstan put ops/s ÷
//!   raw put ops/s; the target is ≥ 0.5, i.e. Capstan's bookkeeping may at
//!   most halve the engine's rate. `put_vs_best_raw` compares with the raw
//!   engine's best rate at any measured `C`. On etcd a third contestant,
//!   **raw txn put** (create-if-absent transactions from the same client),
//!   shows how much of the gap is etcd's own compare-and-swap cost.
//! * **get** — `get` of random keys of a preloaded data set
//!   (`--dataset-keys`, default 1,000 keys under `/bench/data/`).
//! * **list** — `list("/bench/data/", limit = --list-limit)`: one page of an
//!   informer-style relist; reported as lists/s.
//! * **watch** — `--watchers` watches on `/bench/watch/` while `C` writers
//!   create keys there. Each value starts with the send time (16 bytes, LE
//!   nanoseconds since a process-wide epoch) and writers note the ack time of
//!   every key, so each delivery yields both the delay after the write was
//!   acknowledged (the headline p50/p99: how stale a watcher is; 0 when the
//!   event arrives before the writer has seen its ack) and the end-to-end
//!   delay from the start of the write.
//!
//! A failing or unimplemented phase is reported in `errors` and the run goes
//! on, so one broken backend does not hide the other's numbers.

use crate::report::{Progress, phase};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use capstan_store::testing::EtcdServer;
use capstan_store::{Endpoint, Event, ListOptions, Store, WatchStream};
use futures::StreamExt;
use serde::Serialize;
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::raw::RawEngine;
use crate::report::{self, Machine};
use crate::stats::{self, Latency, Slice, Throughput};
use crate::{positive_f64, positive_usize, raw};

/// The ratio of Capstan's put rate to the raw engine's that the issue asks for.
pub const TARGET_RATIO: f64 = 0.5;
/// Bytes at the start of a watch-phase value that carry the send time.
const STAMP_BYTES: usize = 16;
/// How long watchers may lag behind the last write before the phase gives up
/// on the missing events.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const DATA_PREFIX: &str = "/bench/data/";
const WATCH_PREFIX: &str = "/bench/watch/";

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Backends to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqlite,etcd")]
    pub backends: Vec<Backend>,
    /// Concurrent workers per level, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64", value_parser = positive_usize)]
    pub concurrency: Vec<usize>,
    /// Length of each timed phase, in seconds.
    #[arg(long, default_value_t = 5.0, value_parser = positive_f64)]
    pub duration_secs: f64,
    /// Size of every written value, in bytes (at least 16: the watch phase's timestamp).
    #[arg(long, default_value_t = 512, value_parser = value_bytes)]
    pub value_bytes: usize,
    /// Slices the put and raw put phases are cut into and interleaved
    /// (raw, Capstan, raw, Capstan, ...), each `duration / rounds` long.
    #[arg(long, default_value_t = 5, value_parser = positive_usize)]
    pub rounds: usize,
    /// Keys preloaded for the get and list phases.
    #[arg(long, default_value_t = 1000, value_parser = positive_usize)]
    pub dataset_keys: usize,
    /// Page size of the list phase.
    #[arg(long, default_value_t = 500, value_parser = positive_usize)]
    pub list_limit: usize,
    /// Concurrent watchers in the watch phase.
    #[arg(long, default_value_t = 1, value_parser = positive_usize)]
    pub watchers: usize,
    /// Where to create the temporary SQLite databases (default: the system temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

fn value_bytes(s: &str) -> Result<usize, String> {
    let n = s.trim().parse::<usize>().map_err(|e| e.to_string())?;
    if n < STAMP_BYTES {
        return Err(format!(
            "must be at least {STAMP_BYTES} (the watch phase stores a timestamp)"
        ));
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Etcd,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Etcd => "etcd",
        })
    }
}

/// The whole run, as printed on stdout.
#[derive(Debug, Serialize)]
pub struct StoreReport {
    pub benchmark: &'static str,
    pub started_at_unix: u64,
    pub machine: Machine,
    pub load_average_end: Option<[f64; 3]>,
    pub duration_secs: f64,
    /// Interleaved slices of the put and raw put phases.
    pub rounds: usize,
    pub value_bytes: usize,
    pub dataset_keys: usize,
    pub list_limit: usize,
    pub watchers: usize,
    pub target_ratio: f64,
    pub results: Vec<LevelResult>,
    pub total_elapsed_secs: f64,
}

/// One backend at one concurrency level. A phase is `null` when it failed;
/// `errors` says why.
#[derive(Debug, Serialize)]
pub struct LevelResult {
    pub backend: Backend,
    pub concurrency: usize,
    pub put: Option<Throughput>,
    pub get: Option<Throughput>,
    pub list: Option<ListStats>,
    pub watch: Option<WatchStats>,
    pub raw_put: Option<Throughput>,
    /// Capstan put ops/s ÷ raw put ops/s.
    pub put_vs_raw: Option<f64>,
    pub meets_target: Option<bool>,
    /// Capstan put ops/s ÷ the best raw put ops/s of this backend at any
    /// measured concurrency (raw SQLite slows down as writers contend for
    /// its lock, so the same-`C` ratio alone can flatter group commit).
    pub put_vs_best_raw: Option<f64>,
    /// etcd only: the same client sending create-if-absent transactions
    /// (what a Capstan create is on etcd), interleaved with the other two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_txn_put: Option<Throughput>,
    /// etcd only: Capstan put ops/s ÷ raw transaction ops/s — the cost of
    /// Capstan's own layer, with etcd's compare-and-swap cost factored out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put_vs_raw_txn: Option<f64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ListStats {
    /// `ops_per_sec` here is lists per second.
    #[serde(flatten)]
    pub lists: Throughput,
    pub keys_per_list: usize,
    pub keys_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchStats {
    pub watchers: usize,
    /// The writes that fed the watchers (creates while being watched).
    pub writes: Throughput,
    /// Events received, summed over watchers.
    pub events: u64,
    /// Deliveries from the first write until the last event arrived.
    pub events_per_sec: f64,
    /// Delay from the write's acknowledgement to the watcher receiving it
    /// (0 when the event arrived before the writer saw its ack).
    #[serde(flatten)]
    pub delivery: Latency,
    pub delivered_before_ack: u64,
    /// Delay from the start of the write to the watcher receiving it.
    pub end_to_end: Latency,
    /// Writes some watcher never received (within the drain timeout).
    pub missing: u64,
    /// Events whose revision did not grow (must be 0).
    pub out_of_order: u64,
}

/// Settings shared by every phase.
#[derive(Debug, Clone)]
struct Settings {
    duration: Duration,
    rounds: usize,
    value_bytes: usize,
    dataset_keys: usize,
    list_limit: usize,
    watchers: usize,
    data_dir: PathBuf,
    /// Zero point of the timestamps carried in watch-phase values.
    epoch: Instant,
}

pub async fn run(args: StoreArgs) -> Result<()> {
    let started = Instant::now();
    let started_at_unix = report::unix_now();
    let data_dir = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    ensure!(
        data_dir.is_dir(),
        "--data-dir {} is not a directory",
        data_dir.display()
    );
    let settings = Arc::new(Settings {
        duration: Duration::from_secs_f64(args.duration_secs),
        rounds: args.rounds,
        value_bytes: args.value_bytes,
        dataset_keys: args.dataset_keys,
        list_limit: args.list_limit,
        watchers: args.watchers,
        data_dir,
        epoch: started,
    });
    let machine = Machine::detect();
    eprintln!(
        "capstan-bench store: backends {:?}, concurrency {:?}, {} s per phase, {}-byte values, {} cores",
        args.backends, args.concurrency, args.duration_secs, args.value_bytes, machine.cores
    );

    let mut results = Vec::new();
    for &backend in &args.backends {
        for &concurrency in &args.concurrency {
            results.push(run_level(backend, concurrency, &settings).await);
        }
    }
    compare_to_best_raw(&mut results);

    let report = StoreReport {
        benchmark: "store",
        started_at_unix,
        machine,
        load_average_end: report::load_average(),
        duration_secs: args.duration_secs,
        rounds: args.rounds,
        value_bytes: args.value_bytes,
        dataset_keys: args.dataset_keys,
        list_limit: args.list_limit,
        watchers: args.watchers,
        target_ratio: TARGET_RATIO,
        results,
        total_elapsed_secs: stats::round3(started.elapsed().as_secs_f64()),
    };
    eprint!("{}", summary(&report));
    report::emit(&report, args.json_out.as_deref())?;
    eprintln!("total elapsed: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Fills in `put_vs_best_raw` once every level of every backend has run.
fn compare_to_best_raw(results: &mut [LevelResult]) {
    let best = |backend: Backend, results: &[LevelResult]| {
        results
            .iter()
            .filter(|r| r.backend == backend)
            .filter_map(|r| r.raw_put.map(|t| t.ops_per_sec))
            .fold(0.0, f64::max)
    };
    let best_sqlite = best(Backend::Sqlite, results);
    let best_etcd = best(Backend::Etcd, results);
    for r in results.iter_mut() {
        let best = match r.backend {
            Backend::Sqlite => best_sqlite,
            Backend::Etcd => best_etcd,
        };
        if let Some(put) = r.put
            && best > 0.0
        {
            r.put_vs_best_raw = Some(stats::round3(put.ops_per_sec / best));
        }
    }
}

/// Every phase for one backend at one concurrency level.
async fn run_level(backend: Backend, concurrency: usize, s: &Arc<Settings>) -> LevelResult {
    let tag = format!("[{backend} C={concurrency}]");
    let mut r = LevelResult {
        backend,
        concurrency,
        put: None,
        get: None,
        list: None,
        watch: None,
        raw_put: None,
        put_vs_raw: None,
        meets_target: None,
        put_vs_best_raw: None,
        raw_txn_put: None,
        put_vs_raw_txn: None,
        errors: Vec::new(),
    };

    // Declared first, dropped last: the store and the raw engine go before
    // their etcd server and directory.
    let started = stats::guarded(Place::start(backend, s.data_dir.clone())).await;
    let Some(place) = phase(&tag, "start", &mut r.errors, started) else {
        return r;
    };
    eprintln!("{tag} opening a fresh Capstan store and raw {backend} ...");
    let opened = stats::guarded(open_store(place.capstan_endpoint(), s.value_bytes)).await;
    let store = phase(&tag, "open", &mut r.errors, opened);
    let raw = phase(
        &tag,
        "raw_open",
        &mut r.errors,
        stats::guarded(place.raw_engine()).await,
    );

    // Put and raw put alternate in short slices, so that both see the same
    // machine: on a shared VM, fsync latency and free CPU drift by 2x within
    // a minute, which would swamp a ratio of two runs taken one after the other.
    eprintln!("{tag} put and raw put, {} interleaved rounds ...", s.rounds);
    let slice_len = s.duration.div_f64(s.rounds as f64);
    let raw_txn = raw.as_ref().and_then(RawEngine::txn_variant);
    let mut raw_total = raw.as_ref().map(|_| Ok(Slice::empty()));
    let mut raw_txn_total = raw_txn.as_ref().map(|_| Ok(Slice::empty()));
    let mut put_total = store.as_ref().map(|_| Ok(Slice::empty()));
    for slice in 0..s.rounds {
        let (c, len, bytes) = (concurrency, slice_len, s.value_bytes);
        if let (Some(engine), Some(Ok(_))) = (&raw, &raw_total) {
            absorb(
                &mut raw_total,
                stats::guarded(engine.clone().put_slice(slice, c, len, bytes)).await,
            );
        }
        if let (Some(engine), Some(Ok(_))) = (&raw_txn, &raw_txn_total) {
            absorb(
                &mut raw_txn_total,
                stats::guarded(engine.clone().put_slice(slice, c, len, bytes)).await,
            );
        }
        if let (Some(store), Some(Ok(_))) = (&store, &put_total) {
            absorb(
                &mut put_total,
                stats::guarded(put_slice(Arc::clone(store), slice, c, len, bytes)).await,
            );
        }
    }
    r.raw_put = raw_total.and_then(|t| phase(&tag, "raw_put", &mut r.errors, t.map(|t| t.throughput())));
    r.raw_txn_put = raw_txn_total.and_then(|t| phase(&tag, "raw_txn_put", &mut r.errors, t.map(|t| t.throughput())));
    r.put = put_total.and_then(|t| phase(&tag, "put", &mut r.errors, t.map(|t| t.throughput())));
    if let (Some(put), Some(txn)) = (&r.put, &r.raw_txn_put)
        && txn.ops_per_sec > 0.0
    {
        r.put_vs_raw_txn = Some(stats::round3(put.ops_per_sec / txn.ops_per_sec));
    }
    if let (Some(put), Some(raw)) = (&r.put, &r.raw_put)
        && raw.ops_per_sec > 0.0
    {
        let ratio = stats::round3(put.ops_per_sec / raw.ops_per_sec);
        r.put_vs_raw = Some(ratio);
        r.meets_target = Some(ratio >= TARGET_RATIO);
        eprintln!("{tag} put vs raw: {ratio:.2} (target ≥ {TARGET_RATIO})");
    }
    drop(raw);
    let Some(store) = store else {
        return r;
    };

    eprintln!("{tag} preloading {} keys ...", s.dataset_keys);
    let loaded = stats::guarded(preload(Arc::clone(&store), s.dataset_keys, s.value_bytes)).await;
    if phase(&tag, "preload", &mut r.errors, loaded).is_some() {
        eprintln!("{tag} get ...");
        let get = stats::guarded(get_phase(Arc::clone(&store), concurrency, Arc::clone(s))).await;
        r.get = phase(&tag, "get", &mut r.errors, get);
        eprintln!("{tag} list ...");
        let list = stats::guarded(list_phase(Arc::clone(&store), concurrency, Arc::clone(s))).await;
        r.list = phase(&tag, "list", &mut r.errors, list);
    }

    eprintln!("{tag} watch ...");
    let watch = stats::guarded(watch_phase(Arc::clone(&store), concurrency, Arc::clone(s))).await;
    r.watch = phase(&tag, "watch", &mut r.errors, watch);
    drop(store);
    drop(place);
    r
}

/// Adds one slice to an interleaved phase's total; the first failure sticks.
fn absorb(total: &mut Option<Result<Slice>>, part: Result<Slice>) {
    if let Some(Ok(sum)) = total
        && let Err(err) = part.and_then(|part| sum.absorb(part))
    {
        *total = Some(Err(err));
    }
}

impl Progress for ListStats {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "{:.0} lists/s of {} keys, p50 {:.2} ms, p99 {:.2} ms",
            self.lists.ops_per_sec, self.keys_per_list, self.lists.latency.p50_ms, self.lists.latency.p99_ms
        ))
    }
}

impl Progress for WatchStats {
    fn progress(&self) -> Option<String> {
        Some(format!(
            "{:.0} events/s, delivery after ack p50 {:.2} ms, p99 {:.2} ms; writes {:.0}/s; missing {}, out of order {}",
            self.events_per_sec,
            self.delivery.p50_ms,
            self.delivery.p99_ms,
            self.writes.ops_per_sec,
            self.missing,
            self.out_of_order
        ))
    }
}

impl Progress for Place {}

/// Where one level's databases live: a fresh temporary directory and, for
/// etcd, a fresh throwaway etcd that Capstan and the raw client share.
/// Dropping it stops etcd and removes the files.
struct Place {
    backend: Backend,
    dir: TempDir,
    etcd: Option<EtcdServer>,
}

impl Place {
    async fn start(backend: Backend, data_dir: PathBuf) -> Result<Place> {
        let dir = tempfile::Builder::new()
            .prefix("capstan-bench-")
            .tempdir_in(&data_dir)
            .with_context(|| format!("creating a temporary directory in {}", data_dir.display()))?;
        let etcd = match backend {
            Backend::Sqlite => None,
            Backend::Etcd => Some(start_etcd().await?),
        };
        Ok(Place { backend, dir, etcd })
    }

    fn etcd_url(&self) -> String {
        self.etcd.as_ref().map(|e| e.endpoint().to_string()).unwrap_or_default()
    }

    fn capstan_endpoint(&self) -> Endpoint {
        match self.backend {
            Backend::Sqlite => Endpoint::Sqlite(self.dir.path().join("capstan.db")),
            Backend::Etcd => Endpoint::Etcd(vec![self.etcd_url()]),
        }
    }

    /// Opens the raw engine (a future that owns what it needs).
    fn raw_engine(&self) -> impl Future<Output = Result<RawEngine>> + Send + 'static {
        let (backend, path, url) = (self.backend, self.dir.path().join("raw.db"), self.etcd_url());
        async move {
            match backend {
                Backend::Sqlite => RawEngine::sqlite(path).await,
                Backend::Etcd => RawEngine::etcd(&url).await,
            }
        }
    }
}

async fn start_etcd() -> Result<EtcdServer> {
    tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .map_err(stats::join_error)?
        .context("starting a throwaway etcd (is etcd on the PATH, or $CAPSTAN_ETCD_BIN set?)")
}

/// Opens the Capstan store and warms it up with a few untimed creates, so
/// that leader election (etcd), connection setup and schema creation are
/// not billed to the first timed phase.
async fn open_store(endpoint: Endpoint, value_bytes: usize) -> Result<Arc<dyn Store>> {
    let store = capstan_store::open(&endpoint)
        .await
        .with_context(|| format!("opening the Capstan store at {endpoint:?}"))?;
    for i in 0..raw::WARM_UP_WRITES {
        store
            .create(&format!("/bench/warmup/{i}"), stats::filler(value_bytes, i as u64))
            .await
            .context("warming up the store")?;
    }
    Ok(store)
}

/// One slice of the put phase: creates of fresh keys.
async fn put_slice(
    store: Arc<dyn Store>,
    slice: usize,
    concurrency: usize,
    duration: Duration,
    value_bytes: usize,
) -> Result<Slice> {
    let values = stats::worker_values(concurrency, value_bytes);
    stats::run_slice(concurrency, duration, move |worker, i| {
        let store = Arc::clone(&store);
        let value = values[worker].clone();
        async move {
            store.create(&raw::put_key("put", slice, worker, i), value).await?;
            Ok(())
        }
    })
    .await
}

fn data_key(i: u64) -> String {
    format!("{DATA_PREFIX}{i:06}")
}

/// Creates the get/list data set, 64 writers at a time.
async fn preload(store: Arc<dyn Store>, keys: usize, value_bytes: usize) -> Result<()> {
    let writers = keys.min(64);
    let mut tasks = JoinSet::new();
    for first in 0..writers {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for i in (first..keys).step_by(writers) {
                let key = data_key(i as u64);
                store
                    .create(&key, stats::filler(value_bytes, i as u64))
                    .await
                    .with_context(|| format!("creating {key}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(stats::join_error)??;
    }
    Ok(())
}

async fn get_phase(store: Arc<dyn Store>, concurrency: usize, s: Arc<Settings>) -> Result<Throughput> {
    let keys = s.dataset_keys as u64;
    stats::run_timed(concurrency, s.duration, move |worker, i| {
        let store = Arc::clone(&store);
        let key = data_key(stats::mix64(((worker as u64) << 40) ^ i) % keys);
        async move {
            let (kv, _) = store.get(&key, None).await?;
            ensure!(kv.is_some(), "data set key {key} is missing");
            Ok(())
        }
    })
    .await
}

async fn list_phase(store: Arc<dyn Store>, concurrency: usize, s: Arc<Settings>) -> Result<ListStats> {
    let expected = s.list_limit.min(s.dataset_keys);
    let options = ListOptions {
        limit: Some(s.list_limit),
        ..ListOptions::default()
    };
    let lists = stats::run_timed(concurrency, s.duration, move |_, _| {
        let store = Arc::clone(&store);
        let options = options.clone();
        async move {
            let page = store.list(DATA_PREFIX, &options).await?;
            ensure!(
                page.kvs.len() == expected,
                "list returned {} keys, expected {expected}",
                page.kvs.len()
            );
            Ok(())
        }
    })
    .await?;
    Ok(ListStats {
        lists,
        keys_per_list: expected,
        keys_per_sec: (lists.ops_per_sec * expected as f64).round(),
    })
}

/// Nanoseconds from `epoch` to `at`.
fn nanos_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Writes the send time into the first [`STAMP_BYTES`] of a value.
fn stamp(value: &mut [u8], nanos: u64) {
    value[..STAMP_BYTES].copy_from_slice(&u128::from(nanos).to_le_bytes());
}

/// Reads the send time back; `None` if the value is too short.
fn read_stamp(value: &[u8]) -> Option<u64> {
    let bytes: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    u64::try_from(u128::from_le_bytes(bytes)).ok()
}

/// What one watcher saw: (key, received at, sent at), in arrival order.
#[derive(Debug, Default)]
struct WatcherLog {
    deliveries: Vec<(String, u64, u64)>,
    out_of_order: u64,
}

async fn watch_phase(store: Arc<dyn Store>, concurrency: usize, s: Arc<Settings>) -> Result<WatchStats> {
    let epoch = s.epoch;
    let after = store.current_revision().await?;
    let (expect_tx, expect_rx) = watch::channel(None::<u64>);
    let mut watchers = JoinSet::new();
    for _ in 0..s.watchers {
        let stream = store.watch(WATCH_PREFIX, after).await.context("starting a watch")?;
        watchers.spawn(watcher(stream, expect_rx.clone(), epoch));
    }

    let start = Instant::now();
    let deadline = start + s.duration;
    let values = stats::worker_values(concurrency, s.value_bytes);
    let mut writers = JoinSet::new();
    for worker in 0..concurrency {
        let store = Arc::clone(&store);
        let values = Arc::clone(&values);
        writers.spawn(async move {
            let mut hist = stats::new_histogram();
            let mut acks = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let key = format!("{WATCH_PREFIX}{worker:03}/{i:010}");
                let mut value = values[worker].clone();
                let began = Instant::now();
                stamp(&mut value, nanos_since(epoch, began));
                store
                    .create(&key, value)
                    .await
                    .with_context(|| format!("creating {key}"))?;
                let acked = Instant::now();
                stats::record(&mut hist, acked - began);
                acks.push((key, nanos_since(epoch, acked)));
                i += 1;
            }
            anyhow::Ok((hist, acks))
        });
    }
    let mut write_hists = Vec::new();
    let mut acks = HashMap::new();
    while let Some(done) = writers.join_next().await {
        let (hist, worker_acks) = done.map_err(stats::join_error)??;
        write_hists.push(hist);
        acks.extend(worker_acks);
    }
    let writes = Throughput::from_histogram(&stats::merge(write_hists)?, start.elapsed());
    expect_tx.send_replace(Some(writes.ops));

    let mut delivery = stats::new_histogram();
    let mut end_to_end = stats::new_histogram();
    let (mut events, mut before_ack, mut out_of_order, mut last_received) = (0u64, 0u64, 0u64, 0u64);
    let mut missing = 0u64;
    while let Some(done) = watchers.join_next().await {
        let log = done.map_err(stats::join_error)??;
        out_of_order += log.out_of_order;
        missing += writes.ops.saturating_sub(log.deliveries.len() as u64);
        for (key, received, sent) in log.deliveries {
            let acked = *acks
                .get(&key)
                .ok_or_else(|| anyhow!("watch delivered {key}, which no writer wrote"))?;
            if received < acked {
                before_ack += 1;
            }
            delivery.saturating_record(received.saturating_sub(acked) / 1000);
            end_to_end.saturating_record(received.saturating_sub(sent) / 1000);
            last_received = last_received.max(received);
            events += 1;
        }
    }
    let span = Duration::from_nanos(last_received.saturating_sub(nanos_since(epoch, start)));
    Ok(WatchStats {
        watchers: s.watchers,
        writes,
        events,
        events_per_sec: stats::rate(events, span),
        delivery: Latency::of(&delivery),
        delivered_before_ack: before_ack,
        end_to_end: Latency::of(&end_to_end),
        missing,
        out_of_order,
    })
}

/// Collects events until it has seen as many as were written (announced on
/// `expected` once the writers stop), or [`DRAIN_TIMEOUT`] after that.
async fn watcher(
    mut stream: WatchStream,
    mut expected: watch::Receiver<Option<u64>>,
    epoch: Instant,
) -> Result<WatcherLog> {
    let mut log = WatcherLog::default();
    let mut last_revision = 0;
    let mut target = None;
    // Far enough to never fire before the writers announce the count.
    let mut give_up = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    loop {
        if let Some(n) = target
            && log.deliveries.len() as u64 >= n
        {
            return Ok(log);
        }
        tokio::select! {
            event = stream.next() => {
                let received = nanos_since(epoch, Instant::now());
                match event {
                    Some(Ok(Event::Put { kv, .. })) => {
                        if kv.mod_revision <= last_revision {
                            log.out_of_order += 1;
                        }
                        last_revision = kv.mod_revision;
                        let sent = read_stamp(&kv.value).ok_or_else(|| anyhow!("value of {} has no timestamp", kv.key))?;
                        log.deliveries.push((kv.key, received, sent));
                    }
                    Some(Ok(Event::Delete { .. })) => {}
                    Some(Err(err)) => return Err(err).context("watch stream failed"),
                    None => bail!("watch stream ended after {} events", log.deliveries.len()),
                }
            }
            changed = expected.changed(), if target.is_none() => {
                changed.context("watch phase abandoned")?;
                target = *expected.borrow_and_update();
                give_up = tokio::time::Instant::now() + DRAIN_TIMEOUT;
            }
            () = tokio::time::sleep_until(give_up) => return Ok(log),
        }
    }
}

/// The human summary: one row per backend and level.
fn summary(report: &StoreReport) -> String {
    use std::fmt::Write as _;
    let num = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    let ms = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
    let lat = |l: Option<&Latency>| format!("{}/{}", ms(l.map(|l| l.p50_ms)), ms(l.map(|l| l.p99_ms)));
    let row = |c: [String; 14]| {
        format!(
            "{:<7} {:>3} | {:>8} {:>13} | {:>8} {:>13} | {:>6} | {:>8} {:>13} | {:>7} {:>13} | {:>8} {:>13} {:>13}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13]
        )
    };
    let mut out = format!(
        "\nCapstan store benchmark: {} s per phase, {}-byte values, {} cores.\n\
         Latencies are p50/p99 in ms; ratio = put/s ÷ raw/s (! = below {TARGET_RATIO}); watch delay is \
         measured after the writer's ack, and end to end from the start of the write.\n",
        report.duration_secs, report.value_bytes, report.machine.cores
    );
    if let (Some(start), Some(end)) = (report.machine.load_average, report.load_average_end) {
        out += &format!(
            "Load average (1 min) {:.1} at the start, {:.1} at the end: other work on the machine skews the numbers.\n",
            start[0], end[0]
        );
    }
    out += &row([
        "backend",
        "C",
        "put/s",
        "put lat",
        "raw/s",
        "raw lat",
        "ratio",
        "get/s",
        "get lat",
        "lists/s",
        "list lat",
        "events/s",
        "after ack",
        "end to end",
    ]
    .map(String::from));
    for r in &report.results {
        let ratio = match (r.put_vs_raw, r.meets_target) {
            (Some(x), Some(true)) => format!("{x:.2}"),
            (Some(x), _) => format!("{x:.2}!"),
            (None, _) => "-".to_string(),
        };
        out += &row([
            r.backend.to_string(),
            r.concurrency.to_string(),
            num(r.put.map(|t| t.ops_per_sec)),
            lat(r.put.as_ref().map(|t| &t.latency)),
            num(r.raw_put.map(|t| t.ops_per_sec)),
            lat(r.raw_put.as_ref().map(|t| &t.latency)),
            ratio,
            num(r.get.map(|t| t.ops_per_sec)),
            lat(r.get.as_ref().map(|t| &t.latency)),
            num(r.list.map(|l| l.lists.ops_per_sec)),
            lat(r.list.as_ref().map(|l| &l.lists.latency)),
            num(r.watch.as_ref().map(|w| w.events_per_sec)),
            lat(r.watch.as_ref().map(|w| &w.delivery)),
            lat(r.watch.as_ref().map(|w| &w.end_to_end)),
        ]);
    }
    for backend in [Backend::Sqlite, Backend::Etcd] {
        let best = report
            .results
            .iter()
            .filter(|r| r.backend == backend)
            .filter_map(|r| r.raw_put.map(|t| (t.ops_per_sec, r.concurrency)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((rate, c)) = best {
            let ratios: Vec<String> = report
                .results
                .iter()
                .filter(|r| r.backend == backend)
                .filter_map(|r| r.put_vs_best_raw.map(|x| format!("C={} {x:.2}", r.concurrency)))
                .collect();
            let _ = writeln!(
                out,
                "{backend}: best raw put {rate:.0}/s (C={c}); Capstan put vs that: {}",
                ratios.join(", ")
            );
        }
    }
    let txn: Vec<String> = report
        .results
        .iter()
        .filter_map(|r| {
            let t = r.raw_txn_put?;
            Some(format!(
                "C={} {:.0}/s ({})",
                r.concurrency,
                t.ops_per_sec,
                r.put_vs_raw_txn.map_or_else(|| "-".to_string(), |x| format!("{x:.2}"))
            ))
        })
        .collect();
    if !txn.is_empty() {
        let _ = writeln!(
            out,
            "etcd create transactions from the same client (Capstan put vs them): {}",
            txn.join(", ")
        );
    }
    let below: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.meets_target == Some(false))
        .map(|r| format!("{} C={}", r.backend, r.concurrency))
        .collect();
    if !below.is_empty() {
        let _ = writeln!(out, "! below the {TARGET_RATIO} put/raw target: {}", below.join(", "));
    }
    for r in &report.results {
        for err in &r.errors {
            let _ = writeln!(out, "error [{} C={}] {err}", r.backend, r.concurrency);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let mut value = stats::filler(64, 1);
        stamp(&mut value, 123_456_789_012);
        assert_eq!(read_stamp(&value), Some(123_456_789_012));
        assert_eq!(read_stamp(&value[..8]), None);
    }

    #[test]
    fn report_shape() {
        let t = Throughput::from_histogram(&stats::new_histogram(), Duration::from_secs(1));
        let report = StoreReport {
            benchmark: "store",
            started_at_unix: 0,
            machine: Machine::detect(),
            load_average_end: None,
            duration_secs: 5.0,
            rounds: 5,
            value_bytes: 512,
            dataset_keys: 1000,
            list_limit: 500,
            watchers: 1,
            target_ratio: TARGET_RATIO,
            results: vec![LevelResult {
                backend: Backend::Sqlite,
                concurrency: 16,
                put: Some(t),
                get: None,
                list: Some(ListStats {
                    lists: t,
                    keys_per_list: 500,
                    keys_per_sec: 0.0,
                }),
                watch: None,
                raw_put: Some(t),
                put_vs_raw: Some(0.93),
                meets_target: Some(true),
                put_vs_best_raw: Some(0.9),
                raw_txn_put: None,
                put_vs_raw_txn: None,
                errors: vec![],
            }],
            total_elapsed_secs: 1.0,
        };
        let json = serde_json::to_value(&report).unwrap();
        let r = &json["results"][0];
        assert_eq!(json["benchmark"], "store");
        assert!(json["machine"]["cores"].as_u64().unwrap() >= 1);
        assert_eq!(r["backend"], "sqlite");
        assert_eq!(r["concurrency"], 16);
        for field in ["ops_per_sec", "p50_ms", "p99_ms", "ops"] {
            assert!(r["put"][field].is_number(), "put.{field}");
            assert!(r["raw_put"][field].is_number(), "raw_put.{field}");
            assert!(r["list"][field].is_number(), "list.{field}");
        }
        assert_eq!(r["put_vs_raw"], 0.93);
        assert_eq!(r["meets_target"], true);
        assert!(r["get"].is_null());
        assert!(summary(&report).contains("sqlite"));
    }
}
