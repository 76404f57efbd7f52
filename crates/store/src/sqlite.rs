//! The embedded backend: one SQLite file in WAL mode.
//!
//! Two tables carry the model. `kv` holds the current value of every key, so
//! reads at the current revision are plain index lookups. `log` holds one row
//! per revision — the new value and the value it replaced — which serves
//! watches, reads at past revisions (the value of a key at revision R is the
//! "previous value" of its first change after R, or its current value if it
//! has not changed since), and compaction (deleting old log rows never
//! touches current data). The current revision is derived, never stored: it
//! is the newest row of `log`, which compaction always keeps.
//!
//! All writes go through one thread that drains every queued request into a
//! single transaction (group commit). With `synchronous=FULL` a commit is an
//! fsync, so an acknowledged write survives `kill -9` and power loss, yet 64
//! concurrent writers share each fsync instead of queuing for one apiece.
//! Reads run on a small pool of connections, each in its own snapshot.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{Event, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError, WatchStream, prefix_end};

mod watch;

/// Most requests committed in one transaction; bounds the latency a batch
/// adds to its first request.
const MAX_BATCH: usize = 1024;

/// How many committed batches a watcher may fall behind before it has to
/// catch up from the log on disk.
const EVENT_BUFFER: usize = 256;

/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS kv (
        key BLOB PRIMARY KEY,
        value BLOB NOT NULL,
        create_rev INTEGER NOT NULL,
        mod_rev INTEGER NOT NULL
    );
    -- One row per revision. value IS NULL marks a deletion; prev_* is the
    -- value the change replaced (NULL for a create).
    CREATE TABLE IF NOT EXISTS log (
        rev INTEGER PRIMARY KEY,
        key BLOB NOT NULL,
        value BLOB,
        create_rev INTEGER,
        prev_value BLOB,
        prev_create_rev INTEGER,
        prev_mod_rev INTEGER
    );
    CREATE INDEX IF NOT EXISTS log_key_rev ON log (key, rev);
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT OR IGNORE INTO meta (name, value) VALUES ('compacted', 0);
";

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    writes: mpsc::UnboundedSender<WriteRequest>,
    readers: Arc<Readers>,
    events: broadcast::Sender<Arc<[Event]>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub async fn open(path: &Path) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking({
            let path = path.clone();
            move || open_writer(&path)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite open task failed: {e}")))??;
        let (writes, queue) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let writer_events = events.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                Writer {
                    conn,
                    events: writer_events,
                    // A previous process may have stopped mid-reclaim.
                    reclaiming: true,
                }
                .run(queue)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the sqlite writer: {e}")))?;
        Ok(SqliteStore {
            writes,
            readers: Arc::new(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            events,
        })
    }

    async fn write(&self, op: WriteOp) -> Result<Option<Event>> {
        let (reply, outcome) = oneshot::channel();
        self.writes
            .send(WriteRequest { op, reply })
            .map_err(|_| StoreError::Unavailable("the sqlite writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Unavailable("the sqlite writer has stopped".into()))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn current_revision(&self) -> Result<Revision> {
        self.readers.read(current_revision).await
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<(Option<KeyValue>, Revision)> {
        let key = key.to_string();
        self.readers
            .read(move |tx| {
                let at = check_revision(tx, revision)?;
                let kv = match revision {
                    None => get_current(tx, &key)?,
                    Some(rev) => get_at(tx, &key, rev)?,
                };
                Ok((kv, at))
            })
            .await
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult> {
        let range = KeyRange::new(prefix, options.start_after.as_deref());
        let options = options.clone();
        self.readers.read(move |tx| list(tx, &range, &options)).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let op = WriteOp::Create {
            key: key.to_string(),
            value,
        };
        Ok(written(self.write(op).await?)?.revision())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        let op = WriteOp::Update {
            key: key.to_string(),
            value,
            expected,
        };
        Ok(written(self.write(op).await?)?.revision())
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let op = WriteOp::Delete {
            key: key.to_string(),
            expected,
        };
        match written(self.write(op).await?)? {
            Event::Delete { revision, prev } => Ok((revision, prev)),
            Event::Put { .. } => Err(StoreError::Unavailable(
                "sqlite writer answered a delete with a put".into(),
            )),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        watch::start(self.readers.clone(), &self.events, prefix, after).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.write(WriteOp::Compact { revision }).await.map(|_| ())
    }

    async fn compacted_revision(&self) -> Result<Revision> {
        self.readers.read(compacted_revision).await
    }
}

fn written(event: Option<Event>) -> Result<Event> {
    event.ok_or_else(|| StoreError::Unavailable("sqlite writer returned no event for a write".into()))
}

// ---------------------------------------------------------------------------
// Writing: one thread, group commit.

enum WriteOp {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<Option<Event>>>,
}

struct Writer {
    conn: Connection,
    events: broadcast::Sender<Arc<[Event]>>,
    /// Compacted log rows remain to be deleted. Compaction itself only moves
    /// the `compacted` mark (making old history unreadable at once); the rows
    /// go in small chunks between write batches, so a large compaction never
    /// holds up writes for long.
    reclaiming: bool,
}

/// Log rows deleted per reclaim transaction.
const RECLAIM_CHUNK: i64 = 2000;

impl Writer {
    /// Runs until every [`SqliteStore`] handle is dropped.
    fn run(mut self, mut queue: mpsc::UnboundedReceiver<WriteRequest>) {
        loop {
            let first = if self.reclaiming {
                match queue.try_recv() {
                    Ok(request) => request,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        self.reclaim_chunk();
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            } else {
                match queue.blocking_recv() {
                    Some(request) => request,
                    None => return,
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit(batch);
            if self.reclaiming {
                self.reclaim_chunk();
            }
        }
    }

    /// Deletes one chunk of compacted log rows.
    fn reclaim_chunk(&mut self) {
        let deleted = self.conn.execute(
            "DELETE FROM log WHERE rev IN (SELECT rev FROM log
             WHERE rev < (SELECT value FROM meta WHERE name = 'compacted') ORDER BY rev LIMIT ?1)",
            [RECLAIM_CHUNK],
        );
        match deleted {
            Ok(n) => self.reclaiming = n as i64 == RECLAIM_CHUNK,
            Err(err) => {
                tracing::warn!(%err, "sqlite: reclaiming compacted history failed; retrying later");
                self.reclaiming = false;
            }
        }
    }

    /// Applies a batch in one transaction. Logical failures (a lost CAS, a
    /// missing key) fail only their own request; an SQLite failure rolls the
    /// whole batch back and fails every request in it, so nothing is
    /// acknowledged that is not on disk.
    fn commit(&mut self, batch: Vec<WriteRequest>) {
        let outcomes = match self.apply(&batch) {
            Ok(outcomes) => outcomes,
            Err(err) => {
                tracing::error!(%err, requests = batch.len(), "sqlite commit failed");
                let message = err.to_string();
                batch.into_iter().for_each(|request| {
                    let _ = request.reply.send(Err(StoreError::Unavailable(message.clone())));
                });
                return;
            }
        };
        let events: Arc<[Event]> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().cloned().flatten())
            .collect();
        if !events.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = self.events.send(events);
        }
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            if matches!(request.op, WriteOp::Compact { .. }) && outcome.is_ok() {
                self.reclaiming = true;
            }
            let _ = request.reply.send(outcome);
        }
    }

    fn apply(&mut self, batch: &[WriteRequest]) -> Result<Vec<Result<Option<Event>>>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .sql()?;
        let mut revision = current_revision(&tx)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            outcomes.push(apply_one(&tx, &mut revision, &request.op)?);
        }
        tx.commit().sql()?;
        Ok(outcomes)
    }
}

/// Applies one operation. The outer `Result` is an SQLite failure (abort the
/// batch); the inner one is this request's own answer.
fn apply_one(tx: &Transaction, revision: &mut Revision, op: &WriteOp) -> Result<Result<Option<Event>>> {
    let outcome = match op {
        WriteOp::Create { key, value } => match get_current(tx, key)? {
            Some(_) => Err(StoreError::AlreadyExists { key: key.clone() }),
            None => Ok(Some(put(tx, revision, key, value, None)?)),
        },
        WriteOp::Update { key, value, expected } => match checked(tx, key, Some(*expected))? {
            Ok(current) => Ok(Some(put(tx, revision, key, value, Some(current))?)),
            Err(err) => Err(err),
        },
        WriteOp::Delete { key, expected } => match checked(tx, key, *expected)? {
            Ok(current) => Ok(Some(remove(tx, revision, current)?)),
            Err(err) => Err(err),
        },
        WriteOp::Compact { revision: target } => compact(tx, *revision, *target)?.map(|()| None),
    };
    Ok(outcome)
}

/// The current value of `key`, if its mod revision matches `expected`.
fn checked(tx: &Transaction, key: &str, expected: Option<Revision>) -> Result<Result<KeyValue>> {
    Ok(match get_current(tx, key)? {
        None => Err(StoreError::NotFound { key: key.to_string() }),
        Some(current) => match expected {
            Some(expected) if expected != current.mod_revision => Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                current: Box::new(current),
            }),
            _ => Ok(current),
        },
    })
}

fn put(tx: &Transaction, revision: &mut Revision, key: &str, value: &[u8], prev: Option<KeyValue>) -> Result<Event> {
    let rev = *revision + 1;
    let create_rev = prev.as_ref().map_or(rev, |p| p.create_revision);
    tx.prepare_cached(
        "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET value = ?2, mod_rev = ?4",
    )
    .and_then(|mut s| s.execute(params![key.as_bytes(), value, create_rev, rev]))
    .sql()?;
    log_change(tx, rev, key, Some((value, create_rev)), prev.as_ref())?;
    *revision = rev;
    let kv = KeyValue {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision: create_rev,
        mod_revision: rev,
    };
    Ok(Event::Put { kv, prev })
}

fn remove(tx: &Transaction, revision: &mut Revision, prev: KeyValue) -> Result<Event> {
    let rev = *revision + 1;
    tx.prepare_cached("DELETE FROM kv WHERE key = ?1")
        .and_then(|mut s| s.execute([prev.key.as_bytes()]))
        .sql()?;
    log_change(tx, rev, &prev.key, None, Some(&prev))?;
    *revision = rev;
    Ok(Event::Delete { revision: rev, prev })
}

fn log_change(
    tx: &Transaction,
    rev: Revision,
    key: &str,
    new: Option<(&[u8], Revision)>,
    prev: Option<&KeyValue>,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO log (rev, key, value, create_rev, prev_value, prev_create_rev, prev_mod_rev)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            rev,
            key.as_bytes(),
            new.map(|n| n.0),
            new.map(|n| n.1),
            prev.map(|p| &p.value),
            prev.map(|p| p.create_revision),
            prev.map(|p| p.mod_revision),
        ])
    })
    .sql()?;
    Ok(())
}

