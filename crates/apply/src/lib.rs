//! Server-side apply and `metadata.managedFields`, as upstream's API server
//! does them (structured-merge-diff plus the apiserver's field manager).
//!
//! # What this is
//!
//! Every object records, in `metadata.managedFields`, which *manager*
//! (`kubectl`, `kube-controller-manager`, ...) owns which of its fields, and
//! whether it got them by server-side apply (`operation: Apply`) or by any
//! other write (`operation: Update`). Field sets are written in upstream's
//! `FieldsV1` form: `{"f:spec": {"f:replicas": {}, "f:containers":
//! {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}}}}` — `f:` a field,
//! `k:` a list element by its key fields, `v:` a set element, `.` the
//! element itself (see [`FieldSet`]).
//!
//! The API server calls two functions:
//!
//! - [`update_managed_fields`] on every create, update and non-apply patch:
//!   fields the write changed or added move to its manager; removed fields
//!   lose their owners; the result is the new `managedFields` list.
//! - [`apply`] for `PATCH` with `application/apply-patch+yaml`: merges the
//!   applied configuration into the live object (or creates it), removes
//!   fields the manager applied before and no longer applies (unless someone
//!   else owns them), and fails with [`ApplyError::Conflicts`] (HTTP 409)
//!   when it would change a field another manager owns to a different
//!   value — unless `force`, which takes the field over.
//!
//! ```
//! use capstan_apply::{Manager, Operation, apply};
//! use serde_json::json;
//! let gvk = ("", "v1", "ConfigMap");
//! let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
//! let alice = Manager::new("alice", Operation::Apply, "v1", "2024-01-01T00:00:00Z");
//! let live = apply(None, &cm, gvk, &alice, false).unwrap();
//! assert_eq!(live["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
//!
//! let bob = Manager::new("bob", Operation::Apply, "v1", "2024-01-01T00:00:01Z");
//! let change = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
//! let err = apply(Some(&live), &change, gvk, &bob, false).unwrap_err();
//! assert_eq!(err.to_string(), r#"Apply failed with 1 conflict: conflict with "alice": .data.a"#);
//! ```
//!
//! # How it is built
//!
//! - [`path`] and [`fieldset`]: field paths and sets, with upstream's
//!   algebra, order and `FieldsV1` encoding.
//! - `schema` + `table`: per kind, which map keys are struct fields and how
//!   lists are keyed (`+listType`/`+listMapKey` markers, else the
//!   strategic-merge-patch keys of `capstan_patch`); unknown kinds are
//!   handled as upstream handles schemaless custom resources.
//! - `typed`: the walks over an object — its field set, merge, comparison,
//!   removal of fields.
//! - `engine`: ownership bookkeeping (upstream's `merge.Updater`).
//! - `managers`: the `managedFields` entries, their identity, order and cap.
//! - `last_applied`: upgrading from client-side `kubectl apply`.
//!
//! The code follows upstream's documented behaviour and sources; where it
//! differs, the item says so (notably: `null`s are dropped from returned
//! objects, and objects being created are compared with a sketch of Go's
//! zero value, which only affects `.` markers of `Update` entries).

mod engine;
mod error;
pub mod fieldset;
mod last_applied;
mod managers;
mod object;
pub mod path;
mod schema;
mod table;
mod typed;

use serde_json::{Value, json};

pub use capstan_patch::Gvk;
pub use error::{ApplyError, Conflict, conflict_message};
pub use fieldset::FieldSet;
pub use managers::Operation;
pub use path::{Path, PathElement};

use engine::{Engine, Failure, Writer};
use managers::Managers;
use object::{
    restore_reset_fields, set_managed_fields, strip_nulls, with_zero_values, without_managed_fields, zero_object,
};
use schema::Ty;

/// Who is writing, as recorded in `managedFields`.
#[derive(Debug, Clone, Copy)]
pub struct Manager<'a> {
    /// The `fieldManager` (for non-apply writes, a default from the user
    /// agent such as `kubectl-edit`); empty is recorded as `unknown`.
    pub name: &'a str,
    /// The operation recorded. [`apply`] always records `Apply` and
    /// [`update_managed_fields`] always `Update`, whatever this says.
    pub operation: Operation,
    /// The subresource written through (`status`, `scale`), if any.
    pub subresource: Option<&'a str>,
    /// The API version written through (`apps/v1`).
    pub api_version: &'a str,
    /// The time of the write, RFC 3339 (`2024-05-01T12:00:00Z`).
    pub time: &'a str,
    /// Fields the endpoint resets, which no manager owns through it: for the
    /// main resource of a kind with a status subresource `&[&["status"]]`,
    /// for `/status` the spec (see [`reset_fields_for`]).
    pub reset_fields: &'a [&'a [&'a str]],
}

