//! GET and LIST.
//!
//! Lists page through the store with `limit` and an opaque `continue`
//! token that pins the snapshot revision, as upstream: every page of one
//! listing is consistent, and a token whose revision was compacted away
//! answers `410 Expired`.

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use capstan_apimachinery::ApiError;
use capstan_apimachinery::meta::Object;
use capstan_store::{ListOptions, Revision};
use serde_json::{Value, json};

use super::{Call, Filter};
use crate::codec;
use crate::objects::prefix;

pub async fn get(call: &Call<'_>) -> Result<Response, ApiError> {
    let object = call.server.objects.get(call.key()).await?;
    Ok(codec::ok(&object))
}

pub async fn list(call: &Call<'_>) -> Result<Response, ApiError> {
    let resource = call.request.resource;
    let filter = Filter::from_query(resource, call.query)?;
    let limit = match call.query.int("limit")? {
        Some(n) if n > 0 => Some(n as usize),
        _ => None,
    };
    let prefix = prefix(resource, call.request.namespace.as_deref());
    let (mut revision, mut start_after) = match call.query.get("continue") {
        Some(token) => {
            let (rev, after) = decode_continue(token)?;
            (Some(rev), Some(format!("{prefix}{after}")))
        }
        None => (exact_revision(call)?, None),
    };
    let mut items: Vec<Object> = Vec::new();
    let (at, continue_after) = loop {
        let wanted = limit.map(|l| l - items.len());
        let options = ListOptions {
            revision,
            limit: wanted,
            start_after: start_after.take(),
        };
        let page = call
            .server
            .objects
            .list(resource, &prefix, &options)
            .await
            .map_err(|e| {
                if e.code == 410 && call.query.get("continue").is_some() {
                    expired_continue()
                } else {
                    e
                }
            })?;
        items.extend(page.items.into_iter().filter(|o| filter.matches(o)).map(strip_type));
        revision = Some(page.revision);
        // A filtered page may come back short: keep reading the same snapshot.
        match page.continue_after {
            Some(last) if limit.is_some_and(|l| items.len() < l) => start_after = Some(last),
            other => break (page.revision, other),
        }
    };
    let mut metadata = json!({"resourceVersion": at.to_string()});
    if let Some(last) = continue_after {
        let relative = last.strip_prefix(&prefix).unwrap_or(&last);
        metadata["continue"] = encode_continue(at, relative).into();
    }
    Ok(codec::ok(&json!({
        "kind": resource.list_kind,
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": items,
    })))
}

/// `resourceVersion=N&resourceVersionMatch=Exact` reads the snapshot at N;
/// every other form (unset, `0`, `NotOlderThan`) is satisfied by the
/// current state, which is never older than what the client saw.
fn exact_revision(call: &Call<'_>) -> Result<Option<Revision>, ApiError> {
    let rv = call.query.get("resourceVersion");
    match call.query.get("resourceVersionMatch") {
        None | Some("NotOlderThan") => Ok(None),
        Some("Exact") => match rv.and_then(|v| v.parse::<Revision>().ok()) {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(ApiError::bad_request(
                "resourceVersionMatch=Exact requires a non-zero resourceVersion",
            )),
        },
        Some(other) => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

/// List items carry no `kind`/`apiVersion`: the list's own type says it.
fn strip_type(mut object: Object) -> Object {
    if let Some(map) = object.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    object
}

/// Upstream's token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key after prefix>"}`.
fn encode_continue(revision: Revision, start_after: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start_after});
    STANDARD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let invalid = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let bytes = STANDARD.decode(token).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let revision = value
        .get("rv")
        .and_then(Value::as_i64)
        .filter(|r| *r > 0)
        .ok_or_else(invalid)?;
    let start = value.get("start").and_then(Value::as_str).ok_or_else(invalid)?;
    if start.contains("..") || start.starts_with('/') {
        return Err(invalid());
    }
    Ok((revision, start.to_string()))
}

fn expired_continue() -> ApiError {
    ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = encode_continue(42, "default/web-1");
        assert_eq!(decode_continue(&token).unwrap(), (42, "default/web-1".to_string()));
        assert_eq!(decode_continue("!!!").unwrap_err().code, 400);
        let escape = STANDARD.encode(r#"{"rv":3,"start":"../secrets/x"}"#);
        assert_eq!(decode_continue(&escape).unwrap_err().code, 400);
    }
}
