//! Merging an applied configuration into the live object (upstream's
//! `TypedValue.Merge` with the keep-the-right-side rule).
//!
//! - leaves (scalars, atomic lists and maps, empty containers) take the
//!   applied value when it has one;
//! - maps and structs merge key by key;
//! - list-maps and sets merge element by element, ordered as upstream
//!   orders them: live elements the configuration does not name keep their
//!   place, named ones follow the configuration's order;
//! - an explicit `null` in the configuration clears a scalar but leaves a
//!   non-empty live map or list as it is (the field becomes owned).
//!
//! The configuration may not repeat a list-map key or set value.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{Map, Value};

use super::{check_depth, error_at, index_items, is_empty_container};
use crate::path::{Path, PathElement};
use crate::schema::{ListKind, Ty};

/// `config` merged into `live` (both of type `ty`).
pub(crate) fn merge(live: &Value, config: &Value, ty: Ty) -> Result<Value, String> {
    let merged = merge_value(Some(live), Some(config), ty, &mut Vec::new())?;
    Ok(merged.unwrap_or(Value::Null))
}

fn merge_value(lhs: Option<&Value>, rhs: Option<&Value>, ty: Ty, path: &mut Path) -> Result<Option<Value>, String> {
    check_depth(path)?;
    let Some(rhs) = rhs else { return Ok(lhs.cloned()) };
    match rhs {
        Value::Object(r) if !is_leaf(lhs, rhs, ty) => merge_map(lhs.and_then(Value::as_object), r, ty, path).map(Some),
        Value::Array(r) if !is_leaf(lhs, rhs, ty) => {
            merge_list(lhs.and_then(Value::as_array).map(Vec::as_slice), r, ty, path).map(Some)
        }
        Value::Null if keeps_live_contents(lhs, ty) => Ok(lhs.cloned()),
        _ => Ok(Some(rhs.clone())),
    }
}

/// Whether the configuration's value replaces the live one whole: scalars,
/// atomic maps and lists, and empty containers over empty ones.
fn is_leaf(lhs: Option<&Value>, rhs: &Value, ty: Ty) -> bool {
    match rhs {
        Value::Object(r) => ty.atomic_map() || (r.is_empty() && is_empty_container(lhs)),
        Value::Array(r) => matches!(ty.list(), ListKind::Atomic) || (r.is_empty() && is_empty_container(lhs)),
        _ => true,
    }
}

/// A `null` in the configuration over a non-empty, non-atomic live map or list keeps the live contents.
fn keeps_live_contents(lhs: Option<&Value>, ty: Ty) -> bool {
    match lhs {
        Some(Value::Object(map)) => !map.is_empty() && !ty.atomic_map(),
        Some(Value::Array(items)) => !items.is_empty() && !matches!(ty.list(), ListKind::Atomic),
        _ => false,
    }
}

fn merge_map(
    lhs: Option<&Map<String, Value>>,
    rhs: &Map<String, Value>,
    ty: Ty,
    path: &mut Path,
) -> Result<Value, String> {
    let mut out = Map::new();
    let lhs_keys = lhs.into_iter().flat_map(|m| m.keys());
    let rhs_only = rhs.keys().filter(|k| !lhs.is_some_and(|m| m.contains_key(*k)));
    for key in lhs_keys.chain(rhs_only) {
        let (child_ty, _) = ty.field(key);
        path.push(PathElement::Field(key.clone()));
        let merged = merge_value(lhs.and_then(|m| m.get(key)), rhs.get(key), child_ty, path);
        path.pop();
        if let Some(value) = merged? {
            out.insert(key.clone(), value);
        }
    }
    Ok(Value::Object(out))
}

/// One side of a list merge: its elements in order, and each element's value
/// by path element (`None` where the live list repeats the element).
struct Side<'a> {
    order: Vec<PathElement>,
    items: Vec<&'a Value>,
    by_element: BTreeMap<PathElement, Option<&'a Value>>,
}

