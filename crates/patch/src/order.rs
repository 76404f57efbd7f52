//! Identity and order of the elements of a merged list.
//!
//! Upstream orders a merged list so that the patch's order wins for the
//! elements the patch names, the live order wins for the others, and the two
//! are interleaved by the live order where both sides know an element. An
//! element new to the list therefore lands before the live elements that
//! follow it in the patch: patching `[{name: b}]` into `[a]` gives `[b, a]`.

use std::collections::HashMap;

use serde_json::Value;

use crate::PatchError;

/// The identity of a list element: the value of its merge key for lists of
/// objects, the element itself for lists of primitives. JSON text keeps `80`,
/// `80.0` and `"80"` apart, as upstream's decoded values are.
pub(crate) fn identity(element: &Value, key: Option<&str>) -> Result<String, PatchError> {
    match key {
        None => Ok(element.to_string()),
        Some(key) => element
            .get(key)
            .map(Value::to_string)
            .ok_or_else(|| PatchError::missing_key(key, element)),
    }
}

/// Where each identity first occurs in a list.
pub(crate) struct Positions(HashMap<String, usize>);

impl Positions {
    pub(crate) fn new(list: &[Value], key: Option<&str>) -> Result<Positions, PatchError> {
        let mut positions = HashMap::with_capacity(list.len());
        for (index, element) in list.iter().enumerate() {
            positions.entry(identity(element, key)?).or_insert(index);
        }
        Ok(Positions(positions))
    }

    pub(crate) fn of(&self, element: &Value, key: Option<&str>) -> Option<usize> {
        identity(element, key).ok().and_then(|id| self.0.get(&id).copied())
    }

    pub(crate) fn contains(&self, element: &Value, key: Option<&str>) -> Result<bool, PatchError> {
        Ok(self.0.contains_key(&identity(element, key)?))
    }
}

/// Splits `merged` into the elements `order` names and the others.
pub(crate) fn partition(
    merged: Vec<Value>,
    order: &Positions,
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut named = Vec::new();
    let mut others = Vec::new();
    for element in merged {
        if order.contains(&element, key)? {
            named.push(element);
        } else {
            others.push(element);
        }
    }
    Ok((named, others))
}

/// Sorts the patch's elements by `patch_order` and the live-only elements by
/// `live_order`, then interleaves them by `live_order`.
pub(crate) fn normalize(
    mut from_patch: Vec<Value>,
    mut live_only: Vec<Value>,
    patch_order: &Positions,
    live_order: &Positions,
    key: Option<&str>,
) -> Vec<Value> {
    from_patch.sort_by_cached_key(|element| patch_order.of(element, key).unwrap_or(usize::MAX));
    live_only.sort_by_cached_key(|element| live_order.of(element, key).unwrap_or(usize::MAX));
    interleave(live_only, from_patch, live_order, key)
}

/// Merges two sorted lists, taking from `left` first only when `order` places
/// both candidates and the left one earlier.
fn interleave(left: Vec<Value>, right: Vec<Value>, order: &Positions, key: Option<&str>) -> Vec<Value> {
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let left_first = matches!((order.of(l, key), order.of(r, key)), (Some(a), Some(b)) if a < b);
        let next = if left_first { left.next() } else { right.next() };
        merged.extend(next);
    }
    merged.extend(left);
    merged.extend(right);
    merged
}
