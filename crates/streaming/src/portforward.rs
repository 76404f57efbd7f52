//! The port-forward protocol (`portforward.k8s.io`), over a SPDY session.
//!
//! For every local connection, kubectl opens two streams with the same `port` and `requestID` headers: first
//! `streamType: error`, then `streamType: data`. The data stream carries the TCP bytes both ways; the server
//! writes a message on the error stream if it cannot connect (kubectl prints it) and finishes both streams when
//! the connection to the pod ends. The session lives as long as `kubectl port-forward` runs.
//!
//! The kubelet does not dial pods itself: containerd's CRI streaming server does that inside the pod's network
//! namespace. [`relay`] forwards each pair of streams from the caller's session to the runtime's.
//!
//! Older WebSocket clients (the Python client, for one) speak a channel protocol instead
//! (`v4.channel.k8s.io` on `portforward`, ports in the query): one connection per listed port, channel `2i`
//! carries port `i`'s data and `2i+1` its errors, and the server's first message on each channel is the port
//! as a little-endian `u16`. [`websocket_relay`] serves it over the same runtime session.

use std::collections::HashMap;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::spdy::{self, Connection, Headers, Incoming, Stream};
use crate::websocket::ChannelMessage;

/// The sub-protocol name (SPDY `X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The header naming the stream's role: `data` or `error`.
pub const STREAM_TYPE_HEADER: &str = "streamType";
/// The header naming the pod port.
pub const PORT_HEADER: &str = "port";
/// The header pairing a data stream with its error stream.
pub const REQUEST_ID_HEADER: &str = "requestID";
/// How long a finished connection waits for the runtime to finish its error stream.
const ERROR_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

/// Forwards every stream pair the caller opens on `front` to the runtime's session `back`, until the caller
/// closes its session; then closes both.
pub async fn relay(front: Connection, mut incoming: Incoming, back: Connection) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut forwards = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            stream = incoming.accept() => stream,
            () = back.closed() => None,
        };
        let Some(stream) = stream else { break };
        let header = |name| spdy::header(&stream.headers, name).unwrap_or_default().to_string();
        let (kind, port, request_id) = (
            header(STREAM_TYPE_HEADER),
            header(PORT_HEADER),
            header(REQUEST_ID_HEADER),
        );
        let pair = pending.entry(request_id.clone()).or_default();
        match kind.as_str() {
            "error" => pair.error = Some(stream),
            "data" => pair.data = Some(stream),
            other => {
                tracing::debug!(stream_type = other, "port-forward: ignoring a stream of unknown type");
                let mut stream = stream;
                stream.writer.reset().await;
                continue;
            }
        }
        if pair.error.is_some() && pair.data.is_some() {
            let Pair {
                error: Some(error),
                data: Some(data),
            } = pending.remove(&request_id).unwrap_or_default()
            else {
                continue;
            };
            forwards.spawn(forward(back.clone(), port, request_id, error, data));
        }
        // Reap finished forwards as we go.
        while forwards.try_join_next().is_some() {}
    }
    forwards.shutdown().await;
    back.close().await;
    front.close().await;
}

/// Copies the runtime's error stream to the caller's, then finishes the caller's.
async fn errors_task(mut from: spdy::StreamReader, mut to: spdy::StreamWriter) {
    while let Some(chunk) = from.recv().await {
        if to.write(&chunk).await.is_err() {
            break;
        }
    }
    let _ = to.close().await;
}

fn headers(kind: &str, port: &str, request_id: &str) -> Headers {
    vec![
        (STREAM_TYPE_HEADER.to_string(), kind.to_string()),
        (PORT_HEADER.to_string(), port.to_string()),
        (REQUEST_ID_HEADER.to_string(), request_id.to_string()),
    ]
}

