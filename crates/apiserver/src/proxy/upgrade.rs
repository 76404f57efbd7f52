//! `pods/exec`, `pods/attach`, `pods/portforward`: the client's upgrade, passed through to the kubelet.
//!
//! The request goes to the kubelet with the upgrade headers of either transport (`Upgrade`, `Connection`,
//! `Sec-WebSocket-Key`/`-Version`/`-Protocol`, `X-Stream-Protocol-Version`); the kubelet negotiates. Its
//! `101` answer is returned with the headers that complete the handshake, and once both sides have switched,
//! bytes are copied both ways until either closes. See the module docs of [`super`] for why there is no
//! protocol translation here.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use capstan_apimachinery::ApiError;
use capstan_apimachinery::meta::Object;
use http::{HeaderName, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::{container, kubelet_address, kubelet_error, names, query_string, segment};
use crate::ApiServer;
use crate::request::Query;

/// Request headers that carry the upgrade negotiation of WebSocket and SPDY.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];
/// Response headers that complete the handshake.
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// Exec or attach: `/exec|attach/{ns}/{pod}/{container}` with upstream's kubelet parameters.
pub async fn remote_command(
    server: &ApiServer,
    pod: &Object,
    subresource: &str,
    query: &Query,
    parts: &mut http::request::Parts,
) -> Result<Response, ApiError> {
    let (namespace, name) = names(pod);
    let container = container(pod, query)?;
    let mut params: Vec<(&str, String)> = Vec::new();
    for (api, kubelet) in [
        ("stdin", "input"),
        ("stdout", "output"),
        ("stderr", "error"),
        ("tty", "tty"),
    ] {
        if query.flag(api) {
            params.push((kubelet, "1".to_string()));
        }
    }
    if subresource == "exec" {
        let command = query.all("command");
        if command.is_empty() {
            return Err(ApiError::bad_request(
                "you must specify at least one command for the container",
            ));
        }
        params.extend(command.into_iter().map(|c| ("command", c.to_string())));
    }
    if !(query.flag("stdin") || query.flag("stdout") || query.flag("stderr")) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let path = format!(
        "/{subresource}/{}/{}/{}?{}",
        segment(namespace),
        segment(name),
        segment(&container),
        query_string(&params)
    );
    pass_through(server, pod, path, parts).await
}

/// Port-forward: `/portForward/{ns}/{pod}`, with the `ports` parameter as `port`.
pub async fn port_forward(
    server: &ApiServer,
    pod: &Object,
    query: &Query,
    parts: &mut http::request::Parts,
) -> Result<Response, ApiError> {
    let (namespace, name) = names(pod);
    let ports: Vec<(&str, String)> = query
        .all("ports")
        .into_iter()
        .flat_map(|p| p.split(','))
        .map(|p| ("port", p.trim().to_string()))
        .collect();
    let mut path = format!("/portForward/{}/{}", segment(namespace), segment(name));
    if !ports.is_empty() {
        path = format!("{path}?{}", query_string(&ports));
    }
    pass_through(server, pod, path, parts).await
}

async fn pass_through(
    server: &ApiServer,
    pod: &Object,
    path: String,
    parts: &mut http::request::Parts,
) -> Result<Response, ApiError> {
    let (_, name) = names(pod);
    let Some((host, port)) = kubelet_address(server, pod).await? else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let Some(client_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(path)
        .header(header::HOST, format!("{host}:{port}"));
    for name in FORWARDED_REQUEST_HEADERS {
        for value in parts.headers.get_all(*name) {
            request = request.header(*name, value.clone());
        }
    }
    let request = request.body(Empty::<Bytes>::new()).map_err(ApiError::internal)?;
    let client = server.kubelet_client()?;
    let mut kubelet_response = client.send(&host, port, request).await?;
    if kubelet_response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = kubelet_response.status();
        let body = kubelet_response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(kubelet_error(status, &body));
    }
    let kubelet_upgrade = hyper::upgrade::on(&mut kubelet_response);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for name in FORWARDED_RESPONSE_HEADERS {
        let name = HeaderName::from_static(name);
        for value in kubelet_response.headers().get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    tokio::spawn(async move {
        let (client, kubelet) = match tokio::try_join!(client_upgrade, kubelet_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "streaming upgrade failed");
                return;
            }
        };
        let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
            tracing::debug!(error = %e, "streaming session ended with an error");
        }
    });
    Ok(response)
}
