//! The `channel.k8s.io` WebSocket protocols, and WebSocket tunnels for SPDY.
//!
//! For exec and attach every binary message starts with a channel byte — 0 stdin, 1 stdout, 2 stderr,
//! 3 error (the final `Status`), 4 resize (`{"Width":…,"Height":…}`) — followed by that channel's bytes.
//! `v5.channel.k8s.io` adds one control message, `[255, channel]`, that half-closes a channel (kubectl sends
//! it when its stdin reaches EOF); `v4` and earlier have no way to signal that. kubectl 1.32 offers only v5
//! over WebSocket and falls back to SPDY when the upgrade is refused.
//!
//! Port-forward over WebSocket (`SPDY/3.1+portforward.k8s.io`) carries no channels at all: the binary
//! messages are simply the bytes of a SPDY session. [`Tunnel`] turns such a WebSocket back into a byte stream.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Exec/attach with the CLOSE signal (Kubernetes 1.29+).
pub const V5_CHANNEL: &str = "v5.channel.k8s.io";
/// Exec/attach: channels 0–4, the error channel carries a JSON `Status`.
pub const V4_CHANNEL: &str = "v4.channel.k8s.io";
/// Port-forward: a SPDY session tunnelled in binary messages (Kubernetes 1.30+).
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// The v5 control byte that precedes a channel number to half-close it.
pub const CLOSE_SIGNAL: u8 = 255;

/// The WebSocket handshake answer for a `Sec-WebSocket-Key` (RFC 6455, 4.2.2).
pub fn accept_key(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
}

/// The sub-protocols a request offers in `Sec-WebSocket-Protocol` (comma-separated, possibly several headers).
pub fn offered_protocols(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether a request asks to upgrade to WebSocket.
pub fn is_upgrade_request(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Wraps an upgraded connection as the server end of a WebSocket (the handshake was answered already).
pub async fn server<S>(io: S) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    WebSocketStream::from_raw_socket(io, Role::Server, None).await
}

/// A message of the exec/attach channel protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMessage {
    /// Bytes for a channel.
    Data(u8, Bytes),
    /// v5: the sender will write nothing more on the channel.
    Close(u8),
}

impl ChannelMessage {
    /// Decodes a binary message's payload; `None` for an empty message (legal, carries nothing).
    pub fn decode(payload: Bytes, v5: bool) -> Option<ChannelMessage> {
        let (&channel, _) = payload.split_first()?;
        if v5 && channel == CLOSE_SIGNAL {
            return payload.get(1).map(|&c| ChannelMessage::Close(c));
        }
        Some(ChannelMessage::Data(channel, payload.slice(1..)))
    }

    /// The binary message payload.
    pub fn encode(&self) -> Bytes {
        match self {
            ChannelMessage::Data(channel, data) => {
                let mut out = Vec::with_capacity(data.len() + 1);
                out.push(*channel);
                out.extend_from_slice(data);
                out.into()
            }
            ChannelMessage::Close(channel) => Bytes::from(vec![CLOSE_SIGNAL, *channel]),
        }
    }
}

/// A byte stream over a WebSocket: each write becomes one binary message, reads return the binary messages'
/// payloads in order. EOF is the peer's close frame (or the connection's end). Pings are answered by the
/// WebSocket layer while reading.
pub struct Tunnel<S> {
    ws: WebSocketStream<S>,
    pending: Bytes,
}

impl<S> Tunnel<S> {
    /// Tunnels bytes through `ws`.
    pub fn new(ws: WebSocketStream<S>) -> Tunnel<S> {
        Tunnel {
            ws,
            pending: Bytes::new(),
        }
    }
}

fn io_error(e: tokio_tungstenite::tungstenite::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Tunnel<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        let chunk = self.pending.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tunnel<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
        Pin::new(&mut self.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages_encode_and_decode() {
        let data = ChannelMessage::Data(1, Bytes::from_static(b"out"));
        assert_eq!(&data.encode()[..], b"\x01out");
        assert_eq!(ChannelMessage::decode(data.encode(), true), Some(data));
        assert_eq!(&ChannelMessage::Close(0).encode()[..], &[255, 0]);
        assert_eq!(
            ChannelMessage::decode(Bytes::from_static(&[255, 0]), true),
            Some(ChannelMessage::Close(0))
        );
        // v4 has no close signal: 255 is just a channel number nobody uses.
        assert_eq!(
            ChannelMessage::decode(Bytes::from_static(&[255, 0]), false),
            Some(ChannelMessage::Data(255, Bytes::from_static(&[0])))
        );
        assert_eq!(ChannelMessage::decode(Bytes::new(), true), None);
    }

    #[test]
    fn handshake_helpers() {
        // RFC 6455's example key.
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let mut headers = http::HeaderMap::new();
        headers.append(
            "sec-websocket-protocol",
            "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
        );
        headers.append("sec-websocket-protocol", "base64.channel.k8s.io".parse().unwrap());
        headers.insert("upgrade", "WebSocket".parse().unwrap());
        assert_eq!(
            offered_protocols(&headers),
            ["v5.channel.k8s.io", "v4.channel.k8s.io", "base64.channel.k8s.io"]
        );
        assert!(is_upgrade_request(&headers));
    }

    #[tokio::test]
    async fn a_tunnel_carries_bytes_both_ways() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, b) = tokio::io::duplex(4096);
        let server_ws = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let client_ws = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        let (mut server, mut client) = (Tunnel::new(server_ws), Tunnel::new(client_ws));
        client.write_all(b"hello ").await.expect("write");
        client.write_all(b"tunnel").await.expect("write");
        client.flush().await.expect("flush");
        let mut got = [0u8; 12];
        server.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello tunnel");
        server.write_all(b"back").await.expect("write");
        server.shutdown().await.expect("close");
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.expect("read to close");
        assert_eq!(back, b"back");
    }
}
