//! The remote-command protocol of exec and attach, over either transport.
//!
//! A session has up to five streams, each with a role: `stdin` (client → server), `stdout` and `stderr`
//! (server → client), `resize` (client → server, a sequence of JSON `{"Width":w,"Height":h}` objects, only with
//! a TTY) and `error` (server → client: at the end, a JSON `metav1.Status`; `Failure` with reason
//! `NonZeroExitCode` and an `ExitCode` cause is how the exit code travels — kubectl exits with it). With a TTY
//! there is no `stderr` stream: the terminal merges it into stdout.
//!
//! Over SPDY the client opens one stream per role, named by the `streamType` header; over WebSocket the roles
//! are channels 0–4. Either way this module turns a session into an [`Endpoint`]: a queue of [`Event`]s the
//! peer sent and a queue of events to send it. [`bridge`] joins two endpoints — the kubelet joins the caller's
//! session (kubectl, through the API server) with the container runtime's.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::spdy;
use crate::websocket::{self, ChannelMessage};

/// The SPDY stream header naming a stream's role.
pub const STREAM_TYPE_HEADER: &str = "streamType";
/// The remote-command protocol spoken over SPDY (the newest one the kubelet and containerd support there).
pub const SPDY_PROTOCOL: &str = "v4.channel.k8s.io";
/// How long a server waits for the client to open every stream it asked for (the kubelet waits 30 s).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A stream's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// Input to the process.
    Stdin,
    /// The process's standard output (or the terminal).
    Stdout,
    /// The process's standard error (absent with a TTY).
    Stderr,
    /// The final `Status`.
    Error,
    /// Terminal size changes.
    Resize,
}

impl StreamType {
    /// Every role.
    pub const ALL: [StreamType; 5] = [
        StreamType::Error,
        StreamType::Stdin,
        StreamType::Stdout,
        StreamType::Stderr,
        StreamType::Resize,
    ];

    /// The `streamType` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::Stdin => "stdin",
            StreamType::Stdout => "stdout",
            StreamType::Stderr => "stderr",
            StreamType::Error => "error",
            StreamType::Resize => "resize",
        }
    }

    /// Parses a `streamType` header value.
    pub fn parse(value: &str) -> Option<StreamType> {
        StreamType::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// The WebSocket channel number.
    pub fn channel(self) -> u8 {
        match self {
            StreamType::Stdin => 0,
            StreamType::Stdout => 1,
            StreamType::Stderr => 2,
            StreamType::Error => 3,
            StreamType::Resize => 4,
        }
    }

    /// The role of a WebSocket channel.
    pub fn from_channel(channel: u8) -> Option<StreamType> {
        StreamType::ALL.into_iter().find(|t| t.channel() == channel)
    }

    /// Whether the client writes this stream (the server reads it).
    pub fn from_client(self) -> bool {
        matches!(self, StreamType::Stdin | StreamType::Resize)
    }
}

/// A terminal size, as kubectl sends it on the resize stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Which streams a session has, from the request (`stdin`/`stdout`/`stderr`/`tty`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Attach the process's standard input.
    pub stdin: bool,
    /// Stream standard output.
    pub stdout: bool,
    /// Stream standard error (ignored with a TTY).
    pub stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
}

impl Options {
    /// The streams a client opens for these options, in the order client-go opens them.
    pub fn streams(&self) -> Vec<StreamType> {
        let mut streams = vec![StreamType::Error];
        if self.stdin {
            streams.push(StreamType::Stdin);
        }
        if self.stdout {
            streams.push(StreamType::Stdout);
        }
        if self.stderr && !self.tty {
            streams.push(StreamType::Stderr);
        }
        if self.tty {
            streams.push(StreamType::Resize);
        }
        streams
    }
}

/// Something a peer sent, or something to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes on a stream.
    Data(StreamType, Bytes),
    /// The sender finished the stream.
    Close(StreamType),
}

/// One side of a session, as queues. `events` ends when the peer's session is over; dropping `send` (after
/// queueing everything) finishes our side: every stream is closed and the session shut down. `done` resolves
/// once that has happened.
pub struct Endpoint {
    /// What the peer sends.
    pub events: mpsc::Receiver<Event>,
    /// What to send the peer.
    pub send: mpsc::Sender<Event>,
    /// The task that writes `send` to the peer.
    pub done: JoinHandle<()>,
}

/// Errors setting up a session.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The client did not open every stream the request asked for in time.
    #[error("timed out waiting for client to create streams")]
    StreamTimeout,
    /// A stream had no or an unknown `streamType`.
    #[error("unexpected stream type {0:?}")]
    UnknownStream(String),
    /// The session failed.
    #[error(transparent)]
    Session(#[from] spdy::SessionError),
}