/// Marks history before `target` compacted; the writer then deletes those
/// log rows in chunks. The row at `target` stays, so the newest revision is
/// always derivable from the log.
fn compact(tx: &Transaction, current: Revision, target: Revision) -> Result<Result<()>> {
    if target > current {
        return Ok(Err(StoreError::FutureRevision {
            requested: target,
            current,
        }));
    }
    if target <= compacted_revision(tx)? {
        return Ok(Ok(()));
    }
    tx.execute("UPDATE meta SET value = ?1 WHERE name = 'compacted'", [target])
        .sql()?;
    Ok(Ok(()))
}

// ---------------------------------------------------------------------------
// Reading: pooled connections, one snapshot per call.

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Runs `f` in a read transaction on a blocking thread, so every query
    /// in it sees one snapshot.
    async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = this.checkout()?;
            let result = conn.transaction().sql().and_then(|tx| f(&tx));
            this.checkin(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite read task failed: {e}")))?
    }

    fn checkout(&self) -> Result<Connection> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(conn);
        }
        let conn = Connection::open(&self.path).sql()?;
        conn.pragma_update(None, "busy_timeout", 5000).sql()?;
        Ok(conn)
    }

    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).sql()?;
    // The database will hold Secrets: only its owner may read it.
    for file in [path.to_path_buf(), sibling(path, "-wal"), sibling(path, "-shm")] {
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Unavailable(format!("chmod {}: {e}", file.display())))?;
        }
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .sql()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!("sqlite refused WAL mode (got {mode})")));
    }
    // FULL: a commit is durable before it is acknowledged.
    conn.pragma_update(None, "synchronous", "FULL").sql()?;
    conn.pragma_update(None, "busy_timeout", 5000).sql()?;
    // After a checkpoint, shrink a WAL that a burst made large.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).sql()?;
    conn.execute_batch(SCHEMA).sql()?;
    Ok(conn)
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn current_revision(tx: &Transaction) -> Result<Revision> {
    tx.prepare_cached("SELECT COALESCE(MAX(rev), 0) FROM log")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .sql()
}

