//! CREATE, UPDATE, PATCH, DELETE and DELETECOLLECTION.
//!
//! Every write is a compare-and-swap on the object's resourceVersion. A
//! client that sends a resourceVersion gets `409 Conflict` when it is stale;
//! one that does not (an unconditional update, or any patch) is retried
//! against the fresh object, as upstream's `GuaranteedUpdate` does.

use axum::response::Response;
use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, FieldError, ResourceType, defaults, validation};
use capstan_store::Revision;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Call, Filter, fields, scale};
use crate::allocator::{self, Allocation};
use crate::objects::{ObjectKey, prefix};
use crate::{admission, codec, patch, strategy};

/// How often a write retries after losing a race it did not ask to lose.
const MAX_RETRIES: usize = 16;

pub async fn create(call: &Call<'_>) -> Result<Response, ApiError> {
    let resource = call.request.resource;
    let mut object = codec::decode_body(call.headers, &call.body)?;
    let warnings = check_fields(call, &object, Body::Object)?;
    default(resource, &mut object);
    strategy::prepare_for_create(resource, &mut object, call.request.namespace.as_deref())?;
    validate(call, &object, None)?;
    admission::admit_create(call.server, resource, &mut object).await?;
    fields::track(call, None, &mut object);
    let allocation = allocate(call, &mut object, None).await?;
    if call.query.dry_run()? {
        return Ok(with_warnings(codec::json(StatusCode::CREATED, &object), &warnings));
    }
    let key = ObjectKey {
        resource,
        namespace: call.request.namespace.as_deref(),
        name: meta::name(&object),
    };
    let created = call.server.objects.create(key, object.clone()).await;
    settle(call, allocation, &created).await;
    Ok(with_warnings(codec::json(StatusCode::CREATED, &created?), &warnings))
}

pub async fn update(call: &Call<'_>) -> Result<Response, ApiError> {
    let body = codec::decode_body(call.headers, &call.body)?;
    let warnings = check_fields(call, &body, Body::Object)?;
    let precondition = revision_of(&body)?;
    let object = write_loop(call, precondition, |_old| Ok(body.clone())).await?;
    Ok(with_warnings(codec::ok(&object), &warnings))
}

pub async fn patch(call: &Call<'_>) -> Result<Response, ApiError> {
    let content_type = codec::content_type(call.headers);
    if content_type == "application/apply-patch+yaml" {
        return server_side_apply(call).await;
    }
    let patch = patch::Patch::parse(&content_type, &call.body, call.request.resource)?;
    let warnings = std::sync::Mutex::new(Vec::new());
    let object = write_loop(call, None, |old| {
        let patched = patch.apply(old)?;
        *warnings.lock().unwrap_or_else(|p| p.into_inner()) = check_fields(call, &patched, Body::Patched)?;
        Ok(patched)
    })
    .await?;
    let warnings = warnings.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(with_warnings(codec::ok(&object), &warnings))
}

/// Server-side apply: merge the applied configuration with field
/// ownership; a missing object is created.
async fn server_side_apply(call: &Call<'_>) -> Result<Response, ApiError> {
    let resource = call.request.resource;
    let applied = codec::decode_yaml(&call.body)?;
    let warnings = check_fields(call, &applied, Body::Patched)?;
    for _ in 0..MAX_RETRIES {
        let Some(live) = call.server.objects.try_get(call.key()).await? else {
            let mut object = fields::apply(call, None, &applied)?;
            default(resource, &mut object);
            strategy::prepare_for_create(resource, &mut object, call.request.namespace.as_deref())?;
            validate(call, &object, None)?;
            admission::admit_create(call.server, resource, &mut object).await?;
            let allocation = allocate(call, &mut object, None).await?;
            if call.query.dry_run()? {
                return Ok(with_warnings(codec::json(StatusCode::CREATED, &object), &warnings));
            }
            let created = call.server.objects.create(call.key(), object).await;
            settle(call, allocation, &created).await;
            match created {
                Ok(created) => return Ok(with_warnings(codec::json(StatusCode::CREATED, &created), &warnings)),
                Err(err) if err.code == 409 => continue,
                Err(err) => return Err(err),
            }
        };
        let revision = revision_of(&live)?.unwrap_or_default();
        let mut new = fields::apply(call, Some(&live), &applied)?;
        default(resource, &mut new);
        strategy::prepare_for_update(resource, call.request.subresource.as_deref(), &mut new, &live)?;
        keep_allocated(call, &mut new, &live);
        validate(call, &new, Some(&live))?;
        meta::set_meta(&mut new, "resourceVersion", Some(revision.to_string().into()));
        if new == live {
            return Ok(with_warnings(codec::ok(&new), &warnings));
        }
        let allocation = allocate(call, &mut new, Some(&live)).await?;
        if call.query.dry_run()? {
            return Ok(with_warnings(codec::ok(&new), &warnings));
        }
        let updated = call.server.objects.update(call.key(), new, revision).await;
        settle(call, allocation, &updated).await;
        match updated {
            Ok(updated) => return Ok(with_warnings(codec::ok(&updated), &warnings)),
            Err(err) if err.code == 409 => continue,
            Err(err) => return Err(err),
        }
    }
    Err(ApiError::conflict(resource, call.key().name))
}

