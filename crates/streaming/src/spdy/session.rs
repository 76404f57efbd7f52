//! A SPDY/3.1 session: many streams multiplexed over one byte stream.
//!
//! [`Connection::new`] takes over any `AsyncRead + AsyncWrite` (an upgraded HTTP connection, a WebSocket
//! tunnel) and starts two tasks: a reader that decodes frames and routes them to streams, and a writer that
//! owns the outgoing compression context and serializes every frame in order. Streams opened by the peer are
//! accepted at once (SYN_REPLY) and handed out by [`Incoming::accept`]; [`Connection::open_stream`] opens one
//! and waits for the peer's reply, as client-go does.
//!
//! Flow control is not enforced in either direction: the Go implementation every Kubernetes component uses
//! (moby/spdystream) neither sends nor honours WINDOW_UPDATE, so a peer would stall if we waited for credit.
//! Back-pressure comes instead from bounded per-stream queues: a slow consumer slows the session's reader.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use super::frame::{Decoder, Encoder, FLAG_FIN, Frame, FrameError, Headers, rst};

/// Data frames carry at most this much (Go's spdystream reads in 32 KiB chunks too).
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Frames queued per stream before the session's reader waits for the stream's consumer.
const STREAM_QUEUE: usize = 64;
/// How long [`Connection::open_stream`] waits for SYN_REPLY (client-go waits 30 s).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which end of the session we are: clients open odd stream ids, servers even ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that sent the HTTP upgrade request.
    Client,
    /// The side that answered it.
    Server,
}

/// Errors of a session or one of its streams.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session is gone (the peer closed it, or an I/O or framing error ended it).
    #[error("the SPDY session is closed")]
    Closed,
    /// The peer reset the stream.
    #[error("stream {0} was reset by the peer")]
    Reset(u32),
    /// The peer did not reply to SYN_STREAM in time.
    #[error("timed out waiting for the peer to accept stream {0}")]
    ReplyTimeout(u32),
    /// A frame could not be encoded.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

enum Outgoing {
    Frame(Frame),
    /// Flush, shut the write half down and stop.
    Shutdown(oneshot::Sender<()>),
}

#[derive(Default)]
struct StreamSlot {
    data: Option<mpsc::Sender<Bytes>>,
    reply: Option<oneshot::Sender<Result<Headers, SessionError>>>,
}

type Streams = Arc<Mutex<HashMap<u32, StreamSlot>>>;

struct Inner {
    writer: mpsc::Sender<Outgoing>,
    streams: Streams,
    next_id: AtomicU32,
    closed: watch::Receiver<bool>,
    reader: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A handle on a session: opens streams and closes the session. Cheap to clone; the session's reader stops
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

/// Streams the peer opens, already accepted.
pub struct Incoming {
    streams: mpsc::Receiver<Stream>,
}

impl Incoming {
    /// The next stream the peer opened; `None` once the session has ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.streams.recv().await
    }
}

/// One stream: the headers it was opened with, and its two halves.
pub struct Stream {
    /// The stream id.
    pub id: u32,
    /// The headers of the SYN_STREAM (for streams the peer opened) or of the SYN_REPLY (for ours).
    pub headers: Headers,
    /// What the peer sends.
    pub reader: StreamReader,
    /// What we send.
    pub writer: StreamWriter,
}

