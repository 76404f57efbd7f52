//! The schema definitions, generated once from `k8s-openapi`'s `JsonSchema`
//! impls and shaped as upstream's: named `io.k8s.api.apps.v1.Deployment`,
//! referring to each other as `#/definitions/<name>` (Swagger 2.0 form; the
//! v3 documents rewrite the references), each kind carrying
//! `x-kubernetes-group-version-kind`.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use capstan_apimachinery::registry::{self, RESOURCES};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::catalog::{self, Gvk};

pub(crate) const REF_PREFIX: &str = "#/definitions/";

/// All definitions, with indexes by kind and by reference.
pub(crate) struct Definitions {
    pub schemas: Map<String, Value>,
    /// Definition name of each kind, list kinds included.
    pub by_gvk: HashMap<Gvk, String>,
    /// The definitions each definition refers to directly.
    refs: HashMap<String, Vec<String>>,
}

pub(crate) static DEFINITIONS: LazyLock<Definitions> = LazyLock::new(Definitions::build);

impl Definitions {
    fn build() -> Definitions {
        let mut settings = SchemaSettings::draft07();
        settings.transforms.clear();
        settings.meta_schema = None;
        let mut generator = settings.into_generator();
        let mut by_gvk = HashMap::new();
        for entry in catalog::entries() {
            let name = (entry.register)(&mut generator).into_owned();
            if let Some(gvk) = entry.gvk {
                by_gvk.insert(gvk, name);
            }
        }
        let mut schemas = generator.take_definitions(false);
        add_lists(&mut schemas, &mut by_gvk);
        mark_kinds(&mut schemas, &by_gvk);
        mark_shared_kinds(&mut schemas);
        crate::patch_meta::annotate(&mut schemas);
        let refs = schemas.iter().map(|(name, s)| (name.clone(), refs_of(s))).collect();
        Definitions { schemas, by_gvk, refs }
    }

    /// The definition of a kind.
    pub fn of_kind(&self, gvk: &Gvk) -> Option<&str> {
        self.by_gvk.get(gvk).map(String::as_str)
    }

    /// The named definitions and every definition they lead to.
    pub fn closure<'a>(&self, roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = roots.into_iter().map(str::to_string).collect();
        while let Some(name) = todo.pop() {
            if !self.schemas.contains_key(&name) || !seen.insert(name.clone()) {
                continue;
            }
            todo.extend(self.refs.get(&name).into_iter().flatten().cloned());
        }
        seen
    }
}

/// `io.k8s.api.apps.v1.Deployment` → `io.k8s.api.apps.v1.DeploymentList`.
fn list_name(item: &str, list_kind: &str) -> String {
    match item.rsplit_once('.') {
        Some((package, _)) => format!("{package}.{list_kind}"),
        None => list_kind.to_string(),
    }
}

/// `k8s-openapi` has no schema for lists (they are one generic type), so
/// each stored kind's list is written here as upstream has it.
fn add_lists(schemas: &mut Map<String, Value>, by_gvk: &mut HashMap<Gvk, String>) {
    for r in RESOURCES.iter().filter(|r| !r.list_kind.is_empty()) {
        let item_gvk = Gvk {
            group: r.group,
            version: r.version,
            kind: r.kind,
        };
        let Some(item) = by_gvk.get(&item_gvk) else { continue };
        let name = list_name(item, r.list_kind);
        schemas.insert(name.clone(), list_schema(r.kind, r.list_kind, item));
        let list_gvk = Gvk {
            kind: r.list_kind,
            ..item_gvk
        };
        by_gvk.insert(list_gvk, name);
    }
}

fn list_schema(kind: &str, list_kind: &str, item: &str) -> Value {
    json!({
        "description": format!("{list_kind} is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": API_VERSION_DOC, "type": "string"},
            "items": {
                "description": format!("items is the list of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{REF_PREFIX}{item}")},
            },
            "kind": {"description": KIND_DOC, "type": "string"},
            "metadata": {
                "$ref": format!("{REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            },
        },
    })
}

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// Adds `x-kubernetes-group-version-kind` to every kind's definition, and
/// drops the `metadata` that `k8s-openapi` lists as required (upstream
/// does not).
fn mark_kinds(schemas: &mut Map<String, Value>, by_gvk: &HashMap<Gvk, String>) {
    let mut sorted: Vec<(&Gvk, &String)> = by_gvk.iter().collect();
    sorted.sort();
    for (gvk, name) in sorted {
        if let Some(Value::Object(schema)) = schemas.get_mut(name) {
            push_gvk(schema, gvk);
            unrequire_metadata(schema);
        }
    }
}

