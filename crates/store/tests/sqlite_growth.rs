//! Under constant churn with compaction, the SQLite file stops growing.
//!
//! This is the k3s/kine failure mode: node leases renewed every 10 s grow
//! the database without bound when compaction falls behind or freed space
//! is never reused. Here 1,000 lease-sized keys are renewed round after
//! round, compacted by the same [`Compactor`] the server uses (on a simulated
//! clock: one round is 10 s, the window 60 s), and the file must plateau.
//! `capstan-bench lease-churn` runs the full simulated day.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_store::sqlite::SqliteStore;
use capstan_store::{CompactionPolicy, Compactor, Store};

const LEASES: usize = 1000;
const ROUNDS: usize = 60;
const TASKS: usize = 50;

fn database_bytes(db: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_size_plateaus_under_lease_churn() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let store = Arc::new(SqliteStore::open(&db).await.unwrap());
    let lease = vec![b'l'; 400];
    let mut revisions = Vec::with_capacity(LEASES);
    for i in 0..LEASES {
        revisions.push(
            store
                .create(&format!("/registry/leases/kube-node-lease/node-{i}"), lease.clone())
                .await
                .unwrap(),
        );
    }
    let policy = CompactionPolicy {
        window: Duration::from_secs(60),
        interval: Duration::from_secs(10),
        min_retained: 1000,
    };
    let mut compactor = Compactor::new(policy);
    let clock = Instant::now();
    let mut sizes = Vec::new();
    for round in 0..ROUNDS {
        revisions = renew_all(&store, revisions, &lease).await;
        let now = clock + Duration::from_secs(10 * round as u64);
        if let Some(target) = compactor.observe(now, store.current_revision().await.unwrap()) {
            store.compact(target).await.unwrap();
        }
        sizes.push(database_bytes(&db));
    }
    // History is about one window (6 rounds) of renewals; by round 20 the
    // file has reached its working size and must not grow much after it.
    let settled = sizes[20];
    let last = *sizes.last().unwrap();
    assert!(
        last <= settled + settled / 4,
        "database kept growing: {settled} bytes at round 20, {last} at round {ROUNDS} ({sizes:?})"
    );
    assert!(store.compacted_revision().await.unwrap() > (LEASES * (ROUNDS - 10)) as i64);
}

/// One renewal of every lease, from [`TASKS`] concurrent writers.
async fn renew_all(store: &Arc<SqliteStore>, revisions: Vec<i64>, lease: &[u8]) -> Vec<i64> {
    let chunk = LEASES / TASKS;
    let tasks: Vec<_> = revisions
        .chunks(chunk)
        .enumerate()
        .map(|(t, revs)| {
            let (store, revs, lease) = (store.clone(), revs.to_vec(), lease.to_vec());
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(revs.len());
                for (i, rev) in revs.into_iter().enumerate() {
                    let key = format!("/registry/leases/kube-node-lease/node-{}", t * chunk + i);
                    out.push(store.update(&key, lease.clone(), rev).await.unwrap());
                }
                out
            })
        })
        .collect();
    let mut next = Vec::with_capacity(LEASES);
    for task in tasks {
        next.extend(task.await.unwrap());
    }
    next
}