fn compacted_revision(tx: &Transaction) -> Result<Revision> {
    tx.prepare_cached("SELECT value FROM meta WHERE name = 'compacted'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .sql()
}

/// The revision a read is served at; a past one must still be retained.
fn check_revision(tx: &Transaction, requested: Option<Revision>) -> Result<Revision> {
    let current = current_revision(tx)?;
    let Some(requested) = requested else {
        return Ok(current);
    };
    if requested > current {
        return Err(StoreError::FutureRevision { requested, current });
    }
    let compacted = compacted_revision(tx)?;
    if requested < compacted {
        return Err(StoreError::Compacted { requested, compacted });
    }
    Ok(requested)
}

fn get_current(tx: &Transaction, key: &str) -> Result<Option<KeyValue>> {
    tx.prepare_cached("SELECT key, value, create_rev, mod_rev FROM kv WHERE key = ?1")
        .and_then(|mut s| s.query_row([key.as_bytes()], |r| key_value(r, 0)).optional())
        .sql()?
        .transpose()
}

/// The value of `key` at past revision `rev`: what its first change after
/// `rev` replaced, or its current value if it has not changed since.
fn get_at(tx: &Transaction, key: &str, rev: Revision) -> Result<Option<KeyValue>> {
    let first_change = tx
        .prepare_cached(
            "SELECT key, prev_value, prev_create_rev, prev_mod_rev FROM log
             WHERE key = ?1 AND rev > ?2 ORDER BY rev LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![key.as_bytes(), rev], |r| optional_key_value(r, 0))
                .optional()
        })
        .sql()?;
    match first_change {
        Some(prev) => prev.transpose(),
        None => get_current(tx, key),
    }
}

