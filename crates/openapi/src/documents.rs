//! The served documents: the OpenAPI v3 index and one v3 document per group
//! version (plus `api`, `apis` and `apis/<group>`), and the single Swagger
//! 2.0 document. Each is rendered once, as compact JSON, with its hash.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use capstan_apimachinery::registry;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use crate::definitions::{DEFINITIONS, REF_PREFIX};
use crate::operations::{self, JSON_TYPES, Operation, Param, PathItem, Payload};

/// A rendered document.
pub(crate) struct Document {
    pub bytes: Arc<Vec<u8>>,
    /// Upper-case hex SHA-512 of the bytes, as upstream's hashes and ETags.
    pub hash: String,
}

impl Document {
    fn of(value: &Value) -> Document {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        let hash = hex_upper(&Sha512::digest(&bytes));
        Document {
            bytes: Arc::new(bytes),
            hash,
        }
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The v3 documents by path (`api/v1`, `apis/apps/v1`, ...) and their index.
pub(crate) struct V3 {
    pub docs: BTreeMap<String, Document>,
    pub index: Value,
    pub index_doc: Document,
}

pub(crate) static V3_DOCS: LazyLock<V3> = LazyLock::new(build_v3);
pub(crate) static V2_DOC: LazyLock<Document> = LazyLock::new(build_v2);

const V3_REF_PREFIX: &str = "#/components/schemas/";

fn info() -> Value {
    json!({"title": "Kubernetes", "version": "v1.33.0"})
}

/// The paths of one group version: its resource list and every resource.
fn group_version_paths(group: &str, version: &str) -> Vec<PathItem> {
    let mut paths = vec![operations::resources_path(group, version)];
    for r in registry::resources_of(group, version) {
        paths.extend(operations::resource_paths(r));
    }
    paths
}

/// Every document's path, in index order, with its paths.
fn all_documents() -> Vec<(String, Vec<PathItem>)> {
    let mut docs = vec![
        ("api".to_string(), vec![operations::core_versions_path()]),
        ("apis".to_string(), vec![operations::groups_path()]),
    ];
    for group in registry::groups() {
        if !group.name.is_empty() {
            docs.push((format!("apis/{}", group.name), vec![operations::group_path(group.name)]));
        }
        for version in &group.versions {
            let key = operations::prefix(group.name, version)
                .trim_start_matches('/')
                .to_string();
            docs.push((key, group_version_paths(group.name, version)));
        }
    }
    docs
}

fn build_v3() -> V3 {
    let docs: BTreeMap<String, Document> = all_documents()
        .into_iter()
        .map(|(key, paths)| (key, v3_document(&paths)))
        .collect();
    let entries: Map<String, Value> = docs
        .iter()
        .map(|(key, doc)| {
            let url = format!("/openapi/v3/{key}?hash={}", doc.hash);
            (key.clone(), json!({ "serverRelativeURL": url }))
        })
        .collect();
    let index = json!({ "paths": entries });
    let index_doc = Document::of(&index);
    V3 { docs, index, index_doc }
}

fn v3_document(paths: &[PathItem]) -> Document {
    let defs = &*DEFINITIONS;
    let names = defs.closure(paths.iter().flat_map(PathItem::payload_definitions));
    let schemas: Map<String, Value> = names
        .into_iter()
        .filter_map(|name| {
            let schema = v3_schema(defs.schemas.get(&name)?);
            Some((name, schema))
        })
        .collect();
    let paths: Map<String, Value> = paths.iter().map(|p| (p.path.clone(), v3_path(p))).collect();
    Document::of(&json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": bearer_token()},
        },
    }))
}

fn bearer_token() -> Value {
    json!({"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"})
}