async fn forward(back: Connection, port: String, request_id: String, mut error: Stream, mut data: Stream) {
    let opened = async {
        let back_error = back.open_stream(headers("error", &port, &request_id)).await?;
        let back_data = back.open_stream(headers("data", &port, &request_id)).await?;
        Ok::<_, spdy::SessionError>((back_error, back_data))
    };
    let (mut back_error, mut back_data) = match opened.await {
        Ok(streams) => streams,
        Err(e) => {
            let message = format!("error forwarding port {port} to pod: {e}");
            let _ = error.writer.write(message.as_bytes()).await;
            let _ = error.writer.close().await;
            let _ = data.writer.close().await;
            return;
        }
    };
    let to_pod = async {
        while let Some(chunk) = data.reader.recv().await {
            if back_data.writer.write(&chunk).await.is_err() {
                break;
            }
        }
        let _ = back_data.writer.close().await;
    };
    let from_pod = async {
        while let Some(chunk) = back_data.reader.recv().await {
            if data.writer.write(&chunk).await.is_err() {
                break;
            }
        }
        let _ = data.writer.close().await;
    };
    // The connection is over when the pod side finished; the caller's half-close alone does not end it. The
    // runtime's error stream ends with it (a runtime that keeps it open gets a short grace period).
    let errors = tokio::spawn(errors_task(back_error.reader, error.writer));
    tokio::select! {
        () = from_pod => {}
        () = async { to_pod.await; std::future::pending::<()>().await } => {}
    }
    if tokio::time::timeout(ERROR_GRACE, errors).await.is_err() {
        tracing::debug!("port-forward: the runtime kept an error stream open");
    }
    let _ = back_error.writer.close().await;
}