impl<'a> Side<'a> {
    fn new(indexed: Vec<(PathElement, &'a Value)>) -> Side<'a> {
        let mut by_element = BTreeMap::new();
        for (pe, item) in &indexed {
            let repeated = by_element.contains_key(pe);
            by_element.insert(pe.clone(), (!repeated).then_some(*item));
        }
        let (order, items) = indexed.into_iter().unzip();
        Side {
            order,
            items,
            by_element,
        }
    }

    fn value(&self, pe: &PathElement) -> Option<&'a Value> {
        self.by_element.get(pe).copied().flatten()
    }

    fn contains(&self, pe: &PathElement) -> bool {
        self.by_element.contains_key(pe)
    }
}

fn merge_list(lhs: Option<&[Value]>, rhs: &[Value], ty: Ty, path: &mut Path) -> Result<Value, String> {
    let item_ty = ty.item();
    let rhs_indexed = index_items(rhs, ty.list(), &item_ty, path)?;
    if let Some(pe) = first_repeat(&rhs_indexed) {
        return Err(error_at(path, format!("duplicate entries for key {pe}")));
    }
    let lhs_indexed = index_items(lhs.unwrap_or_default(), ty.list(), &item_ty, path)?;
    let (left, right) = (Side::new(lhs_indexed), Side::new(rhs_indexed));
    let mut out = Vec::new();
    for step in interleave(&left, &right) {
        let (pe, l, r) = match step {
            Step::Left(i) => (&left.order[i], Some(left.items[i]), None),
            Step::Right(i) => (&right.order[i], left.value(&right.order[i]), Some(right.items[i])),
        };
        path.push(pe.clone());
        let merged = merge_value(l, r, item_ty, path);
        path.pop();
        out.extend(merged?);
    }
    Ok(Value::Array(out))
}

fn first_repeat(indexed: &[(PathElement, &Value)]) -> Option<PathElement> {
    let mut seen = BTreeSet::new();
    indexed
        .iter()
        .find(|(pe, _)| !seen.insert(pe.clone()))
        .map(|(pe, _)| pe.clone())
}

/// One output element: the live element at an index (not in the
/// configuration), or the configuration's element at an index (merged with
/// the live one of the same key).
enum Step {
    Left(usize),
    Right(usize),
}

/// Upstream's output order: walk both lists; a live element the
/// configuration does not name is emitted where it stands; shared elements
/// are emitted in the configuration's order; new elements where the
/// configuration puts them.
fn interleave(left: &Side<'_>, right: &Side<'_>) -> Vec<Step> {
    let mut shared: VecDeque<&PathElement> = right.order.iter().filter(|pe| left.contains(pe)).collect();
    let mut next_shared = shared.pop_front();
    let mut merged: BTreeSet<&PathElement> = BTreeSet::new();
    let (ln, rn) = (left.order.len(), right.order.len());
    let (mut li, mut ri, mut steps) = (0, 0, Vec::new());
    let mut budget = 2 * (ln + rn) + 2;
    while (li < ln || ri < rn) && budget > 0 {
        budget -= 1;
        if li < ln && ri < rn {
            let pe = &left.order[li];
            if *pe == right.order[ri] {
                merged.insert(pe);
                steps.push(Step::Right(ri));
                (li, ri) = (li + 1, ri + 1);
                next_shared = shared.pop_front();
                continue;
            }
            if right.contains(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < ln {
            let pe = &left.order[li];
            if !right.contains(pe) {
                steps.push(Step::Left(li));
                li += 1;
                continue;
            } else if merged.contains(pe) {
                li += 1;
            }
        }
        if ri < rn {
            let pe = &right.order[ri];
            merged.insert(pe);
            steps.push(Step::Right(ri));
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(value: &Value) -> Vec<&str> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect()
    }

    fn merge_containers(live: Value, config: Value) -> Value {
        let ty = Ty::root(("", "v1", "Pod"));
        let live = json!({"spec": {"containers": live}});
        let config = json!({"spec": {"containers": config}});
        merge(&live, &config, ty).unwrap()["spec"]["containers"].clone()
    }

    #[test]
    fn list_map_order() {
        let live = json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]);
        let merged = merge_containers(live.clone(), json!([{"name": "c"}, {"name": "x"}, {"name": "a"}]));
        assert_eq!(names(&merged), ["b", "c", "x", "a"]);
        let merged = merge_containers(live, json!([{"name": "b", "image": "i"}]));
        assert_eq!(names(&merged), ["a", "b", "c"]);
        assert_eq!(merged[1], json!({"name": "b", "image": "i"}));
    }

    #[test]
    fn duplicate_keys_in_config_are_refused() {
        let ty = Ty::root(("", "v1", "Pod"));
        let config = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
        let err = merge(&json!({}), &config, ty).unwrap_err();
        assert_eq!(err, r#".spec.containers: duplicate entries for key [name="a"]"#);
    }

    #[test]
    fn null_keeps_live_maps_and_clears_scalars() {
        let ty = Ty::root(("", "v1", "ConfigMap"));
        let live = json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": "v"}});
        let merged = merge(&live, &json!({"metadata": {"labels": null}, "data": {"k": null}}), ty).unwrap();
        assert_eq!(merged, json!({"metadata": {"labels": {"a": "1"}}, "data": {"k": null}}));
    }
}
