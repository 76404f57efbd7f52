//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: requests the API server answers by calling
//! the kubelet of the pod's node.
//!
//! The API server checks everything it can decide from the stored objects — the pod exists, the container
//! name is valid (or defaulted), the log options are valid, the container has something to show — and then
//! calls the kubelet at the node's `InternalIP` and `status.daemonEndpoints.kubeletEndpoint.Port` over TLS,
//! authenticating with its `kube-apiserver-kubelet-client` certificate and verifying the kubelet's serving
//! certificate against the cluster CA ([`kubelet`]).
//!
//! **Node proxy** (`GET nodes/{name}/proxy/<path>`) reaches the kubelet's own endpoints, e.g. `/stats/summary`.
//!
//! **Logs** ([`logs`]) are a plain GET whose body is streamed through as it arrives (`kubectl logs -f`).
//!
//! **Exec, attach and port-forward** ([`upgrade`]) are HTTP upgrades, and they are *passed through*: the
//! request's upgrade headers go to the kubelet unchanged, the kubelet's `101` answer comes back unchanged, and
//! from then on bytes are copied both ways. This is the simplest design that serves kubectl 1.32 fully,
//! because Capstan's kubelet itself speaks every protocol kubectl may choose — WebSocket `v5.channel.k8s.io`
//! (with the CLOSE signal), SPDY/3.1 with `v4.channel.k8s.io`, and for port-forward SPDY tunnelled in
//! WebSocket as well as plain SPDY. Upstream's API server instead translates WebSocket to SPDY
//! (`StreamTranslator`, `TunnelingHandler`) because upstream kubelets only speak SPDY and WebSocket up to v4;
//! doing the protocol work once, in the kubelet, keeps the API server a byte pipe and avoids a second hop of
//! framing. When the kubelet refuses an upgrade, its status code and message become the API error, so
//! kubectl's WebSocket-then-SPDY fallback behaves as against upstream.

mod kubelet;
mod logs;
mod upgrade;

use axum::body::Body;
use axum::response::Response;
use capstan_apimachinery::meta::Object;
use capstan_apimachinery::{ApiError, registry};
use serde_json::Value;

use crate::ApiServer;
use crate::objects::ObjectKey;
use crate::request::{Query, ResourceRequest};

pub use kubelet::KubeletClient;

/// Whether this module serves the request.
pub fn handles(request: &ResourceRequest) -> bool {
    request.resource.group.is_empty()
        && matches!(
            (request.resource.plural, request.subresource.as_deref()),
            ("pods", Some("log" | "exec" | "attach" | "portforward")) | ("nodes", Some("proxy"))
        )
}

