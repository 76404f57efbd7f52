//! The watch cache: every object in memory, fed by one store watch.
//!
//! Without it each informer's watch would be a store watch of its own, and
//! every `resourceVersion=0` list a full scan of the store. The cache lists
//! `/registry/` once, then follows a single watch over the whole registry,
//! keeping (a) the current objects by key and (b) a window of recent
//! changes. Lists served from memory, and watches fan out from one
//! broadcast, so 1,000 watchers cost 1,000 channel receivers, not 1,000
//! store watches.
//!
//! Because the one watch covers every key under `/registry/`, and every
//! write is under `/registry/`, the cache's revision is exactly the store's
//! revision once it has caught up. That makes consistent reads cheap: read
//! the store's current revision, wait until the cache has applied it, answer
//! from memory (upstream's "consistent list from cache", without needing
//! progress notifications).
//!
//! When the feeding watch fails (the store restarted, history was
//! compacted under a slow cache), the cache relists and starts a new epoch;
//! watchers of the old epoch are closed, and clients re-watch as they do
//! after any closed watch.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use bytes::Bytes;
use capstan_apimachinery::ApiError;
use capstan_apimachinery::meta::Object;
use capstan_store::{ListOptions, Revision, Store};
use futures::StreamExt;
use tokio::sync::{broadcast, watch};

use crate::objects;

/// The prefix every object lives under.
const REGISTRY: &str = "/registry/";
/// Changes kept for watches that resume from a recent resourceVersion:
/// at most this many ...
const HISTORY: usize = 100_000;
/// ... whose stored JSON adds up to at most this many bytes. Each kept
/// change holds its decoded object (several times its JSON in memory) and
/// often its wire bytes, so a count alone would let a burst of large pods
/// hold gigabytes; a watcher that resumes from before the window relists.
const HISTORY_BYTES: usize = 32 << 20;
/// Changes a slow watcher may fall behind before it is closed (and relists).
const BROADCAST: usize = 16_384;
/// How long a consistent read waits for the cache to catch up before the
/// caller falls back to the store.
const CATCH_UP: Duration = Duration::from_secs(3);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change to one object, shared by every watcher that sees it.
#[derive(Debug)]
pub struct Change {
    pub key: String,
    pub revision: Revision,
    pub kind: ChangeType,
    /// The object after the change (for a deletion: its last state, at the deletion's revision).
    pub object: Arc<Object>,
    /// The object before the change, for updates and deletions.
    pub prev: Option<Arc<Object>>,
    /// The object's JSON as watchers send it, rendered once for all of them.
    wire: OnceLock<Bytes>,
    /// The stored JSON's length: what the change costs the history.
    size: usize,
}

impl Change {
    /// `object` as JSON bytes with `kind`/`apiVersion`, computed on first use.
    pub fn wire(&self, api_version: &str, kind: &str) -> Bytes {
        self.wire
            .get_or_init(|| {
                let mut object = (*self.object).clone();
                capstan_apimachinery::meta::set_type(&mut object, api_version, kind);
                Bytes::from(serde_json::to_vec(&object).unwrap_or_default())
            })
            .clone()
    }
}

/// What the broadcast carries: changes, or the end of an epoch.
#[derive(Debug, Clone)]
pub enum Notice {
    Change(Arc<Change>),
    /// The cache relisted; watchers must stop (their clients re-watch).
    Reset,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Arc<Object>>,
    revision: Revision,
    history: VecDeque<Arc<Change>>,
    /// The summed `size` of `history`.
    history_bytes: usize,
    /// Changes after this revision are all in `history`.
    history_from: Revision,
}

pub struct WatchCache {
    state: RwLock<State>,
    applied: watch::Sender<Revision>,
    notices: broadcast::Sender<Notice>,
    ready: watch::Sender<bool>,
}

/// What a watcher needs to begin: the changes it missed, and the live feed.
pub struct Subscription {
    pub backlog: Vec<Arc<Change>>,
    pub live: broadcast::Receiver<Notice>,
}