impl<'a> Manager<'a> {
    /// A manager writing the main resource, with no reset fields.
    pub fn new(name: &'a str, operation: Operation, api_version: &'a str, time: &'a str) -> Manager<'a> {
        Manager {
            name,
            operation,
            subresource: None,
            api_version,
            time,
            reset_fields: &[],
        }
    }

    /// The same manager writing through `subresource`.
    pub fn with_subresource(self, subresource: &'a str) -> Manager<'a> {
        Manager {
            subresource: Some(subresource),
            ..self
        }
    }

    /// The same manager with the endpoint's reset fields.
    pub fn with_reset_fields(self, reset_fields: &'a [&'a [&'a str]]) -> Manager<'a> {
        Manager { reset_fields, ..self }
    }

    fn writer(&self) -> Writer<'a> {
        Writer {
            name: self.name,
            subresource: self.subresource.unwrap_or(""),
            api_version: self.api_version,
            time: self.time,
        }
    }

    fn engine(&self, gvk: Gvk<'_>) -> Engine {
        let mut ignored = FieldSet::new();
        for path in self.reset_fields.iter().filter(|p| !p.is_empty()) {
            ignored.insert(
                &path
                    .iter()
                    .map(|name| PathElement::Field(name.to_string()))
                    .collect::<Vec<_>>(),
            );
        }
        Engine {
            ty: Ty::root(gvk),
            ignored,
        }
    }
}

/// The usual reset fields of an endpoint: `status` for the main resource of
/// a built-in kind that has one, `spec` for its `status` subresource, none
/// otherwise (custom resources: the server knows whether the CRD enables
/// the status subresource). Upstream's strategies vary a little by kind
/// (Deployment's `/status` also resets `metadata.labels`).
pub fn reset_fields_for(gvk: Gvk<'_>, subresource: Option<&str>) -> &'static [&'static [&'static str]] {
    let has_status = Ty::root(gvk).field("status").1 && Ty::root(gvk).is_known();
    match subresource {
        None if has_status => &[&["status"]],
        Some("status") => &[&["spec"]],
        _ => &[],
    }
}

/// Every field `obj` specifies, as upstream's `ToFieldSet` lists them (list
/// elements by key `k:{...}`, set elements `v:...`, atomic lists and maps as
/// a whole), leaving out `metadata.managedFields` and elements without valid keys.
pub fn fields_of(obj: &Value, gvk: Gvk<'_>) -> FieldSet {
    typed::field_set_lenient(&without_managed_fields(obj), Ty::root(gvk))
}

/// The `managedFields` to store after a non-apply write (create, update,
/// patch) replaces `old` (`None` for a create) by `new`, written by `manager`.
///
/// As upstream: a `managedFields` list in `new` is kept when it decodes and
/// is not empty (clients may edit it), `[]` or `[{}]` clears it, and
/// otherwise the list of `old` is the starting point; writes through a
/// subresource always start from `old`. Fields that changed or appeared go
/// to `manager`'s `Update` entry (stamped with `manager.time`), removed
/// fields leave every entry, entries left empty are dropped, and at most ten
/// `Update` entries are kept. On an error upstream keeps `old`'s list.
pub fn update_managed_fields(
    old: Option<&Value>,
    new: &Value,
    gvk: Gvk<'_>,
    manager: &Manager<'_>,
) -> Result<Vec<Value>, ApplyError> {
    if !new.is_object() || old.is_some_and(|o| !o.is_object()) {
        return Err(ApplyError::BadRequest("objects must be JSON objects".to_string()));
    }
    let engine = manager.engine(gvk);
    let mut managers = starting_managers(old, new, manager.subresource.is_some());
    let zero = zero_object(old.unwrap_or(new), new, engine.ty);
    let live = with_zero_values(old.map_or_else(|| json!({}), without_managed_fields), &zero);
    let new = with_zero_values(without_managed_fields(new), &zero);
    engine
        .update(&live, &new, &mut managers, &manager.writer())
        .map_err(into_error)?;
    managers::cap_update_managers(&mut managers, managers::MAX_UPDATE_MANAGERS);
    Ok(managers::encode(&managers))
}

/// Server-side apply of `applied` (the full intended configuration) to
/// `live` (`None`: the object does not exist, and apply creates it) for
/// `manager`. Returns the resulting object with its new `managedFields`.
///
/// Fails with [`ApplyError::Conflicts`] when, without `force`, the apply
/// would change a field owned by another manager (of either operation);
/// with `force` those fields change and move to `manager`. Setting a field
/// to the value it already has shares its ownership. Fields `manager`
/// applied before and leaves out now are removed unless another manager
/// owns them. Values under the reset fields are restored from `live`.
/// The `kubectl` manager may take over fields the client-side-apply
/// annotation accounts for, and keeps that annotation up to date.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    gvk: Gvk<'_>,
    manager: &Manager<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    check_apply_request(live, applied, gvk, manager)?;
    let engine = manager.engine(gvk);
    let stored = live
        .and_then(|l| l.get("metadata"))
        .and_then(|m| m.get("managedFields"));
    let mut managers =
        managers::decode(stored).map_err(|e| ApplyError::Internal(format!("failed to decode managed fields: {e}")))?;
    let base = live.map_or_else(|| json!({}), without_managed_fields);
    let writer = manager.writer();
    let merged = apply_upgrading_kubectl(&engine, &base, applied, &mut managers, &writer, force, gvk)?;
    let mut object = match merged {
        Some(object) => {
            if let Some(entry) = managers.get_mut(&writer.id(Operation::Apply)) {
                entry.time = Some(manager.time.to_string());
            }
            object
        }
        None => base,
    };
    if writer.name == last_applied::KUBECTL {
        last_applied::refresh(&mut object, applied);
    }
    restore_reset_fields(&mut object, live, manager.reset_fields);
    strip_nulls(&mut object);
    set_managed_fields(&mut object, managers::encode(&managers));
    Ok(object)
}

fn check_apply_request(
    live: Option<&Value>,
    applied: &Value,
    gvk: Gvk<'_>,
    manager: &Manager<'_>,
) -> Result<(), ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::BadRequest(
            "error decoding YAML: the applied configuration is not an object".into(),
        ));
    }
    if live.is_some_and(|l| !l.is_object()) {
        return Err(ApplyError::Internal("the live object is not a JSON object".into()));
    }
    if manager.name.is_empty() {
        return Err(ApplyError::MissingFieldManager);
    }
    let api_version = applied.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = applied.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if (group, version, kind) != gvk {
        return Err(ApplyError::BadRequest(format!(
            "invalid object type: {group}/{version}, Kind={kind}"
        )));
    }
    if applied
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(|f| !f.is_null())
    {
        return Err(ApplyError::BadRequest("metadata.managedFields must be nil".into()));
    }
    Ok(())
}

