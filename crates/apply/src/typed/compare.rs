//! Comparing two versions of an object (upstream's `TypedValue.Compare`):
//! which fields were removed, modified or added.
//!
//! Leaves (scalars, atomic lists and maps, empty containers) are compared by
//! value. A map entry, struct field or list element present on one side
//! only is itself added or removed, with everything under it; so a
//! `labels` map that appears is added along with its entries (FieldsV1
//! `f:labels: {".": {}, "f:app": {}}`), while a value changing inside an
//! existing field only modifies that value.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{check_depth, index_items, is_empty_container};
use crate::fieldset::FieldSet;
use crate::path::{Path, PathElement, values_equal};
use crate::schema::{ListKind, Ty};

/// The difference between two versions of an object.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) removed: FieldSet,
    pub(crate) modified: FieldSet,
    pub(crate) added: FieldSet,
}

impl Comparison {
    /// The comparison without the fields under `ignored`.
    pub(crate) fn excluding(self, ignored: &FieldSet) -> Comparison {
        Comparison {
            removed: self.removed.recursive_difference(ignored),
            modified: self.modified.recursive_difference(ignored),
            added: self.added.recursive_difference(ignored),
        }
    }

    /// Modified or added: the fields whose value the change sets.
    pub(crate) fn changed(&self) -> FieldSet {
        self.modified.union(&self.added)
    }
}

/// How `new` differs from `old` (both of type `ty`).
pub(crate) fn compare(old: &Value, new: &Value, ty: Ty) -> Result<Comparison, String> {
    let mut walker = Walker {
        out: Comparison::default(),
        path: Vec::new(),
    };
    walker.compare(Some(old), Some(new), ty)?;
    Ok(walker.out)
}

struct Walker {
    out: Comparison,
    path: Path,
}

enum Shape<'a> {
    Leaf,
    Map(Option<&'a Map<String, Value>>, Option<&'a Map<String, Value>>),
    List(&'a [Value], &'a [Value]),
}

fn shape<'a>(lhs: Option<&'a Value>, rhs: Option<&'a Value>, ty: Ty) -> Shape<'a> {
    if is_empty_container(lhs) && is_empty_container(rhs) {
        return Shape::Leaf;
    }
    // Absent and null sides go along with whatever the other side is.
    let fits = |v: Option<&Value>, test: fn(&Value) -> bool| v.is_none_or(|v| v.is_null() || test(v));
    if fits(lhs, Value::is_object) && fits(rhs, Value::is_object) && !ty.atomic_map() {
        return Shape::Map(lhs.and_then(Value::as_object), rhs.and_then(Value::as_object));
    }
    if fits(lhs, Value::is_array) && fits(rhs, Value::is_array) && !matches!(ty.list(), ListKind::Atomic) {
        let items = |v: Option<&'a Value>| v.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        return Shape::List(items(lhs), items(rhs));
    }
    Shape::Leaf
}

impl Walker {
    fn compare(&mut self, lhs: Option<&Value>, rhs: Option<&Value>, ty: Ty) -> Result<(), String> {
        check_depth(&self.path)?;
        match shape(lhs, rhs, ty) {
            Shape::Leaf => {
                self.leaf(lhs, rhs);
                return Ok(());
            }
            Shape::Map(l, r) => self.compare_maps(l, r, ty)?,
            Shape::List(l, r) => self.compare_lists(l, r, ty)?,
        }
        if lhs.is_none() {
            self.out.added.insert(&self.path);
        } else if rhs.is_none() {
            self.out.removed.insert(&self.path);
        }
        Ok(())
    }

    fn leaf(&mut self, lhs: Option<&Value>, rhs: Option<&Value>) {
        match (lhs, rhs) {
            (None, _) => self.out.added.insert(&self.path),
            (_, None) => self.out.removed.insert(&self.path),
            (Some(l), Some(r)) if !values_equal(l, r) => self.out.modified.insert(&self.path),
            _ => {}
        }
    }