impl WatchCache {
    /// Creates the cache and starts feeding it from `store`.
    pub fn start(store: Arc<dyn Store>) -> Arc<WatchCache> {
        let cache = Arc::new(WatchCache {
            state: RwLock::new(State::default()),
            applied: watch::channel(0).0,
            notices: broadcast::channel(BROADCAST).0,
            ready: watch::channel(false).0,
        });
        tokio::spawn(feed(Arc::downgrade(&cache), store));
        cache
    }

    /// The revision the cache is consistent at.
    pub fn revision(&self) -> Revision {
        *self.applied.borrow()
    }

    /// Waits until the cache has applied `revision`; false on timeout.
    pub async fn wait_for(&self, revision: Revision) -> bool {
        let mut applied = self.applied.subscribe();
        let caught_up = applied.wait_for(|r| *r >= revision);
        matches!(tokio::time::timeout(CATCH_UP, caught_up).await, Ok(Ok(_)))
    }

    /// Every object under `prefix`, in key order, and the revision they are at.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<Object>>, Revision) {
        let state = self.read();
        let objects = state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, object)| object.clone())
            .collect();
        (objects, state.revision)
    }

    /// One cached object by key.
    pub fn get(&self, key: &str) -> Option<Arc<Object>> {
        self.read().objects.get(key).cloned()
    }

    /// The changes under `prefix` after `after` plus the live feed, or `None`
    /// when the cache's history does not reach back that far.
    pub fn subscribe(&self, prefix: &str, after: Revision) -> Option<Subscription> {
        let state = self.read();
        if after < state.history_from {
            return None;
        }
        // Subscribing under the read lock: no change can slip between the
        // backlog and the live feed.
        let live = self.notices.subscribe();
        let start = state.history.partition_point(|c| c.revision <= after);
        let backlog = state
            .history
            .range(start..)
            .filter(|c| c.key.starts_with(prefix))
            .cloned()
            .collect();
        Some(Subscription { backlog, live })
    }

    /// Whether the initial list has been loaded.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces everything with a fresh listing (a new epoch).
    fn reset(&self, objects: BTreeMap<String, Arc<Object>>, revision: Revision) {
        {
            let mut state = self.write();
            *state = State {
                objects,
                revision,
                history: VecDeque::new(),
                history_bytes: 0,
                history_from: revision,
            };
        }
        let _ = self.notices.send(Notice::Reset);
        self.applied.send_replace(revision);
        self.ready.send_replace(true);
    }

    /// The change a store event makes. Only the new value is decoded: the
    /// previous one is the object the cache already holds for the key (it
    /// applied every earlier event), shared rather than decoded again, so
    /// consecutive changes in the history share one copy of each state.
    fn change(&self, event: &capstan_store::Event) -> Result<Change, ApiError> {
        use capstan_store::Event;
        let key = event.key();
        let cached = self.read().objects.get(key).cloned();
        let (kind, object, prev, size) = match event {
            Event::Put { kv, prev } => {
                let kind = if prev.is_some() {
                    ChangeType::Modified
                } else {
                    ChangeType::Added
                };
                let prev = match (prev, cached) {
                    (Some(_), Some(cached)) => Some(cached),
                    (Some(prev), None) => Some(Arc::new(objects::decode(prev)?)),
                    (None, _) => None,
                };
                (kind, Arc::new(objects::decode(kv)?), prev, kv.value.len())
            }
            Event::Delete { revision, prev: stored } => {
                let prev = match cached {
                    Some(cached) => cached,
                    None => Arc::new(objects::decode(stored)?),
                };
                let mut object = (*prev).clone();
                objects::set_revision(&mut object, *revision);
                (ChangeType::Deleted, Arc::new(object), Some(prev), stored.value.len())
            }
        };
        Ok(Change {
            key: key.to_string(),
            revision: event.revision(),
            kind,
            object,
            prev,
            wire: OnceLock::new(),
            size,
        })
    }

    fn apply(&self, change: Change) {
        let change = Arc::new(change);
        {
            let mut state = self.write();
            match change.kind {
                ChangeType::Deleted => state.objects.remove(&change.key),
                _ => state.objects.insert(change.key.clone(), change.object.clone()),
            };
            state.revision = change.revision;
            state.history_bytes += change.size;
            state.history.push_back(change.clone());
            while state.history.len() > HISTORY || state.history_bytes > HISTORY_BYTES {
                let Some(oldest) = state.history.pop_front() else { break };
                state.history_bytes -= oldest.size;
                state.history_from = oldest.revision;
            }
            // Send under the lock so subscribers see changes in order with their backlog.
            let _ = self.notices.send(Notice::Change(change.clone()));
        }
        self.applied.send_replace(change.revision);
    }
}