/// Whether a body was sent whole or is the result of a patch: upstream words
/// strict-validation errors differently for the two.
#[derive(Clone, Copy)]
enum Body {
    Object,
    Patched,
}

/// `fieldValidation`: unknown fields fail the request (`Strict`), become
/// `Warning` headers (`Warn`, the default, as upstream), or pass (`Ignore`).
fn check_fields(call: &Call<'_>, object: &Object, body: Body) -> Result<Vec<String>, ApiError> {
    let mode = call.query.get("fieldValidation").unwrap_or("Warn");
    if !matches!(mode, "Strict" | "Warn" | "Ignore") {
        return Err(ApiError::bad_request(format!(
            "fieldValidation: Unsupported value: {mode:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
        )));
    }
    let resource = call.request.resource;
    if mode == "Ignore" {
        return Ok(Vec::new());
    }
    let unknown = capstan_openapi::unknown_fields(resource.group, resource.version, resource.kind, object);
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    if mode == "Warn" {
        return Ok(unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect());
    }
    Err(ApiError::bad_request(match body {
        Body::Object => capstan_openapi::decode_error_message(resource.kind, resource.version, &unknown),
        Body::Patched => capstan_openapi::strict_error_message(&unknown),
    }))
}

/// Adds `Warning: 299 - "..."` headers, which kubectl shows to the user.
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        if let Ok(value) = http::HeaderValue::from_str(&format!("299 - {warning:?}")) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
    response
}

/// PUT on `namespaces/<name>/finalize`: only `spec.finalizers` changes.
pub async fn finalize(call: &Call<'_>) -> Result<Response, ApiError> {
    let body = codec::decode_body(call.headers, &call.body)?;
    let precondition = revision_of(&body)?;
    let finalizers = body.pointer("/spec/finalizers").cloned().unwrap_or_else(|| json!([]));
    let object = write_loop(call, precondition, |old| {
        let mut new = old.clone();
        new["spec"]["finalizers"] = finalizers.clone();
        Ok(new)
    })
    .await?;
    Ok(codec::ok(&object))
}

/// PUT on `/scale`: the Scale's `spec.replicas` goes to the object.
pub async fn update_scale(call: &Call<'_>) -> Result<Response, ApiError> {
    let body = codec::decode_body(call.headers, &call.body)?;
    let precondition = revision_of(&body)?;
    let replicas = scale::replicas_of(&body)?;
    let object = write_loop(call, precondition, |old| Ok(scale::with_replicas(old, replicas))).await?;
    Ok(codec::ok(&scale::view(call.request.resource, &object)?))
}

/// PATCH on `/scale`: patches the Scale view, then writes its replicas back.
pub async fn patch_scale(call: &Call<'_>) -> Result<Response, ApiError> {
    let content_type = codec::content_type(call.headers);
    let patch = patch::Patch::parse(&content_type, &call.body, call.request.resource)?;
    let resource = call.request.resource;
    let object = write_loop(call, None, |old| {
        let patched = patch.apply(&scale::view(resource, old)?)?;
        Ok(scale::with_replicas(old, scale::replicas_of(&patched)?))
    })
    .await?;
    Ok(codec::ok(&scale::view(resource, &object)?))
}

