//! A revisioned key-value store with etcd's semantics, on SQLite or etcd.
//!
//! Everything Capstan persists — every Kubernetes object — lives here under
//! keys shaped like upstream's (`/registry/<group>/<resource>/<namespace>/<name>`).
//! The API server is the only client; it relies on three promises:
//!
//! * every write gets a new global **revision** that only ever grows, and the
//!   revision doubles as the object's `resourceVersion`;
//! * writes can be made conditional on a key's mod revision
//!   (compare-and-swap), which is how optimistic concurrency works;
//! * a **watch** from any retained revision replays every later change in
//!   order, so informers never miss an event.
//!
//! Start with [`Store`], the trait both backends implement, and [`open`],
//! which picks a backend from a datastore endpoint. [`sqlite`] is the embedded
//! default (one file, group commit); [`etcd`] speaks etcd v3 for HA.
//! [`compaction`] bounds history so the database stays small under churn.

pub mod compaction;
pub mod endpoint;
pub mod error;
pub mod etcd;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use compaction::{CompactionPolicy, Compactor};
pub use endpoint::{Endpoint, open};
pub use error::{Result, StoreError};
pub use types::{Event, KeyValue, ListOptions, ListResult, Revision, WatchStream};

use async_trait::async_trait;

/// The operations the API server needs from a datastore.
///
/// Both backends pass the same conformance suite (`tests/conformance.rs`),
/// so code above this trait never needs to know which one it runs on.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The newest revision; reads without an explicit revision see this state.
    async fn current_revision(&self) -> Result<Revision>;

    /// One key, at the current revision or at a retained past one. Returns the
    /// revision the read was served at alongside the value.
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<(Option<KeyValue>, Revision)>;

    /// Keys under a prefix in key order, paged by `limit` and `start_after`.
    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult>;

    /// Writes a key that must not exist yet; [`StoreError::AlreadyExists`] if it does.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision>;

    /// Overwrites a key whose mod revision is still `expected`;
    /// [`StoreError::Conflict`] carries the current value when it is not.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision>;

    /// Deletes a key, only if its mod revision is `expected` when given.
    /// Returns the deletion's revision and the value that was deleted.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// Every change under `prefix` with a revision greater than `after`, in
    /// revision order, then live changes until the stream is dropped.
    /// [`StoreError::Compacted`] if `after` is older than retained history.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Forgets history before `revision`: reads at older revisions and
    /// watches with `after` older than it fail with [`StoreError::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The oldest revision that can still be read (0 before any compaction).
    async fn compacted_revision(&self) -> Result<Revision>;
}

/// The first key after every key that starts with `prefix` (etcd's range end).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An empty or all-0xff prefix covers the whole keyspace: "\0" means
    // "to the end" to etcd.
    vec![0]
}
