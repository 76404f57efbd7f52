//! The merge: objects, lists and the patch directives.
//!
//! Each function takes the live value (`None` when the field is absent) and
//! the patch value by value, and the schema [`Node`] of the value when the
//! schemas know it. Semantics follow upstream's `mergeMap` / `mergeSlice`:
//!
//! - objects merge key by key; `null` removes a key; a value whose JSON type
//!   differs from the live one replaces it;
//! - `$patch: replace` in an object takes the object as given, `$patch:
//!   delete` empties it; in an element of a merging list they replace the
//!   whole list or delete the elements with that merge key;
//! - `$patch: merge` is reserved for struct tags: an error in a list, and an
//!   unknown directive in an object, as upstream;
//! - `$retainKeys: [..]` drops the live keys it does not list, and requires
//!   the patch to set only listed keys;
//! - `$setElementOrder/<list>` orders the merged list; `$deleteFromPrimitiveList/<list>`
//!   removes values from a list of primitives.
//!
//! Deliberate differences from upstream's accidents: a value the patch adds
//! where nothing was is itself merged into nothing, so directives inside it
//! are applied rather than stored (upstream copies it, dropping a new object
//! that carries `$patch: replace`), and `$deleteFromPrimitiveList` always
//! deletes (upstream replaces a list without merge strategy by the deletion
//! list).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::PatchError;
use crate::order::{self, Positions, identity};
use crate::schema::{self, Node};
use crate::table::FieldStrategy;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

/// Far deeper than any Kubernetes object; bounds the recursion on hostile input.
const MAX_DEPTH: usize = 256;

/// Merges the patch object into the live object (or into nothing).
pub(crate) fn merge_map(
    live: Option<Map<String, Value>>,
    mut patch: Map<String, Value>,
    node: Option<Node>,
    depth: usize,
) -> Result<Map<String, Value>, PatchError> {
    if depth > MAX_DEPTH {
        return Err(PatchError::TooDeep(MAX_DEPTH));
    }
    if let Some(directive) = patch.get(DIRECTIVE) {
        return map_directive(directive.clone(), patch, node, depth);
    }
    let mut live = live.unwrap_or_default();
    retain_keys(&mut live, &mut patch)?;
    set_element_orders(&mut live, &mut patch, node, depth)?;
    let mut deletions = Vec::new();
    for (key, value) in patch {
        match key.strip_prefix(DELETE_FROM) {
            Some(field) => deletions.push((field.to_string(), value)),
            None => merge_field(&mut live, key, value, node, depth)?,
        }
    }
    for (field, values) in deletions {
        delete_from_primitive_list(&mut live, &field, values);
    }
    Ok(live)
}

/// `$patch` in an object: `replace` takes the rest of the object as given,
/// `delete` leaves an empty object.
fn map_directive(
    directive: Value,
    mut patch: Map<String, Value>,
    node: Option<Node>,
    depth: usize,
) -> Result<Map<String, Value>, PatchError> {
    match directive.as_str() {
        Some("replace") => {
            patch.remove(DIRECTIVE);
            merge_map(None, patch, node, depth + 1)
        }
        Some("delete") => Ok(Map::new()),
        _ => Err(PatchError::unknown_directive(&directive, &Value::Object(patch))),
    }
}

/// Merges one key of the patch into the live object.
fn merge_field(
    live: &mut Map<String, Value>,
    key: String,
    value: Value,
    node: Option<Node>,
    depth: usize,
) -> Result<(), PatchError> {
    let (child, strategy) = schema::field(node, &key);
    if value.is_null() {
        live.remove(&key);
        return Ok(());
    }
    let merged = match (live.remove(&key), value) {
        (Some(Value::Object(old)), Value::Object(new)) if strategy != Some(FieldStrategy::Replace) => {
            Some(Value::Object(merge_map(Some(old), new, child, depth + 1)?))
        }
        (Some(Value::Array(old)), Value::Array(new)) => {
            Some(Value::Array(merge_list(old, new, child, strategy, depth)?))
        }
        (_, value) => fresh(value, child, strategy, depth)?,
    };
    if let Some(merged) = merged {
        live.insert(key, merged);
    }
    Ok(())
}

/// A patch value with nothing to merge into: its directives are applied to
/// an empty value. `None` when it deletes itself (`$patch: delete`).
fn fresh(
    value: Value,
    node: Option<Node>,
    strategy: Option<FieldStrategy>,
    depth: usize,
) -> Result<Option<Value>, PatchError> {
    match value {
        Value::Object(map) if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") => Ok(None),
        Value::Object(map) => Ok(Some(Value::Object(merge_map(None, map, node, depth + 1)?))),
        Value::Array(list) => Ok(Some(Value::Array(merge_list(Vec::new(), list, node, strategy, depth)?))),
        scalar => Ok(Some(scalar)),
    }
}

