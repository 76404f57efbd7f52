//! Conversion between the versions of a resource served in several versions.
//!
//! Upstream serves some resources in more than one version from a single
//! stored object: `autoscaling/v1` and `autoscaling/v2` HorizontalPodAutoscalers
//! are the same objects, kept in etcd as v2, and core `v1` Events and
//! `events.k8s.io/v1` Events are the same objects, kept as core v1 Events under
//! `/registry/events`. A request in any served version is converted to the
//! [`storage_version`] on the way in and back to the requested version on the
//! way out, so a client sees its own version whichever version wrote the object.
//!
//! Upstream converts through Go structs (external → internal → external); here
//! both sides are JSON ([`serde_json::Value`]) and [`convert`] goes directly
//! from one version to the other, reproducing what a client of upstream sees:
//!
//! * the field mappings of `pkg/apis/autoscaling/v1/conversion.go` and
//!   `pkg/apis/events/v1/conversion.go`;
//! * the round-trip annotations (`autoscaling.alpha.kubernetes.io/metrics`, …)
//!   in which a v1 HPA carries what only v2 can express, in upstream's exact
//!   JSON (Go field order and names, Go's HTML escaping), removed again when
//!   the object is converted back;
//! * the 80% CPU target a v1 HPA without metrics gets — upstream applies it in
//!   conversion, not in defaulting;
//! * the fields Go always prints, zero or not (`status.desiredReplicas`,
//!   `eventTime: null`, `reportingComponent: ""`, …).
//!
//! Conversion never panics. An object of the wrong JSON shape in a field the
//! conversion reads gives a [`ConversionError`]; fields it does not know pass
//! through untouched; an unreadable round-trip annotation is ignored, as
//! upstream ignores it. Quantities and timestamps are copied as written:
//! canonicalising them is not conversion's job.

mod events;
mod hpa;
mod hpa_types;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

const HPA: &str = "HorizontalPodAutoscaler";
const EVENT: &str = "Event";
const AUTOSCALING_V1: (&str, &str) = ("autoscaling", "v1");
const AUTOSCALING_V2: (&str, &str) = ("autoscaling", "v2");
const CORE_V1: (&str, &str) = ("", "v1");
const EVENTS_V1: (&str, &str) = ("events.k8s.io", "v1");

/// Why an object could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// There is no conversion between these versions of this kind.
    #[error("no conversion of {kind} from {from} to {to}")]
    Unsupported { kind: String, from: String, to: String },
    /// The object, or a field the conversion reads, has the wrong JSON shape.
    #[error("cannot convert object: {field}: {problem}")]
    Malformed { field: String, problem: String },
}

impl ConversionError {
    fn malformed(field: &str, problem: impl ToString) -> ConversionError {
        ConversionError::Malformed {
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }
}

/// The (group, version) a multi-version resource is stored in, for the group
/// and plural of any version it is served in; `None` for resources served in
/// a single version.
pub fn storage_version(group: &str, plural: &str) -> Option<(&'static str, &'static str)> {
    match (group, plural) {
        ("autoscaling", "horizontalpodautoscalers") => Some(AUTOSCALING_V2),
        ("" | "events.k8s.io", "events") => Some(CORE_V1),
        _ => None,
    }
}

/// Converts `object`, a `kind` in `from` = (group, version), to `to`, and sets
/// its `apiVersion`. Between equal versions this is the identity, except that
/// an `autoscaling/v2` HPA sheds the v1 round-trip annotations, as upstream's
/// v2 conversion does.
pub fn convert(object: &Value, from: (&str, &str), to: (&str, &str), kind: &str) -> Result<Value, ConversionError> {
    let input = object
        .as_object()
        .ok_or_else(|| ConversionError::malformed("<object>", "expected a JSON object"))?;
    let mut out = match (kind, from, to) {
        (HPA, AUTOSCALING_V2, AUTOSCALING_V1) => hpa::v2_to_v1(input)?,
        (HPA, AUTOSCALING_V1, AUTOSCALING_V2) => hpa::v1_to_v2(input)?,
        (HPA, AUTOSCALING_V2, AUTOSCALING_V2) => hpa::v2_to_v2(input)?,
        (EVENT, CORE_V1, EVENTS_V1) => events::core_to_events(input)?,
        (EVENT, EVENTS_V1, CORE_V1) => events::events_to_core(input)?,
        _ if from == to => input.clone(),
        _ => return Err(unsupported(kind, from, to)),
    };
    out.insert("apiVersion".into(), api_version(to).into());
    Ok(Value::Object(out))
}

fn unsupported(kind: &str, from: (&str, &str), to: (&str, &str)) -> ConversionError {
    ConversionError::Unsupported {
        kind: kind.to_string(),
        from: api_version(from),
        to: api_version(to),
    }
}

fn api_version((group, version): (&str, &str)) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The object at `key`, created if absent or null.
fn child<'a>(object: &'a mut Obj, key: &str) -> Result<&'a mut Obj, ConversionError> {
    let slot = object.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Obj::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| ConversionError::malformed(key, "expected an object"))
}

/// Removes `key` and decodes it; absent and null are both `None`.
fn take<T: DeserializeOwned>(object: &mut Obj, key: &str, field: &str) -> Result<Option<T>, ConversionError> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => decode(value)
            .map(Some)
            .map_err(|e| ConversionError::malformed(field, e)),
    }
}

/// Decodes JSON as Go's `encoding/json` would: a null member is the same as
/// an absent one (the Go field keeps its zero value).
fn decode<T: DeserializeOwned>(mut value: Value) -> Result<T, serde_json::Error> {
    strip_nulls(&mut value);
    serde_json::from_value(value)
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Encodes as a JSON value; `field` names what failed, should it ever fail.
fn encode<T: Serialize>(value: &T, field: &str) -> Result<Value, ConversionError> {
    serde_json::to_value(value).map_err(|e| ConversionError::malformed(field, e))
}

/// Encodes as Go's `json.Marshal` does, byte for byte given Go-ordered
/// structs: `<`, `>`, `&`, U+2028 and U+2029 are escaped. Those characters
/// can only occur inside JSON strings, so replacing them is safe.
fn go_json<T: Serialize>(value: &T, field: &str) -> Result<String, ConversionError> {
    let json = serde_json::to_string(value).map_err(|e| ConversionError::malformed(field, e))?;
    Ok(json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029"))
}

/// The object's annotations (empty if it has none), checked to be strings.
fn annotations(object: &Obj) -> Result<Obj, ConversionError> {
    const FIELD: &str = "metadata.annotations";
    let annotations = match object.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(metadata)) => metadata.get("annotations"),
        Some(_) => return Err(ConversionError::malformed("metadata", "expected an object")),
    };
    match annotations {
        None | Some(Value::Null) => Ok(Obj::new()),
        Some(Value::Object(map)) if map.values().all(Value::is_string) => Ok(map.clone()),
        Some(_) => Err(ConversionError::malformed(FIELD, "expected a map of strings")),
    }
}

/// Replaces the object's annotations; an empty map removes the field, as Go
/// omits an empty `annotations`.
fn set_annotations(object: &mut Obj, annotations: Obj) -> Result<(), ConversionError> {
    if annotations.is_empty() {
        if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
            metadata.remove("annotations");
        }
        return Ok(());
    }
    child(object, "metadata")?.insert("annotations".into(), Value::Object(annotations));
    Ok(())
}