/// Reads, changes and writes an object until the write wins or loses to
/// the client's own precondition.
async fn write_loop(
    call: &Call<'_>,
    precondition: Option<Revision>,
    change: impl Fn(&Object) -> Result<Object, ApiError>,
) -> Result<Object, ApiError> {
    let resource = call.request.resource;
    let key = call.key();
    for _ in 0..MAX_RETRIES {
        let old = call.server.objects.get(key).await?;
        let old_revision = revision_of(&old)?.unwrap_or_default();
        let mut new = change(&old)?;
        default(resource, &mut new);
        // A resourceVersion in the new object (a PUT body, or one a patch
        // sets) must still be current; a patch that sets none carries the
        // old one and is simply re-applied if it loses a race.
        let stale = revision_of(&new)?.is_some_and(|rv| rv != old_revision);
        if stale || precondition.is_some_and(|rv| rv != old_revision) {
            return Err(ApiError::conflict(resource, key.name));
        }
        if meta::name(&new).is_empty() {
            meta::set_meta(&mut new, "name", Some(key.name.into()));
        }
        strategy::prepare_for_update(resource, call.request.subresource.as_deref(), &mut new, &old)?;
        keep_allocated(call, &mut new, &old);
        validate(call, &new, Some(&old))?;
        meta::set_meta(&mut new, "resourceVersion", Some(old_revision.to_string().into()));
        if new == old {
            return Ok(new);
        }
        fields::track(call, Some(&old), &mut new);
        let allocation = allocate(call, &mut new, Some(&old)).await?;
        if call.query.dry_run()? {
            return Ok(new);
        }
        let finalized = meta::finalizers(&new).is_empty() && !namespace_finalizers(&new);
        // A graceful pod deletion still waits for its kubelet, as upstream's
        // ShouldDeleteDuringUpdate: only a zero grace period ends it here.
        let grace_over = old
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_none_or(|grace| grace == 0);
        let written = if meta::is_deleting(&new) && finalized && grace_over {
            // The last finalizer is gone: the deletion completes now.
            settle(call, allocation, &Err::<(), _>(ApiError::internal("deleted instead"))).await;
            remove(call, key, old_revision).await
        } else {
            let updated = call.server.objects.update(key, new, old_revision).await;
            settle(call, allocation, &updated).await;
            updated
        };
        match written {
            Err(err) if err.code == 409 && precondition.is_none() => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(resource, key.name))
}

pub async fn delete(call: &Call<'_>) -> Result<Response, ApiError> {
    let options = DeleteOptions::from_call(call)?;
    let (object, pending) = delete_one(call, call.key(), &options).await?;
    let answer = if pending {
        object
    } else {
        deleted_answer(call.request.resource, object)
    };
    Ok(codec::ok(&answer))
}

pub async fn delete_collection(call: &Call<'_>) -> Result<Response, ApiError> {
    let resource = call.request.resource;
    let options = DeleteOptions::from_call(call)?;
    let filter = Filter::from_query(resource, call.query)?;
    let prefix = prefix(resource, call.request.namespace.as_deref());
    let page = call
        .server
        .objects
        .list(resource, &prefix, &capstan_store::ListOptions::default())
        .await?;
    let mut deleted = Vec::new();
    for object in page.items.iter().filter(|o| filter.matches(o)) {
        let key = ObjectKey {
            resource,
            namespace: Some(meta::namespace(object)).filter(|ns| !ns.is_empty()),
            name: meta::name(object),
        };
        match delete_one(call, key, &options).await {
            Ok((object, _)) => deleted.push(object),
            Err(err) if err.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(codec::ok(&json!({
        "kind": resource.list_kind,
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": deleted,
    })))
}

/// What a DELETE asks for, from its body and query.
struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    uid: Option<String>,
    revision: Option<Revision>,
    dry_run: bool,
}

impl DeleteOptions {
    fn from_call(call: &Call<'_>) -> Result<DeleteOptions, ApiError> {
        let body = if call.body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            codec::decode_body(call.headers, &call.body)?
        };
        Self::from_body(call, &body)
    }

    /// From a `DeleteOptions` object plus the request's query.
    fn from_body(call: &Call<'_>, body: &Value) -> Result<DeleteOptions, ApiError> {
        let text = |v: &Value| v.as_str().map(str::to_string);
        let grace_period = match call.query.int("gracePeriodSeconds")? {
            Some(g) => Some(g),
            None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
        };
        let orphan = body.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            || call.query.get("orphanDependents") == Some("true");
        let propagation = call
            .query
            .get("propagationPolicy")
            .map(str::to_string)
            .or_else(|| body.get("propagationPolicy").and_then(text))
            .or_else(|| orphan.then(|| "Orphan".to_string()));
        if let Some(p) = &propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        let dry_run = call.query.dry_run()?
            || body
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        Ok(DeleteOptions {
            grace_period,
            propagation,
            uid: body.pointer("/preconditions/uid").and_then(text),
            revision: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|rv| rv.parse().ok()),
            dry_run,
        })
    }

    /// The finalizer a propagation policy asks the garbage collector to honour.
    fn finalizer(&self) -> Option<&'static str> {
        match self.propagation.as_deref() {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            _ => None,
        }
    }
}