/// Serves the WebSocket channel protocol for `ports` over the runtime's session `back`, until every port's
/// connection has ended or the caller closes the socket.
pub async fn websocket_relay<S>(ws: WebSocketStream<S>, ports: Vec<u16>, back: Connection)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut messages) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<ChannelMessage>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if sink.send(Message::Binary(message.encode())).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut to_pod = Vec::new();
    // Data pumps decide when a port's connection is over; error pumps only report.
    let mut pumps = tokio::task::JoinSet::new();
    let mut error_pumps = tokio::task::JoinSet::new();
    for (i, port) in ports.iter().enumerate() {
        let (data_channel, error_channel) = ((2 * i) as u8, (2 * i + 1) as u8);
        let prefix = Bytes::copy_from_slice(&port.to_le_bytes());
        for channel in [data_channel, error_channel] {
            let _ = out_tx.send(ChannelMessage::Data(channel, prefix.clone())).await;
        }
        let (port, id) = (port.to_string(), i.to_string());
        let opened = async {
            let error = back.open_stream(headers("error", &port, &id)).await?;
            let data = back.open_stream(headers("data", &port, &id)).await?;
            Ok::<_, spdy::SessionError>((error, data))
        };
        match opened.await {
            Ok((mut error, data)) => {
                let _ = error.writer.close().await;
                let out = out_tx.clone();
                error_pumps.spawn(async move {
                    let mut reader = error.reader;
                    while let Some(chunk) = reader.recv().await {
                        let _ = out.send(ChannelMessage::Data(error_channel, chunk)).await;
                    }
                });
                let out = out_tx.clone();
                let mut reader = data.reader;
                pumps.spawn(async move {
                    while let Some(chunk) = reader.recv().await {
                        if out.send(ChannelMessage::Data(data_channel, chunk)).await.is_err() {
                            break;
                        }
                    }
                });
                to_pod.push(Some(data.writer));
            }
            Err(e) => {
                let message = format!("error forwarding port {port} to pod: {e}");
                let _ = out_tx.send(ChannelMessage::Data(error_channel, message.into())).await;
                to_pod.push(None);
            }
        }
    }
    drop(out_tx);
    let caller = async {
        while let Some(Ok(message)) = messages.next().await {
            let payload = match message {
                Message::Binary(payload) => payload,
                Message::Close(_) => break,
                _ => continue,
            };
            if let Some(ChannelMessage::Data(channel, data)) = ChannelMessage::decode(payload, false)
                && channel % 2 == 0
                && let Some(Some(writer)) = to_pod.get_mut(usize::from(channel / 2))
                && writer.write(&data).await.is_err()
            {
                to_pod[usize::from(channel / 2)] = None;
            }
        }
    };
    // Done when the pod side of every port has finished, or the caller went away.
    tokio::select! {
        () = caller => pumps.shutdown().await,
        () = async { while pumps.join_next().await.is_some() {} } => {}
    }
    // A runtime finishes its error streams with the data; do not wait for one that does not.
    let _ = tokio::time::timeout(ERROR_GRACE, async { while error_pumps.join_next().await.is_some() {} }).await;
    error_pumps.shutdown().await;
    back.close().await;
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spdy::Role;

    /// kubectl ↔ relay ↔ a runtime that echoes the data stream in upper case.
    #[tokio::test]
    async fn relays_stream_pairs_with_their_headers() {
        let (rt_a, rt_b) = tokio::io::duplex(4096);
        let runtime = tokio::spawn(async move {
            let (_conn, mut incoming) = Connection::new(rt_b, Role::Server);
            let mut seen = Vec::new();
            while let Some(mut stream) = incoming.accept().await {
                let kind = spdy::header(&stream.headers, "streamtype").unwrap().to_string();
                seen.push((
                    kind.clone(),
                    spdy::header(&stream.headers, "port").unwrap().to_string(),
                    spdy::header(&stream.headers, "requestid").unwrap().to_string(),
                ));
                if kind == "data" {
                    let got = stream.reader.read_to_end(1024).await;
                    stream.writer.write(&got.to_ascii_uppercase()).await.unwrap();
                    stream.writer.close().await.unwrap();
                    break;
                }
            }
            seen
        });
        let (back, _) = Connection::new(rt_a, Role::Client);

        let (kubectl_io, kubelet_io) = tokio::io::duplex(4096);
        let (front, incoming) = Connection::new(kubelet_io, Role::Server);
        let relayed = tokio::spawn(relay(front, incoming, back));

        let (kubectl, _) = Connection::new(kubectl_io, Role::Client);
        let mut error = kubectl.open_stream(headers("error", "8080", "0")).await.unwrap();
        let mut data = kubectl.open_stream(headers("data", "8080", "0")).await.unwrap();
        data.writer.write(b"ping").await.unwrap();
        data.writer.close().await.unwrap();
        assert_eq!(data.reader.read_to_end(1024).await, b"PING");
        error.writer.close().await.unwrap();
        assert!(error.reader.read_to_end(1024).await.is_empty());
        assert_eq!(
            runtime.await.unwrap(),
            [
                ("error".to_string(), "8080".to_string(), "0".to_string()),
                ("data".to_string(), "8080".to_string(), "0".to_string())
            ]
        );
        kubectl.close().await;
        relayed.await.unwrap();
    }

    /// A channel-protocol caller ↔ relay ↔ a runtime that upper-cases the data stream of port 8080.
    #[tokio::test]
    async fn websocket_channels_carry_the_port_prefix_and_data() {
        use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
        let (rt_a, rt_b) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let (_conn, mut incoming) = Connection::new(rt_b, Role::Server);
            while let Some(mut stream) = incoming.accept().await {
                if spdy::header(&stream.headers, "streamtype") == Some("data") {
                    assert_eq!(spdy::header(&stream.headers, "port"), Some("8080"));
                    // Like a server answering a request: the caller never half-closes in this protocol.
                    let got = stream.reader.recv().await.unwrap_or_default();
                    stream.writer.write(&got.to_ascii_uppercase()).await.unwrap();
                    stream.writer.close().await.unwrap();
                }
            }
        });
        let (back, _) = Connection::new(rt_a, Role::Client);
        let (caller_io, kubelet_io) = tokio::io::duplex(4096);
        let server = WebSocketStream::from_raw_socket(kubelet_io, WsRole::Server, None).await;
        let relayed = tokio::spawn(websocket_relay(server, vec![8080], back));
        let mut caller = WebSocketStream::from_raw_socket(caller_io, WsRole::Client, None).await;
        caller
            .send(Message::Binary(Bytes::from_static(b"\x00ping")))
            .await
            .unwrap();
        let mut channels: HashMap<u8, Vec<u8>> = HashMap::new();
        while let Some(Ok(message)) = caller.next().await {
            if let Message::Binary(data) = message {
                channels.entry(data[0]).or_default().extend_from_slice(&data[1..]);
            }
        }
        assert_eq!(channels[&0], [0x90, 0x1f, b'P', b'I', b'N', b'G']);
        assert_eq!(channels[&1], [0x90, 0x1f]);
        relayed.await.unwrap();
    }
}