/// Merges a patch list into a live list by the field's strategy.
fn merge_list(
    live: Vec<Value>,
    patch: Vec<Value>,
    node: Option<Node>,
    strategy: Option<FieldStrategy>,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    if depth > MAX_DEPTH {
        return Err(PatchError::TooDeep(MAX_DEPTH));
    }
    let items = schema::items(node);
    match strategy.and_then(FieldStrategy::list_merge) {
        None => replace_list(patch, items, depth + 1),
        Some(key) => merge_slice(live, patch, items, key, depth + 1),
    }
}

/// A list without merge strategy: the patch list, with directive elements
/// dropped and directives inside its objects applied.
fn replace_list(patch: Vec<Value>, items: Option<Node>, depth: usize) -> Result<Vec<Value>, PatchError> {
    let mut list = Vec::with_capacity(patch.len());
    for element in patch {
        match element {
            Value::Object(map) if map.contains_key(DIRECTIVE) => {}
            Value::Object(map) => list.push(Value::Object(merge_map(None, map, items, depth + 1)?)),
            Value::Array(inner) => list.push(Value::Array(merge_list(Vec::new(), inner, items, None, depth)?)),
            other => list.push(other),
        }
    }
    Ok(list)
}

/// The JSON type all elements of a merging list share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Object,
}

fn element_kind(live: &[Value], patch: &[Value]) -> Result<Option<Kind>, PatchError> {
    let mut kind = None;
    for element in live.iter().chain(patch) {
        let this = match element {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Object(_) => Kind::Object,
            Value::Array(_) => return Err(PatchError::ListOfLists),
        };
        if kind.is_some_and(|kind| kind != this) {
            return Err(PatchError::MixedList(crate::error::brief(&Value::Array(
                patch.to_vec(),
            ))));
        }
        kind = Some(this);
    }
    Ok(kind)
}

/// A list with `patchStrategy: merge`: by merge key for objects, as a set for primitives.
fn merge_slice(
    live: Vec<Value>,
    patch: Vec<Value>,
    items: Option<Node>,
    key: Option<&str>,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    match (element_kind(&live, &patch)?, key) {
        (None, _) => Ok(live),
        (Some(Kind::Object), Some(key)) => merge_by_key(live, patch, items, key, depth),
        (Some(Kind::Object), None) => Err(PatchError::NoMergeKey),
        (Some(_), None) => merge_set(live, patch),
        (Some(_), Some(key)) => {
            let scalar = live.iter().chain(&patch).next().cloned().unwrap_or_default();
            Err(PatchError::missing_key(key, &scalar))
        }
    }
}

/// Lists of primitives with merge strategy are sets: the union, deduplicated.
fn merge_set(live: Vec<Value>, patch: Vec<Value>) -> Result<Vec<Value>, PatchError> {
    let live_order = Positions::new(&live, None)?;
    let patch_order = Positions::new(&patch, None)?;
    let mut seen = HashSet::new();
    let union = live
        .into_iter()
        .chain(patch)
        .filter(|value| seen.insert(value.to_string()))
        .collect();
    let (from_patch, live_only) = order::partition(union, &patch_order, None)?;
    Ok(order::normalize(from_patch, live_only, &patch_order, &live_order, None))
}

/// Lists of objects with a merge key: elements with the same key merge,
/// new ones are added, then the list is ordered as upstream orders it.
fn merge_by_key(
    live: Vec<Value>,
    patch: Vec<Value>,
    items: Option<Node>,
    key: &str,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    let (live, patch) = special_elements(live, patch, items, key, depth)?;
    let live_order = Positions::new(&live, Some(key))?;
    let patch_order = Positions::new(&patch, Some(key))?;
    let merged = merge_elements(live, patch, items, key, depth)?;
    let (from_patch, live_only) = order::partition(merged, &patch_order, Some(key))?;
    Ok(order::normalize(
        from_patch,
        live_only,
        &patch_order,
        &live_order,
        Some(key),
    ))
}

/// Applies the elements carrying `$patch`: `delete` removes the live
/// elements with its merge key, `replace` makes the rest of the patch list
/// the whole list. Returns the live list and the patch without them.
fn special_elements(
    mut live: Vec<Value>,
    patch: Vec<Value>,
    items: Option<Node>,
    key: &str,
    depth: usize,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for element in patch {
        let Some(directive) = element.get(DIRECTIVE) else {
            rest.push(element);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let doomed = identity(&element, Some(key))?;
                live.retain(|e| identity(e, Some(key)).ok().as_ref() != Some(&doomed));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(PatchError::MergeDirectiveInList),
            _ => return Err(PatchError::unknown_directive(directive, &element)),
        }
    }
    if !replace {
        return Ok((live, rest));
    }
    let replaced = rest
        .into_iter()
        .filter_map(|e| fresh(e, items, None, depth).transpose());
    Ok((replaced.collect::<Result<_, _>>()?, Vec::new()))
}

