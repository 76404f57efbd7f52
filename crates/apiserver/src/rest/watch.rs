//! WATCH: a chunked stream of `{"type": ..., "object": ...}` lines.
//!
//! Semantics as upstream: without a resourceVersion (or with `0`) the
//! watch starts with the current objects as `ADDED`, then follows changes;
//! with `resourceVersion=N` it replays every change after N. A revision
//! older than retained history yields one `ERROR` event carrying a `410
//! Expired` Status, after which clients relist. With selectors, an object
//! that starts or stops matching is `ADDED` or `DELETED` from the watcher's
//! point of view. `timeoutSeconds` ends the stream; `allowWatchBookmarks`
//! adds periodic `BOOKMARK` events carrying the newest delivered revision.
//!
//! Watches are served from the [`WatchCache`](crate::watchcache) when its
//! history reaches back far enough, else from a store watch of their own.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use capstan_apimachinery::meta::Object;
use capstan_apimachinery::{ApiError, ResourceType};
use capstan_store::{Revision, WatchStream};
use futures::StreamExt;
use http::{HeaderValue, header};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{Call, Filter};
use crate::metrics::{WatcherGuard, WatcherLabels};
use crate::negotiate::{self, Form};
use crate::objects::{self, prefix};
use crate::versions;
use crate::watchcache::{Change, ChangeType, Notice, Subscription};
use capstan_apimachinery::table;

/// Upstream closes watches without `timeoutSeconds` after 30–60 minutes.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);
const BUFFER: usize = 128;

/// Where a watch's events come from.
enum Source {
    Cache(Subscription),
    Store(WatchStream),
}

pub async fn watch(call: &Call<'_>) -> Result<Response, ApiError> {
    let form = negotiate::form(call.headers, call.query)?;
    let resource = call.request.resource;
    let filter = Filter::from_query(resource, call.query)?;
    let timeout = match call.query.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => DEFAULT_TIMEOUT,
    };
    let prefix = prefix(resource, call.request.namespace.as_deref());
    let (initial, source, after) = start(call, &prefix).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFER);
    let counted = WatcherLabels {
        group: resource.group.to_string(),
        version: resource.version.to_string(),
        kind: resource.kind.to_string(),
    };
    let watcher = Watcher {
        _counted: WatcherGuard::new(&call.server.metrics, counted),
        resource,
        prefix,
        api_version: resource.api_version(),
        filter,
        last: after,
        bookmarks: call.query.flag("allowWatchBookmarks"),
        form,
        headers_sent: false,
        out: tx,
    };
    tokio::spawn(watcher.run(initial, source, timeout));
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// The objects to send first (as `ADDED`), the event source, and the
/// revision the watch starts after.
async fn start(
    call: &Call<'_>,
    prefix: &str,
) -> Result<(Vec<Arc<Object>>, Result<Source, ApiError>, Revision), ApiError> {
    let cache = &call.server.cache;
    let (initial, after) = match call.query.get("resourceVersion") {
        None | Some("0") => {
            if call.query.get("resourceVersion").is_none() {
                // A watch without a resourceVersion starts from the latest state.
                let current = call.server.objects.current_revision().await?;
                cache.wait_for(current).await;
            }
            cache.list(prefix)
        }
        Some(rv) => (Vec::new(), parse_revision(rv)?),
    };
    let source = match cache.subscribe(prefix, after) {
        Some(subscription) => Ok(Source::Cache(subscription)),
        None => call.server.objects.watch(prefix, after).await.map(Source::Store),
    };
    Ok((initial, source, after))
}