/// A v2 schema in v3 form: references point into `components/schemas`,
/// and a reference with siblings (a field's own description) becomes
/// `allOf: [{$ref}]` beside them, as upstream writes it (v3 ignores
/// siblings of `$ref`; `kubectl explain` shows both descriptions).
fn v3_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), v3_schema(v))).collect();
            if let Some(target) = map.get("$ref").and_then(Value::as_str) {
                let target = target.replacen(REF_PREFIX, V3_REF_PREFIX, 1);
                out.remove("$ref");
                let reference = json!({ "$ref": target });
                if out.is_empty() {
                    return reference;
                }
                out.insert("allOf".to_string(), json!([reference]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(v3_schema).collect()),
        other => other.clone(),
    }
}

fn v3_ref(payload: &Payload) -> Value {
    match payload {
        Payload::Definition(name) => json!({ "$ref": format!("{V3_REF_PREFIX}{name}") }),
        Payload::Text => json!({"type": "string"}),
    }
}

fn v3_path(item: &PathItem) -> Value {
    let mut out = Map::new();
    if !item.params.is_empty() {
        out.insert("parameters".into(), item.params.iter().map(|p| v3_param(p)).collect());
    }
    for op in &item.ops {
        out.insert(op.method.into(), v3_operation(op));
    }
    Value::Object(out)
}

fn v3_param(param: &Param) -> Value {
    let mut out = json!({
        "name": param.name,
        "in": param.location,
        "description": param.description,
        "schema": {"type": param.ty, "uniqueItems": true},
    });
    if param.location == "path" {
        out["required"] = Value::Bool(true);
    }
    out
}

fn v3_operation(op: &Operation) -> Value {
    let mut out = common_operation(op);
    if !op.query.is_empty() {
        out["parameters"] = op.query.iter().map(|p| v3_param(p)).collect();
    }
    if let Some((payload, types)) = &op.body {
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({ "schema": v3_ref(payload) })))
            .collect();
        out["requestBody"] = json!({"content": content, "required": true});
    }
    let mut responses = Map::new();
    for code in success_codes(op) {
        let content: Map<String, Value> = response_types(&op.response)
            .iter()
            .map(|t| (t.to_string(), json!({ "schema": v3_ref(&op.response) })))
            .collect();
        responses.insert(code.into(), json!({"description": describe(code), "content": content}));
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    out["responses"] = Value::Object(responses);
    out
}

/// The parts of an operation both versions write the same way.
fn common_operation(op: &Operation) -> Value {
    let mut out = json!({
        "tags": [op.tag],
        "description": op.description,
        "operationId": op.id,
    });
    if let Some(action) = op.action {
        out["x-kubernetes-action"] = json!(action);
    }
    if let Some(gvk) = op.gvk {
        out["x-kubernetes-group-version-kind"] = json!({"group": gvk.group, "kind": gvk.kind, "version": gvk.version});
    }
    out
}

fn success_codes(op: &Operation) -> impl Iterator<Item = &'static str> {
    std::iter::once("200").chain(op.also.iter().copied())
}

fn describe(code: &str) -> &'static str {
    match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    }
}

fn response_types(payload: &Payload) -> &'static [&'static str] {
    match payload {
        Payload::Definition(_) => JSON_TYPES,
        Payload::Text => &["*/*"],
    }
}

fn build_v2() -> Document {
    let paths: Map<String, Value> = all_documents()
        .iter()
        .flat_map(|(_, paths)| paths)
        .map(|p| (p.path.clone(), v2_path(p)))
        .collect();
    Document::of(&json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": DEFINITIONS.schemas,
        "securityDefinitions": {"BearerToken": bearer_token()},
        "security": [{"BearerToken": []}],
    }))
}

fn v2_ref(payload: &Payload) -> Value {
    match payload {
        Payload::Definition(name) => json!({ "$ref": format!("{REF_PREFIX}{name}") }),
        Payload::Text => json!({"type": "string"}),
    }
}

fn v2_path(item: &PathItem) -> Value {
    let mut out = Map::new();
    if !item.params.is_empty() {
        out.insert("parameters".into(), item.params.iter().map(|p| v2_param(p)).collect());
    }
    for op in &item.ops {
        out.insert(op.method.into(), v2_operation(op));
    }
    Value::Object(out)
}

