//! Exec, attach and port-forward: the caller's streaming session bridged to the runtime's.
//!
//! Each handler first does everything that can fail with a plain HTTP error — negotiating the caller's
//! protocol, finding the container or sandbox, asking CRI for the session URL and dialing containerd's
//! streaming server — and only then answers `101 Switching Protocols`. After the upgrade the two sessions are
//! joined by `capstan_streaming`: [`remotecommand::bridge`] for exec/attach (stdin and resize one way,
//! stdout, stderr and the final status with the exit code the other) and [`portforward::relay`] for
//! port-forward (a stream pair per forwarded connection).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use capstan_streaming::remotecommand::{self, Options};
use capstan_streaming::upgrade::{self, Negotiated};
use capstan_streaming::{portforward, spdy, websocket};
use http::StatusCode;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};

use super::{State as ServerState, error, lookup};

/// The protocols a caller may speak for exec and attach.
const REMOTECOMMAND_WEBSOCKET: &[&str] = &[websocket::V5_CHANNEL, websocket::V4_CHANNEL];
const REMOTECOMMAND_SPDY: &[&str] = &[remotecommand::SPDY_PROTOCOL];

/// Query parameters, keeping repeated ones (`command`, `port`).
struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    fn parse(raw: Option<String>) -> QueryParams {
        let pairs = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        QueryParams(pairs)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Upstream's kubelet URLs use `input`/`output`/`error`; the API's `stdin`/`stdout`/`stderr` are accepted too.
    fn flag(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|name| self.all(name).any(|v| matches!(v, "1" | "true")))
    }

    fn options(&self) -> Options {
        Options {
            stdin: self.flag(&["input", "stdin"]),
            stdout: self.flag(&["output", "stdout"]),
            stderr: self.flag(&["error", "stderr"]),
            tty: self.flag(&["tty"]),
        }
    }
}

/// `/exec/{ns}/{pod}/{container}?command=…&input=1&output=1&error=1&tty=1`
pub async fn exec(
    State(state): State<Arc<ServerState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let params = QueryParams::parse(query);
    let options = params.options();
    let cmd: Vec<String> = params.all("command").map(str::to_string).collect();
    if cmd.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container",
        );
    }
    remote_command(state, request, &namespace, &pod, &container, options, Some(cmd)).await
}

/// `/attach/{ns}/{pod}/{container}?input=1&output=1&error=1&tty=1`
pub async fn attach(
    State(state): State<Arc<ServerState>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let options = QueryParams::parse(query).options();
    remote_command(state, request, &namespace, &pod, &container, options, None).await
}

async fn remote_command(
    state: Arc<ServerState>,
    mut request: Request,
    namespace: &str,
    pod: &str,
    container: &str,
    options: Options,
    cmd: Option<Vec<String>>,
) -> Response {
    let negotiated = match upgrade::negotiate(request.headers(), REMOTECOMMAND_WEBSOCKET, REMOTECOMMAND_SPDY) {
        Ok(negotiated) => negotiated,
        Err(e) => return error(e.status(), e.to_string()),
    };
    if !(options.stdin || options.stdout || options.stderr) {
        return error(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: connection does not support upgrades",
        );
    };
    let found = match lookup::running_container(&state.runtime, namespace, pod, container).await {
        Ok(found) => found,
        Err(e) => return error(e.status(), e.to_string()),
    };
    // CRI refuses stderr with a TTY: the terminal carries both.
    let stderr = options.stderr && !options.tty;
    let mut runtime = state.runtime.clone();
    let url = match cmd {
        Some(cmd) => runtime
            .exec(ExecRequest {
                container_id: found.id.clone(),
                cmd,
                tty: options.tty,
                stdin: options.stdin,
                stdout: options.stdout,
                stderr,
            })
            .await
            .map(|r| r.into_inner().url),
        None => runtime
            .attach(AttachRequest {
                container_id: found.id.clone(),
                stdin: options.stdin,
                tty: options.tty,
                stdout: options.stdout,
                stderr,
            })
            .await
            .map(|r| r.into_inner().url),
    };
    let url = match url {
        Ok(url) => url,
        Err(status) => return error(StatusCode::INTERNAL_SERVER_ERROR, status.message().to_string()),
    };
    let back = match upgrade::dial_spdy(&url, REMOTECOMMAND_SPDY).await {
        Ok((io, _)) => {
            let (connection, _incoming) = spdy::Connection::new(io, spdy::Role::Client);
            remotecommand::spdy_client(connection, options).await
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let back = match back {
        Ok(back) => back,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let response = negotiated.response();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => {
                tracing::debug!(error = %e, "exec/attach: the caller's upgrade failed");
                return;
            }
        };
        let front = match &negotiated {
            Negotiated::WebSocket { protocol, .. } => {
                remotecommand::websocket_server(websocket::server(upgraded).await, protocol)
            }
            Negotiated::Spdy { .. } => {
                let (connection, incoming) = spdy::Connection::new(upgraded, spdy::Role::Server);
                match remotecommand::spdy_server(connection, incoming, options).await {
                    Ok(front) => front,
                    Err(e) => {
                        tracing::debug!(error = %e, "exec/attach: the caller did not open its streams");
                        return;
                    }
                }
            }
        };
        remotecommand::bridge(front, back).await;
    });
    response
}