/// Runs the apply; for the `kubectl` manager, conflicts that the
/// client-side-apply annotation accounts for are forced through.
fn apply_upgrading_kubectl(
    engine: &Engine,
    live: &Value,
    applied: &Value,
    managers: &mut Managers,
    writer: &Writer<'_>,
    force: bool,
    gvk: Gvk<'_>,
) -> Result<Option<Value>, ApplyError> {
    let mut attempt = managers.clone();
    match engine.apply(live, applied, &mut attempt, writer, force) {
        Ok(object) => {
            *managers = attempt;
            Ok(object)
        }
        Err(Failure::Conflicts(conflicts)) if writer.name == last_applied::KUBECTL => {
            let allowed = last_applied::allowed_conflicts(live, engine.ty, &group_version(gvk));
            let allowed_has = |c: &Conflict| allowed.as_ref().is_some_and(|set| set.has(&c.path));
            let remaining: Vec<Conflict> = conflicts.into_iter().filter(|c| !allowed_has(c)).collect();
            if !remaining.is_empty() {
                return Err(ApplyError::Conflicts(remaining));
            }
            engine.apply(live, applied, managers, writer, true).map_err(into_error)
        }
        Err(failure) => Err(into_error(failure)),
    }
}

fn into_error(failure: Failure) -> ApplyError {
    match failure {
        Failure::Conflicts(conflicts) => ApplyError::Conflicts(conflicts),
        Failure::Invalid(message) => ApplyError::Internal(message),
    }
}

fn group_version((group, version, _): Gvk<'_>) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The `managedFields` a non-apply write starts from (upstream's `decodeLiveOrNew`).
fn starting_managers(old: Option<&Value>, new: &Value, subresource: bool) -> Managers {
    let stored = |o: &Value| o.get("metadata").and_then(|m| m.get("managedFields")).cloned();
    let from_old = || managers::decode(old.and_then(stored).as_ref()).unwrap_or_default();
    if subresource {
        return from_old();
    }
    let written = stored(new);
    if managers::is_reset(written.as_ref()) {
        return Managers::new();
    }
    match managers::decode(written.as_ref()) {
        Ok(managers) if !managers.is_empty() => managers,
        _ => from_old(),
    }
}

#[cfg(test)]
mod tests;
