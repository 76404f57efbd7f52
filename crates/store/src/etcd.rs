//! The etcd v3 backend: a thin mapping of [`Store`] onto etcd's own API.
//!
//! Keys are used verbatim as etcd keys, so `etcdctl get --prefix /registry/`
//! shows exactly what Capstan stored, and store revisions *are* etcd
//! revisions. Every write is one transaction comparing `create_revision`
//! (creates) or `mod_revision` (updates, deletes), so no write is ever a
//! read-then-write race.
//!
//! Compaction and watches map onto etcd's own: [`Store::compact`] is an etcd
//! compaction, reads below it fail with etcd's "required revision has been
//! compacted", and a watch from `after` is an etcd watch from `after + 1`
//! with previous values turned on. etcd 3.4 never says *where* history was
//! compacted, so [`Store::compacted_revision`] finds the oldest readable
//! revision by bisecting with tiny reads.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient, ResponseHeader, Txn,
    TxnOp, TxnOpResponse, WatchClient, WatchOptions, WatchResponse,
};
use futures::StreamExt;

use crate::{Event, KeyValue, ListOptions, ListResult, Result, Revision, Store, StoreError, WatchStream, prefix_end};

/// How long `connect` (and each TCP connection attempt) may take, so a
/// wrong endpoint fails at startup instead of hanging the first request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 pings notice a dead etcd under an idle watch, which TCP alone
/// may not for many minutes (the values kube-apiserver uses).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// gRPC's default 4 MiB receive limit would fail a page of a few 1.5 MiB
/// objects; etcd's own Go client accepts up to `math.MaxInt32` and leaves
/// the bound to the server, and so do we.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// A key nobody writes, for requests that only want a response header or
/// a compaction check and must not depend on (or transfer) real data.
const PROBE_KEY: &str = "/capstan/probe";

/// What etcd says when a revision is out of the retained history.
const COMPACTED: &str = "required revision has been compacted";
const FUTURE: &str = "required revision is a future revision";

/// A [`Store`] on an etcd v3 cluster.
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
}