/// The server end over SPDY: waits until the client opened every stream `options` asks for.
pub async fn spdy_server(
    connection: spdy::Connection,
    mut incoming: spdy::Incoming,
    options: Options,
) -> Result<Endpoint, ProtocolError> {
    let wanted = options.streams();
    let mut streams = HashMap::new();
    let collect = async {
        while wanted.iter().any(|t| !streams.contains_key(t)) {
            let Some(stream) = incoming.accept().await else {
                return Err(ProtocolError::Session(spdy::SessionError::Closed));
            };
            let kind = spdy::header(&stream.headers, STREAM_TYPE_HEADER).unwrap_or_default();
            let kind = StreamType::parse(kind).ok_or_else(|| ProtocolError::UnknownStream(kind.to_string()))?;
            streams.insert(kind, stream);
        }
        Ok(())
    };
    tokio::time::timeout(STREAM_CREATION_TIMEOUT, collect)
        .await
        .map_err(|_| ProtocolError::StreamTimeout)??;
    Ok(spdy_endpoint(connection, streams))
}

/// The client end over SPDY: opens the streams `options` asks for, as client-go does.
pub async fn spdy_client(connection: spdy::Connection, options: Options) -> Result<Endpoint, ProtocolError> {
    let mut streams = HashMap::new();
    for kind in options.streams() {
        let headers = vec![(STREAM_TYPE_HEADER.to_string(), kind.as_str().to_string())];
        streams.insert(kind, connection.open_stream(headers).await?);
    }
    Ok(spdy_endpoint(connection, streams))
}

fn spdy_endpoint(connection: spdy::Connection, streams: HashMap<StreamType, spdy::Stream>) -> Endpoint {
    let (events_tx, events) = mpsc::channel(64);
    let (send, mut outgoing) = mpsc::channel::<Event>(64);
    let mut writers = HashMap::new();
    for (kind, stream) in streams {
        writers.insert(kind, stream.writer);
        let mut reader = stream.reader;
        let events_tx = events_tx.clone();
        tokio::spawn(async move {
            while let Some(chunk) = reader.recv().await {
                if events_tx.send(Event::Data(kind, chunk)).await.is_err() {
                    return;
                }
            }
            let _ = events_tx.send(Event::Close(kind)).await;
        });
    }
    let done = tokio::spawn(async move {
        while let Some(event) = outgoing.recv().await {
            let result = match event {
                Event::Data(kind, data) => match writers.get_mut(&kind) {
                    Some(writer) => writer.write(&data).await,
                    None => Ok(()),
                },
                Event::Close(kind) => match writers.get_mut(&kind) {
                    Some(writer) => writer.close().await,
                    None => Ok(()),
                },
            };
            if result.is_err() {
                break;
            }
        }
        for writer in writers.values_mut() {
            let _ = writer.close().await;
        }
        connection.close().await;
    });
    Endpoint { events, send, done }
}

/// The server end over a WebSocket speaking `protocol` (v4 or v5).
pub fn websocket_server<S>(ws: WebSocketStream<S>, protocol: &str) -> Endpoint
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let v5 = protocol == websocket::V5_CHANNEL;
    let (mut sink, mut stream) = ws.split();
    let (events_tx, events) = mpsc::channel(64);
    let (send, mut outgoing) = mpsc::channel::<Event>(64);
    let reader = tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            let payload = match message {
                Ok(Message::Binary(payload)) => payload,
                // base64.channel.k8s.io would send text; v4/v5 never do.
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let event = match ChannelMessage::decode(payload, v5) {
                Some(ChannelMessage::Data(channel, data)) => {
                    StreamType::from_channel(channel).map(|t| Event::Data(t, data))
                }
                Some(ChannelMessage::Close(channel)) => StreamType::from_channel(channel).map(Event::Close),
                None => None,
            };
            if let Some(event) = event
                && events_tx.send(event).await.is_err()
            {
                break;
            }
        }
    });
    let done = tokio::spawn(async move {
        while let Some(event) = outgoing.recv().await {
            // Only the client half-closes channels (stdin, with v5's CLOSE signal): client-go's v5 reader
            // knows no CLOSE for the server's channels and logs "Unknown stream id 255" for each. The server's
            // streams end together when the socket closes.
            let message = match event {
                Event::Data(kind, data) => ChannelMessage::Data(kind.channel(), data),
                Event::Close(_) => continue,
            };
            if sink.send(Message::Binary(message.encode())).await.is_err() {
                reader.abort();
                return;
            }
        }
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
        // Let the peer answer the close; then the connection is done.
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    });
    Endpoint { events, send, done }
}

