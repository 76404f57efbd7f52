//! Walks over an object and its [`Ty`]: the field set it specifies, the merge
//! of two objects, their comparison, and the removal of a set of fields.
//! Each follows the matching walker of structured-merge-diff's `typed`
//! package; values steer the walk (an object is walked as a map, an array
//! as a list), the type says how.

mod compare;
mod merge;
mod named;
mod remove;
mod to_set;

use serde_json::Value;

pub(crate) use compare::{Comparison, compare};
pub(crate) use merge::merge;
pub(crate) use named::ensure_named_fields_are_members;
pub(crate) use remove::remove_items;
pub(crate) use to_set::{field_set, field_set_lenient};

use crate::path::{PathElement, path_string};
use crate::schema::{ListKind, Ty};

/// Deeper values are refused (serde_json's parser stops at 128).
const MAX_DEPTH: usize = 256;

/// An error about the value at `path`, spelled as upstream's validation errors.
fn error_at(path: &[PathElement], message: impl std::fmt::Display) -> String {
    format!("{}: {message}", path_string(path))
}

fn check_depth(path: &[PathElement]) -> Result<(), String> {
    match path.len() > MAX_DEPTH {
        true => Err(error_at(path, "value nested too deeply")),
        false => Ok(()),
    }
}

/// The path element naming `item` in a list of kind `list` whose elements are of type `item_ty`.
fn item_element(item: &Value, list: ListKind, item_ty: &Ty) -> Result<PathElement, String> {
    match list {
        ListKind::Map(keys) => keyed_element(item, &keys.names(), item_ty),
        ListKind::Set => set_element(item),
        ListKind::Atomic => Err("invalid indexing of non-associative list".to_string()),
    }
}

fn keyed_element(item: &Value, keys: &[&str], item_ty: &Ty) -> Result<PathElement, String> {
    let map = match item {
        Value::Object(map) => map,
        Value::Null => return Err("associative list with keys may not have a null element".to_string()),
        _ => return Err("associative list with keys may not have non-map elements".to_string()),
    };
    let mut fields = Vec::with_capacity(keys.len());
    for key in keys {
        let value = map
            .get(*key)
            .cloned()
            .or_else(|| item_ty.key_default(key))
            .ok_or_else(|| {
                let why = "(and doesn't have default value)";
                format!("associative list with keys has an element that omits key field {key:?} {why}")
            })?;
        fields.push((key.to_string(), value));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(PathElement::Key(fields))
}

fn set_element(item: &Value) -> Result<PathElement, String> {
    match item {
        Value::Object(_) => Err("associative list without keys has an element that's a map type".to_string()),
        Value::Array(_) => Err("not supported: associative list with lists as elements".to_string()),
        Value::Null => Err("associative list without keys has an element that's an explicit null".to_string()),
        scalar => Ok(PathElement::Value(scalar.clone())),
    }
}

/// The elements of a non-atomic list with their path elements.
fn index_items<'a>(
    items: &'a [Value],
    list: ListKind,
    item_ty: &Ty,
    path: &[PathElement],
) -> Result<Vec<(PathElement, &'a Value)>, String> {
    let element = |(i, item): (usize, &'a Value)| {
        item_element(item, list, item_ty)
            .map(|pe| (pe, item))
            .map_err(|e| error_at(path, format!("element {i}: {e}")))
    };
    items.iter().enumerate().map(element).collect()
}

/// Whether a value is absent, null, or an empty object or array.
fn is_empty_container(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    }
}