impl EtcdStore {
    /// Connects to the cluster and checks that some endpoint answers.
    ///
    /// The client connects lazily and would otherwise wait forever for an
    /// endpoint to come up, so a status request bounds the wait. Status is
    /// answered by any member without a leader, so a cluster that is up but
    /// electing still connects.
    pub async fn connect(hosts: &[String]) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
        let client = Client::connect(hosts, Some(options))
            .await
            .map_err(|err| StoreError::InvalidEndpoint {
                endpoint: hosts.join(","),
                reason: err.to_string(),
            })?;
        let status = tokio::time::timeout(CONNECT_TIMEOUT, client.clone().status()).await;
        let status = status.map_err(|_| {
            StoreError::Unavailable(format!(
                "no etcd endpoint of {hosts:?} answered within {CONNECT_TIMEOUT:?}"
            ))
        })?;
        let status = status.map_err(store_error)?;
        tracing::info!(?hosts, version = status.version(), "connected to etcd");
        Ok(EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client.watch_client().max_decoding_message_size(MAX_RESPONSE_BYTES),
        })
    }

    /// Turns a failed read at `requested` into the store's error, looking up
    /// the bound the caller crossed so the error can say where history ends.
    async fn read_error(&self, err: etcd_client::Error, requested: Revision) -> StoreError {
        if is_status(&err, COMPACTED) {
            return match self.compacted_revision().await {
                Ok(compacted) => StoreError::Compacted { requested, compacted },
                Err(err) => err,
            };
        }
        if is_status(&err, FUTURE) {
            return match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(err) => err,
            };
        }
        store_error(err)
    }

    /// Fails with [`StoreError::Compacted`] if `after` is older than the
    /// retained history. etcd's watch alone would only say so on the stream,
    /// and would accept `after` one below the compaction point even though
    /// the previous values of its first events are gone; a read at `after`
    /// draws the line where the contract does.
    async fn check_watchable(&self, after: Revision) -> Result<()> {
        if !self.is_compacted(after.max(1)).await? {
            return Ok(());
        }
        Err(StoreError::Compacted {
            requested: after,
            compacted: self.compacted_revision().await?,
        })
    }

    /// Whether reads at `revision` fail because history there was compacted
    /// (a revision not written yet is not compacted). A count-only read of a
    /// key nobody writes costs a few bytes whatever the store holds.
    async fn is_compacted(&self, revision: Revision) -> Result<bool> {
        let options = GetOptions::new().with_revision(revision).with_count_only();
        match self.kv.clone().get(PROBE_KEY, Some(options)).await {
            Ok(_) => Ok(false),
            Err(err) if is_status(&err, COMPACTED) => Ok(true),
            Err(err) if is_status(&err, FUTURE) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    /// Runs a conditional write; on failure, the `or_else` branch is a get
    /// of `key`, whose value (if any) is returned.
    async fn txn_or_current(&self, txn: Txn) -> Result<TxnOutcome> {
        let resp = self.kv.clone().txn(txn).await.map_err(store_error)?;
        let revision = header_revision(resp.header())?;
        let mut ops = resp.op_responses().into_iter();
        if resp.succeeded() {
            return Ok(TxnOutcome::Applied(revision, ops.next()));
        }
        let current = match ops.next() {
            Some(TxnOpResponse::Get(mut get)) => get.take_kvs().into_iter().next(),
            _ => None,
        };
        Ok(TxnOutcome::Failed(current.map(into_kv).transpose()?))
    }
}

/// How a conditional write went.
enum TxnOutcome {
    /// Applied at this revision, with the response of the write operation.
    Applied(Revision, Option<TxnOpResponse>),
    /// The comparison failed; the key's current value, if it exists.
    Failed(Option<KeyValue>),
}

#[async_trait]
impl Store for EtcdStore {
    async fn current_revision(&self) -> Result<Revision> {
        let options = GetOptions::new().with_count_only();
        let resp = self.kv.clone().get(PROBE_KEY, Some(options)).await;
        header_revision(resp.map_err(store_error)?.header())
    }

    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<(Option<KeyValue>, Revision)> {
        let mut options = GetOptions::new();
        if let Some(revision) = revision {
            options = options.with_revision(revision);
        }
        let mut resp = match self.kv.clone().get(key, Some(options)).await {
            Ok(resp) => resp,
            Err(err) => return Err(self.read_error(err, revision.unwrap_or(0)).await),
        };
        let read_at = match revision {
            Some(revision) => revision,
            None => header_revision(resp.header())?,
        };
        let kv = resp.take_kvs().into_iter().next().map(into_kv).transpose()?;
        Ok((kv, read_at))
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult> {
        let mut start = prefix.as_bytes().to_vec();
        if let Some(after) = &options.start_after {
            // The smallest key after `after` is `after` followed by a NUL.
            let mut next = after.as_bytes().to_vec();
            next.push(0);
            start = start.max(next);
        }
        if start.is_empty() {
            // etcd rejects an empty key; "\0" is the smallest one.
            start.push(0);
        }
        let mut request = GetOptions::new().with_range(prefix_end(prefix));
        match options.limit {
            // etcd reads limit 0 as "no limit"; count instead, to know `more`.
            Some(0) => request = request.with_count_only(),
            Some(limit) => request = request.with_limit(i64::try_from(limit).unwrap_or(i64::MAX)),
            None => {}
        }
        if let Some(revision) = options.revision {
            request = request.with_revision(revision);
        }
        let mut resp = match self.kv.clone().get(start, Some(request)).await {
            Ok(resp) => resp,
            Err(err) => {
                let requested = options.revision.unwrap_or(0);
                return Err(self.read_error(err, requested).await);
            }
        };
        let revision = match options.revision {
            Some(revision) => revision,
            None => header_revision(resp.header())?,
        };
        let more = resp.more() || (options.limit == Some(0) && resp.count() > 0);
        let kvs = resp.take_kvs().into_iter().map(into_kv);
        Ok(ListResult {
            kvs: kvs.collect::<Result<_>>()?,
            revision,
            more,
        })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<Revision> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self.kv.clone().txn(txn).await.map_err(store_error)?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists { key: key.to_string() });
        }
        header_revision(resp.header())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> Result<Revision> {
        // The existence check keeps `expected == 0` from matching (and
        // creating) an absent key, whose mod revision etcd compares as 0.
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        match self.txn_or_current(txn).await? {
            TxnOutcome::Applied(revision, _) => Ok(revision),
            TxnOutcome::Failed(current) => Err(lost_race(key, Some(expected), current)),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        let mut when = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            when.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let delete = DeleteOptions::new().with_prev_key();
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::delete(key, Some(delete))])
            .or_else([TxnOp::get(key, None)]);
        match self.txn_or_current(txn).await? {
            TxnOutcome::Applied(revision, Some(TxnOpResponse::Delete(mut resp))) => {
                let prev = resp.take_prev_kvs().into_iter().next();
                let prev =
                    prev.ok_or_else(|| StoreError::Unavailable(format!("etcd deleted {key:?} but returned no value")))?;
                Ok((revision, into_kv(prev)?))
            }
            TxnOutcome::Applied(..) => Err(StoreError::Unavailable(format!(
                "etcd answered the deletion of {key:?} with no delete response"
            ))),
            TxnOutcome::Failed(current) => Err(lost_race(key, expected, current)),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        self.check_watchable(after).await?;
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(after.saturating_add(1).max(1))
            .with_prev_key();
        let mut stream = self
            .watch
            .clone()
            .watch(prefix, Some(options))
            .await
            .map_err(store_error)?;
        // The first response confirms the watch (or says why there is none);
        // a compaction racing the check above shows up here or on the stream.
        let mut events = Events::new(after);
        match stream.message().await {
            Ok(Some(resp)) => events.absorb(resp),
            Ok(None) => events.end(StoreError::Unavailable(
                "etcd closed the watch before confirming it".to_string(),
            )),
            Err(err) => events.end(store_error(err)),
        }
        if events.pending.is_empty()
            && let Some(err) = events.error.take()
        {
            return Err(err);
        }
        tracing::debug!(prefix, after, "etcd watch started");
        Ok(Box::pin(events.into_stream(stream)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.kv.clone().compact(revision, None).await {
            Ok(_) => {
                tracing::debug!(revision, "etcd compacted");
                Ok(())
            }
            // Already compacted to `revision` or beyond: nothing left to do.
            Err(err) if is_status(&err, COMPACTED) => Ok(()),
            Err(err) => Err(self.read_error(err, revision).await),
        }
    }

    /// etcd 3.4 has no request for its compaction point. A watch started
    /// below it is told (`compact_revision`), but only on the member's next
    /// sync of lagging watchers (up to 100 ms), and a member that has not
    /// applied the compaction yet scans all history instead and never tells.
    /// Reads, though, are linearizable and fail exactly below the point, so
    /// this bisects with count-only reads: one read when nothing was
    /// compacted, about log2(current revision) tiny ones when something was.
    async fn compacted_revision(&self) -> Result<Revision> {
        if !self.is_compacted(1).await? {
            return Ok(0);
        }
        // `low - 1` is compacted; `high` is readable, as etcd never compacts
        // past the current revision.
        let (mut low, mut high) = (2, self.current_revision().await?);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.is_compacted(mid).await? {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        Ok(high)
    }
}

/// The events of one etcd watch, flattened from its responses.
struct Events {
    /// Converted events of the last response not handed out yet.
    pending: VecDeque<Event>,
    /// What ends the stream once `pending` is drained.
    error: Option<StoreError>,
    ended: bool,
    /// The revision of the last event handed out (at first: `after`), the
    /// point a consumer would resume from.
    last: Revision,
}

impl Events {
    fn new(after: Revision) -> Self {
        Events {
            pending: VecDeque::new(),
            error: None,
            ended: false,
            last: after,
        }
    }

    fn end(&mut self, err: StoreError) {
        tracing::debug!(%err, "etcd watch ended");
        self.error = Some(err);
    }

    /// Queues a response's events, or records why the watch cannot go on.
    /// Events before a bad one in the same response are still delivered.
    fn absorb(&mut self, resp: WatchResponse) {
        if resp.compact_revision() > 0 {
            return self.end(StoreError::Compacted {
                requested: self.last,
                compacted: resp.compact_revision(),
            });
        }
        if resp.canceled() {
            let reason = resp.cancel_reason();
            return self.end(StoreError::Unavailable(format!("etcd canceled the watch: {reason}")));
        }
        for event in resp.events() {
            match convert_event(event) {
                Ok(event) => self.pending.push_back(event),
                Err(err) => return self.end(err),
            }
        }
    }

    /// The next event, reading responses as needed. `watch` stays owned by
    /// the stream: dropping the stream cancels the etcd watch.
    async fn next(&mut self, watch: &mut etcd_client::WatchStream) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.last = event.revision();
                return Some(Ok(event));
            }
            if let Some(err) = self.error.take() {
                self.ended = true;
                return Some(Err(err));
            }
            if self.ended {
                return None;
            }
            match watch.message().await {
                Ok(Some(resp)) => self.absorb(resp),
                Ok(None) => self.end(StoreError::Unavailable("etcd closed the watch stream".to_string())),
                Err(err) => self.end(store_error(err)),
            }
        }
    }

    fn into_stream(self, watch: etcd_client::WatchStream) -> impl futures::Stream<Item = Result<Event>> + Send {
        let stream = futures::stream::unfold((self, watch), |(mut events, mut watch)| async move {
            let item = events.next(&mut watch).await?;
            Some((item, (events, watch)))
        });
        // Fused: callers may poll an ended stream again (say, in a select loop).
        stream.fuse()
    }
}

/// One etcd watch event as a store [`Event`]. Updates and deletes need
/// their previous value; etcd omits it when it was compacted away under a
/// lagging watch, and guessing would turn an update into a create, so a
/// missing one ends the watch (a retry from the last event then fails with
/// [`StoreError::Compacted`] up front).
fn convert_event(event: &etcd_client::Event) -> Result<Event> {
    let kv = event
        .kv()
        .ok_or_else(|| StoreError::Unavailable("etcd sent a watch event without a key".into()))?;
    let is_create = kv.create_revision() == kv.mod_revision();
    let missing_prev = || {
        StoreError::Unavailable(format!(
            "etcd sent no previous value for {:?} at revision {}",
            String::from_utf8_lossy(kv.key()),
            kv.mod_revision()
        ))
    };
    match event.event_type() {
        EventType::Put if is_create => Ok(Event::Put {
            kv: into_kv(kv.clone())?,
            prev: None,
        }),
        EventType::Put => {
            let prev = event.prev_kv().ok_or_else(missing_prev)?;
            Ok(Event::Put {
                kv: into_kv(kv.clone())?,
                prev: Some(into_kv(prev.clone())?),
            })
        }
        EventType::Delete => {
            let prev = event.prev_kv().ok_or_else(missing_prev)?;
            Ok(Event::Delete {
                revision: kv.mod_revision(),
                prev: into_kv(prev.clone())?,
            })
        }
    }
}

/// The error for a conditional write whose comparison failed.
fn lost_race(key: &str, expected: Option<Revision>, current: Option<KeyValue>) -> StoreError {
    match (expected, current) {
        (Some(expected), Some(current)) => StoreError::Conflict {
            key: key.to_string(),
            expected,
            current: Box::new(current),
        },
        _ => StoreError::NotFound { key: key.to_string() },
    }
}

fn into_kv(kv: etcd_client::KeyValue) -> Result<KeyValue> {
    let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key).map_err(|err| {
        let key = String::from_utf8_lossy(err.as_bytes());
        StoreError::Unavailable(format!("etcd holds a key that is not UTF-8: {key:?}"))
    })?;
    Ok(KeyValue {
        key,
        value,
        create_revision,
        mod_revision,
    })
}

fn header_revision(header: Option<&ResponseHeader>) -> Result<Revision> {
    header
        .map(ResponseHeader::revision)
        .ok_or_else(|| StoreError::Unavailable("etcd sent a response without a header".into()))
}

/// Whether etcd answered with a gRPC status whose message contains `text`.
fn is_status(err: &etcd_client::Error, text: &str) -> bool {
    matches!(err, etcd_client::Error::GRpcStatus(status) if status.message().contains(text))
}

/// Maps failures that need no context: requests over etcd's size limit
/// (etcd's "request is too large" below its gRPC limit, gRPC's "received
/// message larger than max" above it, or a local message-size limit) are
/// [`StoreError::TooLarge`]; everything else means etcd is unavailable.
fn store_error(err: etcd_client::Error) -> StoreError {
    if let etcd_client::Error::GRpcStatus(status) = &err {
        let message = status.message();
        if message.contains("too large") || message.contains("larger than max") {
            return StoreError::TooLarge(message.to_string());
        }
    }
    StoreError::Unavailable(err.to_string())
}
