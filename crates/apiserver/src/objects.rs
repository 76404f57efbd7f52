//! Kubernetes objects in the key-value store.
//!
//! Objects are stored as JSON under `<resource prefix><namespace>/<name>`.
//! Like upstream, the stored bytes never contain `resourceVersion`: it is the
//! key's mod revision, filled in on every read, so it cannot disagree with
//! the store. Store errors become upstream Status errors here, once.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::metrics::Metrics;
use crate::versions;
use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, ResourceType};
use capstan_store::{Event, KeyValue, ListOptions, Revision, Store, StoreError, WatchStream};

/// Where one object lives.
#[derive(Debug, Clone, Copy)]
pub struct ObjectKey<'a> {
    pub resource: &'static ResourceType,
    /// `None` for cluster-scoped resources.
    pub namespace: Option<&'a str>,
    pub name: &'a str,
}

impl ObjectKey<'_> {
    pub fn key(&self) -> String {
        format!("{}{}", prefix(self.resource, self.namespace), self.name)
    }
}

/// The key prefix of a resource, or of its objects in one namespace.
pub fn prefix(resource: &ResourceType, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("{}{ns}/", resource.storage_prefix()),
        _ => resource.storage_prefix(),
    }
}

/// The store, speaking objects.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

/// One page of objects.
pub struct Page {
    pub items: Vec<Object>,
    pub revision: Revision,
    /// The key of the last object scanned, when more follow.
    pub continue_after: Option<String>,
}

impl Objects {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Objects {
        Objects { store, metrics }
    }

    /// Runs a store call, recording its latency under `operation`.
    async fn timed<T>(&self, operation: &str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        self.metrics.observe_store(operation, started.elapsed());
        result
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn get(&self, at: ObjectKey<'_>) -> Result<Object, ApiError> {
        let (kv, _) = self
            .timed("get", self.store.get(&at.key(), None))
            .await
            .map_err(|e| store_error(at, e))?;
        let kv = kv.ok_or_else(|| ApiError::not_found(at.resource, at.name))?;
        versions::to_request(at.resource, decode(&kv)?)
    }

    /// Like [`Objects::get`], but a missing object is `None`.
    pub async fn try_get(&self, at: ObjectKey<'_>) -> Result<Option<Object>, ApiError> {
        match self.get(at).await {
            Ok(object) => Ok(Some(object)),
            Err(err) if err.code == 404 => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Stores a new object; returns it with its resourceVersion.
    pub async fn create(&self, at: ObjectKey<'_>, mut object: Object) -> Result<Object, ApiError> {
        let revision = self
            .timed(
                "create",
                self.store
                    .create(&at.key(), encode(&versions::to_storage(at.resource, &object)?)?),
            )
            .await
            .map_err(|e| store_error(at, e))?;
        set_revision(&mut object, revision);
        Ok(object)
    }

    /// Replaces an object whose resourceVersion is still `expected`.
    pub async fn update(&self, at: ObjectKey<'_>, mut object: Object, expected: Revision) -> Result<Object, ApiError> {
        let revision = self
            .timed(
                "update",
                self.store.update(
                    &at.key(),
                    encode(&versions::to_storage(at.resource, &object)?)?,
                    expected,
                ),
            )
            .await
            .map_err(|e| store_error(at, e))?;
        set_revision(&mut object, revision);
        Ok(object)
    }

    /// Deletes an object (only at resourceVersion `expected`, when given);
    /// returns its last state with the deletion's resourceVersion.
    pub async fn delete(&self, at: ObjectKey<'_>, expected: Option<Revision>) -> Result<Object, ApiError> {
        let (revision, prev) = self
            .timed("delete", self.store.delete(&at.key(), expected))
            .await
            .map_err(|e| store_error(at, e))?;
        let mut object = versions::to_request(at.resource, decode(&prev)?)?;
        set_revision(&mut object, revision);
        Ok(object)
    }

    /// Objects of `resource` under `prefix` in key order, from `start_after`, at `revision`.
    pub async fn list(&self, resource: &ResourceType, prefix: &str, options: &ListOptions) -> Result<Page, ApiError> {
        let result = self
            .timed("list", self.store.list(prefix, options))
            .await
            .map_err(history_error)?;
        let items = result
            .kvs
            .iter()
            .map(|kv| versions::to_request(resource, decode(kv)?))
            .collect::<Result<Vec<_>, _>>()?;
        let continue_after = if result.more {
            result.kvs.last().map(|kv| kv.key.clone())
        } else {
            None
        };
        Ok(Page {
            items,
            revision: result.revision,
            continue_after,
        })
    }

    pub async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, ApiError> {
        self.store.watch(prefix, after).await.map_err(history_error)
    }

    pub async fn current_revision(&self) -> Result<Revision, ApiError> {
        self.timed("revision", self.store.current_revision())
            .await
            .map_err(ApiError::internal)
    }
}

/// A watch event as objects: (type, object) with `ADDED`, `MODIFIED` or `DELETED`.
pub fn decode_event(event: &Event) -> Result<(&'static str, Object, Option<Object>), ApiError> {
    match event {
        Event::Put { kv, prev: None } => Ok(("ADDED", decode(kv)?, None)),
        Event::Put { kv, prev: Some(prev) } => Ok(("MODIFIED", decode(kv)?, Some(decode(prev)?))),
        Event::Delete { revision, prev } => {
            let mut object = decode(prev)?;
            set_revision(&mut object, *revision);
            Ok(("DELETED", object, Some(decode(prev)?)))
        }
    }
}

/// JSON bytes, without `resourceVersion`.
pub fn encode(object: &Object) -> Result<Vec<u8>, ApiError> {
    let mut object = object.clone();
    meta::set_meta(&mut object, "resourceVersion", None);
    serde_json::to_vec(&object).map_err(ApiError::internal)
}

/// The stored object with its resourceVersion.
pub fn decode(kv: &KeyValue) -> Result<Object, ApiError> {
    let mut object: Object = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    set_revision(&mut object, kv.mod_revision);
    Ok(object)
}

pub fn set_revision(object: &mut Object, revision: Revision) {
    meta::set_meta(object, "resourceVersion", Some(revision.to_string().into()));
}

fn store_error(at: ObjectKey<'_>, err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound { .. } => ApiError::not_found(at.resource, at.name),
        StoreError::AlreadyExists { .. } => ApiError::already_exists(at.resource, at.name),
        StoreError::Conflict { .. } => ApiError::conflict(at.resource, at.name),
        other => history_error(other),
    }
}

/// Errors of reads and watches: too old (410), too new (504), or internal.
pub fn history_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Compacted { requested, compacted } => ApiError::too_old_resource_version(requested, compacted),
        StoreError::FutureRevision { requested, current } => {
            ApiError::timeout(format!("Too large resource version: {requested}, current: {current}"))
        }
        StoreError::TooLarge(message) => ApiError::internal(message),
        other => ApiError::internal(other),
    }
}
