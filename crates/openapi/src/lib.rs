//! The OpenAPI documents of the served kinds, and strict field validation
//! against them.
//!
//! kubectl needs OpenAPI for three things: `kubectl explain` reads the
//! schemas (v3, falling back to v2); `apply`, `create -f`, `replace` and
//! `edit` validate with `--validate=strict` and, when a kind's v3 PATCH
//! operation lists the `fieldValidation` query parameter, leave the check to
//! the server by sending `?fieldValidation=Strict`; and `apply` computes its
//! patches from the v3 schemas. The server then has to reject unknown fields
//! itself, with upstream's `strict decoding error: unknown field "spec.foo"`.
//!
//! How it fits together:
//! - `catalog` ties each kind of the resource registry
//!   (`capstan_apimachinery::registry`) to the `k8s-openapi` type whose
//!   `schemars::JsonSchema` impl describes it (upstream's descriptions and
//!   definition names included);
//! - `definitions` generates all definitions once (Swagger 2.0 form, plus
//!   the list kinds `k8s-openapi` has no schema for, plus
//!   `x-kubernetes-group-version-kind` and, from `patch_meta`, the
//!   strategic-merge-patch extensions);
//! - `operations` lists each resource's paths and operations as upstream
//!   does; `documents` renders them as one v3 document per group version and
//!   one v2 document, each hashed;
//! - `strict` compiles the definitions into a compact shape tree for
//!   [`unknown_fields`].
//!
//! Everything is built on first use and cached for the life of the process.
//! In a release build the definitions and the validation tree take about
//! 10 ms, the v3 documents about 100 ms and the v2 document about 90 ms
//! (debug builds: about ten times that); call [`warm_up`] from a background
//! thread (`spawn_blocking`) at start so that no request waits.

mod catalog;
mod definitions;
mod documents;
mod operations;
mod patch_meta;
mod strict;

use std::sync::Arc;

use serde_json::Value;

/// `GET /openapi/v3`: every document's path with its hash-pinned URL,
/// `{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=..."}, ...}}`.
pub fn v3_index() -> Value {
    documents::V3_DOCS.index.clone()
}

/// [`v3_index`] as JSON bytes, with their hash (for an ETag).
pub fn v3_index_bytes() -> (Arc<Vec<u8>>, String) {
    let doc = &documents::V3_DOCS.index_doc;
    (doc.bytes.clone(), doc.hash.clone())
}

/// `GET /openapi/v3/<path>`: the document of `api/v1`, `apis/<group>/<version>`,
/// `api`, `apis` or `apis/<group>` as JSON bytes, with its hash (the
/// `?hash=` of its URL). A leading `/` and a query string are ignored.
pub fn v3_document(path: &str) -> Option<(Arc<Vec<u8>>, String)> {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let doc = documents::V3_DOCS.docs.get(path)?;
    Some((doc.bytes.clone(), doc.hash.clone()))
}

/// `GET /openapi/v2`: the Swagger 2.0 document, JSON.
///
/// Note that client-go's `OpenAPISchema()` asks for protobuf and decodes
/// whatever comes back as protobuf, so kubectl cannot read this JSON; it
/// does not need to while the v3 documents are served.
pub fn v2_document() -> Arc<Vec<u8>> {
    documents::V2_DOC.bytes.clone()
}

/// The hash of [`v2_document`], for an ETag.
pub fn v2_hash() -> String {
    documents::V2_DOC.hash.clone()
}

/// Builds every document and the validation tree now.
pub fn warm_up() {
    std::sync::LazyLock::force(&documents::V3_DOCS);
    std::sync::LazyLock::force(&documents::V2_DOC);
    std::sync::LazyLock::force(&strict::TREE);
}

/// Whether there is a schema for the kind (served kinds and their lists;
/// custom resources have none here).
pub fn knows_kind(group: &str, version: &str, kind: &str) -> bool {
    strict::TREE.root(group, version, kind).is_some()
}

/// The fields of `object` that the kind's schema does not know, as upstream
/// names them: `foo`, `spec.template.spec.containers[0].foo`,
/// `metadata.labels` entries as `metadata.labels.key`. Fields under
/// free-form values (`RawExtension`, `FieldsV1`, `x-kubernetes-preserve-unknown-fields`)
/// are never unknown. Empty for kinds without a schema.
pub fn unknown_fields(group: &str, version: &str, kind: &str, object: &Value) -> Vec<String> {
    let tree = &*strict::TREE;
    match tree.root(group, version, kind) {
        Some(root) => tree.unknown_fields(root, object),
        None => Vec::new(),
    }
}

/// Upstream's strict decoding error for these unknown fields:
/// `strict decoding error: unknown field "a", unknown field "b"`.
pub fn strict_error_message(unknown: &[String]) -> String {
    let fields: Vec<String> = unknown
        .iter()
        .map(|field| format!("unknown field {}", Value::String(field.clone())))
        .collect();
    format!("strict decoding error: {}", fields.join(", "))
}

/// The message upstream answers a create or update with unknown fields:
/// `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: ...`.
pub fn decode_error_message(kind: &str, version: &str, unknown: &[String]) -> String {
    format!(
        "{kind} in version {} cannot be handled as a {kind}: {}",
        Value::String(version.to_string()),
        strict_error_message(unknown)
    )
}