/// `/portForward/{ns}/{pod}[?port=N…]`
pub async fn port_forward(
    State(state): State<Arc<ServerState>>,
    Path((namespace, pod)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    mut request: Request,
) -> Response {
    let negotiated = match upgrade::negotiate(
        request.headers(),
        &[websocket::PORT_FORWARD_TUNNEL, websocket::V4_CHANNEL],
        &[portforward::PROTOCOL],
    ) {
        Ok(negotiated) => negotiated,
        Err(e) => return error(e.status(), e.to_string()),
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: connection does not support upgrades",
        );
    };
    let params = QueryParams::parse(query);
    let mut ports = Vec::new();
    for port in params.all("port").flat_map(|p| p.split(',')) {
        match port.trim().parse::<u16>() {
            Ok(port) if port > 0 => ports.push(i32::from(port)),
            _ => return error(StatusCode::BAD_REQUEST, format!("invalid port {port:?}")),
        }
    }
    let channels = matches!(&negotiated, Negotiated::WebSocket { protocol, .. } if protocol == websocket::V4_CHANNEL);
    if channels && ports.is_empty() {
        return error(StatusCode::BAD_REQUEST, "query parameter \"port\" is required");
    }
    let sandbox = match lookup::sandboxes(&state.runtime, &namespace, &pod).await {
        Ok(sandboxes) => sandboxes.into_iter().next().map(|s| s.id).unwrap_or_default(),
        Err(e) => return error(e.status(), e.to_string()),
    };
    let url = match state
        .runtime
        .clone()
        .port_forward(PortForwardRequest {
            pod_sandbox_id: sandbox,
            port: ports.clone(),
        })
        .await
    {
        Ok(response) => response.into_inner().url,
        Err(status) => return error(StatusCode::INTERNAL_SERVER_ERROR, status.message().to_string()),
    };
    let back = match upgrade::dial_spdy(&url, &[portforward::PROTOCOL]).await {
        Ok((io, _)) => spdy::Connection::new(io, spdy::Role::Client).0,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let response = negotiated.response();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(e) => {
                tracing::debug!(error = %e, "port-forward: the caller's upgrade failed");
                return;
            }
        };
        if channels {
            let ports = ports.iter().map(|p| *p as u16).collect();
            portforward::websocket_relay(websocket::server(upgraded).await, ports, back).await;
            return;
        }
        let (front, incoming) = match negotiated {
            Negotiated::WebSocket { .. } => {
                let tunnel = websocket::Tunnel::new(websocket::server(upgraded).await);
                spdy::Connection::new(tunnel, spdy::Role::Server)
            }
            Negotiated::Spdy { .. } => spdy::Connection::new(upgraded, spdy::Role::Server),
        };
        portforward::relay(front, incoming, back).await;
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_keeps_repeated_commands_and_both_flag_spellings() {
        let params = QueryParams::parse(Some(
            "command=sh&command=-c&command=echo%20hi%3B+exit+3&input=1&output=1&stderr=true&tty=0".to_string(),
        ));
        assert_eq!(
            params.all("command").collect::<Vec<_>>(),
            ["sh", "-c", "echo hi; exit 3"]
        );
        assert_eq!(
            params.options(),
            Options {
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false
            }
        );
    }
}
