//! An acknowledged write survives `kill -9`.
//!
//! The test re-runs this test binary as a child that writes to a SQLite
//! store from many tasks and prints every acknowledgement; the parent kills
//! it with SIGKILL mid-load, reopens the database and checks that every
//! acknowledged write is there with its revision.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_store::Store;
use capstan_store::sqlite::SqliteStore;

const CHILD_ENV: &str = "CAPSTAN_DURABILITY_DB";
const WRITERS: usize = 32;

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "write_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let started = Instant::now();
    let mut lines = stdout.lines();
    // Kill once the child is well into its load (or after 10 s at most).
    for line in lines.by_ref() {
        if let Some(ack) = parse_ack(&line.unwrap()) {
            acked.push(ack);
        }
        if acked.len() >= 3000 || started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    // Acknowledgements already in the pipe were acknowledged before the kill.
    acked.extend(lines.map_while(Result::ok).filter_map(|l| parse_ack(&l)));
    child.wait().unwrap();
    assert!(
        acked.len() >= 1000,
        "the child acknowledged only {} writes",
        acked.len()
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        for (key, revision) in &acked {
            let kv = store.get(key, None).await.unwrap().0;
            let kv = kv.unwrap_or_else(|| panic!("acknowledged write {key} at {revision} is lost"));
            assert_eq!(kv.mod_revision, *revision, "{key}");
        }
        let newest = acked.iter().map(|(_, rev)| *rev).max().unwrap();
        assert!(store.current_revision().await.unwrap() >= newest);
    });
}

fn parse_ack(line: &str) -> Option<(String, i64)> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
}

/// The child's side: writes until killed, printing `ACK <key> <revision>`
/// only after each write is acknowledged.
#[test]
#[ignore = "run as a child process by acknowledged_writes_survive_sigkill"]
fn write_until_killed() {
    let db = std::env::var(CHILD_ENV).expect("only run by acknowledged_writes_survive_sigkill");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Arc::new(SqliteStore::open(db.as_ref()).await.unwrap());
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/registry/pods/w{w}/{i}");
                        let rev = store.create(&key, vec![b'x'; 256]).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "ACK {key} {rev}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}
