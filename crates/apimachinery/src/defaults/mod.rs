//! Upstream's API defaulting, applied to objects in their JSON form.
//!
//! Upstream's API server runs the generated `SetObjectDefaults_*` functions
//! (`k8s.io/kubernetes/pkg/apis/<group>/<version>/defaults.go` plus their
//! `zz_generated.defaults.go` walkers) on every object it decodes — on
//! create, update and patch alike — so what it stores and serves always
//! carries `imagePullPolicy`, `restartPolicy`, a Deployment's rolling-update
//! parameters, a Service's `targetPort` and so on, even when the client never
//! sent them. `kubectl get -o yaml` shows those fields, and controllers read
//! them without re-deriving the defaults. [`apply_defaults`] reproduces that
//! pass for every built-in kind Capstan serves, field for field and with
//! upstream's conditions (a Deployment's `maxSurge` only under the
//! `RollingUpdate` strategy, a Job's `completions` only when `parallelism` is
//! unset as well, `imagePullPolicy` from the image's tag, ...).
//!
//! Objects are `serde_json::Value`s that may be incomplete or malformed.
//! Defaulting never panics and never "repairs" a field of the wrong JSON type:
//! it fills what is absent (or, where upstream's Go field is not a pointer,
//! what is empty) and leaves everything else for validation to report.
//!
//! Feature-gated defaults follow the gates' defaults of Kubernetes 1.33
//! (plus the pull policy of `image` volumes, harmless while those volumes are
//! refused). Not defaulting, and so not here: what the registry strategies
//! fill in (a Service's cluster IPs and IP families, a Job's generated
//! selector, a CRD's status conditions), conversion between versions (an
//! `autoscaling/v1` HPA's CPU target), and quantity canonicalisation
//! (`SetDefaults_ResourceList`'s rounding to milli units belongs to quantity
//! serialisation).

mod admissionregistration;
mod apiextensions;
mod apps;
mod autoscaling;
mod batch;
mod core_api;
mod image;
mod networking;
mod pod;
mod rbac;
mod storage;

use serde_json::{Map, Value};

pub use image::pull_policy;

/// Applies upstream's defaulting for `group/version, Kind=kind` to `object`.
///
/// A no-op for kinds upstream does not default (and for anything that is not
/// a JSON object). Applying it twice gives the same result as applying it once.
pub fn apply_defaults(group: &str, version: &str, kind: &str, object: &mut Value) {
    let Some(object) = object.as_object_mut() else {
        return;
    };
    match (group, version, kind) {
        ("", "v1", kind) => core_api::apply(kind, object),
        ("apps", "v1", kind) => apps::apply(kind, object),
        ("batch", "v1", kind) => batch::apply(kind, object),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => autoscaling::hpa_v1(object),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => autoscaling::hpa_v2(object),
        ("networking.k8s.io", "v1", kind) => networking::apply(kind, object),
        ("rbac.authorization.k8s.io", "v1", kind) => rbac::apply(kind, object),
        ("storage.k8s.io", "v1", kind) => storage::apply(kind, object),
        ("discovery.k8s.io", "v1", "EndpointSlice") => networking::endpoint_slice(object),
        ("scheduling.k8s.io", "v1", "PriorityClass") => {
            set_if_unset(object, "preemptionPolicy", "PreemptLowerPriority");
        }
        ("admissionregistration.k8s.io", "v1", kind) => admissionregistration::apply(kind, object),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => apiextensions::crd(object),
        _ => {}
    }
}

/// A JSON object: the Go struct being defaulted.
type Obj = Map<String, Value>;

/// Whether Go would decode `key` as a nil pointer (or zero-length slice/map):
/// the field is absent or `null`.
fn is_unset(map: &Obj, key: &str) -> bool {
    matches!(map.get(key), None | Some(Value::Null))
}