/// Serves a request for which [`handles`] is true.
pub async fn handle(
    server: &ApiServer,
    request: &ResourceRequest,
    query: &Query,
    parts: &mut http::request::Parts,
    body: Body,
) -> Result<Response, ApiError> {
    drop(body);
    if request.resource.plural == "nodes" {
        return node_proxy(server, request, parts).await;
    }
    let namespace = request.namespace.as_deref().unwrap_or_default();
    let name = request.name.as_deref().unwrap_or_default();
    let pods = registry::lookup("", "v1", "pods").ok_or_else(|| ApiError::internal("pods are not registered"))?;
    let pod = server
        .objects
        .get(ObjectKey {
            resource: pods,
            namespace: Some(namespace),
            name,
        })
        .await?;
    let subresource = request.subresource.as_deref().unwrap_or_default();
    match (subresource, &parts.method) {
        ("log", &http::Method::GET) => logs::get(server, &pod, query).await,
        ("exec" | "attach", &http::Method::GET | &http::Method::POST) => {
            upgrade::remote_command(server, &pod, subresource, query, parts).await
        }
        ("portforward", &http::Method::GET | &http::Method::POST) => {
            upgrade::port_forward(server, &pod, query, parts).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `GET nodes/{name}/proxy/<path>`: the kubelet's own endpoints (`/stats/summary`, `/healthz`, …), as
/// `kubectl get --raw /api/v1/nodes/<node>/proxy/stats/summary` reads them.
async fn node_proxy(
    server: &ApiServer,
    request: &ResourceRequest,
    parts: &http::request::Parts,
) -> Result<Response, ApiError> {
    if parts.method != http::Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let name = request.name.as_deref().unwrap_or_default();
    let marker = format!("/nodes/{name}/proxy");
    let path = parts.uri.path();
    let rest = path.find(&marker).map_or("", |i| &path[i + marker.len()..]);
    let mut target = if rest.is_empty() {
        "/".to_string()
    } else {
        rest.to_string()
    };
    if let Some(query) = parts.uri.query() {
        target = format!("{target}?{query}");
    }
    let (host, port) = node_address(server, name).await?;
    let request = http::Request::get(target)
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(ApiError::internal)?;
    let response = server.kubelet_client()?.send(&host, port, request).await?;
    let (head, body) = response.into_parts();
    let mut out = Response::new(Body::new(body));
    *out.status_mut() = head.status;
    if let Some(content_type) = head.headers.get(http::header::CONTENT_TYPE) {
        out.headers_mut()
            .insert(http::header::CONTENT_TYPE, content_type.clone());
    }
    Ok(out)
}

fn names(pod: &Object) -> (&str, &str) {
    let meta = &pod["metadata"];
    (
        meta["namespace"].as_str().unwrap_or_default(),
        meta["name"].as_str().unwrap_or_default(),
    )
}

fn container_names<'a>(pod: &'a Object, list: &str) -> Vec<&'a str> {
    pod["spec"][list]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

/// The container a request addresses: the `container` parameter if it names one of the pod's containers
/// (app, init or ephemeral), else the only container, else upstream's errors.
fn container(pod: &Object, query: &Query) -> Result<String, ApiError> {
    let (_, name) = names(pod);
    let containers = container_names(pod, "containers");
    let init = container_names(pod, "initContainers");
    match query.get("container") {
        Some(wanted) => {
            let ephemeral = container_names(pod, "ephemeralContainers");
            if containers.iter().chain(&init).chain(&ephemeral).any(|c| *c == wanted) {
                Ok(wanted.to_string())
            } else {
                Err(ApiError::bad_request(format!(
                    "container {wanted} is not valid for pod {name}"
                )))
            }
        }
        None => match containers.as_slice() {
            [only] => Ok(only.to_string()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            many => {
                let mut message = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    many.join(" ")
                );
                if !init.is_empty() {
                    message.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
                }
                Err(ApiError::bad_request(message))
            }
        },
    }
}

/// Where the pod's kubelet listens; `None` for a pod not yet scheduled.
async fn kubelet_address(server: &ApiServer, pod: &Object) -> Result<Option<(String, u16)>, ApiError> {
    match pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        Some(node) => Ok(Some(node_address(server, node).await?)),
        None => Ok(None),
    }
}

/// A node's kubelet: its InternalIP (else any address) and `status.daemonEndpoints.kubeletEndpoint.Port`.
async fn node_address(server: &ApiServer, node_name: &str) -> Result<(String, u16), ApiError> {
    let nodes = registry::lookup("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes are not registered"))?;
    let node = server
        .objects
        .get(ObjectKey {
            resource: nodes,
            namespace: None,
            name: node_name,
        })
        .await?;
    let addresses = node["status"]["addresses"].as_array().cloned().unwrap_or_default();
    let address_of = |kind: &str| {
        addresses
            .iter()
            .find(|a| a["type"] == kind)
            .and_then(|a| a["address"].as_str())
            .map(str::to_string)
    };
    let host = address_of("InternalIP")
        .or_else(|| address_of("ExternalIP"))
        .or_else(|| address_of("Hostname"))
        .ok_or_else(|| ApiError::bad_request(format!("node {node_name} has no address to reach its kubelet")))?;
    let port = match &node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] {
        Value::Number(n) => n.as_u64().filter(|p| *p > 0 && *p <= 65535).unwrap_or(10250) as u16,
        _ => 10250,
    };
    Ok((host, port))
}

/// The kubelet's answer to a failed call, as an API error with its status code and text.
fn kubelet_error(status: http::StatusCode, body: &[u8]) -> ApiError {
    let message = String::from_utf8_lossy(body).trim().to_string();
    let reason = match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        _ => "InternalError",
    };
    ApiError {
        code: status.as_u16(),
        reason,
        message,
        details: None,
    }
}

/// The query string for a kubelet URL.
fn query_string(pairs: &[(&str, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// A path segment, escaped.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str], init: &[&str]) -> Object {
        let list = |names: &[&str]| {
            names
                .iter()
                .map(|n| json!({"name": n, "image": "x"}))
                .collect::<Vec<_>>()
        };
        json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": list(containers), "initContainers": list(init)},
        })
    }

    #[test]
    fn container_defaults_and_upstream_errors() {
        let none = Query::default();
        assert_eq!(container(&pod(&["a"], &[]), &none).unwrap(), "a");
        let err = container(&pod(&["a", "b"], &["i"]), &none).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [i]"
        );
        let named = Query::parse(Some("container=i"));
        assert_eq!(container(&pod(&["a", "b"], &["i"]), &named).unwrap(), "i");
        let wrong = Query::parse(Some("container=x"));
        assert_eq!(
            container(&pod(&["a"], &[]), &wrong).unwrap_err().message,
            "container x is not valid for pod web"
        );
    }

    #[test]
    fn kubelet_errors_keep_code_and_text() {
        let err = kubelet_error(http::StatusCode::NOT_FOUND, b"container \"c\" not found\n");
        assert_eq!((err.code, err.reason), (404, "NotFound"));
        assert_eq!(err.message, "container \"c\" not found");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(
            query_string(&[("command", "sh".into()), ("command", "echo hi".into())]),
            "command=sh&command=echo+hi"
        );
    }
}
