//! Strategic-merge-patch metadata: which lists merge by which key, which
//! fields keep only the keys given (`retainKeys`). `kubectl apply` computes
//! its patches from the v3 schemas and reads these as
//! `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`;
//! without them it would replace `containers` wholesale instead of merging
//! by `name`. `k8s-openapi`'s schemas do not carry them; the server's own
//! strategic merge patch already keeps upstream's per-field strategies
//! (`capstan_patch::table`), so the documents publish that same table.

use capstan_patch::table::{self, FieldStrategy};
use serde_json::{Map, Value};

/// The extension values for one strategy: (`x-kubernetes-patch-strategy`, merge key if any).
fn extensions(strategy: FieldStrategy) -> (&'static str, Option<&'static str>) {
    match strategy {
        FieldStrategy::MergeByKey(key) => ("merge", Some(key)),
        FieldStrategy::MergeByKeyRetainKeys(key) => ("merge,retainKeys", Some(key)),
        FieldStrategy::MergeSet => ("merge", None),
        FieldStrategy::RetainKeys => ("retainKeys", None),
        FieldStrategy::Replace => ("replace", None),
    }
}

pub(crate) fn annotate(schemas: &mut Map<String, Value>) {
    for (definition, field, strategy) in table::entries() {
        let Some(Value::Object(property)) = schemas
            .get_mut(*definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
        else {
            continue;
        };
        let (strategy, key) = extensions(*strategy);
        property.insert("x-kubernetes-patch-strategy".into(), Value::from(strategy));
        if let Some(key) = key {
            property.insert("x-kubernetes-patch-merge-key".into(), Value::from(key));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::definitions::DEFINITIONS;

    #[test]
    fn containers_merge_by_name() {
        let containers = &DEFINITIONS.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let strategy = &DEFINITIONS.schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert!(strategy.get("x-kubernetes-patch-merge-key").is_none());
        let volumes = &DEFINITIONS.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"];
        assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    }
}
