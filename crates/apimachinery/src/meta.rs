//! Reading and writing `metadata` on objects of any kind.
//!
//! The API server handles every kind with one code path, so it works on
//! objects as JSON values rather than typed structs; these accessors are the
//! typed window onto the one part every object shares, `ObjectMeta`.

use serde_json::{Map, Value};

/// An object of any kind, as JSON.
pub type Object = Value;

/// The `metadata` map of an object, created if missing.
pub fn metadata_mut(object: &mut Object) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    let map = object.as_object_mut().expect("just made an object");
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("just made an object")
}

/// A string field of `metadata`, or "" when absent.
pub fn meta_str<'a>(object: &'a Object, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name(object: &Object) -> &str {
    meta_str(object, "name")
}

pub fn namespace(object: &Object) -> &str {
    meta_str(object, "namespace")
}

pub fn uid(object: &Object) -> &str {
    meta_str(object, "uid")
}

pub fn resource_version(object: &Object) -> &str {
    meta_str(object, "resourceVersion")
}

/// Sets (or with `None`, removes) a `metadata` field.
pub fn set_meta(object: &mut Object, field: &str, value: Option<Value>) {
    let meta = metadata_mut(object);
    match value {
        Some(v) => {
            meta.insert(field.to_string(), v);
        }
        None => {
            meta.remove(field);
        }
    }
}

/// `metadata.labels` as a map (empty when absent or malformed).
pub fn labels(object: &Object) -> Map<String, Value> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// `metadata.finalizers` (empty when absent).
pub fn finalizers(object: &Object) -> Vec<String> {
    object
        .get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn is_deleting(object: &Object) -> bool {
    !meta_str(object, "deletionTimestamp").is_empty()
}

/// Sets `apiVersion` and `kind`, as objects carry them on the wire.
pub fn set_type(object: &mut Object, api_version: &str, kind: &str) {
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), kind.into());
    }
}

/// The current time as upstream serializes `metav1.Time`: RFC 3339, whole seconds, UTC.
pub fn now() -> String {
    format_time(jiff::Timestamp::now())
}

/// A timestamp as upstream serializes `metav1.Time` (sub-seconds dropped).
pub fn format_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_metadata() {
        let mut obj = json!({"metadata": {"name": "a", "labels": {"app": "web"}, "finalizers": ["x"]}});
        assert_eq!(name(&obj), "a");
        assert_eq!(namespace(&obj), "");
        assert_eq!(labels(&obj)["app"], "web");
        assert_eq!(finalizers(&obj), vec!["x"]);
        set_meta(&mut obj, "namespace", Some("default".into()));
        assert_eq!(namespace(&obj), "default");
        set_meta(&mut obj, "namespace", None);
        assert_eq!(namespace(&obj), "");
        let mut bare = json!(null);
        set_meta(&mut bare, "name", Some("b".into()));
        assert_eq!(name(&bare), "b");
    }

    #[test]
    fn time_is_whole_seconds_utc() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }
}