fn v2_param(param: &Param) -> Value {
    let mut out = json!({
        "name": param.name,
        "in": param.location,
        "description": param.description,
        "type": param.ty,
        "uniqueItems": true,
    });
    if param.location == "path" {
        out["required"] = Value::Bool(true);
    }
    out
}

fn v2_operation(op: &Operation) -> Value {
    let mut out = common_operation(op);
    let mut params: Vec<Value> = Vec::new();
    let consumes: &[&str] = match &op.body {
        Some((payload, types)) => {
            params.push(json!({"name": "body", "in": "body", "required": true, "schema": v2_ref(payload)}));
            types
        }
        None => &["*/*"],
    };
    params.extend(op.query.iter().map(|p| v2_param(p)));
    if !params.is_empty() {
        out["parameters"] = Value::Array(params);
    }
    out["consumes"] = json!(consumes);
    out["produces"] = json!(response_types(&op.response));
    out["schemes"] = json!(["https"]);
    let mut responses = Map::new();
    for code in success_codes(op) {
        responses.insert(
            code.into(),
            json!({"description": describe(code), "schema": v2_ref(&op.response)}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    out["responses"] = Value::Object(responses);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3(path: &str) -> Value {
        let doc = V3_DOCS
            .docs
            .get(path)
            .unwrap_or_else(|| panic!("no v3 document {path}"));
        serde_json::from_slice(&doc.bytes).unwrap()
    }

    #[test]
    fn index_lists_every_group_version_with_its_hash() {
        let index = &V3_DOCS.index["paths"];
        for key in [
            "api",
            "apis",
            "api/v1",
            "apis/apps",
            "apis/apps/v1",
            "apis/autoscaling/v2",
        ] {
            let url = index[key]["serverRelativeURL"].as_str().unwrap_or_default();
            let hash = &V3_DOCS.docs[key].hash;
            assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
            assert_eq!(hash.len(), 128);
        }
        assert!(index.get("apis/apps/v1beta1").is_none());
    }

    #[test]
    fn v3_references_point_into_components() {
        let doc = v3("apis/apps/v1");
        let schemas = &doc["components"]["schemas"];
        let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(
            strategy["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}])
        );
        assert!(
            strategy["description"]
                .as_str()
                .is_some_and(|d| d.contains("deployment strategy"))
        );
        assert!(schemas.get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").is_some());
        assert!(schemas.get("io.k8s.api.autoscaling.v1.Scale").is_some());
        assert!(schemas.get("io.k8s.api.batch.v1.Job").is_none());
        let text = String::from_utf8_lossy(&V3_DOCS.docs["apis/apps/v1"].bytes).into_owned();
        assert!(!text.contains("#/definitions/"));
    }

    #[test]
    fn v3_patch_operation_names_its_kind_and_field_validation() {
        let doc = v3("apis/apps/v1");
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params = patch["parameters"].as_array().cloned().unwrap_or_default();
        let validation = params.iter().find(|p| p["name"] == "fieldValidation");
        assert_eq!(validation.map(|p| &p["in"]), Some(&json!("query")));
        assert_eq!(validation.map(|p| &p["schema"]["type"]), Some(&json!("string")));
        let content = &patch["requestBody"]["content"];
        for ty in operations::PATCH_TYPES {
            assert_eq!(
                content[*ty]["schema"]["$ref"],
                "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
            );
        }
    }

    #[test]
    fn v2_document_has_definitions_and_paths() {
        let doc: Value = serde_json::from_slice(&V2_DOC.bytes).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert_eq!(
            pod["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        let names: Vec<&Value> = patch["parameters"]
            .as_array()
            .map(|p| p.iter().map(|p| &p["name"]).collect())
            .unwrap_or_default();
        assert!(names.contains(&&json!("fieldValidation")));
        assert!(names.contains(&&json!("body")));
        assert!(
            doc["paths"]
                .get("/apis/apps/v1/namespaces/{namespace}/deployments")
                .is_some()
        );
    }
}
