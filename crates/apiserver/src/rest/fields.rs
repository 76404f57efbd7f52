//! Field ownership: `metadata.managedFields` on every write, and
//! server-side apply (`PATCH` with `application/apply-patch+yaml`).
//!
//! The merge and ownership rules live in `capstan-apply`; this module picks
//! the manager (the request's `fieldManager`, or upstream's default from the
//! client's user agent), the endpoint's reset fields, and the timestamp.

use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, ResourceType};
use capstan_apply::{ApplyError, Manager, Operation};
use http::header;
use serde_json::Value;

use super::Call;

/// Records the write of `new` (replacing `old`, `None` for a create) in
/// `new`'s managedFields. If the fields cannot be computed, the old list is
/// kept, as upstream does.
pub fn track(call: &Call<'_>, old: Option<&Object>, new: &mut Object) {
    let resource = call.request.resource;
    let name = manager_name(call);
    let (api_version, time) = (resource.api_version(), meta::now());
    let manager = manager(call, &name, Operation::Update, &api_version, &time);
    match capstan_apply::update_managed_fields(old, new, gvk(resource), &manager) {
        Ok(entries) if entries.is_empty() => meta::set_meta(new, "managedFields", None),
        Ok(entries) => meta::set_meta(new, "managedFields", Some(Value::Array(entries))),
        Err(err) => {
            tracing::debug!(%err, "managedFields not updated");
            let kept = old.and_then(|o| o.pointer("/metadata/managedFields")).cloned();
            meta::set_meta(new, "managedFields", kept);
        }
    }
}

/// Server-side apply of `applied` onto `live` (`None`: create).
pub fn apply(call: &Call<'_>, live: Option<&Object>, applied: &Object) -> Result<Object, ApiError> {
    let resource = call.request.resource;
    let name = call
        .query
        .get("fieldManager")
        .ok_or_else(|| apply_error(ApplyError::MissingFieldManager))?
        .to_string();
    let (api_version, time) = (resource.api_version(), meta::now());
    let manager = manager(call, &name, Operation::Apply, &api_version, &time);
    let force = call.query.flag("force");
    capstan_apply::apply(live, applied, gvk(resource), &manager, force).map_err(apply_error)
}

fn manager<'a>(call: &'a Call<'_>, name: &'a str, op: Operation, api_version: &'a str, time: &'a str) -> Manager<'a> {
    let resource = call.request.resource;
    let subresource = call.request.subresource.as_deref();
    let manager = Manager::new(name, op, api_version, time)
        .with_reset_fields(capstan_apply::reset_fields_for(gvk(resource), subresource));
    match subresource {
        Some(sub) => manager.with_subresource(sub),
        None => manager,
    }
}

/// `?fieldManager`, else the client's name from its user agent (`kubectl/v1.33.1 (linux/amd64) ...` → `kubectl`).
fn manager_name(call: &Call<'_>) -> String {
    if let Some(name) = call.query.get("fieldManager") {
        return name.to_string();
    }
    let agent = call
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    agent.split('/').next().unwrap_or("").to_string()
}

fn gvk(resource: &ResourceType) -> capstan_apply::Gvk<'static> {
    (resource.group, resource.version, resource.kind)
}

/// An apply failure as the Status upstream answers with.
fn apply_error(err: ApplyError) -> ApiError {
    let status = err.status();
    let message = status["message"].as_str().unwrap_or_default().to_string();
    let details = status
        .get("details")
        .cloned()
        .and_then(|d| serde_json::from_value(d).ok())
        .map(Box::new);
    ApiError {
        code: err.code(),
        reason: err.reason(),
        message,
        details,
    }
}
