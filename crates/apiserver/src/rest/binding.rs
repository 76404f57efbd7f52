//! `pods/<name>/binding`: how a scheduler assigns a pod to a node.
//!
//! As upstream, a binding succeeds only for a pod that is not yet assigned
//! and not being deleted; it sets `spec.nodeName` and the `PodScheduled`
//! condition in one write, so no observer sees one without the other.

use axum::response::Response;
use capstan_apimachinery::ApiError;
use capstan_apimachinery::meta::{self, Object};
use http::StatusCode;
use serde_json::{Value, json};

use super::Call;
use crate::codec;

/// How often to retry when the pod changed between read and write.
const MAX_RETRIES: usize = 16;

pub async fn bind(call: &Call<'_>) -> Result<Response, ApiError> {
    let binding = codec::decode_body(call.headers, &call.body)?;
    let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::bad_request("binding target name is required"));
    }
    let key = call.key();
    for _ in 0..MAX_RETRIES {
        let pod = call.server.objects.get(key).await?;
        let revision = meta::resource_version(&pod).parse().unwrap_or_default();
        let bound =
            assign(&pod, &binding, node).map_err(|why| ApiError::conflict_because(key.resource, key.name, &why))?;
        match call.server.objects.update(key, bound, revision).await {
            Ok(_) => {
                return Ok(codec::json(StatusCode::CREATED, &codec::success_status(json!({}))));
            }
            Err(err) if err.code == 409 => continue,
            Err(err) => return Err(err),
        }
    }
    Err(ApiError::conflict(key.resource, key.name))
}

/// The pod bound to `node`, or why it cannot be.
fn assign(pod: &Object, binding: &Object, node: &str) -> Result<Object, String> {
    if meta::is_deleting(pod) {
        return Err(format!(
            "pod {} is being deleted, cannot be assigned to a host",
            meta::name(pod)
        ));
    }
    let current = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
    if !current.is_empty() {
        return Err(format!(
            "pod {} is already assigned to node {current:?}",
            meta::name(pod)
        ));
    }
    let mut pod = pod.clone();
    pod["spec"]["nodeName"] = node.into();
    if let Some(annotations) = binding.pointer("/metadata/annotations").and_then(Value::as_object) {
        let meta = meta::metadata_mut(&mut pod);
        let existing = meta.entry("annotations").or_insert_with(|| json!({}));
        for (k, v) in annotations {
            existing[k] = v.clone();
        }
    }
    set_scheduled(&mut pod);
    Ok(pod)
}

/// Sets `PodScheduled=True`, replacing an earlier `False`.
fn set_scheduled(pod: &mut Object) {
    let condition = json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": meta::now(),
    });
    let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let mut conditions: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
    conditions.push(condition);
    pod["status"]["conditions"] = Value::Array(conditions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_once() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {}, "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}});
        let binding = json!({"metadata": {"annotations": {"a": "b"}}, "target": {"name": "n1"}});
        let bound = assign(&pod, &binding, "n1").unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert_eq!(bound["metadata"]["annotations"]["a"], "b");
        let conditions = bound["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0]["status"], "True");
        let again = assign(&bound, &binding, "n2").unwrap_err();
        assert_eq!(again, "pod p is already assigned to node \"n1\"");
    }
}