/// Whether a non-pointer Go string field is empty: absent, `null` or `""`.
fn is_empty_str(map: &Obj, key: &str) -> bool {
    match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// Whether a non-pointer Go integer field is zero: absent, `null` or `0`.
fn is_zero_int(map: &Obj, key: &str) -> bool {
    match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(0) || n.as_u64() == Some(0),
        Some(_) => false,
    }
}

/// Whether a list field has no items: absent, `null` or `[]`. (A value of
/// another JSON type is malformed, not empty, and is left alone.)
fn is_empty_list(map: &Obj, key: &str) -> bool {
    match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    }
}

/// Whether a map field (labels, a selector, ...) has no entries: absent,
/// `null` or `{}`.
fn is_empty_map(map: &Obj, key: &str) -> bool {
    match map.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Object(entries)) => entries.is_empty(),
        Some(_) => false,
    }
}

/// Defaults a pointer field: sets it when absent or `null`.
fn set_if_unset(map: &mut Obj, key: &str, value: impl Into<Value>) {
    if is_unset(map, key) {
        map.insert(key.to_string(), value.into());
    }
}

/// Defaults a non-pointer string field: sets it when empty.
fn set_if_empty(map: &mut Obj, key: &str, value: &str) {
    if is_empty_str(map, key) {
        map.insert(key.to_string(), value.into());
    }
}

/// Defaults a non-pointer integer field: sets it when zero.
fn set_if_zero(map: &mut Obj, key: &str, value: i64) {
    if is_zero_int(map, key) {
        map.insert(key.to_string(), value.into());
    }
}

/// A string field's value, or "" when absent or not a string.
fn str_of<'a>(map: &'a Obj, key: &str) -> &'a str {
    map.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A string field as Go decodes it: `""` when absent or `null`, `None` when
/// it holds something other than a string (malformed).
fn str_or_empty<'a>(map: &'a Obj, key: &str) -> Option<&'a str> {
    match map.get(key) {
        None | Some(Value::Null) => Some(""),
        Some(value) => value.as_str(),
    }
}

/// A struct field that Go always has (a non-pointer struct, or a pointer the
/// defaulter allocates): created as `{}` when absent or `null`. `None` when
/// the field holds something other than an object.
fn child<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    if is_unset(map, key) {
        map.insert(key.to_string(), Value::Object(Obj::new()));
    }
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// A pointer struct field, only when the object sets it.
fn present<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// A struct found by following pointer fields, each of which must be set.
fn present_path<'a>(map: &'a mut Obj, path: &[&str]) -> Option<&'a mut Obj> {
    path.iter().try_fold(map, |map, key| present(map, key))
}

/// The objects of a list field (skipping malformed entries).
fn items<'a>(map: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// A non-empty string map (such as `labels`), cloned; `None` when absent,
/// empty or malformed.
fn non_empty_map(map: &Obj, key: &str) -> Option<Obj> {
    map.get(key)
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .cloned()
}

/// Upstream's `if len(dst) == 0 { dst = src }` for string maps such as
/// labels and selectors: copies `src` into `map[key]` when that is empty.
fn copy_map_if_empty(map: &mut Obj, key: &str, src: &Obj) {
    if is_empty_map(map, key) {
        map.insert(key.to_string(), Value::Object(src.clone()));
    }
}

/// The labels of a pod template (`<template>.metadata.labels`), when set.
fn template_labels(template: &Obj) -> Option<Obj> {
    template
        .get("metadata")
        .and_then(Value::as_object)
        .and_then(|meta| non_empty_map(meta, "labels"))
}

/// Upstream's "copy the template's labels to the object when it has none"
/// (ReplicationController, Job).
fn labels_from_template(object: &mut Obj, template_labels: Option<&Obj>) {
    if let Some(labels) = template_labels
        && let Some(meta) = child(object, "metadata")
    {
        copy_map_if_empty(meta, "labels", labels);
    }
}

#[cfg(test)]
mod tests;
