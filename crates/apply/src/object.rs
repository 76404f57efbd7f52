//! Whole-object edits around the apply engine: `managedFields` in and out,
//! Go zero values, reset fields, `null`s.

use serde_json::{Map, Value, json};

use crate::schema::Ty;

/// A copy of `object` without `metadata.managedFields`.
pub(crate) fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    object
}

/// Stores `entries` as `metadata.managedFields` (dropping the field when there are none).
pub(crate) fn set_managed_fields(object: &mut Value, entries: Vec<Value>) {
    let Some(root) = object.as_object_mut() else { return };
    let metadata = root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".to_string(), Value::Array(entries));
    }
}

/// Struct fields Go always writes, even empty (`metadata`, `spec`,
/// `status`, `template`, ...). Upstream compares Go objects, which always
/// have them (a created object is compared with the kind's zero value);
/// stored JSON may lack them, so both sides of an update get them. This
/// decides only whether such fields carry a `.` in an `Update` entry.
const VALUE_STRUCT_FIELDS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "strategy",
    "updateStrategy",
    "jobTemplate",
];

/// The parts of the Go zero value of a built-in kind that `a` or `b` have.
pub(crate) fn zero_object(a: &Value, b: &Value, ty: Ty) -> Value {
    match ty.is_known() {
        true => Value::Object(zero_struct(a, b, ty, 0)),
        false => json!({}),
    }
}

fn zero_struct(a: &Value, b: &Value, ty: Ty, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    if depth > 8 {
        return out;
    }
    let none = Value::Null;
    for name in VALUE_STRUCT_FIELDS {
        let (child_ty, declared) = ty.field(name);
        let (x, y) = (
            a.get(*name).filter(|v| v.is_object()),
            b.get(*name).filter(|v| v.is_object()),
        );
        if declared && (x.is_some() || y.is_some()) {
            let zero = zero_struct(x.unwrap_or(&none), y.unwrap_or(&none), child_ty, depth + 1);
            out.insert(name.to_string(), Value::Object(zero));
        }
    }
    let pod_spec = ty.definition() == Some("io.k8s.api.core.v1.PodSpec");
    if pod_spec && (a.get("containers").is_some() || b.get("containers").is_some()) {
        out.insert("containers".to_string(), Value::Null);
    }
    out
}

/// `object` with the zero values it lacks.
pub(crate) fn with_zero_values(mut object: Value, zero: &Value) -> Value {
    fill(&mut object, zero);
    object
}

fn fill(object: &mut Value, zero: &Value) {
    let (Some(target), Some(zero)) = (object.as_object_mut(), zero.as_object()) else {
        return;
    };
    for (key, value) in zero {
        match target.get_mut(key) {
            Some(existing) => fill(existing, value),
            None => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Puts back, from `live`, the values under the endpoint's reset fields.
pub(crate) fn restore_reset_fields(object: &mut Value, live: Option<&Value>, paths: &[&[&str]]) {
    for path in paths {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let original = live
            .and_then(|l| parents.iter().try_fold(l, |v, p| v.get(*p)))
            .and_then(|p| p.get(*last));
        let mut target = Some(&mut *object);
        for parent in parents {
            target = target
                .and_then(|t| t.as_object_mut())
                .map(|t| t.entry(*parent).or_insert_with(|| json!({})));
        }
        let Some(target) = target.and_then(Value::as_object_mut) else {
            continue;
        };
        match original {
            Some(value) => target.insert(last.to_string(), value.clone()),
            None => target.remove(*last),
        };
    }
}

/// Drops `null` map values, as converting to the Go types does.
pub(crate) fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
