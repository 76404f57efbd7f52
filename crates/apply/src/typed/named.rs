//! Upstream's `EnsureNamedFieldsAreMembers`: a field set in which every
//! declared struct field along its paths is itself a member, so that pruning
//! can remove a struct field (`spec.strategy`) and not just the values under
//! it. Map entries and list elements are left as they are.

use std::collections::BTreeMap;

use super::MAX_DEPTH;
use crate::fieldset::FieldSet;
use crate::path::PathElement;
use crate::schema::Ty;

/// `set` (over values of type `ty`) with its declared struct fields made members.
pub(crate) fn ensure_named_fields_are_members(set: &FieldSet, ty: Ty) -> FieldSet {
    walk(set, ty, 0)
}

fn walk(set: &FieldSet, ty: Ty, depth: usize) -> FieldSet {
    let mut members = set.members().clone();
    let mut children = BTreeMap::new();
    for (pe, child) in set.children() {
        let child_ty = match pe {
            PathElement::Field(name) => {
                let (child_ty, declared) = ty.field(name);
                if declared {
                    members.insert(pe.clone());
                }
                child_ty
            }
            PathElement::Key(_) => ty.item(),
            PathElement::Value(_) | PathElement::Index(_) => Ty::unknown(),
        };
        let child = match depth < MAX_DEPTH {
            true => walk(child, child_ty, depth + 1),
            false => child.clone(),
        };
        children.insert(pe.clone(), child);
    }
    FieldSet::from_parts(members, children)
}
