//! Removing a set of fields from an object (upstream's `TypedValue.RemoveItems`).
//!
//! A path in the set removes the field, map entry or list element it names,
//! with everything under it. A map left without entries becomes `null` in
//! its parent (as upstream: the field stays, empty); a list left without
//! elements likewise. An atomic list or map reached by a deeper path is
//! dropped whole.

use serde_json::{Map, Value};

use super::{MAX_DEPTH, item_element};
use crate::fieldset::FieldSet;
use crate::path::PathElement;
use crate::schema::{ListKind, Ty};

/// `value` (of type `ty`) without the fields in `set`; `null` when nothing is left.
pub(crate) fn remove_items(value: &Value, set: &FieldSet, ty: Ty) -> Value {
    remove(value, set, ty, 0).unwrap_or(Value::Null)
}

fn remove(value: &Value, set: &FieldSet, ty: Ty, depth: usize) -> Option<Value> {
    if depth > MAX_DEPTH {
        return Some(value.clone());
    }
    match value {
        Value::Object(map) => remove_from_map(map, set, ty, depth),
        Value::Array(items) => remove_from_list(items, set, ty, depth),
        scalar => Some(scalar.clone()),
    }
}

fn remove_from_map(map: &Map<String, Value>, set: &FieldSet, ty: Ty, depth: usize) -> Option<Value> {
    if map.is_empty() || ty.atomic_map() {
        return None;
    }
    let mut out = Map::new();
    for (key, child) in map {
        let pe = PathElement::Field(key.clone());
        if set.has_member(&pe) {
            continue;
        }
        let kept = match set.child(&pe) {
            Some(under) => remove(child, under, ty.field(key).0, depth + 1).unwrap_or(Value::Null),
            None => child.clone(),
        };
        out.insert(key.clone(), kept);
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn remove_from_list(items: &[Value], set: &FieldSet, ty: Ty, depth: usize) -> Option<Value> {
    if items.is_empty() || matches!(ty.list(), ListKind::Atomic) {
        return None;
    }
    let item_ty = ty.item();
    let mut out = Vec::new();
    for item in items {
        let Ok(pe) = item_element(item, ty.list(), &item_ty) else {
            out.push(item.clone());
            continue;
        };
        if set.has_member(&pe) {
            continue;
        }
        match set.child(&pe) {
            Some(under) => out.extend(remove(item, under, item_ty, depth + 1)),
            None => out.push(item.clone()),
        }
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::field_set;
    use serde_json::json;

    #[test]
    fn removes_fields_items_and_leaves_emptied_maps_null() {
        let ty = Ty::root(("", "v1", "Pod"));
        let pod = json!({
            "metadata": {"labels": {"a": "1"}},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
        });
        let remove = field_set(
            &json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "a"}]}}),
            ty,
        )
        .unwrap();
        let out = remove_items(&pod, &remove, ty);
        assert_eq!(
            out,
            json!({"metadata": {"labels": null}, "spec": {"containers": [{"name": "b", "image": "y"}]}})
        );
    }
}