fn parse_revision(rv: &str) -> Result<Revision, ApiError> {
    rv.parse()
        .ok()
        .filter(|r: &Revision| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

struct Watcher {
    /// Keeps `apiserver_registered_watchers` counting this watch while it runs.
    _counted: WatcherGuard,
    resource: &'static ResourceType,
    prefix: String,
    api_version: String,
    filter: Filter,
    /// The newest revision delivered (or the start).
    last: Revision,
    bookmarks: bool,
    /// Objects, or Tables for `kubectl get -w` (column definitions only in the first).
    form: Form,
    headers_sent: bool,
    out: mpsc::Sender<Bytes>,
}

/// Whether to go on after an event.
type Flow = bool;

impl Watcher {
    async fn run(mut self, initial: Vec<Arc<Object>>, source: Result<Source, ApiError>, timeout: Duration) {
        for object in &initial {
            let Ok(object) = versions::to_request(self.resource, (**object).clone()) else {
                continue;
            };
            if !self.filter.matches(&object) {
                continue;
            }
            let wire = self.render(&object);
            let wire = self.as_form(&object, wire);
            if !self.send("ADDED", &wire).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        match source {
            Err(err) => self.send_error(&err).await,
            Ok(Source::Cache(subscription)) => {
                tokio::select! {
                    _ = deadline => {}
                    _ = self.follow_cache(subscription) => {}
                }
            }
            Ok(Source::Store(stream)) => {
                tokio::select! {
                    _ = deadline => {}
                    _ = self.follow_store(stream) => {}
                }
            }
        }
    }

    async fn follow_cache(&mut self, subscription: Subscription) {
        for change in &subscription.backlog {
            if !self.deliver_change(change).await {
                return;
            }
        }
        let mut live = subscription.live;
        let mut bookmark = bookmark_timer();
        loop {
            let notice = tokio::select! {
                notice = live.recv() => notice,
                _ = bookmark.tick(), if self.bookmarks => {
                    if !self.send_bookmark().await { return; }
                    continue;
                }
                _ = self.out.closed() => return,
            };
            let flow = match notice {
                Ok(Notice::Change(change)) => self.deliver_change(&change).await,
                // A new cache epoch, or too slow to keep up: end the watch;
                // the client re-watches from its last resourceVersion.
                Ok(Notice::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => false,
                Err(broadcast::error::RecvError::Closed) => false,
            };
            if !flow {
                return;
            }
        }
    }

    async fn follow_store(&mut self, mut events: WatchStream) {
        let mut bookmark = bookmark_timer();
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = bookmark.tick(), if self.bookmarks => {
                    if !self.send_bookmark().await { return; }
                    continue;
                }
                _ = self.out.closed() => return,
            };
            let flow = match event {
                Some(Ok(event)) => match self.decode_event(&event) {
                    Ok((kind, object, prev)) => {
                        let kind = change_type(kind);
                        let wire = self.render(&object);
                        self.deliver(kind, &object, prev.as_ref(), event.revision(), wire).await
                    }
                    Err(err) => {
                        self.send_error(&err).await;
                        false
                    }
                },
                Some(Err(err)) => {
                    self.send_error(&objects::history_error(err)).await;
                    false
                }
                None => false,
            };
            if !flow {
                return;
            }
        }
    }

    async fn deliver_change(&mut self, change: &Change) -> Flow {
        // The live feed carries the whole registry: keep this watch's prefix.
        if change.revision <= self.last || !change.key.starts_with(&self.prefix) {
            return true;
        }
        if versions::converts(self.resource) {
            return match self.convert_change(change) {
                Ok((object, prev)) => {
                    let wire = self.render(&object);
                    self.deliver(change.kind, &object, prev.as_ref(), change.revision, wire)
                        .await
                }
                Err(err) => {
                    self.send_error(&err).await;
                    false
                }
            };
        }
        let wire = change.wire(&self.api_version, self.resource.kind);
        self.deliver(
            change.kind,
            &change.object,
            change.prev.as_deref(),
            change.revision,
            wire,
        )
        .await
    }

    /// A cached change's objects in this watch's version.
    fn convert_change(&self, change: &Change) -> Result<(Object, Option<Object>), ApiError> {
        let object = versions::to_request(self.resource, (*change.object).clone())?;
        let prev = change
            .prev
            .as_deref()
            .map(|p| versions::to_request(self.resource, p.clone()))
            .transpose()?;
        Ok((object, prev))
    }

    /// A store event in this watch's version.
    fn decode_event(&self, event: &capstan_store::Event) -> Result<(&'static str, Object, Option<Object>), ApiError> {
        let (kind, object, prev) = objects::decode_event(event)?;
        let prev = prev.map(|p| versions::to_request(self.resource, p)).transpose()?;
        Ok((kind, versions::to_request(self.resource, object)?, prev))
    }

    /// Sends one change as this watcher sees it through its filter.
    async fn deliver(
        &mut self,
        kind: ChangeType,
        object: &Object,
        prev: Option<&Object>,
        revision: Revision,
        wire: Bytes,
    ) -> Flow {
        self.last = revision;
        let now = kind != ChangeType::Deleted && self.filter.matches(object);
        let before = prev.is_some_and(|p| self.filter.matches(p));
        let seen_as = match (kind, before, now) {
            (ChangeType::Deleted, true, _) => "DELETED",
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (ChangeType::Modified, true, false) => "DELETED",
            _ => return true,
        };
        let wire = self.as_form(object, wire);
        self.send(seen_as, &wire).await
    }

    /// The event's object in the watch's form: as is, or as a one-row Table.
    fn as_form(&mut self, object: &Object, wire: Bytes) -> Bytes {
        let Form::Table(include) = self.form else {
            return wire;
        };
        let now = jiff::Timestamp::now();
        let objects = [object.clone()];
        let mut table = if self.headers_sent {
            table::table_without_headers(self.resource, &objects, include, now)
        } else {
            self.headers_sent = true;
            table::table(self.resource, &objects, include, now)
        };
        table["metadata"] = json!({"resourceVersion": capstan_apimachinery::meta::resource_version(object)});
        Bytes::from(table.to_string())
    }

    fn render(&self, object: &Object) -> Bytes {
        let mut object = object.clone();
        capstan_apimachinery::meta::set_type(&mut object, &self.api_version, self.resource.kind);
        Bytes::from(serde_json::to_vec(&object).unwrap_or_default())
    }

    /// One event line: `{"type":"X","object":<wire>}\n`.
    async fn send(&self, kind: &str, wire: &Bytes) -> Flow {
        let mut line = BytesMut::with_capacity(wire.len() + 40);
        line.put_slice(b"{\"type\":\"");
        line.put_slice(kind.as_bytes());
        line.put_slice(b"\",\"object\":");
        line.put_slice(wire);
        line.put_slice(b"}\n");
        self.out.send(line.freeze()).await.is_ok()
    }

    async fn send_bookmark(&self) -> Flow {
        let object = json!({
            "kind": self.resource.kind,
            "apiVersion": self.api_version,
            "metadata": {"resourceVersion": self.last.to_string()},
        });
        self.send("BOOKMARK", &Bytes::from(object.to_string())).await
    }

    async fn send_error(&self, err: &ApiError) {
        self.send("ERROR", &Bytes::from(err.to_json().to_string())).await;
    }
}

fn change_type(kind: &str) -> ChangeType {
    match kind {
        "ADDED" => ChangeType::Added,
        "MODIFIED" => ChangeType::Modified,
        _ => ChangeType::Deleted,
    }
}

fn bookmark_timer() -> tokio::time::Interval {
    tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL)
}
