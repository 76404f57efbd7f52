//! Watches on the SQLite backend.
//!
//! The writer broadcasts every committed batch in memory. A watcher first
//! subscribes, then replays the log on disk from its start revision, then
//! follows the broadcast, skipping what it already sent (revisions make the
//! seam exact). A watcher that falls so far behind that the broadcast drops
//! batches for it goes back to the log, so slowness costs a disk read, never
//! a lost event — unless compaction got there first, which ends the watch
//! with [`StoreError::Compacted`], as etcd does.

use std::sync::Arc;

use rusqlite::{Transaction, params};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{KeyRange, Readers, SqlResult, compacted_revision, key_value, optional_key_value};
use crate::{Event, Result, Revision, StoreError, WatchStream};

/// Log rows read per catch-up query.
const PAGE: usize = 1000;

/// Events buffered between the watcher task and the stream's consumer.
const STREAM_BUFFER: usize = 256;

pub(super) async fn start(
    readers: Arc<Readers>,
    events: &broadcast::Sender<Arc<[Event]>>,
    prefix: &str,
    after: Revision,
) -> Result<WatchStream> {
    let live = events.subscribe();
    // Refuse a compacted start up front, as etcd does, rather than in-stream.
    readers.read(move |tx| check_start(tx, after)).await?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let watcher = Watcher {
        readers,
        events: events.clone(),
        prefix: prefix.to_string(),
        after,
        out: tx,
    };
    tokio::spawn(watcher.run(live));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

struct Watcher {
    readers: Arc<Readers>,
    events: broadcast::Sender<Arc<[Event]>>,
    prefix: String,
    /// The newest revision already sent (or skipped) for this watch.
    after: Revision,
    out: mpsc::Sender<Result<Event>>,
}

/// Why a watcher stopped following the broadcast.
enum Stop {
    /// The consumer went away or the watch failed: end the task.
    Done,
    /// Batches were dropped for us: catch up from the log.
    Lagged,
}

impl Watcher {
    async fn run(mut self, mut live: broadcast::Receiver<Arc<[Event]>>) {
        loop {
            if let Err(err) = self.catch_up().await {
                let _ = self.out.send(Err(err)).await;
                return;
            }
            match self.follow(&mut live).await {
                Stop::Done => return,
                // Subscribe anew before reading the log, so nothing
                // committed in between can slip past.
                Stop::Lagged => live = self.events.subscribe(),
            }
        }
    }

    /// Sends every logged event after `self.after`, page by page.
    async fn catch_up(&mut self) -> Result<()> {
        loop {
            let range = KeyRange::new(&self.prefix, None);
            let after = self.after;
            let page = self.readers.read(move |tx| backlog(tx, &range, after)).await?;
            let full = page.len() == PAGE;
            for event in page {
                self.after = event.revision();
                if self.out.send(Ok(event)).await.is_err() {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn follow(&mut self, live: &mut broadcast::Receiver<Arc<[Event]>>) -> Stop {
        loop {
            let batch = tokio::select! {
                batch = live.recv() => batch,
                _ = self.out.closed() => return Stop::Done,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(broadcast::error::RecvError::Lagged(_)) => return Stop::Lagged,
                Err(broadcast::error::RecvError::Closed) => return Stop::Done,
            };
            for event in batch.iter() {
                if event.revision() <= self.after {
                    continue;
                }
                self.after = event.revision();
                if event.key().starts_with(&self.prefix) && self.out.send(Ok(event.clone())).await.is_err() {
                    return Stop::Done;
                }
            }
        }
    }
}

/// A watch may start at the compacted revision or later, as a read may:
/// the same line for both, and for both backends.
fn check_start(tx: &Transaction, after: Revision) -> Result<()> {
    let compacted = compacted_revision(tx)?;
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    Ok(())
}

/// Up to [`PAGE`] logged events in `range` after revision `after`.
fn backlog(tx: &Transaction, range: &KeyRange, after: Revision) -> Result<Vec<Event>> {
    check_start(tx, after)?;
    // A log row is "(key, value, create_rev, rev)" for the new value and
    // "(key, prev_value, prev_create_rev, prev_mod_rev)" for the old one.
    let rows = tx
        .prepare_cached(
            "SELECT rev, key, value, create_rev, rev, key, prev_value, prev_create_rev, prev_mod_rev
             FROM log WHERE rev > ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3)
             ORDER BY rev LIMIT ?4",
        )
        .and_then(|mut s| {
            s.query_map(params![after, range.start, range.sql_end(), PAGE as i64], |row| {
                let revision: Revision = row.get(0)?;
                let deleted = row.get_ref(2)?.data_type() == rusqlite::types::Type::Null;
                let prev = optional_key_value(row, 5)?.transpose();
                let new = if deleted { None } else { Some(key_value(row, 1)?) };
                Ok((revision, new, prev))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .sql()?;
    rows.into_iter()
        .map(|(revision, new, prev)| {
            let prev = prev?;
            match new {
                Some(kv) => Ok(Event::Put { kv: kv?, prev }),
                None => prev
                    .map(|prev| Event::Delete { revision, prev })
                    .ok_or_else(|| StoreError::Unavailable(format!("log row {revision} deletes nothing"))),
            }
        })
        .collect()
}