/// Deletes one object with the options of another request (an Eviction's
/// `deleteOptions`).
pub(super) async fn delete_with_options(
    call: &Call<'_>,
    key: ObjectKey<'_>,
    options: &Value,
) -> Result<(Object, bool), ApiError> {
    let options = DeleteOptions::from_body(call, options)?;
    delete_one(call, key, &options).await
}

/// Deletes one object — at once, or by marking it (graceful deletion of
/// pods on a node, pending finalizers) for its owners to finish. Returns
/// the object and whether its deletion is still pending.
async fn delete_one(call: &Call<'_>, key: ObjectKey<'_>, options: &DeleteOptions) -> Result<(Object, bool), ApiError> {
    let resource = key.resource;
    for _ in 0..MAX_RETRIES {
        let old = call.server.objects.get(key).await?;
        let revision = revision_of(&old)?.unwrap_or_default();
        check_preconditions(resource, key.name, &old, options)?;
        let mut marked = old.clone();
        let pending = mark_for_deletion(&mut marked, options);
        if options.dry_run {
            return Ok((if pending { marked } else { old }, pending));
        }
        let result = if !pending {
            remove(call, key, revision).await
        } else if marked == old {
            Ok(old)
        } else {
            call.server.objects.update(key, marked, revision).await
        };
        match result {
            Err(err) if err.code == 409 => continue,
            other => return other.map(|object| (object, pending)),
        }
    }
    Err(ApiError::conflict(resource, key.name))
}

fn check_preconditions(
    resource: &'static capstan_apimachinery::ResourceType,
    name: &str,
    old: &Object,
    options: &DeleteOptions,
) -> Result<(), ApiError> {
    if let Some(uid) = &options.uid
        && uid != meta::uid(old)
    {
        return Err(ApiError::conflict_because(
            resource,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::uid(old)
            ),
        ));
    }
    if let Some(rv) = options.revision
        && Some(rv) != revision_of(old)?
    {
        return Err(ApiError::conflict_because(
            resource,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta::resource_version(old)
            ),
        ));
    }
    Ok(())
}

/// Marks `object` as being deleted when something must act first; returns
/// whether the deletion is pending rather than immediate.
fn mark_for_deletion(object: &mut Object, options: &DeleteOptions) -> bool {
    if let Some(finalizer) = options.finalizer() {
        let mut finalizers = meta::finalizers(object);
        if !finalizers.iter().any(|f| f == finalizer) {
            finalizers.push(finalizer.to_string());
            meta::set_meta(object, "finalizers", Some(json!(finalizers)));
        }
    }
    let grace = graceful_period(object, options);
    let finalizing = !meta::finalizers(object).is_empty() || namespace_finalizers(object);
    if grace == 0 && !finalizing {
        return false;
    }
    if !meta::is_deleting(object) {
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
        meta::set_meta(object, "deletionTimestamp", Some(meta::format_time(at).into()));
        meta::set_meta(object, "deletionGracePeriodSeconds", Some(grace.into()));
        if object.get("kind").and_then(Value::as_str) == Some("Namespace") {
            object["status"]["phase"] = "Terminating".into();
        }
    }
    true
}

