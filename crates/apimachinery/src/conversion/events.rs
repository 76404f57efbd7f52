//! Core `v1` ⇄ `events.k8s.io/v1` Events (`pkg/apis/events/v1/conversion.go`).
//!
//! Both versions hold the same data; seven fields are renamed and the rest
//! keep their names. What differs besides the names is which zero values Go
//! prints: core v1 always prints `reportingComponent` and `reportingInstance`
//! (`""` when unset), events.k8s.io/v1 omits them when empty, and both print
//! unset timestamps as `null` and unset embedded structs as `{}`.

use serde_json::{Value, json};

use super::{ConversionError, Obj};

/// How Go prints a field, which also fixes the JSON type it must have.
#[derive(Clone, Copy)]
enum Shape {
    /// An embedded struct: always printed, `{}` when unset.
    Struct,
    /// A pointer to a struct: omitted when unset.
    Pointer,
    /// A `metav1.Time` or `MicroTime`: always printed, `null` when unset.
    Time,
    /// A string without omitempty: always printed, `""` when unset.
    Text,
    /// A string with omitempty.
    OptionalText,
    /// An int32 with omitempty.
    Count,
}

use Shape::{Count, OptionalText, Pointer, Struct, Text, Time};

type Field = (&'static str, Shape);

/// Every field of both versions: its core v1 name and shape, and its
/// events.k8s.io/v1 name and shape.
const FIELDS: [(Field, Field); 14] = [
    (("involvedObject", Struct), ("regarding", Struct)),
    (("reason", OptionalText), ("reason", OptionalText)),
    (("message", OptionalText), ("note", OptionalText)),
    (("source", Struct), ("deprecatedSource", Struct)),
    (("firstTimestamp", Time), ("deprecatedFirstTimestamp", Time)),
    (("lastTimestamp", Time), ("deprecatedLastTimestamp", Time)),
    (("count", Count), ("deprecatedCount", Count)),
    (("type", OptionalText), ("type", OptionalText)),
    (("eventTime", Time), ("eventTime", Time)),
    (("series", Pointer), ("series", Pointer)),
    (("action", OptionalText), ("action", OptionalText)),
    (("related", Pointer), ("related", Pointer)),
    (("reportingComponent", Text), ("reportingController", OptionalText)),
    (("reportingInstance", Text), ("reportingInstance", OptionalText)),
];

pub(super) fn core_to_events(input: &Obj) -> Result<Obj, ConversionError> {
    rename(input, FIELDS)
}

pub(super) fn events_to_core(input: &Obj) -> Result<Obj, ConversionError> {
    rename(input, FIELDS.map(|(core, events)| (events, core)))
}

/// Moves every field from its name in one version to its name in the other
/// (`(from, to)` pairs), printing it as Go prints the other version.
fn rename(input: &Obj, fields: [(Field, Field); 14]) -> Result<Obj, ConversionError> {
    let mut out = input.clone();
    let mut moved = Vec::with_capacity(fields.len());
    for (from, to) in fields {
        let value = out.remove(from.0).unwrap_or(Value::Null);
        out.remove(to.0);
        check(from, &value)?;
        moved.push((to, value));
    }
    for ((name, shape), value) in moved {
        if let Some(value) = printed(shape, value) {
            out.insert(name.into(), value);
        }
    }
    Ok(out)
}

/// Refuses a value of the wrong JSON type for its field.
fn check((name, shape): Field, value: &Value) -> Result<(), ConversionError> {
    let fits = match shape {
        _ if value.is_null() => true,
        Struct | Pointer => value.is_object(),
        Time | Text | OptionalText => value.is_string(),
        Count => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
    };
    if fits {
        Ok(())
    } else {
        Err(ConversionError::malformed(name, format!("unexpected value {value}")))
    }
}

/// What Go prints for the value, `None` when it prints nothing.
fn printed(shape: Shape, value: Value) -> Option<Value> {
    let unset = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty() && !matches!(shape, Time),
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    };
    if !unset {
        return Some(value);
    }
    match shape {
        Struct => Some(json!({})),
        Time => Some(Value::Null),
        Text => Some(json!("")),
        Pointer | OptionalText | Count => None,
    }
}