fn push_gvk(schema: &mut Map<String, Value>, gvk: &Gvk) {
    let entry = json!({"group": gvk.group, "kind": gvk.kind, "version": gvk.version});
    let list = schema
        .entry("x-kubernetes-group-version-kind")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        list.push(entry);
    }
}

fn unrequire_metadata(schema: &mut Map<String, Value>) {
    let Some(Value::Array(required)) = schema.get_mut("required") else {
        return;
    };
    required.retain(|field| field != "metadata");
    if required.is_empty() {
        schema.remove("required");
    }
}

/// `DeleteOptions` and `WatchEvent` are kinds of every group version;
/// `Status` of the core one.
fn mark_shared_kinds(schemas: &mut Map<String, Value>) {
    for group in registry::groups() {
        for version in &group.versions {
            for (name, kind) in [
                (catalog::DELETE_OPTIONS, "DeleteOptions"),
                (catalog::WATCH_EVENT, "WatchEvent"),
            ] {
                let gvk = Gvk {
                    group: group.name,
                    version,
                    kind,
                };
                if let Some(Value::Object(schema)) = schemas.get_mut(name) {
                    push_gvk(schema, &gvk);
                }
            }
        }
    }
    if let Some(Value::Object(schema)) = schemas.get_mut(catalog::STATUS) {
        let gvk = Gvk {
            group: "",
            version: "v1",
            kind: "Status",
        };
        push_gvk(schema, &gvk);
    }
}

/// The definitions a schema refers to, each once.
fn refs_of(schema: &Value) -> Vec<String> {
    let mut found = BTreeSet::new();
    collect_refs(schema, &mut found);
    found.into_iter().collect()
}

fn collect_refs(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(REF_PREFIX))
            {
                found.insert(name.to_string());
            }
            map.values().for_each(|v| collect_refs(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk(group: &'static str, version: &'static str, kind: &'static str) -> Gvk {
        Gvk { group, version, kind }
    }

    #[test]
    fn names_are_upstream_names() {
        let defs = &*DEFINITIONS;
        assert_eq!(
            defs.of_kind(&gvk("apps", "v1", "Deployment")),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        assert_eq!(
            defs.of_kind(&gvk("apps", "v1", "DeploymentList")),
            Some("io.k8s.api.apps.v1.DeploymentList")
        );
        assert_eq!(defs.of_kind(&gvk("", "v1", "Pod")), Some("io.k8s.api.core.v1.Pod"));
        assert_eq!(
            defs.of_kind(&gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition")),
            Some("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition")
        );
        for shared in [
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            "io.k8s.apimachinery.pkg.api.resource.Quantity",
            catalog::DELETE_OPTIONS,
            catalog::STATUS,
            catalog::PATCH,
        ] {
            assert!(defs.schemas.contains_key(shared), "{shared} missing");
        }
    }

    #[test]
    fn every_reference_resolves() {
        let defs = &*DEFINITIONS;
        for (name, refs) in &defs.refs {
            for target in refs {
                assert!(defs.schemas.contains_key(target), "{name} refers to missing {target}");
            }
        }
    }

    #[test]
    fn kinds_carry_their_group_version_kind() {
        let defs = &*DEFINITIONS;
        let deployment = &defs.schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert!(
            deployment.get("required").is_none(),
            "metadata is not required upstream"
        );
        let list = &defs.schemas["io.k8s.api.core.v1.PodList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "PodList", "version": "v1"}])
        );
        assert_eq!(
            list["properties"]["items"]["items"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Pod"
        );
        let delete_options = defs.schemas[catalog::DELETE_OPTIONS]["x-kubernetes-group-version-kind"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(delete_options > 10);
    }

    #[test]
    fn closure_follows_references() {
        let defs = &*DEFINITIONS;
        let closure = defs.closure(["io.k8s.api.apps.v1.Deployment"]);
        assert!(closure.contains("io.k8s.api.apps.v1.DeploymentStrategy"));
        assert!(closure.contains("io.k8s.api.core.v1.Container"));
        assert!(closure.contains("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(!closure.contains("io.k8s.api.batch.v1.Job"));
    }
}
