//! The server-side-apply view of a kind's schema: at each value, whether a
//! map key is a declared struct field, how a list is merged (atomic, set, or
//! list-map by key fields), and whether a map or struct is atomic.
//!
//! Types come from `capstan_patch::schema` (the `k8s-openapi` schemas).
//! Topology comes first from upstream's `+listType` / `+listMapKey` /
//! `+mapType` / `+structType` markers ([`crate::table`]), then — as
//! upstream's OpenAPI-to-SMD conversion does when a list has no `listType` —
//! from the strategic-merge-patch strategy (`patchStrategy=merge` with a
//! `patchMergeKey` is a list-map; without a key, a set); every other list is
//! atomic.
//!
//! Kinds the schemas do not know (custom resources) and fields they do not
//! describe are treated as upstream treats custom resources without a
//! schema: every key is a field, every list is atomic. `metadata` of an
//! unknown kind is still an `ObjectMeta`.

use capstan_patch::schema::{self as types, Node};
use capstan_patch::{FieldStrategy, Gvk};
use serde_json::Value;

use crate::table::{ATOMIC_STRUCTS, FIELDS, KEY_DEFAULTS};

/// An upstream topology marker on one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    /// `+listType=atomic`.
    ListAtomic,
    /// `+listType=set`.
    ListSet,
    /// `+listType=map` with its `+listMapKey`s.
    ListMap(&'static [&'static str]),
    /// `+mapType=atomic`.
    MapAtomic,
}

/// The key fields of a list-map.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keys {
    One(&'static str),
    Many(&'static [&'static str]),
}

impl Keys {
    pub(crate) fn names(&self) -> Vec<&'static str> {
        match self {
            Keys::One(key) => vec![key],
            Keys::Many(keys) => keys.to_vec(),
        }
    }
}

/// How a list is merged and tracked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ListKind {
    /// Replaced and owned as a whole.
    Atomic,
    /// Scalars, each owned separately (`v:`).
    Set,
    /// Objects identified by key fields (`k:`).
    Map(Keys),
}

/// The type of one value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ty {
    node: Option<Node>,
    list: ListKind,
    atomic_map: bool,
    unknown_root: bool,
}

impl Ty {
    /// The type of a whole object of kind `gvk`.
    pub(crate) fn root(gvk: Gvk<'_>) -> Ty {
        let node = Node::root(gvk);
        Ty {
            node,
            list: ListKind::Atomic,
            atomic_map: false,
            unknown_root: node.is_none(),
        }
    }

    /// A value the schemas do not describe.
    pub(crate) fn unknown() -> Ty {
        Ty {
            node: None,
            list: ListKind::Atomic,
            atomic_map: false,
            unknown_root: false,
        }
    }

    fn of(node: Option<Node>, list: ListKind, atomic_map: bool) -> Ty {
        let atomic_struct = node.and_then(|n| n.name()).is_some_and(is_atomic_struct);
        Ty {
            node,
            list,
            atomic_map: atomic_map || atomic_struct,
            unknown_root: false,
        }
    }

    /// Whether this is a kind the schemas describe.
    pub(crate) fn is_known(&self) -> bool {
        self.node.is_some()
    }

    /// The OpenAPI definition name, if this is a named type.
    pub(crate) fn definition(&self) -> Option<&'static str> {
        self.node.and_then(|n| n.name())
    }

    /// How a list of this type is merged.
    pub(crate) fn list(&self) -> ListKind {
        self.list
    }

    /// Whether a map or struct of this type is owned and replaced as a whole.
    pub(crate) fn atomic_map(&self) -> bool {
        self.atomic_map
    }

    /// The type under `key`, and whether `key` is a declared struct field
    /// (rather than an entry of a map).
    pub(crate) fn field(&self, key: &str) -> (Ty, bool) {
        if self.unknown_root && key == "metadata" {
            return (object_meta(), true);
        }
        let Some(node) = self.node else {
            return (Ty::unknown(), true);
        };
        let definition = node.name();
        let declared = definition.is_some_and(|d| types::has_property(d, key));
        let (child, strategy) = types::field(Some(node), key);
        let topology = definition.and_then(|d| topology(d, key));
        let atomic_map = topology == Some(Topology::MapAtomic);
        (Ty::of(child, list_kind(topology, strategy), atomic_map), declared)
    }

    /// The type of this list's elements.
    pub(crate) fn item(&self) -> Ty {
        Ty::of(types::items(self.node), ListKind::Atomic, false)
    }

    /// The default of key field `field` of this (list element) type, if upstream gives one.
    pub(crate) fn key_default(&self, field: &str) -> Option<Value> {
        let definition = self.definition()?;
        let index = KEY_DEFAULTS
            .binary_search_by(|(d, f, _)| (*d, *f).cmp(&(definition, field)))
            .ok()?;
        serde_json::from_str(KEY_DEFAULTS[index].2).ok()
    }
}

