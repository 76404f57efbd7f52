//! The raw rate of each engine underneath Capstan, with the same durability,
//! so the cost of Capstan's layer (revisions, history, compare-and-swap,
//! watch fan-out) is visible as a ratio.
//!
//! * **SQLite:** plain rusqlite on a `kv(key BLOB PRIMARY KEY, value BLOB)`
//!   table in its own file next to Capstan's, WAL journal,
//!   `synchronous=FULL` (a commit returns once the WAL is fsynced — the
//!   durability Capstan's store promises). `C` OS threads each own a
//!   connection and loop `BEGIN IMMEDIATE; INSERT; COMMIT`: one transaction
//!   per put, contending for SQLite's single write lock through
//!   `busy_timeout`. This is what an application gets from "just SQLite"
//!   without batching, and what group commit has to beat. (SQLite's busy
//!   handler sleeps and retries, so many writers on few cores degrade it.)
//! * **etcd:** plain `etcd_client` puts (the same client crate Capstan uses)
//!   from `C` tasks sharing one connection, on the same etcd as the Capstan
//!   store under test, under a different prefix.
//! * **etcd, create transaction:** the same client sending what a Capstan
//!   create is on etcd — a transaction `create_revision(key) == 0 → put` —
//!   to separate etcd's own cost of a compare-and-swap from the cost of
//!   Capstan's client layer.
//!
//! The benchmark runs the raw engine in slices interleaved with Capstan's
//! put phase (see [`crate::store`]), so one engine keeps its database or
//! connection across slices; keys carry the slice number to stay fresh.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp};
use hdrhistogram::Histogram;
use rusqlite::{Connection, TransactionBehavior};

use crate::stats::{self, Slice};

/// Untimed writes before timing starts on a fresh server or store.
pub const WARM_UP_WRITES: usize = 20;

/// How long a raw SQLite writer waits for the write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The key a put worker writes for its `i`-th operation of slice `slice`;
/// `kind` keeps raw and Capstan keys apart when they share an etcd.
pub fn put_key(kind: &str, slice: usize, worker: usize, i: u64) -> String {
    format!("/bench/{kind}/{slice:02}/{worker:03}/{i:010}")
}

/// A raw engine ready to take puts.
#[derive(Clone)]
pub enum RawEngine {
    Sqlite(Arc<RawSqlite>),
    /// Blind puts.
    Etcd(Box<KvClient>),
    /// Create-if-absent transactions.
    EtcdTxn(Box<KvClient>),
}

impl RawEngine {
    /// Creates a raw SQLite database at `path`.
    pub async fn sqlite(path: PathBuf) -> Result<RawEngine> {
        let db = tokio::task::spawn_blocking(move || RawSqlite::create(path))
            .await
            .map_err(stats::join_error)??;
        Ok(RawEngine::Sqlite(Arc::new(db)))
    }

    /// Connects to etcd at `endpoint` and warms the connection up (a fresh
    /// etcd answers on its port before it has elected itself leader).
    pub async fn etcd(endpoint: &str) -> Result<RawEngine> {
        let client = etcd_client::Client::connect([endpoint], None)
            .await
            .with_context(|| format!("connecting to etcd at {endpoint}"))?;
        let mut kv = client.kv_client();
        for i in 0..WARM_UP_WRITES {
            kv.put(format!("/bench/raw-warmup/{i}"), stats::filler(64, i as u64), None)
                .await
                .context("warming up etcd")?;
        }
        Ok(RawEngine::Etcd(Box::new(kv)))
    }

    /// The create-transaction variant of an etcd engine (on the same connection).
    pub fn txn_variant(&self) -> Option<RawEngine> {
        match self {
            RawEngine::Etcd(kv) => Some(RawEngine::EtcdTxn(kv.clone())),
            _ => None,
        }
    }