impl Connection {
    /// Runs a session over `io`. Returns the handle and the queue of streams the peer opens.
    pub fn new<T>(io: T, role: Role) -> (Connection, Incoming)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let (writer, outgoing) = mpsc::channel(256);
        let (accepted, streams) = mpsc::channel(16);
        let (closed_tx, closed) = watch::channel(false);
        let table: Streams = Arc::default();
        tokio::spawn(write_loop(write, outgoing));
        let reader = tokio::spawn(read_loop(read, table.clone(), writer.clone(), accepted, closed_tx)).abort_handle();
        let first_id = match role {
            Role::Client => 1,
            Role::Server => 2,
        };
        let inner = Inner {
            writer,
            streams: table,
            next_id: AtomicU32::new(first_id),
            closed,
            reader,
        };
        (Connection { inner: Arc::new(inner) }, Incoming { streams })
    }

    /// Opens a stream with `headers` and waits for the peer to accept it.
    pub async fn open_stream(&self, headers: Headers) -> Result<Stream, SessionError> {
        if *self.inner.closed.borrow() {
            return Err(SessionError::Closed);
        }
        let id = self.inner.next_id.fetch_add(2, Ordering::Relaxed);
        let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.lock().insert(
            id,
            StreamSlot {
                data: Some(data_tx),
                reply: Some(reply_tx),
            },
        );
        let syn = Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers,
        };
        self.send(syn).await?;
        let reply = tokio::select! {
            reply = tokio::time::timeout(REPLY_TIMEOUT, reply_rx) => reply,
            () = self.closed() => return Err(SessionError::Closed),
        };
        let reply = match reply {
            Ok(Ok(reply)) => reply?,
            Ok(Err(_)) => return Err(SessionError::Closed),
            Err(_) => {
                self.lock().remove(&id);
                return Err(SessionError::ReplyTimeout(id));
            }
        };
        Ok(Stream {
            id,
            headers: reply,
            reader: StreamReader::new(data_rx),
            writer: StreamWriter::new(id, self.inner.writer.clone()),
        })
    }

    /// Sends GOAWAY, flushes everything queued before it and shuts the write half down. Streams the peer still
    /// writes to end when it closes its side.
    pub async fn close(&self) {
        let goaway = Frame::GoAway {
            last_good_stream_id: 0,
            status: 0,
        };
        if self.send(goaway).await.is_ok() {
            let (done_tx, done_rx) = oneshot::channel();
            if self.inner.writer.send(Outgoing::Shutdown(done_tx)).await.is_ok() {
                let _ = done_rx.await;
            }
        }
    }

    /// Resolves once the session has ended (the peer closed it or it failed).
    pub async fn closed(&self) {
        let mut closed = self.inner.closed.clone();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    async fn send(&self, frame: Frame) -> Result<(), SessionError> {
        self.inner
            .writer
            .send(Outgoing::Frame(frame))
            .await
            .map_err(|_| SessionError::Closed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, StreamSlot>> {
        self.inner.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn write_loop<W: AsyncWrite>(write: W, mut outgoing: mpsc::Receiver<Outgoing>) {
    let mut write = std::pin::pin!(write);
    let mut encoder = Encoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = outgoing.recv().await {
        let mut next = Some(first);
        // Coalesce whatever is already queued into one write.
        while let Some(item) = next.take() {
            match item {
                Outgoing::Frame(frame) => {
                    if let Err(e) = encoder.encode(&frame, &mut buf) {
                        tracing::warn!(error = %e, "dropping an unencodable SPDY frame");
                    }
                }
                Outgoing::Shutdown(done) => {
                    let _ = write.write_all(&buf).await;
                    let _ = write.flush().await;
                    let _ = write.shutdown().await;
                    let _ = done.send(());
                    return;
                }
            }
            if buf.len() < 256 * 1024 {
                next = outgoing.try_recv().ok();
            }
        }
        if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
}

async fn read_loop<R: AsyncRead>(
    read: R,
    streams: Streams,
    writer: mpsc::Sender<Outgoing>,
    accepted: mpsc::Sender<Stream>,
    closed: watch::Sender<bool>,
) {
    let mut read = std::pin::pin!(read);
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut router = Router {
        streams: &streams,
        writer: &writer,
        accepted: &accepted,
    };
    'session: loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if router.route(frame).await.is_err() {
                        break 'session;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY framing error; ending the session");
                    break 'session;
                }
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // Every reader sees the end; pending opens fail.
    let slots: Vec<StreamSlot> = streams
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain()
        .map(|(_, slot)| slot)
        .collect();
    for slot in slots {
        if let Some(reply) = slot.reply {
            let _ = reply.send(Err(SessionError::Closed));
        }
    }
    let _ = closed.send(true);
}

struct Router<'a> {
    streams: &'a Streams,
    writer: &'a mpsc::Sender<Outgoing>,
    accepted: &'a mpsc::Sender<Stream>,
}

impl Router<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, StreamSlot>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles one incoming frame; `Err` ends the session (the writer is gone).
    async fn route(&mut self, frame: Frame) -> Result<(), ()> {
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => {
                let (data_tx, data_rx) = mpsc::channel(STREAM_QUEUE);
                let fin = flags & FLAG_FIN != 0;
                self.lock().insert(
                    stream_id,
                    StreamSlot {
                        data: (!fin).then_some(data_tx),
                        reply: None,
                    },
                );
                let reply = Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: Vec::new(),
                };
                self.writer.send(Outgoing::Frame(reply)).await.map_err(drop)?;
                let stream = Stream {
                    id: stream_id,
                    headers,
                    reader: StreamReader::new(data_rx),
                    writer: StreamWriter::new(stream_id, self.writer.clone()),
                };
                if self.accepted.send(stream).await.is_err() {
                    // Nobody accepts streams on this session: refuse it.
                    self.lock().remove(&stream_id);
                    let refuse = Frame::RstStream {
                        stream_id,
                        status: rst::REFUSED_STREAM,
                    };
                    self.writer.send(Outgoing::Frame(refuse)).await.map_err(drop)?;
                }
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let mut streams = self.lock();
                if let Some(slot) = streams.get_mut(&stream_id) {
                    if let Some(reply) = slot.reply.take() {
                        let _ = reply.send(Ok(headers));
                    }
                    if flags & FLAG_FIN != 0 {
                        slot.data = None;
                    }
                }
            }
            Frame::Data { stream_id, flags, data } => {
                let sender = self.lock().get(&stream_id).and_then(|slot| slot.data.clone());
                if let Some(sender) = sender
                    && !data.is_empty()
                {
                    // A consumer that dropped its reader just loses the data.
                    let _ = sender.send(data).await;
                }
                if flags & FLAG_FIN != 0 {
                    self.finish(stream_id);
                }
            }
            Frame::Headers { stream_id, flags, .. } => {
                if flags & FLAG_FIN != 0 {
                    self.finish(stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(slot) = self.lock().remove(&stream_id)
                    && let Some(reply) = slot.reply
                {
                    let _ = reply.send(Err(SessionError::Reset(stream_id)));
                }
            }
            Frame::Ping { id } => {
                self.writer
                    .send(Outgoing::Frame(Frame::Ping { id }))
                    .await
                    .map_err(drop)?;
            }
            Frame::GoAway { .. } | Frame::Settings { .. } | Frame::WindowUpdate { .. } => {}
        }
        Ok(())
    }

    /// The peer finished sending on a stream: its reader sees the end.
    fn finish(&self, stream_id: u32) {
        let mut streams = self.lock();
        if let Some(slot) = streams.get_mut(&stream_id) {
            slot.data = None;
            if slot.reply.is_none() {
                streams.remove(&stream_id);
            }
        }
    }
}

/// The receiving half of a stream. Also an [`AsyncRead`].
pub struct StreamReader {
    data: mpsc::Receiver<Bytes>,
    pending: Bytes,
}

impl StreamReader {
    fn new(data: mpsc::Receiver<Bytes>) -> StreamReader {
        StreamReader {
            data,
            pending: Bytes::new(),
        }
    }

    /// The next chunk the peer sent; `None` once it finished the stream (or the session ended).
    pub async fn recv(&mut self) -> Option<Bytes> {
        if !self.pending.is_empty() {
            return Some(std::mem::take(&mut self.pending));
        }
        self.data.recv().await
    }

    /// Everything until the peer finishes the stream, at most `limit` bytes (the rest is discarded).
    pub async fn read_to_end(&mut self, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = self.recv().await {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        out
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.pending.is_empty() {
            match ready!(self.data.poll_recv(cx)) {
                Some(chunk) => self.pending = chunk,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// The sending half of a stream.
pub struct StreamWriter {
    id: u32,
    writer: mpsc::Sender<Outgoing>,
    finished: bool,
}

impl StreamWriter {
    fn new(id: u32, writer: mpsc::Sender<Outgoing>) -> StreamWriter {
        StreamWriter {
            id,
            writer,
            finished: false,
        }
    }

    /// Sends `data` (split into frames of at most 32 KiB).
    pub async fn write(&mut self, data: &[u8]) -> Result<(), SessionError> {
        if self.finished {
            return Err(SessionError::Closed);
        }
        for chunk in data.chunks(MAX_DATA_CHUNK) {
            self.frame(0, Bytes::copy_from_slice(chunk)).await?;
        }
        Ok(())
    }

    /// Finishes the stream (an empty data frame with FIN); further writes fail. Idempotent.
    pub async fn close(&mut self) -> Result<(), SessionError> {
        if self.finished {
            return Ok(());
        }
        self.frame(FLAG_FIN, Bytes::new()).await?;
        self.finished = true;
        Ok(())
    }

    /// Aborts the stream (RST_STREAM CANCEL).
    pub async fn reset(&mut self) {
        self.finished = true;
        let frame = Frame::RstStream {
            stream_id: self.id,
            status: rst::CANCEL,
        };
        let _ = self.writer.send(Outgoing::Frame(frame)).await;
    }

    async fn frame(&self, flags: u8, data: Bytes) -> Result<(), SessionError> {
        let frame = Frame::Data {
            stream_id: self.id,
            flags,
            data,
        };
        self.writer
            .send(Outgoing::Frame(frame))
            .await
            .map_err(|_| SessionError::Closed)
    }
}

/// Copies `from` into a stream until EOF, then finishes the stream. Returns the bytes copied.
pub async fn copy_to_stream<R: AsyncRead + Unpin>(mut from: R, to: &mut StreamWriter) -> Result<u64, SessionError> {
    let mut buf = vec![0u8; MAX_DATA_CHUNK];
    let mut total = 0;
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                to.write(&buf[..n]).await?;
                total += n as u64;
            }
        }
    }
    to.close().await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[tokio::test]
    async fn client_and_server_exchange_data_both_ways() {
        let (a, b) = tokio::io::duplex(1024);
        let (client, _client_incoming) = Connection::new(a, Role::Client);
        let (server, mut incoming) = Connection::new(b, Role::Server);

        let server_task = tokio::spawn(async move {
            let mut stream = incoming.accept().await.expect("a stream");
            assert_eq!(
                super::super::frame::header(&stream.headers, "streamType"),
                Some("stdin")
            );
            let got = stream.reader.read_to_end(1 << 20).await;
            stream.writer.write(&got).await.expect("echo");
            stream.writer.close().await.expect("fin");
            server.close().await;
        });

        let mut stream = client.open_stream(h(&[("streamType", "stdin")])).await.expect("open");
        assert_eq!(stream.id, 1);
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        stream.writer.write(&payload).await.expect("write");
        stream.writer.close().await.expect("close");
        assert_eq!(stream.reader.read_to_end(1 << 20).await, payload);
        server_task.await.expect("server");
        client.closed().await;
    }

    #[tokio::test]
    async fn a_reset_fails_the_open_and_a_closed_session_ends_readers() {
        let (a, b) = tokio::io::duplex(1024);
        let (client, _incoming) = Connection::new(a, Role::Client);
        // A bare peer: reads the SYN_STREAM and answers RST_STREAM.
        let peer = tokio::spawn(async move {
            let (mut read, mut write) = tokio::io::split(b);
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let id = loop {
                read.read_buf(&mut buf).await.expect("read");
                if let Some(Frame::SynStream { stream_id, .. }) = decoder.decode(&mut buf).expect("decode") {
                    break stream_id;
                }
            };
            let mut out = BytesMut::new();
            Encoder::new()
                .encode(
                    &Frame::RstStream {
                        stream_id: id,
                        status: rst::REFUSED_STREAM,
                    },
                    &mut out,
                )
                .expect("encode");
            write.write_all(&out).await.expect("write");
            (read, write)
        });
        let err = client.open_stream(Vec::new()).await.err().expect("refused");
        assert!(matches!(err, SessionError::Reset(1)), "{err}");
        drop(peer.await.expect("peer"));
        client.closed().await;
        assert!(matches!(
            client.open_stream(Vec::new()).await,
            Err(SessionError::Closed)
        ));
    }

    #[tokio::test]
    async fn pings_are_echoed() {
        let (a, b) = tokio::io::duplex(1024);
        let (_server, _incoming) = Connection::new(a, Role::Server);
        let (mut read, mut write) = tokio::io::split(b);
        let mut out = BytesMut::new();
        Encoder::new().encode(&Frame::Ping { id: 1 }, &mut out).expect("encode");
        write.write_all(&out).await.expect("write");
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let frame = loop {
            read.read_buf(&mut buf).await.expect("read");
            if let Some(frame) = decoder.decode(&mut buf).expect("decode") {
                break frame;
            }
        };
        assert_eq!(frame, Frame::Ping { id: 1 });
    }
}