fn object_meta() -> Ty {
    let (node, _) = types::field(Node::root(("", "v1", "ConfigMap")), "metadata");
    Ty::of(node, ListKind::Atomic, false)
}

fn list_kind(topology: Option<Topology>, strategy: Option<FieldStrategy>) -> ListKind {
    match topology {
        Some(Topology::ListAtomic) => ListKind::Atomic,
        Some(Topology::ListSet) => ListKind::Set,
        Some(Topology::ListMap(keys)) => ListKind::Map(Keys::Many(keys)),
        Some(Topology::MapAtomic) | None => match strategy.and_then(FieldStrategy::list_merge) {
            Some(Some(key)) => ListKind::Map(Keys::One(key)),
            Some(None) => ListKind::Set,
            None => ListKind::Atomic,
        },
    }
}

fn topology(definition: &str, field: &str) -> Option<Topology> {
    let index = FIELDS
        .binary_search_by(|(d, f, _)| (*d, *f).cmp(&(definition, field)))
        .ok()?;
    Some(FIELDS[index].2)
}

fn is_atomic_struct(definition: &str) -> bool {
    ATOMIC_STRUCTS.binary_search(&definition).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

    fn is_object_meta(ty: &Ty) -> bool {
        ty.definition() == Some(OBJECT_META)
    }

    #[test]
    fn table_is_sorted_and_names_real_fields() {
        assert!(FIELDS.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        assert!(ATOMIC_STRUCTS.windows(2).all(|w| w[0] < w[1]));
        assert!(KEY_DEFAULTS.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        let known: std::collections::HashSet<_> = types::definition_names().collect();
        let missing: Vec<_> = FIELDS
            .iter()
            .map(|(d, f, _)| (*d, *f))
            .chain(KEY_DEFAULTS.iter().map(|(d, f, _)| (*d, *f)))
            .filter(|(d, f)| known.contains(d) && !types::has_property(d, f))
            .collect();
        assert!(missing.is_empty(), "rows naming no property: {missing:?}");
        assert!(known.contains(OBJECT_META));
    }

    #[test]
    fn deployment_topology() {
        let root = Ty::root(("apps", "v1", "Deployment"));
        let (spec, declared) = root.field("spec");
        assert!(declared);
        assert!(spec.field("selector").0.atomic_map());
        let pod = spec.field("template").0.field("spec").0;
        let containers = pod.field("containers").0;
        assert!(matches!(containers.list(), ListKind::Map(_)));
        let ports = containers.item().field("ports").0;
        let ListKind::Map(keys) = ports.list() else {
            panic!("ports are a list-map")
        };
        assert_eq!(keys.names(), ["containerPort", "protocol"]);
        assert_eq!(ports.item().key_default("protocol"), Some(Value::from("TCP")));
        assert!(matches!(containers.item().field("args").0.list(), ListKind::Atomic));
        let (labels, _) = root.field("metadata").0.field("labels");
        assert!(!labels.field("app").1, "map entries are not declared fields");
    }

    #[test]
    fn unknown_kinds() {
        let root = Ty::root(("example.com", "v1", "Widget"));
        assert!(is_object_meta(&root.field("metadata").0));
        let (spec, declared) = root.field("spec");
        assert!(declared && !spec.is_known());
        assert!(matches!(spec.field("items").0.list(), ListKind::Atomic));
    }
}
