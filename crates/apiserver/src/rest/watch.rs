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

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, ResourceType};
use capstan_store::{ListOptions, Revision, WatchStream};
use futures::StreamExt;
use http::{HeaderValue, header};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Call, Filter};
use crate::objects::{self, Objects, prefix};

/// Upstream closes watches without `timeoutSeconds` after 30–60 minutes.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);
const BUFFER: usize = 128;

pub async fn watch(call: &Call<'_>) -> Result<Response, ApiError> {
    let resource = call.request.resource;
    let filter = Filter::from_query(resource, call.query)?;
    let timeout = match call.query.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => DEFAULT_TIMEOUT,
    };
    let prefix = prefix(resource, call.request.namespace.as_deref());
    let objects = call.server.objects.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(BUFFER);
    let (initial, after) = match call.query.get("resourceVersion") {
        None | Some("0") => initial_state(&objects, resource, &prefix).await?,
        Some(rv) => (Vec::new(), parse_revision(rv)?),
    };
    let watcher = Watcher {
        resource,
        filter,
        last: after,
        bookmarks: call.query.flag("allowWatchBookmarks"),
        out: tx,
    };
    let events = objects.watch(resource, &prefix, after).await;
    tokio::spawn(watcher.run(initial, events, timeout));
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Every current object (to send as `ADDED`) and the revision they are at.
async fn initial_state(
    objects: &Objects,
    resource: &'static ResourceType,
    prefix: &str,
) -> Result<(Vec<Object>, Revision), ApiError> {
    let page = objects.list(resource, prefix, &ListOptions::default()).await?;
    Ok((page.items, page.revision))
}

fn parse_revision(rv: &str) -> Result<Revision, ApiError> {
    rv.parse()
        .ok()
        .filter(|r: &Revision| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

struct Watcher {
    resource: &'static ResourceType,
    filter: Filter,
    /// The newest revision delivered (or the start).
    last: Revision,
    bookmarks: bool,
    out: mpsc::Sender<Bytes>,
}

impl Watcher {
    async fn run(mut self, initial: Vec<Object>, events: Result<WatchStream, ApiError>, timeout: Duration) {
        for object in initial.into_iter().filter(|o| self.filter.matches(o)) {
            if !self.send("ADDED", object).await {
                return;
            }
        }
        let mut events = match events {
            Ok(events) => events,
            Err(err) => {
                self.send_error(&err).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = &mut deadline => return,
                _ = bookmark.tick(), if self.bookmarks => {
                    if !self.send_bookmark().await { return; }
                    continue;
                }
                _ = self.out.closed() => return,
            };
            let keep_going = match event {
                Some(Ok(event)) => self.deliver(&event).await,
                Some(Err(err)) => {
                    self.send_error(&store_error(err)).await;
                    false
                }
                None => false,
            };
            if !keep_going {
                return;
            }
        }
    }

    /// Sends one store event as the watcher sees it through its filter.
    async fn deliver(&mut self, event: &capstan_store::Event) -> bool {
        let (kind, object, prev) = match objects::decode_event(event) {
            Ok(decoded) => decoded,
            Err(err) => {
                self.send_error(&err).await;
                return false;
            }
        };
        self.last = event.revision();
        let now = kind != "DELETED" && self.filter.matches(&object);
        let before = prev.as_ref().is_some_and(|p| self.filter.matches(p));
        let kind = match (kind, before, now) {
            ("DELETED", true, _) => "DELETED",
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            ("MODIFIED", true, false) => "DELETED",
            _ => return true,
        };
        self.send(kind, object).await
    }

    async fn send(&self, kind: &str, mut object: Object) -> bool {
        meta::set_type(&mut object, &self.resource.api_version(), self.resource.kind);
        self.write(&json!({"type": kind, "object": object})).await
    }

    async fn send_bookmark(&self) -> bool {
        let object = json!({
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version(),
            "metadata": {"resourceVersion": self.last.to_string()},
        });
        self.write(&json!({"type": "BOOKMARK", "object": object})).await
    }

    async fn send_error(&self, err: &ApiError) {
        self.write(&json!({"type": "ERROR", "object": err.to_json()})).await;
    }

    async fn write(&self, line: &serde_json::Value) -> bool {
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        self.out.send(Bytes::from(bytes)).await.is_ok()
    }
}

fn store_error(err: capstan_store::StoreError) -> ApiError {
    match err {
        capstan_store::StoreError::Compacted { requested, compacted } => {
            ApiError::too_old_resource_version(requested, compacted)
        }
        other => ApiError::internal(other),
    }
}