/// Keeps the cache in step with the store for as long as the cache exists.
async fn feed(cache: std::sync::Weak<WatchCache>, store: Arc<dyn Store>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(strong) = cache.upgrade() else { return };
        match follow(&strong, &store).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => {
                tracing::warn!(%err, "watch cache: relisting after an error");
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        drop(strong);
        tokio::time::sleep(backoff).await;
    }
}

/// Lists the registry, then applies its watch until the watch ends.
async fn follow(cache: &WatchCache, store: &Arc<dyn Store>) -> Result<(), ApiError> {
    let listing = store
        .list(REGISTRY, &ListOptions::default())
        .await
        .map_err(ApiError::internal)?;
    let mut objects = BTreeMap::new();
    for kv in &listing.kvs {
        objects.insert(kv.key.clone(), Arc::new(objects::decode(kv)?));
    }
    let mut events = store
        .watch(REGISTRY, listing.revision)
        .await
        .map_err(ApiError::internal)?;
    tracing::debug!(
        objects = objects.len(),
        revision = listing.revision,
        "watch cache loaded"
    );
    cache.reset(objects, listing.revision);
    while let Some(event) = events.next().await {
        let event = event.map_err(ApiError::internal)?;
        let change = cache.change(&event)?;
        cache.apply(change);
    }
    Err(ApiError::internal("the registry watch ended"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_store::sqlite::SqliteStore;

    async fn cache_with_store() -> (tempfile::TempDir, Arc<dyn Store>, Arc<WatchCache>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        store
            .create("/registry/configmaps/a/one", br#"{"metadata":{"name":"one"}}"#.to_vec())
            .await
            .unwrap();
        let cache = WatchCache::start(store.clone());
        (dir, store, cache)
    }

    #[tokio::test]
    async fn lists_what_the_store_holds_and_follows_changes() {
        let (_dir, store, cache) = cache_with_store().await;
        let current = store.current_revision().await.unwrap();
        assert!(cache.wait_for(current).await);
        let (objects, _) = cache.list("/registry/configmaps/a/");
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0]["metadata"]["resourceVersion"], current.to_string());

        let rev = store
            .create("/registry/configmaps/a/two", br#"{"metadata":{"name":"two"}}"#.to_vec())
            .await
            .unwrap();
        store.create("/registry/configmaps/ab/x", b"{}".to_vec()).await.unwrap();
        assert!(cache.wait_for(rev + 1).await);
        assert_eq!(cache.list("/registry/configmaps/a/").0.len(), 2, "prefix isolation");
        assert_eq!(cache.revision(), rev + 1);
    }

    #[tokio::test]
    async fn subscriptions_replay_history_then_go_live() {
        let (_dir, store, cache) = cache_with_store().await;
        let start = store.current_revision().await.unwrap();
        assert!(cache.wait_for(start).await);
        let r1 = store
            .create("/registry/configmaps/a/two", b"{}".to_vec())
            .await
            .unwrap();
        let (r2, _) = store.delete("/registry/configmaps/a/two", None).await.unwrap();
        assert!(cache.wait_for(r2).await);
        let mut sub = cache
            .subscribe("/registry/configmaps/a/", start)
            .expect("within history");
        let kinds: Vec<_> = sub.backlog.iter().map(|c| (c.kind, c.revision)).collect();
        assert_eq!(kinds, vec![(ChangeType::Added, r1), (ChangeType::Deleted, r2)]);
        let r3 = store
            .create("/registry/configmaps/a/three", b"{}".to_vec())
            .await
            .unwrap();
        match sub.live.recv().await.unwrap() {
            Notice::Change(change) => assert_eq!(change.revision, r3),
            Notice::Reset => panic!("unexpected reset"),
        }
        assert!(
            cache.subscribe("/registry/", start - 1).is_none(),
            "before the cache's history"
        );
    }
}