    /// `concurrency` writers putting fresh keys for `duration`.
    pub async fn put_slice(
        self,
        slice: usize,
        concurrency: usize,
        duration: Duration,
        value_bytes: usize,
    ) -> Result<Slice> {
        match self {
            RawEngine::Sqlite(db) => {
                tokio::task::spawn_blocking(move || db.put_slice(slice, concurrency, duration, value_bytes))
                    .await
                    .map_err(stats::join_error)?
            }
            RawEngine::Etcd(kv) => {
                let values = stats::worker_values(concurrency, value_bytes);
                stats::run_slice(concurrency, duration, move |worker, i| {
                    let mut kv = kv.clone();
                    let value = values[worker].clone();
                    async move {
                        kv.put(put_key("raw", slice, worker, i), value, None).await?;
                        Ok(())
                    }
                })
                .await
            }
            RawEngine::EtcdTxn(kv) => {
                let values = stats::worker_values(concurrency, value_bytes);
                stats::run_slice(concurrency, duration, move |worker, i| {
                    let mut kv = kv.clone();
                    let key = put_key("raw-txn", slice, worker, i);
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key, values[worker].clone(), None)]);
                    async move {
                        ensure!(
                            kv.txn(txn).await?.succeeded(),
                            "create transaction found the key present"
                        );
                        Ok(())
                    }
                })
                .await
            }
        }
    }
}

/// A plain SQLite database for the baseline.
pub struct RawSqlite {
    path: PathBuf,
    /// Held open for the whole run, so that the WAL is not checkpointed and
    /// deleted each time the last writer of a slice closes its connection.
    _setup: Mutex<Connection>,
}

impl RawSqlite {
    fn create(path: PathBuf) -> Result<RawSqlite> {
        let setup = Connection::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let mode: String = setup.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        ensure!(mode.eq_ignore_ascii_case("wal"), "SQLite refused WAL mode (got {mode})");
        setup.execute_batch("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL)")?;
        Ok(RawSqlite {
            path,
            _setup: Mutex::new(setup),
        })
    }

    /// Blocking: `concurrency` threads with a connection each; the clock
    /// starts once all have connected and stops at the last commit.
    fn put_slice(&self, slice: usize, concurrency: usize, duration: Duration, value_bytes: usize) -> Result<Slice> {
        let ready = Barrier::new(concurrency + 1);
        let (start, results) = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..concurrency)
                .map(|worker| {
                    let (ready, path) = (&ready, &self.path);
                    scope.spawn(move || {
                        let conn = open_writer(path);
                        ready.wait();
                        let deadline = Instant::now() + duration;
                        sqlite_writer(conn?, slice, worker, deadline, value_bytes)
                    })
                })
                .collect();
            ready.wait();
            let start = Instant::now();
            let results: Vec<Result<(Histogram<u64>, Instant)>> = writers
                .into_iter()
                .map(|w| w.join().map_err(|_| anyhow!("raw SQLite writer thread panicked"))?)
                .collect();
            (start, results)
        });
        let mut hists = Vec::with_capacity(concurrency);
        let mut last = start;
        for result in results {
            let (hist, finished) = result?;
            hists.push(hist);
            last = last.max(finished);
        }
        Ok(Slice {
            hist: stats::merge(hists)?,
            elapsed: last - start,
        })
    }
}

fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// One writer's loop; returns its latencies and when its last commit finished.
fn sqlite_writer(
    mut conn: Connection,
    slice: usize,
    worker: usize,
    deadline: Instant,
    value_bytes: usize,
) -> Result<(Histogram<u64>, Instant)> {
    let value = stats::filler(value_bytes, worker as u64);
    let mut hist = stats::new_histogram();
    let mut i = 0u64;
    let mut finished = Instant::now();
    while finished < deadline {
        let key = put_key("raw", slice, worker, i);
        let began = Instant::now();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO kv (key, value) VALUES (?1, ?2)")?
            .execute((key.as_bytes(), &value))?;
        tx.commit()?;
        finished = Instant::now();
        stats::record(&mut hist, finished - began);
        i += 1;
    }
    Ok((hist, finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_baseline_writes_every_counted_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.db");
        let engine = RawEngine::sqlite(path.clone()).await.unwrap();
        let mut ops = 0;
        for slice in 0..2 {
            let part = engine
                .clone()
                .put_slice(slice, 3, Duration::from_millis(200), 100)
                .await
                .unwrap();
            assert!(part.elapsed >= Duration::from_millis(200));
            ops += part.hist.len();
        }
        assert!(ops > 0);
        let conn = Connection::open(&path).unwrap();
        let rows: i64 = conn.query_row("SELECT count(*) FROM kv", [], |r| r.get(0)).unwrap();
        assert_eq!(rows as u64, ops);
    }
}
