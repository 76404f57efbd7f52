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
use crate::negotiate::{self, Form};
use crate::objects::prefix;
use crate::versions;
use capstan_apimachinery::table;

pub async fn get(call: &Call<'_>) -> Result<Response, ApiError> {
    let form = negotiate::form(call.headers, call.query)?;
    let object = call.server.objects.get(call.key()).await?;
    Ok(match form {
        Form::Object => codec::ok(&object),
        Form::Table(include) => {
            let mut table = table::table(
                call.request.resource,
                std::slice::from_ref(&object),
                include,
                jiff::Timestamp::now(),
            );
            table["metadata"] = json!({"resourceVersion": capstan_apimachinery::meta::resource_version(&object)});
            codec::ok(&table)
        }
    })
}

pub async fn get_scale(call: &Call<'_>) -> Result<Response, ApiError> {
    let object = call.server.objects.get(call.key()).await?;
    Ok(codec::ok(&super::scale::view(call.request.resource, &object)?))
}

pub async fn list(call: &Call<'_>) -> Result<Response, ApiError> {
    let form = negotiate::form(call.headers, call.query)?;
    let resource = call.request.resource;
    let filter = Filter::from_query(resource, call.query)?;
    let limit = match call.query.int("limit")? {
        Some(n) if n > 0 => Some(n as usize),
        _ => None,
    };
    let prefix = prefix(resource, call.request.namespace.as_deref());
    let (items, at, continue_after) = if let Some(token) = call.query.get("continue") {
        let (rev, after) = decode_continue(token)?;
        let start_after = Some(format!("{prefix}{after}"));
        list_from_store(call, &filter, limit, &prefix, Some(rev), start_after)
            .await
            .map_err(|e| if e.code == 410 { expired_continue() } else { e })?
    } else if let Some(exact) = exact_revision(call)? {
        list_from_store(call, &filter, limit, &prefix, Some(exact), None).await?
    } else {
        list_from_cache(call, &filter, limit, &prefix).await?
    };
    let mut metadata = json!({"resourceVersion": at.to_string()});
    if let Some(last) = continue_after {
        let relative = last.strip_prefix(&prefix).unwrap_or(&last);
        metadata["continue"] = encode_continue(at, relative).into();
    }
    Ok(codec::ok(&match form {
        Form::Object => json!({
            "kind": resource.list_kind,
            "apiVersion": resource.api_version(),
            "metadata": metadata,
            "items": items,
        }),
        Form::Table(include) => {
            let mut table = table::table(resource, &items, include, jiff::Timestamp::now());
            table["metadata"] = metadata;
            table
        }
    }))
}

/// Items, the revision they are at, and the key to continue after.
type Listing = (Vec<Object>, Revision, Option<String>);

/// From memory. Without a resourceVersion the list must be consistent: the
/// cache first catches up with the store's current revision (if it cannot
/// within a few seconds, the store answers instead). `resourceVersion=0`
/// takes the cache as it is and, as upstream, ignores `limit`. A limited
/// first page continues from the store at the cache's revision — the same
/// snapshot.
async fn list_from_cache(
    call: &Call<'_>,
    filter: &Filter,
    limit: Option<usize>,
    prefix: &str,
) -> Result<Listing, ApiError> {
    let cache = &call.server.cache;
    let limit = match call.query.get("resourceVersion") {
        Some("0") => None,
        Some(rv) => {
            let wanted: Revision = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
            if !cache.wait_for(wanted).await {
                return list_from_store(call, filter, limit, prefix, None, None).await;
            }
            limit
        }
        None => {
            let current = call.server.objects.current_revision().await?;
            if !cache.wait_for(current).await {
                return list_from_store(call, filter, limit, prefix, None, None).await;
            }
            limit
        }
    };
    let (objects, revision) = cache.list(prefix);
    let resource = call.request.resource;
    let mut items = Vec::new();
    let mut continue_after = None;
    for object in objects.iter() {
        let object = versions::to_request(resource, (**object).clone())?;
        if !filter.matches(&object) {
            continue;
        }
        if limit.is_some_and(|l| items.len() == l) {
            continue_after = items.last().map(|o: &Object| object_key(call, o));
            break;
        }
        items.push(strip_type(object));
    }
    Ok((items, revision, continue_after))
}

/// The store key of a listed object.
fn object_key(call: &Call<'_>, object: &Object) -> String {
    let namespace = Some(capstan_apimachinery::meta::namespace(object)).filter(|ns| !ns.is_empty());
    let key = crate::objects::ObjectKey {
        resource: call.request.resource,
        namespace,
        name: capstan_apimachinery::meta::name(object),
    };
    key.key()
}

/// From the store, at `revision` (or the current one), after `start_after`.
async fn list_from_store(
    call: &Call<'_>,
    filter: &Filter,
    limit: Option<usize>,
    prefix: &str,
    mut revision: Option<Revision>,
    mut start_after: Option<String>,
) -> Result<Listing, ApiError> {
    let mut items: Vec<Object> = Vec::new();
    loop {
        let options = ListOptions {
            revision,
            limit: limit.map(|l| l - items.len()),
            start_after: start_after.take(),
        };
        let page = call
            .server
            .objects
            .list(call.request.resource, prefix, &options)
            .await?;
        items.extend(page.items.into_iter().filter(|o| filter.matches(o)).map(strip_type));
        revision = Some(page.revision);
        // A filtered page may come back short: keep reading the same snapshot.
        match page.continue_after {
            Some(last) if limit.is_some_and(|l| items.len() < l) => start_after = Some(last),
            other => return Ok((items, page.revision, other)),
        }
    }
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
