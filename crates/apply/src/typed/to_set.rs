//! The fields an object specifies (upstream's `TypedValue.ToFieldSet`).
//!
//! - a scalar, a null, an atomic list or an atomic map/struct is one path;
//! - a map entry is itself a path unless it is a declared struct field
//!   holding a non-empty object (so `f:labels: {f:app: {}}` but
//!   `f:resources: {}` for `resources: {}`);
//! - each element of a list-map or set is a path (`k:{...}`, `v:...`), with
//!   its fields under it; an element whose key repeats is recorded alone;
//! - an empty non-atomic list specifies nothing.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{check_depth, error_at, item_element};
use crate::fieldset::FieldSet;
use crate::path::{Path, PathElement};
use crate::schema::{ListKind, Ty};

/// Every field `value` (of type `ty`) specifies; an error for a list element
/// without its key fields, or nesting too deep.
pub(crate) fn field_set(value: &Value, ty: Ty) -> Result<FieldSet, String> {
    let mut walker = Walker {
        out: FieldSet::new(),
        path: Vec::new(),
        lenient: false,
    };
    walker.walk(value, ty)?;
    Ok(walker.out)
}

/// Like [`field_set`], skipping list elements that have no valid key.
pub(crate) fn field_set_lenient(value: &Value, ty: Ty) -> FieldSet {
    let mut walker = Walker {
        out: FieldSet::new(),
        path: Vec::new(),
        lenient: true,
    };
    let _ = walker.walk(value, ty);
    walker.out
}

struct Walker {
    out: FieldSet,
    path: Path,
    lenient: bool,
}

impl Walker {
    fn walk(&mut self, value: &Value, ty: Ty) -> Result<(), String> {
        check_depth(&self.path)?;
        match value {
            Value::Object(_) if ty.atomic_map() => self.out.insert(&self.path),
            Value::Object(map) => self.walk_map(map, ty)?,
            Value::Array(items) => self.walk_list(items, ty)?,
            _ => self.out.insert(&self.path),
        }
        Ok(())
    }

    fn walk_map(&mut self, map: &Map<String, Value>, ty: Ty) -> Result<(), String> {
        for (key, child) in map {
            let (child_ty, declared) = ty.field(key);
            self.path.push(PathElement::Field(key.clone()));
            let result = self.walk(child, child_ty);
            let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
            if result.is_ok() && (empty || !declared) {
                self.out.insert(&self.path);
            }
            self.path.pop();
            result?;
        }
        Ok(())
    }

    fn walk_list(&mut self, items: &[Value], ty: Ty) -> Result<(), String> {
        if matches!(ty.list(), ListKind::Atomic) {
            self.out.insert(&self.path);
            return Ok(());
        }
        let item_ty = ty.item();
        let elements = self.elements(items, ty.list(), &item_ty)?;
        let duplicates = duplicates(&elements);
        for pe in &duplicates {
            self.path.push(pe.clone());
            self.out.insert(&self.path);
            self.path.pop();
        }
        for (pe, item) in elements.into_iter().filter(|(pe, _)| !duplicates.contains(pe)) {
            self.path.push(pe);
            let result = self.walk(item, item_ty);
            self.out.insert(&self.path);
            self.path.pop();
            result?;
        }
        Ok(())
    }

    fn elements<'a>(
        &self,
        items: &'a [Value],
        list: ListKind,
        item_ty: &Ty,
    ) -> Result<Vec<(PathElement, &'a Value)>, String> {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item_element(item, list, item_ty) {
                Ok(pe) => out.push((pe, item)),
                Err(_) if self.lenient => {}
                Err(e) => return Err(error_at(&self.path, format!("element {i}: {e}"))),
            }
        }
        Ok(out)
    }
}

fn duplicates(elements: &[(PathElement, &Value)]) -> BTreeSet<PathElement> {
    let mut seen = BTreeSet::new();
    elements
        .iter()
        .filter(|(pe, _)| !seen.insert(pe.clone()))
        .map(|(pe, _)| pe.clone())
        .collect()
}
