//! The review kinds: requests that are answered, never stored.
//!
//! `SelfSubjectAccessReview` (`kubectl auth can-i`), `SubjectAccessReview`
//! and `LocalSubjectAccessReview` ask the authorizer chain; `TokenReview`
//! asks the authenticator; `SelfSubjectReview` (`kubectl auth whoami`)
//! reports who is asking.

use axum::response::Response;
use capstan_apimachinery::meta::Object;
use capstan_apimachinery::{ApiError, registry};
use http::StatusCode;
use serde_json::{Value, json};

use super::Call;
use crate::authn::{self, UserInfo};
use crate::authz::Attributes;
use crate::codec;
use crate::request::{ResourceRequest, Verb};

pub async fn review(call: &Call<'_>) -> Result<Response, ApiError> {
    let mut object = codec::decode_body(call.headers, &call.body)?;
    let status = match call.request.resource.kind {
        "SelfSubjectAccessReview" => access(call, call.user, &object),
        "SubjectAccessReview" | "LocalSubjectAccessReview" => access(call, &subject(&object), &object),
        "TokenReview" => token(call, &object).await,
        "SelfSubjectReview" => json!({"userInfo": user_info(call.user)}),
        other => return Err(ApiError::bad_request(format!("{other} cannot be created"))),
    };
    object["status"] = status;
    object["apiVersion"] = call.request.resource.api_version().into();
    object["kind"] = call.request.resource.kind.into();
    Ok(codec::json(StatusCode::CREATED, &object))
}

/// The user a SubjectAccessReview asks about.
fn subject(review: &Object) -> UserInfo {
    let text = |p: &str| {
        review
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let groups = review
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    UserInfo {
        name: text("/spec/user"),
        groups,
    }
}

fn access(call: &Call<'_>, user: &UserInfo, review: &Object) -> Value {
    let spec = review.get("spec").cloned().unwrap_or_default();
    let decision = if let Some(attrs) = spec.get("resourceAttributes") {
        resource_request(attrs, review)
            .map(|request| call.server.authorizer.authorize(user, &Attributes::Resource(&request)))
    } else if let Some(attrs) = spec.get("nonResourceAttributes") {
        let verb = attrs.get("verb").and_then(Value::as_str).unwrap_or("get");
        let path = attrs.get("path").and_then(Value::as_str).unwrap_or("/");
        Some(call.server.authorizer.authorize(user, &Attributes::Path { verb, path }))
    } else {
        None
    };
    match decision {
        Some(Ok(())) => json!({"allowed": true}),
        // As upstream when no authorizer allows: denied, without a reason.
        Some(Err(_)) => json!({"allowed": false}),
        None => json!({"allowed": false, "reason": "no resource or non-resource attributes, or an unknown resource"}),
    }
}

/// The request a review's `resourceAttributes` describe, if the resource exists.
fn resource_request(attrs: &Value, review: &Object) -> Option<ResourceRequest> {
    let text = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or_default();
    let group = text("group");
    let version = match text("version") {
        "" => registry::groups()
            .into_iter()
            .find(|g| g.name == group)?
            .preferred_version(),
        v => registry::groups()
            .into_iter()
            .find(|g| g.name == group)?
            .versions
            .into_iter()
            .find(|x| *x == v)?,
    };
    let resource = registry::lookup(group, version, text("resource"))?;
    let namespace = match text("namespace") {
        "" => review
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        ns => Some(ns.to_string()),
    };
    let verb = match text("verb") {
        "get" => Verb::Get,
        "list" => Verb::List,
        "watch" => Verb::Watch,
        "create" => Verb::Create,
        "update" => Verb::Update,
        "patch" => Verb::Patch,
        "delete" => Verb::Delete,
        "deletecollection" => Verb::DeleteCollection,
        _ => return None,
    };
    Some(ResourceRequest {
        verb,
        resource,
        namespace: namespace.filter(|_| resource.namespaced),
        name: Some(text("name").to_string()).filter(|n| !n.is_empty()),
        subresource: Some(text("subresource").to_string()).filter(|s| !s.is_empty()),
    })
}

async fn token(call: &Call<'_>, review: &Object) -> Value {
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match authn::service_account(call.server, token).await {
        Some(user) => json!({
            "authenticated": true,
            "user": user_info(&user),
            "audiences": [crate::serviceaccount::ISSUER],
        }),
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    }
}

fn user_info(user: &UserInfo) -> Value {
    json!({"username": user.name, "groups": user.groups})
}
