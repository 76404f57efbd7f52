//! The one generic REST implementation behind every resource.
//!
//! A [`ResourceRequest`] (parsed from the URL) names the resource type from
//! the registry; the handlers here implement upstream's generic registry
//! store for all of them alike: reads in [`read`], writes in [`write`],
//! watches in [`watch`]. What differs between kinds is data — the registry
//! entry and the [`crate::strategy`] rules — not code.

mod binding;
mod eviction;
mod fields;
mod filter;
mod read;
mod review;
mod scale;
mod token;
mod watch;
mod write;

use axum::response::Response;
use bytes::Bytes;
use capstan_apimachinery::ApiError;
use http::HeaderMap;

use crate::ApiServer;
use crate::objects::ObjectKey;
use crate::request::{Query, ResourceRequest, Verb};

pub use filter::Filter;

/// Everything a handler needs about one request.
pub struct Call<'a> {
    pub server: &'a ApiServer,
    pub request: &'a ResourceRequest,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// Who is asking (reviews answer about them).
    pub user: &'a crate::authn::UserInfo,
}

impl Call<'_> {
    /// The addressed object; only valid for requests with a name.
    pub fn key(&self) -> ObjectKey<'_> {
        ObjectKey {
            resource: self.request.resource,
            namespace: self.request.namespace.as_deref(),
            name: self.request.name.as_deref().unwrap_or_default(),
        }
    }
}

/// Serves one resource request.
pub async fn handle(call: Call<'_>) -> Result<Response, ApiError> {
    let request = call.request;
    if !request.resource.verbs.contains(&request.verb.as_str()) && request.subresource.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    match (request.verb, request.subresource.as_deref()) {
        (Verb::Get, None | Some("status")) => read::get(&call).await,
        (Verb::List, None) => read::list(&call).await,
        (Verb::Watch, None) => watch::watch(&call).await,
        (Verb::Create, None) if !request.resource.is_stored() => review::review(&call).await,
        (Verb::Create, None) => write::create(&call).await,
        (Verb::Update, None | Some("status")) => write::update(&call).await,
        (Verb::Update, Some("finalize")) => write::finalize(&call).await,
        (Verb::Patch, None | Some("status")) => write::patch(&call).await,
        (Verb::Get, Some("scale")) => read::get_scale(&call).await,
        (Verb::Update, Some("scale")) => write::update_scale(&call).await,
        (Verb::Patch, Some("scale")) => write::patch_scale(&call).await,
        (Verb::Create, Some("token")) => token::create_token(&call).await,
        (Verb::Create, Some("binding")) => binding::bind(&call).await,
        (Verb::Create, Some("eviction")) => eviction::evict(&call).await,
        (Verb::Delete, None) => write::delete(&call).await,
        (Verb::DeleteCollection, None) => write::delete_collection(&call).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}
