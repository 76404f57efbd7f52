//! Strict field validation: which fields of an object its kind's schema
//! does not know, named as upstream's strict decoder names them
//! (`spec.template.spec.containers[0].foo`, `metadata.labels` keys as
//! `.key`).
//!
//! The definitions are compiled once into a compact tree of shapes (object
//! with known fields, array, map, anything, scalar), shared by all kinds, so
//! a check is a single walk over the object.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::catalog::Gvk;
use crate::definitions::{DEFINITIONS, REF_PREFIX};

/// Deeper objects are not inspected further (serde_json parses at most 128
/// levels anyway).
const MAX_DEPTH: usize = 256;
/// References followed in a row before a shape counts as free-form.
const MAX_REF_HOPS: usize = 16;

/// Index of a shape in [`Tree::shapes`].
type ShapeId = usize;
const ANY: ShapeId = 0;
const SCALAR: ShapeId = 1;

enum Shape {
    /// Anything goes: free-form objects (`RawExtension`, `FieldsV1`,
    /// `JSON`), `x-kubernetes-preserve-unknown-fields`, unions.
    Any,
    /// A string, number or boolean: nothing inside to check.
    Scalar,
    /// Another definition.
    Ref(ShapeId),
    Object {
        fields: HashMap<Box<str>, ShapeId>,
        /// The shape of fields not listed (`additionalProperties`).
        rest: Option<ShapeId>,
    },
    Array(ShapeId),
    Map(ShapeId),
}

pub(crate) struct Tree {
    shapes: Vec<Shape>,
    /// Root shape of each kind, sorted for lookup by borrowed strings.
    kinds: Vec<(Gvk, ShapeId)>,
}

pub(crate) static TREE: LazyLock<Tree> = LazyLock::new(Tree::build);

impl Tree {
    fn build() -> Tree {
        let defs = &*DEFINITIONS;
        let mut builder = Builder {
            defs: &defs.schemas,
            shapes: vec![Shape::Any, Shape::Scalar],
            by_name: HashMap::new(),
        };
        let mut kinds: Vec<(Gvk, ShapeId)> = defs
            .by_gvk
            .iter()
            .map(|(gvk, name)| (*gvk, builder.definition(name)))
            .collect();
        kinds.sort_by_key(|(gvk, _)| *gvk);
        Tree {
            shapes: builder.shapes,
            kinds,
        }
    }

    pub fn root(&self, group: &str, version: &str, kind: &str) -> Option<ShapeId> {
        self.kinds
            .binary_search_by(|(g, _)| (g.group, g.version, g.kind).cmp(&(group, version, kind)))
            .ok()
            .map(|i| self.kinds[i].1)
    }

    /// The shape behind any chain of references.
    fn resolve(&self, mut id: ShapeId) -> &Shape {
        for _ in 0..MAX_REF_HOPS {
            match self.shapes.get(id) {
                Some(Shape::Ref(target)) => id = *target,
                Some(shape) => return shape,
                None => return &Shape::Any,
            }
        }
        &Shape::Any
    }

    /// The paths of the fields of `value` that the shape `root` does not know.
    pub fn unknown_fields(&self, root: ShapeId, value: &Value) -> Vec<String> {
        let mut walk = Walk {
            tree: self,
            path: String::new(),
            found: Vec::new(),
        };
        walk.visit(root, value, 0);
        walk.found
    }
}

struct Builder<'a> {
    defs: &'a Map<String, Value>,
    shapes: Vec<Shape>,
    by_name: HashMap<&'a str, ShapeId>,
}

impl<'a> Builder<'a> {
    fn push(&mut self, shape: Shape) -> ShapeId {
        self.shapes.push(shape);
        self.shapes.len() - 1
    }

    /// The shape of a named definition, compiled on first use. The slot is
    /// taken before compiling so that recursive definitions end.
    fn definition(&mut self, name: &'a str) -> ShapeId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let Some((key, schema)) = self.defs.get_key_value(name) else {
            return ANY;
        };
        let id = self.push(Shape::Any);
        self.by_name.insert(key.as_str(), id);
        self.shapes[id] = self.shape(schema);
        id
    }

    /// A shape id for a sub-schema, sharing the constant and named ones.
    fn node(&mut self, schema: &'a Value) -> ShapeId {
        match self.shape(schema) {
            Shape::Any => ANY,
            Shape::Scalar => SCALAR,
            Shape::Ref(id) => id,
            shape => self.push(shape),
        }
    }

    fn shape(&mut self, schema: &'a Value) -> Shape {
        let Some(map) = schema.as_object() else {
            return Shape::Any;
        };
        if let Some(name) = map.get("$ref").and_then(Value::as_str) {
            let name = name.strip_prefix(REF_PREFIX).unwrap_or(name);
            return Shape::Ref(self.definition(name));
        }
        if map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            return Shape::Any;
        }
        let rest = match map.get("additionalProperties") {
            Some(extra @ Value::Object(_)) => Some(self.node(extra)),
            Some(Value::Bool(true)) => Some(ANY),
            _ => None,
        };
        if let Some(Value::Object(properties)) = map.get("properties") {
            let fields = properties
                .iter()
                .map(|(field, schema)| (field.as_str().into(), self.node(schema)))
                .collect();
            return Shape::Object { fields, rest };
        }
        if let Some(values) = rest {
            return Shape::Map(values);
        }
        if let Some(items) = map.get("items") {
            return Shape::Array(self.node(items));
        }
        match map.get("type").and_then(Value::as_str) {
            None | Some("object") => Shape::Any,
            Some(_) => Shape::Scalar,
        }
    }
}

