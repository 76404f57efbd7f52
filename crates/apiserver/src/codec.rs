//! Request bodies in, responses out.
//!
//! Bodies arrive as JSON or YAML (protobuf joins later); answers are always
//! JSON, which every client accepts. Errors are `Status` objects with the
//! upstream code, so kubectl prints what users expect.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use capstan_apimachinery::ApiError;
use capstan_apimachinery::meta::Object;
use http::{HeaderMap, HeaderValue, StatusCode, header};

/// The largest request body accepted, as upstream (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Decodes a request body by its `Content-Type`.
pub fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Object, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    let content_type = content_type(headers);
    match content_type.as_str() {
        "" | "application/json" | "*/*" => decode_json(body),
        "application/yaml" => decode_yaml(body),
        protobuf if capstan_protobuf::is_protobuf(protobuf) => decode_protobuf(body),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// kubectl's `create <kind>` sends built-in types as protobuf.
fn decode_protobuf(body: &[u8]) -> Result<Object, ApiError> {
    capstan_protobuf::decode(body).map_err(|err| match err {
        capstan_protobuf::DecodeError::UnknownKind { .. } => ApiError::unsupported_media_type(&err.to_string()),
        other => ApiError::bad_request(format!("error decoding protobuf request body: {other}")),
    })
}

/// YAML bodies (also what server-side apply sends).
pub fn decode_yaml(body: &[u8]) -> Result<Object, ApiError> {
    serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML request body: {e}")))
}

/// The media type of the body, without parameters such as `charset`.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

pub fn decode_json(body: &[u8]) -> Result<Object, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

/// A JSON answer with a status code.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            bytes,
        )
            .into_response(),
        Err(err) => error(&ApiError::internal(err)),
    }
}

pub fn ok(value: &serde_json::Value) -> Response {
    json(StatusCode::OK, value)
}

/// An error answer: the Status object with its code.
pub fn error(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&err.to_json()).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `metav1.Status` `Success`, as some deletes answer.
pub fn success_status(details: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