/// The half-open key range `[start, end)` a listing covers.
struct KeyRange {
    start: Vec<u8>,
    end: Vec<u8>,
}

impl KeyRange {
    fn new(prefix: &str, start_after: Option<&str>) -> KeyRange {
        let mut start = prefix.as_bytes().to_vec();
        if let Some(after) = start_after.filter(|a| a.as_bytes() >= prefix.as_bytes()) {
            start = after.as_bytes().to_vec();
            start.push(0);
        }
        KeyRange {
            start,
            end: prefix_end(prefix),
        }
    }

    /// `end` as SQL sees it: etcd's "\0" (the whole keyspace) has no upper bound.
    fn sql_end(&self) -> Option<&[u8]> {
        (self.end != [0]).then_some(&self.end[..])
    }
}

fn list(tx: &Transaction, range: &KeyRange, options: &ListOptions) -> Result<ListResult> {
    let revision = check_revision(tx, options.revision)?;
    // Ask for one more than the limit to learn whether more follow.
    let fetch = options.limit.map_or(-1, |l| l as i64 + 1);
    let rows = match options.revision {
        None => tx
            .prepare_cached(
                "SELECT key, value, create_rev, mod_rev FROM kv
                 WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY key LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![range.start, range.sql_end(), fetch], |r| key_value(r, 0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
        // Keys unchanged since `rev` come from `kv`; for the others, the
        // value their first later change replaced (if they existed then).
        Some(rev) => tx
            .prepare_cached(
                "WITH changed AS (
                     SELECT key, MIN(rev) AS first FROM log
                     WHERE rev > ?4 AND key >= ?1 AND (?2 IS NULL OR key < ?2) GROUP BY key)
                 SELECT key, value, create_rev, mod_rev FROM kv
                 WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) AND key NOT IN (SELECT key FROM changed)
                 UNION ALL
                 SELECT l.key, l.prev_value, l.prev_create_rev, l.prev_mod_rev
                 FROM changed JOIN log l ON l.rev = changed.first WHERE l.prev_mod_rev IS NOT NULL
                 ORDER BY 1 LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![range.start, range.sql_end(), fetch, rev], |r| key_value(r, 0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
    }
    .sql()?;
    let mut kvs = rows.into_iter().collect::<Result<Vec<_>>>()?;
    let more = options.limit.is_some_and(|l| kvs.len() > l);
    if let Some(limit) = options.limit {
        kvs.truncate(limit);
    }
    Ok(ListResult { kvs, revision, more })
}

/// Maps the columns `(key, value, create_rev, mod_rev)` starting at `at`.
fn key_value(row: &Row, at: usize) -> rusqlite::Result<Result<KeyValue>> {
    let key = match String::from_utf8(row.get(at)?) {
        Ok(key) => key,
        Err(e) => return Ok(Err(StoreError::Unavailable(format!("stored key is not UTF-8: {e}")))),
    };
    Ok(Ok(KeyValue {
        key,
        value: row.get(at + 1)?,
        create_revision: row.get(at + 2)?,
        mod_revision: row.get(at + 3)?,
    }))
}

/// Like [`key_value`], for columns that are all NULL when there is no value.
fn optional_key_value(row: &Row, at: usize) -> rusqlite::Result<Option<Result<KeyValue>>> {
    match row.get::<_, Option<Revision>>(at + 3)? {
        None => Ok(None),
        Some(_) => key_value(row, at).map(Some),
    }
}

/// Turns SQLite failures into [`StoreError::Unavailable`] without making
/// rusqlite part of the crate's public error type.
trait SqlResult<T> {
    fn sql(self) -> Result<T>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn sql(self) -> Result<T> {
        self.map_err(|e| StoreError::Unavailable(format!("sqlite: {e}")))
    }
}