struct Walk<'t> {
    tree: &'t Tree,
    path: String,
    found: Vec<String>,
}

impl Walk<'_> {
    fn visit(&mut self, id: ShapeId, value: &Value, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match (self.tree.resolve(id), value) {
            (Shape::Object { fields, rest }, Value::Object(object)) => {
                for (key, child) in object {
                    match fields.get(key.as_str()).copied().or(*rest) {
                        Some(shape) => self.visit_field(key, shape, child, depth),
                        None => self.found.push(self.joined(key)),
                    }
                }
            }
            (Shape::Map(values), Value::Object(object)) => {
                for (key, child) in object {
                    self.visit_field(key, *values, child, depth);
                }
            }
            (Shape::Array(items), Value::Array(elements)) => {
                for (i, child) in elements.iter().enumerate() {
                    let len = self.path.len();
                    let _ = write!(self.path, "[{i}]");
                    self.visit(*items, child, depth + 1);
                    self.path.truncate(len);
                }
            }
            _ => {}
        }
    }

    fn visit_field(&mut self, key: &str, shape: ShapeId, child: &Value, depth: usize) {
        let len = self.path.len();
        if len > 0 {
            self.path.push('.');
        }
        self.path.push_str(key);
        self.visit(shape, child, depth + 1);
        self.path.truncate(len);
    }

    fn joined(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{strict_error_message, unknown_fields};

    #[test]
    fn a_valid_deployment_has_no_unknown_fields() {
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a/b": "c"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                    }]},
                },
            },
            "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]},
        });
        assert_eq!(
            unknown_fields("apps", "v1", "Deployment", &deployment),
            Vec::<String>::new()
        );
    }

    #[test]
    fn nested_and_array_fields_are_named_as_upstream() {
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "app": "web"},
            "foo": 1,
            "spec": {
                "strategy": {"rollingUpdate": {"maxUnaivailable": 5}},
                "template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "imagePullPolice": "x"}]}},
            },
        });
        assert_eq!(
            unknown_fields("apps", "v1", "Deployment", &deployment),
            [
                "foo",
                "metadata.app",
                "spec.strategy.rollingUpdate.maxUnaivailable",
                "spec.template.spec.containers[1].imagePullPolice",
            ]
        );
    }

    #[test]
    fn map_values_are_checked_and_named_by_key() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}],
                "overhead": {"cpu": "100m"},
            },
        });
        assert!(unknown_fields("", "v1", "Pod", &pod).is_empty());
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "pets.zoo.example.com"},
            "spec": {
                "group": "zoo.example.com",
                "names": {"kind": "Pet", "plural": "pets"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1",
                    "served": true,
                    "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object", "typo": true}},
                    }},
                }],
            },
        });
        assert_eq!(
            unknown_fields("apiextensions.k8s.io", "v1", "CustomResourceDefinition", &crd),
            ["spec.versions[0].schema.openAPIV3Schema.properties.spec.typo"]
        );
    }

    #[test]
    fn free_form_fields_take_anything() {
        let crd_default = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "x", "managedFields": [{"manager": "m", "fieldsV1": {"f:spec": {"f:x": {}}}}]},
            "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                "type": "object",
                "default": {"anything": {"goes": [1]}},
                "x-kubernetes-preserve-unknown-fields": true,
            }}}]},
        });
        assert!(unknown_fields("apiextensions.k8s.io", "v1", "CustomResourceDefinition", &crd_default).is_empty());
        let revision = json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "r"},
            "revision": 1,
            "data": {"spec": {"whatever": true}},
        });
        assert!(unknown_fields("apps", "v1", "ControllerRevision", &revision).is_empty());
    }

    #[test]
    fn lists_and_unknown_kinds() {
        let list =
            json!({"apiVersion": "v1", "kind": "PodList", "items": [{"metadata": {"nam": "x"}}], "metadata": {}});
        assert_eq!(unknown_fields("", "v1", "PodList", &list), ["items[0].metadata.nam"]);
        assert!(unknown_fields("zoo.example.com", "v1", "Pet", &json!({"spec": {"x": 1}})).is_empty());
        assert!(unknown_fields("", "v1", "Pod", &json!("not an object")).is_empty());
        assert!(unknown_fields("", "v1", "Pod", &json!({"spec": 5, "metadata": null})).is_empty());
    }

    #[test]
    fn the_message_is_upstreams() {
        assert_eq!(
            strict_error_message(&["spec.foo".to_string()]),
            r#"strict decoding error: unknown field "spec.foo""#
        );
        assert_eq!(
            strict_error_message(&["a".to_string(), "b\"c".to_string()]),
            r#"strict decoding error: unknown field "a", unknown field "b\"c""#
        );
    }
}