/// Pods bound to a node stop gracefully: their kubelet kills the containers
/// and then deletes the pod. Unbound or finished pods go at once.
fn graceful_period(object: &Object, options: &DeleteOptions) -> i64 {
    if object.get("kind").and_then(Value::as_str) != Some("Pod") {
        return 0;
    }
    let bound = object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        object.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if !bound || finished {
        return 0;
    }
    let default = object
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    options.grace_period.unwrap_or(default).max(0)
}

/// Namespaces are finalized by the namespace controller (`spec.finalizers`).
fn namespace_finalizers(object: &Object) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Namespace")
        && object
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

/// Deleted pods and namespaces are returned whole; other kinds answer a
/// `Success` Status naming what was deleted, as upstream's registries do.
fn deleted_answer(resource: &capstan_apimachinery::ResourceType, deleted: Object) -> Object {
    if matches!(resource.kind, "Pod" | "Namespace") {
        return deleted;
    }
    codec::success_status(json!({
        "name": meta::name(&deleted),
        "group": resource.group,
        "kind": resource.plural,
        "uid": meta::uid(&deleted),
    }))
}

/// Service writes take their ClusterIPs and NodePorts before the store
/// write (see [`allocator`](crate::allocator)); other writes take nothing.
async fn allocate(call: &Call<'_>, object: &mut Object, old: Option<&Object>) -> Result<Option<Allocation>, ApiError> {
    let resource = call.request.resource;
    if !is_service(resource) || call.request.subresource.is_some() {
        return Ok(None);
    }
    let dry_run = call.query.dry_run()?;
    let allocators = &call.server.allocators;
    Ok(Some(
        allocators.allocate(call.server, resource, object, old, dry_run).await?,
    ))
}

/// Keeps what a Service update leaves out but was allocated before.
fn keep_allocated(call: &Call<'_>, new: &mut Object, old: &Object) {
    if is_service(call.request.resource) && call.request.subresource.is_none() {
        allocator::patch_allocated_values(new, old);
    }
}

/// What the allocation took stays if the store write succeeded, and is
/// given back if it failed.
async fn settle<T>(call: &Call<'_>, allocation: Option<Allocation>, written: &Result<T, ApiError>) {
    match (allocation, written) {
        (Some(allocation), Ok(_)) => allocation.commit(call.server).await,
        (Some(allocation), Err(_)) => allocation.revert(call.server).await,
        (None, _) => {}
    }
}

/// Removes an object from the store; a Service's addresses and ports go
/// back to their ranges.
async fn remove(call: &Call<'_>, key: ObjectKey<'_>, revision: Revision) -> Result<Object, ApiError> {
    let deleted = call.server.objects.delete(key, Some(revision)).await?;
    if is_service(key.resource) {
        call.server.allocators.release(call.server, &deleted).await;
    }
    Ok(deleted)
}

fn is_service(resource: &ResourceType) -> bool {
    resource.group.is_empty() && resource.kind == "Service"
}

/// The resourceVersion an object carries, if any.
fn revision_of(object: &Object) -> Result<Option<Revision>, ApiError> {
    match meta::resource_version(object) {
        "" => Ok(None),
        rv => rv.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "metadata.resourceVersion: Invalid value: {rv:?}: must be an integer"
            ))
        }),
    }
}

/// Upstream's defaulting, applied to every object a client writes.
fn default(resource: &ResourceType, object: &mut Object) {
    defaults::apply_defaults(resource.group, resource.version, resource.kind, object);
}

/// Name rules and the kind's own validation; `422 Invalid` on failure.
fn validate(call: &Call<'_>, object: &Object, old: Option<&Object>) -> Result<(), ApiError> {
    let resource = call.request.resource;
    let mut errors: Vec<FieldError> = strategy::validate_name(resource, object);
    // Status writes only change status, which the kind's rules do not cover.
    if errors.is_empty() && call.request.subresource.as_deref() != Some("status") {
        errors = validation::validate(resource.group, resource.version, resource.kind, object, old);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(resource, meta::name(object), &errors))
    }
}
