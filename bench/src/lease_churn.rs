//! `capstan-bench lease-churn`: how big the SQLite database gets under the
//! heaviest steady write load of a quiet cluster — node heartbeats.
//!
//! Every kubelet renews its `Lease` in `kube-node-lease` every 10 s. Each
//! renewal is a compare-and-swap update that keeps the old value as history,
//! so without compaction 1,000 nodes add 8.64 million history rows a day. The
//! design goal is that such a cluster keeps its SQLite database under 100 MB.
//!
//! The run compresses time: it creates one realistic Lease object (~400 bytes
//! of JSON) per node under `/registry/leases/kube-node-lease/<node>`, then
//! performs `nodes × hours × 3600 / renew_secs` renewals (every lease in turn,
//! `--concurrency` writers in parallel) as fast as the store takes them. A
//! simulated clock advances `renew_secs / nodes` per completed write, and a
//! [`Compactor`] with the production policy (`--window-secs`,
//! `--interval-secs`, `min_retained`) is driven by that clock: every simulated
//! interval it observes the current revision and the store compacts to the
//! target it returns — exactly what the API server's compaction loop does in
//! real time. The database files (main file, `-wal`, `-shm`) are measured at
//! every simulated interval; one sample per simulated hour is reported, with
//! the final and the maximum size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use capstan_store::{CompactionPolicy, Compactor, Endpoint, Revision, Store};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::report::{self, Machine};
use crate::stats::{self, Latency};
use crate::{positive_f64, positive_usize};

/// The design goal: the database stays under this size, in MB (10^6 bytes).
const LIMIT_MB: f64 = 100.0;
/// Name of the database file inside the run's temporary directory.
const DB_FILE: &str = "capstan.db";
/// Simulated wall-clock time of the first write: 2025-01-01T00:00:00Z.
const SIM_START_UNIX: u64 = 1_735_689_600;

#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Number of nodes, each with one Lease.
    #[arg(long, default_value_t = 1000, value_parser = positive_usize)]
    pub nodes: usize,
    /// Seconds between renewals of one node's Lease.
    #[arg(long, default_value_t = 10.0, value_parser = positive_f64)]
    pub renew_secs: f64,
    /// Simulated hours of churn (24 = 8.64M writes for 1,000 nodes).
    #[arg(long, default_value_t = 24.0, value_parser = positive_f64)]
    pub hours: f64,
    /// Compaction keeps history newer than this many simulated seconds.
    #[arg(long, default_value_t = 300)]
    pub window_secs: u64,
    /// Compaction runs every this many simulated seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_secs: u64,
    /// Compaction never drops the newest this-many revisions.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(0..))]
    pub min_retained: i64,
    /// Concurrent writers (each renews its own share of the leases).
    #[arg(long, default_value_t = 64, value_parser = positive_usize)]
    pub concurrency: usize,
    /// Where to create the temporary database (default: the system temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

impl ChurnArgs {
    /// Renewals in the whole simulated run.
    pub fn total_writes(&self) -> u64 {
        (self.nodes as f64 * self.hours * 3600.0 / self.renew_secs).round() as u64
    }
}

#[derive(Debug, Serialize)]
pub struct ChurnReport {
    pub benchmark: &'static str,
    pub started_at_unix: u64,
    pub machine: Machine,
    pub load_average_end: Option<[f64; 3]>,
    pub backend: &'static str,
    pub nodes: usize,
    pub renew_secs: f64,
    pub simulated_hours: f64,
    pub window_secs: u64,
    pub interval_secs: u64,
    pub min_retained: i64,
    pub concurrency: usize,
    /// Size of one Lease value as written (the first renewal of node 0).
    pub lease_bytes: usize,
    /// Renewals (compare-and-swap updates), not counting the initial creates.
    pub writes: u64,
    pub creates: u64,
    pub wall_secs: f64,
    pub writes_per_sec: f64,
    pub write_latency: Latency,
    pub compactions: u64,
    pub compaction_max_ms: f64,
    pub compaction_total_secs: f64,
    pub final_revision: Revision,
    pub final_compacted_revision: Revision,
    /// One sample per simulated hour, plus one after the last write if the
    /// run does not end on the hour.
    pub samples: Vec<SizeSample>,
    pub final_size_mb: f64,
    /// Largest total size seen at any simulated compaction interval.
    pub max_size_mb: f64,
    pub limit_mb: f64,
    pub under_100mb: bool,
}

