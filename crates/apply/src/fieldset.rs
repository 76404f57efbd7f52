//! [`FieldSet`]: a set of field paths stored as a tree, with upstream's set
//! algebra and its `FieldsV1` encoding.
//!
//! A node's *members* are the path elements that are themselves in the set;
//! its *children* are the elements under which deeper paths are in the set.
//! An element can be both: in FieldsV1 that is written `".": {}` inside the
//! element's object (`k:{"name":"app"}: {".": {}, "f:image": {}}` owns the
//! list item itself and its image).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::path::{Path, PathElement, path_string};

/// A set of field paths (upstream's `fieldpath.Set`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Whether no path is in the set.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` (not its parents). The empty path (the whole object) is never owned.
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether `path` itself is in the set.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|child| child.has(rest)),
        }
    }

    /// Whether `pe` (one step from here) is a member.
    pub(crate) fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths under `pe`, relative to it.
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe).filter(|child| !child.is_empty())
    }

    pub(crate) fn members(&self) -> &BTreeSet<PathElement> {
        &self.members
    }

    pub(crate) fn children(&self) -> &BTreeMap<PathElement, FieldSet> {
        &self.children
    }

    pub(crate) fn from_parts(members: BTreeSet<PathElement>, children: BTreeMap<PathElement, FieldSet>) -> FieldSet {
        FieldSet { members, children }.pruned()
    }

    fn pruned(mut self) -> FieldSet {
        self.children.retain(|_, child| !child.is_empty());
        self
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.union(&other.members).cloned().collect();
        let mut children = self.children.clone();
        for (pe, theirs) in &other.children {
            let merged = match children.get(pe) {
                Some(ours) => ours.union(theirs),
                None => theirs.clone(),
            };
            children.insert(pe.clone(), merged);
        }
        FieldSet { members, children }.pruned()
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = (self.children.iter())
            .filter_map(|(pe, ours)| {
                other
                    .children
                    .get(pe)
                    .map(|theirs| (pe.clone(), ours.intersection(theirs)))
            })
            .collect();
        FieldSet { members, children }.pruned()
    }

    /// Paths in `self` but not in `other`. A path stays even when `other`
    /// has one of its parents (use [`FieldSet::recursive_difference`] to
    /// drop whole subtrees).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = (self.children.iter())
            .map(|(pe, ours)| match other.children.get(pe) {
                Some(theirs) => (pe.clone(), ours.difference(theirs)),
                None => (pe.clone(), ours.clone()),
            })
            .collect();
        FieldSet { members, children }.pruned()
    }

    /// Paths in `self` that neither are in `other` nor lie under a path of `other`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = (self.children.iter())
            .filter(|(pe, _)| !other.members.contains(pe))
            .map(|(pe, ours)| match other.children.get(pe) {
                Some(theirs) => (pe.clone(), ours.recursive_difference(theirs)),
                None => (pe.clone(), ours.clone()),
            })
            .collect();
        FieldSet { members, children }.pruned()
    }

    /// Every path of the set, parents before children, in upstream's order
    /// (members of a node, then the paths under each child).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for pe in &self.members {
            prefix.push(pe.clone());
            out.push(prefix.clone());
            prefix.pop();
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Every path in the human spelling (`.spec.replicas`), as [`FieldSet::paths`] orders them.
    pub fn path_strings(&self) -> Vec<String> {
        self.paths().iter().map(|p| path_string(p)).collect()
    }

    /// The set in upstream's `FieldsV1` JSON form.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.write_v1(false))
    }

    fn write_v1(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        let elements: BTreeSet<&PathElement> = self.members.iter().chain(self.children.keys()).collect();
        for pe in elements {
            let member = self.members.contains(pe);
            let value = match self.children.get(pe).filter(|c| !c.is_empty()) {
                Some(child) => child.write_v1(member),
                None => Map::new(),
            };
            out.insert(pe.to_fields_v1_key(), Value::Object(value));
        }
        out
    }

    /// Parses upstream's `FieldsV1` JSON form. Unknown element kinds are
    /// skipped, as upstream does.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet, String> {
        let Value::Object(map) = fields else {
            return Err("FieldsV1 must be a JSON object".to_string());
        };
        Ok(read_v1(map, 0)?.0.unwrap_or_default())
    }
}

const MAX_DEPTH: usize = 512;

/// The set under one FieldsV1 object, and whether the element owning the object is itself a member.
fn read_v1(map: &Map<String, Value>, depth: usize) -> Result<(Option<FieldSet>, bool), String> {
    if depth > MAX_DEPTH {
        return Err("FieldsV1 nested too deeply".to_string());
    }
    let (mut children, mut is_member) = (None::<FieldSet>, false);
    for (key, value) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::from_fields_v1_key(key)? else {
            continue;
        };
        let Value::Object(inner) = value else {
            return Err(format!("FieldsV1 value of {key:?} is not an object"));
        };
        let (grandchildren, child_is_member) = read_v1(inner, depth + 1)?;
        let set = children.get_or_insert_with(FieldSet::default);
        if child_is_member {
            set.members.insert(pe.clone());
        }
        if let Some(grandchildren) = grandchildren.filter(|g| !g.is_empty()) {
            set.children.insert(pe, grandchildren);
        }
    }
    let is_member = is_member || children.is_none();
    Ok((children.filter(|c| !c.is_empty()), is_member))
}

impl fmt::Display for FieldSet {
    /// One path per line, in the human spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path_strings().join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    fn set(paths: &[&[&str]]) -> FieldSet {
        let mut s = FieldSet::new();
        for p in paths {
            s.insert(&p.iter().map(|n| field(n)).collect::<Vec<_>>());
        }
        s
    }

    #[test]
    fn fields_v1_round_trip() {
        let text = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}, "f:replicas": {}},
            "f:finalizers": {"v:\"a\"": {}}
        });
        let parsed = FieldSet::from_fields_v1(&text).unwrap();
        assert_eq!(parsed.to_fields_v1(), text);
        assert!(parsed.has(&[field("metadata"), field("labels")]));
        assert!(!parsed.has(&[field("metadata")]));
        assert_eq!(parsed.path_strings()[0], ".finalizers[=\"a\"]");
    }

    #[test]
    fn fields_v1_edge_cases() {
        assert_eq!(FieldSet::from_fields_v1(&json!({})).unwrap(), FieldSet::new());
        let only_unknown = FieldSet::from_fields_v1(&json!({"f:a": {"z:b": {}}})).unwrap();
        assert_eq!(only_unknown, set(&[&["a"]]));
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_err());
        assert!(FieldSet::from_fields_v1(&json!([])).is_err());
        let mut deep = json!({});
        for _ in 0..600 {
            deep = json!({ "f:a": deep });
        }
        assert!(FieldSet::from_fields_v1(&deep).is_err());
    }

    #[test]
    fn algebra() {
        let a = set(&[&["a", "b"], &["a", "c"], &["d"]]);
        let b = set(&[&["a"], &["a", "b"]]);
        assert_eq!(a.difference(&b), set(&[&["a", "c"], &["d"]]));
        assert_eq!(a.recursive_difference(&b), set(&[&["d"]]));
        assert_eq!(a.intersection(&b), set(&[&["a", "b"]]));
        assert_eq!(a.union(&b), set(&[&["a"], &["a", "b"], &["a", "c"], &["d"]]));
        assert!(a.difference(&a).is_empty());
    }
}
