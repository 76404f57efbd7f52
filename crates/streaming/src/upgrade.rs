//! The HTTP/1.1 upgrade that starts a streaming session, from both ends.
//!
//! As a server, [`negotiate`] reads what the request offers — WebSocket with `Sec-WebSocket-Protocol`, or SPDY
//! with `X-Stream-Protocol-Version` — picks the first protocol both sides support, and [`Negotiated::response`]
//! builds the `101 Switching Protocols` answer. As a client, [`dial_spdy`] sends the upgrade request to a plain
//! HTTP URL (the kubelet dials containerd's CRI streaming server on loopback) and returns the upgraded bytes.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use crate::spdy;
use crate::websocket;

/// Which transport a request upgrades to, and the sub-protocol chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiated {
    /// WebSocket; `key` is the client's `Sec-WebSocket-Key`.
    WebSocket {
        /// The chosen `Sec-WebSocket-Protocol`.
        protocol: String,
        /// The client's handshake key.
        key: String,
    },
    /// SPDY/3.1 with the chosen `X-Stream-Protocol-Version`.
    Spdy {
        /// The chosen sub-protocol.
        protocol: String,
    },
}

/// Why a request cannot be upgraded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// Not an upgrade request at all.
    #[error("unable to upgrade: missing upgrade headers in request")]
    NotUpgrade,
    /// No protocol in common.
    #[error(
        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {supported:?}"
    )]
    NoCommonProtocol {
        /// What the client offered.
        offered: Vec<String>,
        /// What this server speaks.
        supported: Vec<String>,
    },
    /// A WebSocket upgrade without `Sec-WebSocket-Key`.
    #[error("unable to upgrade: missing Sec-WebSocket-Key")]
    MissingKey,
}

impl NegotiationError {
    /// The HTTP status to answer with (upstream answers 400 for malformed upgrades, 403 for protocol mismatches).
    pub fn status(&self) -> StatusCode {
        match self {
            NegotiationError::NoCommonProtocol { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Picks the transport and sub-protocol for an upgrade request; the client's order of preference wins.
pub fn negotiate(
    headers: &HeaderMap,
    websocket_protocols: &[&str],
    spdy_protocols: &[&str],
) -> Result<Negotiated, NegotiationError> {
    let pick = |offered: Vec<String>, supported: &[&str]| {
        offered
            .iter()
            .find(|p| supported.contains(&p.as_str()))
            .cloned()
            .ok_or_else(|| NegotiationError::NoCommonProtocol {
                offered,
                supported: supported.iter().map(|s| s.to_string()).collect(),
            })
    };
    if websocket::is_upgrade_request(headers) {
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .and_then(|v| v.to_str().ok())
            .ok_or(NegotiationError::MissingKey)?
            .to_string();
        let protocol = pick(websocket::offered_protocols(headers), websocket_protocols)?;
        return Ok(Negotiated::WebSocket { protocol, key });
    }
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !upgrade.eq_ignore_ascii_case(spdy::UPGRADE) {
        return Err(NegotiationError::NotUpgrade);
    }
    let offered = headers
        .get_all(spdy::PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let protocol = pick(offered, spdy_protocols)?;
    Ok(Negotiated::Spdy { protocol })
}

impl Negotiated {
    /// The chosen sub-protocol.
    pub fn protocol(&self) -> &str {
        match self {
            Negotiated::WebSocket { protocol, .. } | Negotiated::Spdy { protocol } => protocol,
        }
    }

    /// The `101 Switching Protocols` answer.
    pub fn response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        let value = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
        match self {
            Negotiated::WebSocket { protocol, key } => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(header::SEC_WEBSOCKET_ACCEPT, value(&websocket::accept_key(key)));
                headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value(protocol));
            }
            Negotiated::Spdy { protocol } => {
                headers.insert(header::UPGRADE, HeaderValue::from_static(spdy::UPGRADE));
                headers.insert(spdy::PROTOCOL_HEADER, value(protocol));
            }
        }
        response
    }
}

/// Errors dialing an upgrade.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The URL is not `http://host:port/...`.
    #[error("invalid streaming URL {0:?}")]
    Url(String),
    /// Connecting failed.
    #[error("connecting to {url}: {source}")]
    Connect {
        /// The URL dialed.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("upgrade request to {url}: {source}")]
    Http {
        /// The URL dialed.
        url: String,
        /// The cause.
        source: hyper::Error,
    },
    /// The server answered something other than 101.
    #[error("upgrade refused with {status}: {body}")]
    Refused {
        /// The status.
        status: StatusCode,
        /// The body, for the error message.
        body: String,
    },
}

/// An upgraded connection.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// Sends a SPDY upgrade request (POST, as client-go does) to a plain-HTTP `url`, offering `protocols`; returns
/// the upgraded connection and the protocol the server chose.
pub async fn dial_spdy(url: &str, protocols: &[&str]) -> Result<(Upgraded, String), DialError> {
    let uri: http::Uri = url.parse().map_err(|_| DialError::Url(url.to_string()))?;
    let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority().cloned()) else {
        return Err(DialError::Url(url.to_string()));
    };
    let port = authority.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .map_err(|source| DialError::Connect {
            url: url.to_string(),
            source,
        })?;
    let http_err = |source| DialError::Http {
        url: url.to_string(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(http_err)?;
    tokio::spawn(connection.with_upgrades());
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = Request::post(path)
        .header(header::HOST, authority.as_str())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, spdy::UPGRADE);
    for protocol in protocols {
        request = request.header(spdy::PROTOCOL_HEADER, *protocol);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|_| DialError::Url(url.to_string()))?;
    let response = sender.send_request(request).await.map_err(http_err)?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).trim().to_string(),
            Err(_) => String::new(),
        };
        return Err(DialError::Refused { status, body });
    }
    let protocol = response
        .headers()
        .get(spdy::PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let upgraded = hyper::upgrade::on(response).await.map_err(http_err)?;
    Ok((TokioIo::new(upgraded), protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn websocket_v5_is_chosen_when_offered() {
        let request = headers(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        let negotiated = negotiate(&request, &[websocket::V5_CHANNEL, websocket::V4_CHANNEL], &[]).unwrap();
        assert_eq!(negotiated.protocol(), "v5.channel.k8s.io");
        let response: Response<()> = negotiated.response();
        assert_eq!(response.status(), 101);
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
    }

    #[test]
    fn spdy_takes_the_first_common_protocol_in_client_order() {
        let request = headers(&[
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v5.channel.k8s.io"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
        ]);
        let negotiated = negotiate(&request, &[], &["v4.channel.k8s.io"]).unwrap();
        assert_eq!(
            negotiated,
            Negotiated::Spdy {
                protocol: "v4.channel.k8s.io".to_string()
            }
        );
        let response: Response<()> = negotiated.response();
        assert_eq!(response.headers()["upgrade"], "SPDY/3.1");
        assert_eq!(response.headers()["x-stream-protocol-version"], "v4.channel.k8s.io");

        let err = negotiate(&request, &[], &["portforward.k8s.io"]).unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            negotiate(&HeaderMap::new(), &[], &[]).unwrap_err(),
            NegotiationError::NotUpgrade
        );
    }
}