/// The database files at one point of simulated time; sizes in MB (10^6 bytes).
#[derive(Debug, Clone, Serialize)]
pub struct SizeSample {
    pub sim_hours: f64,
    pub writes: u64,
    pub revision: Revision,
    pub compacted_revision: Revision,
    pub db_mb: f64,
    pub wal_mb: f64,
    pub shm_mb: f64,
    /// Every file in the database's directory (main, -wal, -shm and any other).
    pub total_mb: f64,
    pub wall_secs: f64,
}

pub async fn run(args: ChurnArgs) -> Result<()> {
    let started = Instant::now();
    let started_at_unix = report::unix_now();
    let machine = Machine::detect();
    let total = args.total_writes();
    let nodes = args.nodes;
    let concurrency = args.concurrency.min(nodes);
    // Simulated seconds per completed write.
    let step = args.renew_secs / nodes as f64;
    let policy = CompactionPolicy {
        window: Duration::from_secs(args.window_secs),
        interval: Duration::from_secs(args.interval_secs),
        min_retained: args.min_retained,
    };

    let parent = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("capstan-churn-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let db_path = dir.path().join(DB_FILE);
    eprintln!(
        "lease-churn: {nodes} nodes renewing every {} s for {} simulated h = {total} writes, {concurrency} writers, \
         compaction window {} s every {} s; database {}",
        args.renew_secs,
        args.hours,
        args.window_secs,
        args.interval_secs,
        db_path.display()
    );
    let endpoint = Endpoint::Sqlite(db_path.clone());
    let store = stats::guarded(async move { Ok(capstan_store::open(&endpoint).await?) })
        .await
        .context("opening the SQLite store")?;

    // One Lease per node, created at simulated time 0.
    let mut revisions = vec![0; nodes];
    let mut creators = JoinSet::new();
    for first in 0..concurrency {
        let store = Arc::clone(&store);
        creators.spawn(async move {
            let mut created = Vec::new();
            for node in (first..nodes).step_by(concurrency) {
                let rev = store
                    .create(&lease_key(node), lease_json(node, 0, 0))
                    .await
                    .with_context(|| format!("creating the lease of node {node}"))?;
                created.push((node, rev));
            }
            anyhow::Ok(created)
        });
    }
    while let Some(done) = creators.join_next().await {
        for (node, rev) in done.map_err(stats::join_error)?? {
            revisions[node] = rev;
        }
    }
    let lease_bytes = lease_json(0, revisions[0], 0).len();
    eprintln!("lease-churn: created {nodes} leases ({lease_bytes} bytes each); renewing ...");

    // Renewals: writer `w` owns nodes w, w + C, w + 2C, ... and renews them
    // in global order k = round × nodes + node.
    let completed = Arc::new(AtomicU64::new(0));
    let churn_start = Instant::now();
    let mut writers = JoinSet::new();
    for first in 0..concurrency {
        let store = Arc::clone(&store);
        let completed = Arc::clone(&completed);
        let owned: Vec<(usize, Revision)> = (first..nodes).step_by(concurrency).map(|n| (n, revisions[n])).collect();
        writers.spawn(renew_leases(store, owned, nodes, total, step, completed));
    }

    let sim_base = Instant::now();
    let mut compactor = Compactor::new(policy);
    let mut compactions = 0u64;
    let (mut compaction_max, mut compaction_total) = (Duration::ZERO, Duration::ZERO);
    let mut next_tick = args.interval_secs as f64;
    let mut next_hour = 1u64;
    let mut samples = Vec::new();
    let mut max_size = 0u64;
    let mut hists = Vec::new();
    let end_secs = total as f64 * step;
    loop {
        while let Some(done) = writers.try_join_next() {
            hists.push(done.map_err(stats::join_error)??);
        }
        let finished = writers.is_empty();
        let done = completed.load(Ordering::Relaxed);
        let sim_secs = if finished { end_secs } else { done as f64 * step };

        while next_tick <= sim_secs {
            let current = store.current_revision().await?;
            let at = sim_base + Duration::from_secs_f64(next_tick);
            if let Some(target) = compactor.observe(at, current) {
                let began = Instant::now();
                store
                    .compact(target)
                    .await
                    .with_context(|| format!("compacting to revision {target}"))?;
                let took = began.elapsed();
                compactions += 1;
                compaction_total += took;
                compaction_max = compaction_max.max(took);
            }
            max_size = max_size.max(DbFiles::measure(dir.path())?.total());
            next_tick += args.interval_secs as f64;
        }
        while (next_hour * 3600) as f64 <= sim_secs {
            let sample = sample(&*store, dir.path(), next_hour as f64, done, started).await?;
            let rate = stats::rate(done, churn_start.elapsed());
            eprintln!(
                "lease-churn: simulated hour {next_hour}/{}: {done} writes ({rate:.0}/s), db {:.1} MB + wal {:.1} MB + shm {:.1} MB = {:.1} MB, revision {}, compacted to {}",
                args.hours,
                sample.db_mb,
                sample.wal_mb,
                sample.shm_mb,
                sample.total_mb,
                sample.revision,
                sample.compacted_revision
            );
            samples.push(sample);
            next_hour += 1;
        }
        if finished {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let wall = churn_start.elapsed();
    let writes = completed.load(Ordering::Relaxed);
    ensure!(writes == total, "{writes} of {total} renewals completed");

    // A closing sample, unless the last hourly one was already taken at the end.
    if samples.last().is_none_or(|s| s.writes != writes) {
        let hours = stats::round3(end_secs / 3600.0);
        samples.push(sample(&*store, dir.path(), hours, writes, started).await?);
    }
    let final_bytes = DbFiles::measure(dir.path())?.total();
    max_size = max_size.max(final_bytes);
    let final_revision = store.current_revision().await?;
    let final_compacted_revision = store.compacted_revision().await?;
    let latency = Latency::of(&stats::merge(hists)?);
    drop(store);

    let report = ChurnReport {
        benchmark: "lease-churn",
        started_at_unix,
        machine,
        load_average_end: report::load_average(),
        backend: "sqlite",
        nodes,
        renew_secs: args.renew_secs,
        simulated_hours: args.hours,
        window_secs: args.window_secs,
        interval_secs: args.interval_secs,
        min_retained: args.min_retained,
        concurrency,
        lease_bytes,
        writes,
        creates: nodes as u64,
        wall_secs: stats::round3(wall.as_secs_f64()),
        writes_per_sec: stats::rate(writes, wall),
        write_latency: latency,
        compactions,
        compaction_max_ms: stats::round3(compaction_max.as_secs_f64() * 1000.0),
        compaction_total_secs: stats::round3(compaction_total.as_secs_f64()),
        final_revision,
        final_compacted_revision,
        samples,
        final_size_mb: mb(final_bytes),
        max_size_mb: mb(max_size),
        limit_mb: LIMIT_MB,
        under_100mb: mb(max_size) < LIMIT_MB,
    };
    eprintln!(
        "\nLease churn: {} writes in {:.1} s ({:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms), {} compactions (max {:.1} ms).\n\
         Database after {} simulated h: {:.1} MB; max {:.1} MB; under {LIMIT_MB} MB: {}",
        report.writes,
        report.wall_secs,
        report.writes_per_sec,
        latency.p50_ms,
        latency.p99_ms,
        report.compactions,
        report.compaction_max_ms,
        report.simulated_hours,
        report.final_size_mb,
        report.max_size_mb,
        if report.under_100mb { "yes" } else { "NO" }
    );
    report::emit(&report, args.json_out.as_deref())?;
    eprintln!("total elapsed: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One writer's share of the renewals. Returns its latency histogram.
async fn renew_leases(
    store: Arc<dyn Store>,
    mut owned: Vec<(usize, Revision)>,
    nodes: usize,
    total: u64,
    step: f64,
    completed: Arc<AtomicU64>,
) -> Result<hdrhistogram::Histogram<u64>> {
    let mut hist = stats::new_histogram();
    for round in 0u64.. {
        for (node, rev) in owned.iter_mut() {
            let k = round * nodes as u64 + *node as u64;
            if k >= total {
                return Ok(hist);
            }
            let renew_micros = ((k + 1) as f64 * step * 1e6) as u64;
            let value = lease_json(*node, *rev, renew_micros);
            let began = Instant::now();
            *rev = store
                .update(&lease_key(*node), value, *rev)
                .await
                .with_context(|| format!("renewing the lease of node {node} at revision {rev}"))?;
            stats::record(&mut hist, began.elapsed());
            completed.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(hist)
}

async fn sample(store: &dyn Store, dir: &Path, sim_hours: f64, writes: u64, started: Instant) -> Result<SizeSample> {
    let files = DbFiles::measure(dir)?;
    Ok(SizeSample {
        sim_hours,
        writes,
        revision: store.current_revision().await?,
        compacted_revision: store.compacted_revision().await?,
        db_mb: mb(files.db),
        wal_mb: mb(files.wal),
        shm_mb: mb(files.shm),
        total_mb: mb(files.total()),
        wall_secs: stats::round3(started.elapsed().as_secs_f64()),
    })
}

/// Bytes on disk of the database's files.
#[derive(Debug, Default, Clone, Copy)]
struct DbFiles {
    db: u64,
    wal: u64,
    shm: u64,
    other: u64,
}

impl DbFiles {
    /// Sizes of every file in `dir` (which holds only this database).
    fn measure(dir: &Path) -> Result<DbFiles> {
        let mut files = DbFiles::default();
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            // A file may vanish between listing and stat (e.g. a journal).
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            match name.strip_prefix(DB_FILE) {
                Some("") => files.db += meta.len(),
                Some("-wal") => files.wal += meta.len(),
                Some("-shm") => files.shm += meta.len(),
                _ => files.other += meta.len(),
            }
        }
        Ok(files)
    }

    fn total(&self) -> u64 {
        self.db + self.wal + self.shm + self.other
    }
}

fn mb(bytes: u64) -> f64 {
    stats::round3(bytes as f64 / 1e6)
}

fn lease_key(node: usize) -> String {
    format!("/registry/leases/kube-node-lease/{}", node_name(node))
}

fn node_name(node: usize) -> String {
    format!("node-{node:04}")
}

/// A Lease as a kubelet keeps it, renewed `renew_micros` after the simulated start.
fn lease_json(node: usize, resource_version: Revision, renew_micros: u64) -> Vec<u8> {
    let name = node_name(node);
    let created = rfc3339(SIM_START_UNIX * 1_000_000, false);
    let renewed = rfc3339(SIM_START_UNIX * 1_000_000 + renew_micros, true);
    let renewed_secs = rfc3339(SIM_START_UNIX * 1_000_000 + renew_micros, false);
    let lease = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": "kube-node-lease",
            "uid": format!("3f8e2c1a-{:04x}-4b6d-9e7f-{:012x}", node & 0xffff, node),
            "resourceVersion": resource_version.to_string(),
            "creationTimestamp": created,
            "managedFields": [{
                "manager": "kubelet",
                "operation": "Update",
                "apiVersion": "coordination.k8s.io/v1",
                "time": renewed_secs
            }]
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": 40,
            "renewTime": renewed
        }
    });
    serde_json::to_vec(&lease).expect("a JSON value always serializes")
}

/// `2025-01-01T00:00:10.123456Z` (with `micros`) or `2025-01-01T00:00:10Z`.
fn rfc3339(unix_micros: u64, micros: bool) -> String {
    let secs = unix_micros / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if micros {
        format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z",
            unix_micros % 1_000_000
        )
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(SIM_START_UNIX * 1_000_000, false), "2025-01-01T00:00:00Z");
        assert_eq!(
            rfc3339((SIM_START_UNIX + 59 * 86_400 + 3661) * 1_000_000 + 42, true),
            "2025-03-01T01:01:01.000042Z"
        );
        assert_eq!(rfc3339(951_782_400 * 1_000_000, false), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn lease_is_realistic() {
        let value = lease_json(42, 123_456_789, 86_399_999_999);
        let lease: serde_json::Value = serde_json::from_slice(&value).unwrap();
        assert_eq!(lease["kind"], "Lease");
        assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(lease["spec"]["holderIdentity"], "node-0042");
        assert_eq!(lease["spec"]["renewTime"], "2025-01-01T23:59:59.999999Z");
        assert!((350..=500).contains(&value.len()), "{} bytes", value.len());
        assert_eq!(lease_key(42), "/registry/leases/kube-node-lease/node-0042");
    }

    #[test]
    fn measures_database_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join(format!("{DB_FILE}-wal")), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join(format!("{DB_FILE}-shm")), [0u8; 1]).unwrap();
        let files = DbFiles::measure(dir.path()).unwrap();
        assert_eq!((files.db, files.wal, files.shm, files.other), (100, 10, 1, 0));
        assert_eq!(files.total(), 111);
    }
}