/// Joins the caller's session (`front`) to the runtime's (`back`): stdin and resize flow back, stdout, stderr
/// and the final status flow front. Ends once the runtime's session is over (the process exited and its output
/// was delivered) or the caller went away; both sessions are closed in order before it returns.
pub async fn bridge(front: Endpoint, back: Endpoint) {
    let Endpoint {
        events: mut from_front,
        send: to_front,
        done: front_done,
    } = front;
    let Endpoint {
        events: mut from_back,
        send: to_back,
        done: back_done,
    } = back;
    let upstream = tokio::spawn(async move {
        while let Some(event) = from_front.recv().await {
            let kind = match &event {
                Event::Data(kind, _) | Event::Close(kind) => *kind,
            };
            if kind.from_client() && to_back.send(event).await.is_err() {
                break;
            }
        }
        // The caller is gone (or stopped sending): dropping `to_back` finishes our side of the runtime session.
    });
    while let Some(event) = from_back.recv().await {
        let kind = match &event {
            Event::Data(kind, _) | Event::Close(kind) => *kind,
        };
        if !kind.from_client() && to_front.send(event).await.is_err() {
            break;
        }
    }
    drop(to_front);
    let _ = front_done.await;
    upstream.abort();
    let _ = back_done.await;
}

/// The `Status` a server sends on the error stream when the session itself failed (not the command).
pub fn failure_status(message: &str) -> Bytes {
    let status = serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    });
    Bytes::from(status.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[test]
    fn streams_follow_the_options() {
        let all = Options {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        assert_eq!(
            all.streams(),
            [
                StreamType::Error,
                StreamType::Stdin,
                StreamType::Stdout,
                StreamType::Stderr
            ]
        );
        let tty = Options { tty: true, ..all };
        assert_eq!(
            tty.streams(),
            [
                StreamType::Error,
                StreamType::Stdin,
                StreamType::Stdout,
                StreamType::Resize
            ]
        );
        assert_eq!(
            serde_json::to_string(&TerminalSize { width: 80, height: 24 }).unwrap(),
            r#"{"Width":80,"Height":24}"#
        );
        for t in StreamType::ALL {
            assert_eq!(StreamType::parse(t.as_str()), Some(t));
            assert_eq!(StreamType::from_channel(t.channel()), Some(t));
        }
    }

    /// A WebSocket v5 caller bridged to a SPDY "runtime": stdin and its close reach the runtime, the runtime's
    /// output and status reach the caller in order, and the caller's socket is closed normally at the end.
    #[tokio::test]
    async fn bridge_websocket_caller_to_spdy_runtime() {
        let options = Options {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        // The runtime: a SPDY server that echoes stdin to stdout, writes to stderr and a status.
        let (rt_client_io, rt_server_io) = tokio::io::duplex(4096);
        let runtime = tokio::spawn(async move {
            let (conn, incoming) = spdy::Connection::new(rt_server_io, spdy::Role::Server);
            let mut end = spdy_server(conn, incoming, options).await.expect("streams");
            let mut input = Vec::new();
            while let Some(event) = end.events.recv().await {
                match event {
                    Event::Data(StreamType::Stdin, data) => input.extend_from_slice(&data),
                    Event::Close(StreamType::Stdin) => break,
                    _ => {}
                }
            }
            end.send
                .send(Event::Data(StreamType::Stdout, input.into()))
                .await
                .unwrap();
            end.send
                .send(Event::Data(StreamType::Stderr, Bytes::from_static(b"warn")))
                .await
                .unwrap();
            end.send
                .send(Event::Data(
                    StreamType::Error,
                    Bytes::from_static(b"{\"status\":\"Success\"}"),
                ))
                .await
                .unwrap();
            drop(end.send);
            end.done.await.unwrap();
        });
        let (conn, _incoming) = spdy::Connection::new(rt_client_io, spdy::Role::Client);
        let back = spdy_client(conn, options).await.expect("runtime session");

        let (caller_io, kubelet_io) = tokio::io::duplex(4096);
        let front = websocket_server(
            WebSocketStream::from_raw_socket(kubelet_io, Role::Server, None).await,
            websocket::V5_CHANNEL,
        );
        let bridged = tokio::spawn(bridge(front, back));

        let mut caller = WebSocketStream::from_raw_socket(caller_io, Role::Client, None).await;
        caller
            .send(Message::Binary(Bytes::from_static(b"\x00hello")))
            .await
            .unwrap();
        caller
            .send(Message::Binary(Bytes::from_static(&[255, 0])))
            .await
            .unwrap();
        let mut got: HashMap<u8, Vec<u8>> = HashMap::new();
        let mut closed = false;
        while let Some(message) = caller.next().await {
            match message.expect("message") {
                Message::Binary(data) => {
                    assert_ne!(
                        data[0],
                        websocket::CLOSE_SIGNAL,
                        "client-go does not expect CLOSE from the server"
                    );
                    got.entry(data[0]).or_default().extend_from_slice(&data[1..]);
                }
                Message::Close(frame) => {
                    assert_eq!(frame.expect("close frame").code, CloseCode::Normal);
                    closed = true;
                }
                _ => {}
            }
        }
        assert!(closed);
        assert_eq!(got[&1], b"hello");
        assert_eq!(got[&2], b"warn");
        assert_eq!(got[&3], b"{\"status\":\"Success\"}");
        bridged.await.unwrap();
        runtime.await.unwrap();
    }
}