/// Merges each patch element into the live element with its merge key, or appends it.
fn merge_elements(
    mut merged: Vec<Value>,
    patch: Vec<Value>,
    items: Option<Node>,
    key: &str,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(merged.len() + patch.len());
    for (at, element) in merged.iter().enumerate() {
        if let Ok(id) = identity(element, Some(key)) {
            index.entry(id).or_insert(at);
        }
    }
    for element in patch {
        let id = identity(&element, Some(key))?;
        let Value::Object(new) = element else { continue };
        match index.get(&id) {
            Some(&at) => {
                let old = match std::mem::take(&mut merged[at]) {
                    Value::Object(old) => Some(old),
                    _ => None,
                };
                merged[at] = Value::Object(merge_map(old, new, items, depth + 1)?);
            }
            None => {
                index.insert(id, merged.len());
                merged.push(Value::Object(merge_map(None, new, items, depth + 1)?));
            }
        }
    }
    Ok(merged)
}

/// `$retainKeys: [..]`: live keys not listed are dropped; the patch may set only listed keys.
fn retain_keys(live: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::RetainKeys(
            "$retainKeys must be a list of field names".into(),
        ));
    };
    let keep: HashSet<&str> = retain.iter().filter_map(Value::as_str).collect();
    let is_directive = |k: &str| k.starts_with(DELETE_FROM) || k.starts_with(SET_ORDER);
    if let Some((unlisted, _)) = patch
        .iter()
        .find(|(k, v)| !v.is_null() && !is_directive(k) && !keep.contains(k.as_str()))
    {
        return Err(PatchError::RetainKeys(format!(
            "the patch sets {unlisted:?}, which $retainKeys does not list"
        )));
    }
    live.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

/// `$setElementOrder/<list>: [..]`: merges `<list>` from the patch, then
/// orders the result: the elements the directive names in its order, the
/// others where the live list had them.
fn set_element_orders(
    live: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: Option<Node>,
    depth: usize,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ORDER)).cloned().collect();
    for directive in directives {
        let order = patch.remove(&directive).unwrap_or_default();
        let field = &directive[SET_ORDER.len()..];
        let Value::Array(order) = order else {
            return Err(PatchError::SetElementOrder(format!("{directive} must be a list")));
        };
        set_element_order(live, patch, field, &order, node, depth)?;
    }
    Ok(())
}

fn set_element_order(
    live: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    field: &str,
    order: &[Value],
    node: Option<Node>,
    depth: usize,
) -> Result<(), PatchError> {
    let (list_node, strategy) = schema::field(node, field);
    let key = strategy.and_then(FieldStrategy::list_merge).flatten();
    let old = take_list(live, field, "the live object")?;
    let new = take_list(patch, field, "the patch")?;
    check_order(new.as_deref().unwrap_or_default(), order, key)?;
    let live_order = Positions::new(old.as_deref().unwrap_or_default(), key)?;
    let merged = match (old, new) {
        (Some(old), None) => old,
        (old, Some(new)) => merge_list(old.unwrap_or_default(), new, list_node, strategy, depth)?,
        (None, None) => return Ok(()),
    };
    let wanted = Positions::new(order, key)?;
    let (named, others) = order::partition(merged, &wanted, key)?;
    live.insert(
        field.to_string(),
        Value::Array(order::normalize(named, others, &wanted, &live_order, key)),
    );
    Ok(())
}

/// Removes `field` from `map` if it is present; it must be a list.
fn take_list(map: &mut Map<String, Value>, field: &str, whose: &str) -> Result<Option<Vec<Value>>, PatchError> {
    match map.remove(field) {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(other) => Err(PatchError::SetElementOrder(format!(
            "{field} in {whose} is {}, not a list",
            crate::error::brief(&other)
        ))),
    }
}

/// The patch list must name its elements in the order `$setElementOrder` does
/// (elements carrying `$patch` aside).
fn check_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut wanted = order.iter();
    for element in patch.iter().filter(|e| e.get(DIRECTIVE).is_none()) {
        let id = identity(element, key)?;
        let mut found = false;
        for candidate in wanted.by_ref() {
            if identity(candidate, key)? == id {
                found = true;
                break;
            }
        }
        if !found {
            return Err(PatchError::SetElementOrder(format!(
                "the order in patch list {} doesn't match $setElementOrder list {}",
                crate::error::brief(&Value::Array(patch.to_vec())),
                crate::error::brief(&Value::Array(order.to_vec()))
            )));
        }
    }
    Ok(())
}

/// `$deleteFromPrimitiveList/<field>: [..]` removes those values from the
/// live list; `null` removes the list, as upstream.
fn delete_from_primitive_list(live: &mut Map<String, Value>, field: &str, values: Value) {
    let values = match values {
        Value::Null => {
            live.remove(field);
            return;
        }
        Value::Array(values) => values,
        _ => return,
    };
    let Some(Value::Array(list)) = live.get_mut(field) else {
        return;
    };
    let doomed: HashSet<String> = values.iter().map(Value::to_string).collect();
    list.retain(|element| !doomed.contains(&element.to_string()));
}