    fn compare_maps(
        &mut self,
        lhs: Option<&Map<String, Value>>,
        rhs: Option<&Map<String, Value>>,
        ty: Ty,
    ) -> Result<(), String> {
        let lhs_keys = lhs.into_iter().flat_map(|m| m.keys());
        let rhs_only = rhs
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|k| !lhs.is_some_and(|m| m.contains_key(*k)));
        for key in lhs_keys.chain(rhs_only) {
            let (child_ty, _) = ty.field(key);
            self.path.push(PathElement::Field(key.clone()));
            let result = self.compare(lhs.and_then(|m| m.get(key)), rhs.and_then(|m| m.get(key)), child_ty);
            self.path.pop();
            result?;
        }
        Ok(())
    }

    fn compare_lists(&mut self, lhs: &[Value], rhs: &[Value], ty: Ty) -> Result<(), String> {
        let item_ty = ty.item();
        let mut groups: BTreeMap<PathElement, (Vec<&Value>, Vec<&Value>)> = BTreeMap::new();
        for (pe, item) in index_items(lhs, ty.list(), &item_ty, &self.path)? {
            groups.entry(pe).or_default().0.push(item);
        }
        for (pe, item) in index_items(rhs, ty.list(), &item_ty, &self.path)? {
            groups.entry(pe).or_default().1.push(item);
        }
        for (pe, (l, r)) in groups {
            self.path.push(pe);
            let result = self.compare_group(&l, &r, item_ty);
            self.path.pop();
            result?;
        }
        Ok(())
    }

    /// One list element, possibly repeated on either side (repeats compare as a whole).
    fn compare_group(&mut self, lhs: &[&Value], rhs: &[&Value], ty: Ty) -> Result<(), String> {
        match (lhs.len(), rhs.len()) {
            (0..=1, 0..=1) => self.compare(lhs.first().copied(), rhs.first().copied(), ty),
            (2.., 2..) => {
                let same = lhs.len() == rhs.len() && lhs.iter().zip(rhs).all(|(l, r)| values_equal(l, r));
                if !same {
                    self.out.modified.insert(&self.path);
                }
                Ok(())
            }
            (2.., _) => {
                let result = rhs.first().map_or(Ok(()), |r| self.compare(None, Some(r), ty));
                self.out.removed.insert(&self.path);
                result
            }
            (_, _) => {
                let result = lhs.first().map_or(Ok(()), |l| self.compare(Some(l), None, ty));
                self.out.added.insert(&self.path);
                result
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(set: &FieldSet) -> Vec<String> {
        set.path_strings()
    }

    #[test]
    fn added_containers_and_modified_leaves() {
        let ty = Ty::root(("", "v1", "ConfigMap"));
        let old = json!({"metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}});
        let new = json!({"metadata": {"name": "x", "labels": {"app": "y"}}, "data": {"a": "9"}});
        let cmp = compare(&old, &new, ty).unwrap();
        assert_eq!(strings(&cmp.added), [".metadata.labels", ".metadata.labels.app"]);
        assert_eq!(strings(&cmp.modified), [".data.a"]);
        assert_eq!(strings(&cmp.removed), [".data.b"]);
    }

    #[test]
    fn list_elements() {
        let ty = Ty::root(("", "v1", "Pod"));
        let old = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b"}]}});
        let new = json!({"spec": {"containers": [{"name": "a", "image": "2"}, {"name": "c"}]}});
        let cmp = compare(&old, &new, ty).unwrap();
        assert_eq!(strings(&cmp.modified), [r#".spec.containers[name="a"].image"#]);
        assert_eq!(
            strings(&cmp.added),
            [r#".spec.containers[name="c"]"#, r#".spec.containers[name="c"].name"#]
        );
        assert_eq!(
            strings(&cmp.removed),
            [r#".spec.containers[name="b"]"#, r#".spec.containers[name="b"].name"#]
        );
    }
}
