//! Admission: checks and defaults applied to writes after authorization
//! and before storage.
//!
//! The plugins are upstream's, in upstream's order, for creates:
//! `NamespaceLifecycle` (no new content in a namespace that does not exist
//! or is being deleted), [`serviceaccount`] (a pod's account and its token
//! volume), `DefaultTolerationSeconds` (pods tolerate a not-ready or
//! unreachable node for 300 s before eviction) and `Priority` (a pod's
//! `priorityClassName` resolves to `spec.priority`). Webhooks plug in here
//! as they are built.

use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, ResourceType, registry};
use serde_json::{Value, json};

pub mod serviceaccount;

use crate::ApiServer;
use crate::objects::{ObjectKey, prefix};

/// Upstream's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`.
const DEFAULT_TOLERATION_SECONDS: i64 = 300;
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// Runs the admission chain for a create; mutating plugins may change `object`.
pub async fn admit_create(
    server: &ApiServer,
    resource: &'static ResourceType,
    object: &mut Object,
) -> Result<(), ApiError> {
    namespace_lifecycle(server, resource, object).await?;
    if resource.group.is_empty() && resource.plural == "pods" {
        serviceaccount::admit(server, object);
        default_toleration_seconds(object);
        priority(server, resource, object).await?;
    }
    Ok(())
}

async fn namespace_lifecycle(
    server: &ApiServer,
    resource: &'static ResourceType,
    object: &Object,
) -> Result<(), ApiError> {
    if !resource.namespaced {
        return Ok(());
    }
    let name = meta::namespace(object);
    let namespaces = lookup("", "namespaces")?;
    match cached_or_stored(server, namespaces, name).await? {
        None => Err(ApiError::not_found(namespaces, name)),
        Some(ns) if meta::is_deleting(&ns) => Err(ApiError::namespace_terminating(name)),
        Some(_) => Ok(()),
    }
}

/// A cluster-scoped object, from the watch cache when it is there: an
/// object created a moment ago may not be yet, so a miss asks the store.
async fn cached_or_stored(
    server: &ApiServer,
    resource: &'static ResourceType,
    name: &str,
) -> Result<Option<Object>, ApiError> {
    let key = ObjectKey {
        resource,
        namespace: None,
        name,
    };
    match server.cache.get(&key.key()) {
        Some(object) => Ok(Some((*object).clone())),
        None => server.objects.try_get(key).await,
    }
}

fn lookup(group: &str, plural: &str) -> Result<&'static ResourceType, ApiError> {
    registry::lookup(group, "v1", plural).ok_or_else(|| ApiError::internal(format!("no {plural} in the registry")))
}

/// Adds the NoExecute tolerations for not-ready and unreachable nodes a pod
/// does not already have, so a failed node's pods are evicted after 300 s.
fn default_toleration_seconds(pod: &mut Object) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for taint in [NOT_READY_TAINT, UNREACHABLE_TAINT] {
        if !list.iter().any(|toleration| tolerates_no_execute(toleration, taint)) {
            list.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

/// Whether a pod already has a toleration for the NoExecute taint `key`:
/// upstream counts any with that key or none, and that effect or none.
fn tolerates_no_execute(toleration: &Value, key: &str) -> bool {
    let field = |name| toleration.get(name).and_then(Value::as_str).unwrap_or("");
    matches!(field("effect"), "" | "NoExecute") && (field("key").is_empty() || field("key") == key)
}

/// Resolves `priorityClassName` (or the global default class) to
/// `spec.priority` and `spec.preemptionPolicy`.
async fn priority(server: &ApiServer, pods: &'static ResourceType, pod: &mut Object) -> Result<(), ApiError> {
    let name = meta::name(pod).to_string();
    let class_name = pod["spec"]["priorityClassName"].as_str().unwrap_or("").to_string();
    let class = if class_name.is_empty() {
        global_default_class(server)?
    } else {
        let classes = lookup("scheduling.k8s.io", "priorityclasses")?;
        let Some(class) = cached_or_stored(server, classes, &class_name).await? else {
            let why = format!("no PriorityClass with name {class_name} was found");
            return Err(ApiError::admission_forbidden(pods, &name, &why));
        };
        Some(class)
    };
    let value = class.as_ref().and_then(|c| c["value"].as_i64()).unwrap_or(0);
    if let Some(given) = pod["spec"]["priority"].as_i64().filter(|given| *given != value) {
        let why = format!(
            "the integer value of priority ({given}) must not be provided in pod spec; \
             priority admission controller computed {value} from the given PriorityClass name"
        );
        return Err(ApiError::admission_forbidden(pods, &name, &why));
    }
    let spec = &mut pod["spec"];
    spec["priority"] = json!(value);
    if let Some(class) = class {
        spec["priorityClassName"] = class["metadata"]["name"].clone();
        if spec.get("preemptionPolicy").is_none_or(Value::is_null) {
            spec["preemptionPolicy"] = class
                .get("preemptionPolicy")
                .cloned()
                .unwrap_or_else(|| json!("PreemptLowerPriority"));
        }
    }
    Ok(())
}

/// The PriorityClass marked `globalDefault`; the lowest-valued one if
/// several are (upstream's choice when a race let two through).
fn global_default_class(server: &ApiServer) -> Result<Option<Object>, ApiError> {
    let classes = lookup("scheduling.k8s.io", "priorityclasses")?;
    let (all, _) = server.cache.list(&prefix(classes, None));
    Ok(all
        .iter()
        .filter(|class| class["globalDefault"].as_bool() == Some(true))
        .min_by_key(|class| class["value"].as_i64().unwrap_or(0))
        .map(|class| (**class).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tolerations(pod: &Object) -> Vec<(String, Option<i64>)> {
        pod["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or("").to_string(),
                    t["tolerationSeconds"].as_i64(),
                )
            })
            .collect()
    }

    #[test]
    fn adds_both_default_tolerations() {
        let mut pod = json!({"spec": {"containers": []}});
        default_toleration_seconds(&mut pod);
        assert_eq!(
            tolerations(&pod),
            vec![
                (NOT_READY_TAINT.to_string(), Some(300)),
                (UNREACHABLE_TAINT.to_string(), Some(300))
            ]
        );
    }

    #[test]
    fn keeps_a_pods_own_toleration_for_the_taint() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
        ]}});
        default_toleration_seconds(&mut pod);
        assert_eq!(
            tolerations(&pod),
            vec![
                (UNREACHABLE_TAINT.to_string(), Some(2)),
                (NOT_READY_TAINT.to_string(), Some(300))
            ]
        );
    }

    #[test]
    fn a_tolerate_everything_toleration_needs_no_defaults() {
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_toleration_seconds(&mut pod);
        assert_eq!(tolerations(&pod), vec![(String::new(), None)]);
    }

    #[test]
    fn a_no_schedule_toleration_does_not_count() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoSchedule"},
        ]}});
        default_toleration_seconds(&mut pod);
        assert_eq!(tolerations(&pod).len(), 3);
    }
}
