//! The HTTP front door: every request is routed here and sent to health,
//! version, discovery or the generic REST layer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use capstan_apimachinery::ApiError;
use http::{HeaderValue, StatusCode, header};

use crate::authz::Attributes;
use crate::codec::{self, MAX_BODY_BYTES};
use crate::request::{self, Query};
use crate::{ApiServer, authn, discovery, metrics, proxy, rest, version};

/// Routes one request.
pub async fn dispatch(State(server): State<Arc<ApiServer>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return health(&server, &path, &query).await,
        "/version" | "/version/" => return codec::ok(&version::info()),
        _ => {}
    }
    let Some(user) = authn::authenticate(&server, &parts).await else {
        return codec::error(&ApiError::unauthorized());
    };
    let user = match authn::impersonate(&server, &parts, user) {
        Ok(user) => user,
        Err(err) => return codec::error(&err),
    };
    if path == "/openapi/v2" || path == "/openapi/v3" || path.starts_with("/openapi/v3/") {
        return match server.authorizer.authorize(
            &user,
            &Attributes::Path {
                verb: "get",
                path: &path,
            },
        ) {
            Ok(()) => openapi_document(&path),
            Err(err) => codec::error(&err),
        };
    }
    if path == "/metrics" {
        return match server.authorizer.authorize(
            &user,
            &Attributes::Path {
                verb: "get",
                path: &path,
            },
        ) {
            Ok(()) => metrics_response(&server),
            Err(err) => codec::error(&err),
        };
    }
    let resource_request = match request::parse(&parts.method, &path, &query) {
        Ok(Some(r)) => r,
        Ok(None) => {
            let attributes = Attributes::Path {
                verb: "get",
                path: &path,
            };
            return match server.authorizer.authorize(&user, &attributes) {
                Ok(()) => discovery_document(&parts.headers, &path),
                Err(err) => codec::error(&err),
            };
        }
        Err(err) => return codec::error(&err),
    };
    if let Err(err) = server
        .authorizer
        .authorize(&user, &Attributes::Resource(&resource_request))
    {
        return codec::error(&err);
    }
    if proxy::handles(&resource_request) {
        let started = Instant::now();
        let response = proxy::handle(&server, &resource_request, &query, &mut parts, body)
            .await
            .unwrap_or_else(|err| codec::error(&err));
        record(
            &server,
            &resource_request,
            &parts,
            &user,
            response.status(),
            started.elapsed(),
        );
        return response;
    }
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return codec::error(&ApiError::too_large(MAX_BODY_BYTES)),
    };
    let call = rest::Call {
        server: &server,
        request: &resource_request,
        query: &query,
        headers: &parts.headers,
        body,
        user: &user,
    };
    let started = Instant::now();
    let response = match rest::handle(call).await {
        Ok(response) => response,
        Err(err) => codec::error(&err),
    };
    record(
        &server,
        &resource_request,
        &parts,
        &user,
        response.status(),
        started.elapsed(),
    );
    response
}

/// Request metrics and the request log line.
fn record(
    server: &ApiServer,
    request: &request::ResourceRequest,
    parts: &http::request::Parts,
    user: &authn::UserInfo,
    status: StatusCode,
    elapsed: Duration,
) {
    let labels = metrics::DurationLabels {
        verb: request.verb.metrics_name().to_string(),
        group: request.resource.group.to_string(),
        version: request.resource.version.to_string(),
        resource: request.resource.plural.to_string(),
        subresource: request.subresource.clone().unwrap_or_default(),
        scope: request.scope().to_string(),
    };
    server
        .metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            verb: labels.verb.clone(),
            group: labels.group.clone(),
            version: labels.version.clone(),
            resource: labels.resource.clone(),
            subresource: labels.subresource.clone(),
            scope: labels.scope.clone(),
            code: status.as_u16().to_string(),
        })
        .inc();
    if request.verb != request::Verb::Watch {
        server
            .metrics
            .durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
    let (method, uri, user, code) = (&parts.method, &parts.uri, &user.name, status.as_u16());
    if status.is_server_error() {
        tracing::warn!(%method, %uri, %user, code, ?elapsed, "request");
    } else {
        tracing::debug!(%method, %uri, %user, code, ?elapsed, "request");
    }
}

/// `/openapi/v2`, `/openapi/v3` (the index) and `/openapi/v3/<group-version>`.
fn openapi_document(path: &str) -> Response {
    let document = match path {
        "/openapi/v2" => Some((capstan_openapi::v2_document(), capstan_openapi::v2_hash())),
        "/openapi/v3" => Some(capstan_openapi::v3_index_bytes()),
        other => capstan_openapi::v3_document(other.trim_start_matches("/openapi/v3/")),
    };
    let Some((bytes, hash)) = document else {
        return codec::error(&ApiError::path_not_found());
    };
    let headers = [
        (header::CONTENT_TYPE, "application/json".to_string()),
        (header::ETAG, format!("\"{hash}\"")),
    ];
    (headers, bytes.as_ref().clone()).into_response()
}

fn metrics_response(server: &ApiServer) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], server.metrics.render()).into_response()
}

fn discovery_document(headers: &http::HeaderMap, path: &str) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let aggregated = discovery::wants_aggregated(accept) && matches!(path.trim_end_matches('/'), "/api" | "/apis");
    match discovery::document(path, aggregated) {
        Some(doc) if aggregated => {
            let mut response = codec::ok(&doc);
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(discovery::AGGREGATED));
            response
        }
        Some(doc) => codec::ok(&doc),
        None => codec::error(&ApiError::path_not_found()),
    }
}

/// `/healthz`, `/livez`, `/readyz`: `ok`, or with `?verbose` one line per check.
async fn health(server: &ApiServer, path: &str, query: &Query) -> Response {
    let name = path.trim_start_matches('/');
    let mut checks = vec![("ping", true)];
    if name != "livez" {
        checks.push(("etcd", server.objects.current_revision().await.is_ok()));
        checks.push(("poststarthook/bootstrap", server.is_bootstrapped()));
    }
    let healthy = checks.iter().all(|(_, ok)| *ok);
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let body = if query.has("verbose") {
        let mut text: String = checks
            .iter()
            .map(|(check, ok)| {
                format!(
                    "[{}]{check} {}\n",
                    if *ok { "+" } else { "-" },
                    if *ok { "ok" } else { "failed" }
                )
            })
            .collect();
        text.push_str(&format!("{name} check {}\n", if healthy { "passed" } else { "failed" }));
        text
    } else if healthy {
        "ok".to_string()
    } else {
        format!("{name} check failed")
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from(body),
    )
        .into_response()
}
