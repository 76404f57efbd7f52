//! The `/scale` subresource: an `autoscaling/v1 Scale` view of any object
//! with `spec.replicas` (Deployments, ReplicaSets, StatefulSets,
//! ReplicationControllers), used by `kubectl scale` and autoscalers.

use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::selector::LabelSelector;
use capstan_apimachinery::{ApiError, ResourceType};
use serde_json::{Value, json};

/// The Scale an object presents.
pub fn view(resource: &ResourceType, object: &Object) -> Result<Object, ApiError> {
    let mut metadata = json!({
        "name": meta::name(object),
        "uid": meta::uid(object),
        "resourceVersion": meta::resource_version(object),
        "creationTimestamp": meta::meta_str(object, "creationTimestamp"),
    });
    if resource.namespaced {
        metadata["namespace"] = meta::namespace(object).into();
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector(object)?,
        },
    }))
}

/// The label selector as a string: `spec.selector` is a LabelSelector for
/// apps kinds and a plain map for ReplicationControllers.
fn selector(object: &Object) -> Result<String, ApiError> {
    let Some(selector) = object.pointer("/spec/selector") else {
        return Ok(String::new());
    };
    let parsed = if selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some() {
        let typed = serde_json::from_value(selector.clone()).map_err(|e| ApiError::internal(e.to_string()))?;
        LabelSelector::from_meta(&typed)
    } else {
        let typed = json!({"matchLabels": selector});
        let typed = serde_json::from_value(typed).map_err(|e| ApiError::internal(e.to_string()))?;
        LabelSelector::from_meta(&typed)
    };
    parsed
        .map(|s| s.to_string())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `spec.replicas` of a Scale body, which must be a non-negative integer.
pub fn replicas_of(scale: &Object) -> Result<i64, ApiError> {
    match scale.pointer("/spec/replicas") {
        None => Ok(0),
        Some(value) => value.as_i64().filter(|r| *r >= 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "spec.replicas: Invalid value: {value}: must be greater than or equal to 0"
            ))
        }),
    }
}

/// `object` with `spec.replicas` set.
pub fn with_replicas(object: &Object, replicas: i64) -> Object {
    let mut object = object.clone();
    object["spec"]["replicas"] = replicas.into();
    object
}
