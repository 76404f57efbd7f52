//! How objects change on create and update, for every kind: upstream's
//! "REST strategies" (`PrepareForCreate`, `PrepareForUpdate`, generation,
//! status handling) as data-driven rules instead of a type per kind.
//!
//! The rules that matter to clients:
//! - the server owns `uid`, `creationTimestamp`, `generation`,
//!   `resourceVersion` and the deletion fields; clients cannot set them;
//! - for kinds with a `status` subresource, writes to the object ignore
//!   `status` and writes to `/status` ignore everything else, so
//!   controllers and users never overwrite each other;
//! - `generation` counts changes to the desired state (everything outside
//!   `metadata` and `status`), which is what `observedGeneration` compares to.

use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, FieldError, ResourceType};
use serde_json::{Value, json};

/// Fields of `metadata` only the server writes.
const SERVER_OWNED_META: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
    "selfLink",
];

/// Fields of `metadata` a `/status` write cannot change (upstream's
/// `ResetObjectMetaForStatus`).
const KEPT_ON_STATUS_UPDATE: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// Fills in what the server owns on a new object and checks that it is
/// addressed where it is sent.
pub fn prepare_for_create(
    resource: &'static ResourceType,
    object: &mut Object,
    namespace: Option<&str>,
) -> Result<(), ApiError> {
    check_type(resource, object)?;
    check_namespace(resource, object, namespace)?;
    generate_name(object);
    let meta = meta::metadata_mut(object);
    for field in SERVER_OWNED_META {
        meta.remove(*field);
    }
    meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
    meta.insert("creationTimestamp".into(), meta::now().into());
    if has_generation(resource) {
        meta.insert("generation".into(), 1.into());
    }
    if let Some(status) = initial_status(resource, object) {
        object["status"] = status;
    }
    if resource.kind == "Namespace" {
        // The namespace controller finalizes every namespace before it goes.
        object["spec"]["finalizers"] = json!(["kubernetes"]);
    }
    if resource.kind == "Job" {
        generate_job_selector(object);
    }
    if resource.kind == "DaemonSet" {
        daemon_set_template_generation(object, None);
    }
    server_labels(resource, object);
    Ok(())
}

/// Upstream's DaemonSet `spec.templateGeneration`, which apps/v1 carries as
/// the annotation `deprecated.daemonset.template.generation`: 1 at
/// creation, one more each time the pod template changes, never set by
/// clients. The daemonset controller labels pods with it.
fn daemon_set_template_generation(new: &mut Object, old: Option<&Object>) {
    const KEY: &str = "deprecated.daemonset.template.generation";
    let generation = old.map_or(1, |old| {
        let annotations = old.pointer("/metadata/annotations");
        let previous = annotations
            .and_then(|a| a.get(KEY))
            .and_then(Value::as_str)
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(0);
        previous + i64::from(new.pointer("/spec/template") != old.pointer("/spec/template"))
    });
    let annotations = meta::metadata_mut(new)
        .entry("annotations")
        .or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[KEY] = generation.to_string().into();
}

/// Upstream's Job selector generation: unless `manualSelector` is set, a
/// Job selects its pods by its own UID, and its template carries the labels
/// (new and legacy names) that select them.
fn generate_job_selector(job: &mut Object) {
    if job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) || !job["spec"].is_object() {
        return;
    }
    let uid = meta::uid(job).to_string();
    let name = meta::name(job).to_string();
    job["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let template = &mut job["spec"]["template"];
    if !template.is_object() {
        *template = json!({});
    }
    let labels = meta::metadata_mut(template)
        .entry("labels")
        .or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels[key] = value.as_str().into();
    }
}

/// Labels the server maintains: every Namespace carries its own name as
/// `kubernetes.io/metadata.name`, so selectors can pick namespaces by name.
fn server_labels(resource: &ResourceType, object: &mut Object) {
    if resource.kind != "Namespace" {
        return;
    }
    let name = meta::name(object).to_string();
    let meta = meta::metadata_mut(object);
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels["kubernetes.io/metadata.name"] = name.into();
}

/// Carries over what a write cannot change from `old` into `new`.
pub fn prepare_for_update(
    resource: &'static ResourceType,
    subresource: Option<&str>,
    new: &mut Object,
    old: &Object,
) -> Result<(), ApiError> {
    check_type(resource, new)?;
    if meta::name(new) != meta::name(old) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta::name(new),
            meta::name(old)
        )));
    }
    let uid = meta::uid(new);
    if !uid.is_empty() && uid != meta::uid(old) {
        return Err(ApiError::conflict_because(
            resource,
            meta::name(old),
            &format!(
                "Precondition failed: UID in precondition: {}, UID in object meta: {uid}",
                meta::uid(old)
            ),
        ));
    }
    if subresource == Some("status") {
        keep_all_but_status(new, old);
    } else if resource.subresource("status").is_some() {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => drop_field(new, "status"),
        }
    }
    copy_meta(new, old, SERVER_OWNED_META);
    if resource.kind == "DaemonSet" && subresource.is_none() {
        daemon_set_template_generation(new, Some(old));
    }
    server_labels(resource, new);
    if has_generation(resource) {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let bumped = if spec_changed(new, old) {
            generation + 1
        } else {
            generation
        };
        meta::set_meta(new, "generation", Some(bumped.into()));
    }
    Ok(())
}

/// A `/status` write changes `status` and nothing else.
fn keep_all_but_status(new: &mut Object, old: &Object) {
    let status = new.get("status").cloned();
    let new_meta = new.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut merged = old.clone();
    match status {
        Some(status) => merged["status"] = status,
        None => drop_field(&mut merged, "status"),
    }
    // Non-status metadata changes other than those listed are kept, as upstream.
    merged["metadata"] = new_meta;
    copy_meta(&mut merged, old, KEPT_ON_STATUS_UPDATE);
    *new = merged;
}

fn copy_meta(new: &mut Object, old: &Object, fields: &[&str]) {
    for field in fields {
        let value = old.get("metadata").and_then(|m| m.get(*field)).cloned();
        meta::set_meta(new, field, value);
    }
}

fn drop_field(object: &mut Object, field: &str) {
    if let Some(map) = object.as_object_mut() {
        map.remove(field);
    }
}

/// Whether anything outside `metadata`, `status`, `kind` and `apiVersion` differs.
fn spec_changed(new: &Object, old: &Object) -> bool {
    let desired = |o: &Object| -> Vec<(String, Value)> {
        o.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "kind" | "apiVersion"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    desired(new) != desired(old)
}

/// Kinds with a desired state track `generation` (upstream sets it for
/// these; ConfigMaps, Secrets, Events and the like have none).
fn has_generation(resource: &ResourceType) -> bool {
    resource.subresource("status").is_some()
        || matches!(
            resource.kind,
            "PodTemplate"
                | "NetworkPolicy"
                | "PriorityClass"
                | "StorageClass"
                | "IngressClass"
                | "RuntimeClass"
                | "MutatingWebhookConfiguration"
                | "ValidatingWebhookConfiguration"
                | "ValidatingAdmissionPolicyBinding"
                | "ClusterRole"
                | "Role"
        )
}

/// The status a new object starts with: clients cannot create objects that
/// claim progress. Nodes keep theirs — the kubelet registers with status.
fn initial_status(resource: &ResourceType, object: &Object) -> Option<Value> {
    resource.subresource("status")?;
    Some(match resource.kind {
        "Node" | "CustomResourceDefinition" | "CertificateSigningRequest" => return None,
        "Pod" => json!({"phase": "Pending", "qosClass": qos_class(object)}),
        "Namespace" => json!({"phase": "Active"}),
        "Service" => json!({"loadBalancer": {}}),
        "PersistentVolumeClaim" | "PersistentVolume" => json!({"phase": "Pending"}),
        _ => json!({}),
    })
}

/// Upstream's QoS class: Guaranteed when every container has equal cpu and
/// memory requests and limits, BestEffort when none sets any, else Burstable.
pub fn qos_class(pod: &Object) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let get = |c: &Value, kind: &str, res: &str| c.pointer(&format!("/resources/{kind}/{res}")).cloned();
    let any_set = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c.pointer(&format!("/resources/{k}"))
                .is_some_and(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        })
    });
    if !any_set {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|res| {
            let limit = get(c, "limits", res);
            let request = get(c, "requests", res).or_else(|| limit.clone());
            limit.is_some() && request == limit
        })
    });
    if guaranteed { "Guaranteed" } else { "Burstable" }
}

/// `apiVersion` and `kind` must name the endpoint's type when given, and are filled in when not.
fn check_type(resource: &ResourceType, object: &mut Object) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request("the body of the request must be a JSON object"));
    }
    let api_version = resource.api_version();
    let given_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let given_kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if !given_version.is_empty() && given_version != api_version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({given_version}) does not match the expected API version ({api_version})"
        )));
    }
    if !given_kind.is_empty() && given_kind != resource.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({given_kind}) does not match the expected kind ({})",
            resource.kind
        )));
    }
    meta::set_type(object, &api_version, resource.kind);
    Ok(())
}

fn check_namespace(resource: &ResourceType, object: &mut Object, namespace: Option<&str>) -> Result<(), ApiError> {
    let given = meta::namespace(object).to_string();
    match (resource.namespaced, namespace) {
        (true, Some(ns)) if !given.is_empty() && given != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        (true, Some(ns)) => {
            meta::set_meta(object, "namespace", Some(ns.into()));
            Ok(())
        }
        (true, None) => Err(ApiError::bad_request("a namespace is required to create this object")),
        (false, _) => {
            meta::set_meta(object, "namespace", None);
            Ok(())
        }
    }
}

/// Upstream's generateName: the prefix plus five characters that avoid
/// vowels and look-alike digits, so generated names never spell words.
fn generate_name(object: &mut Object) {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix = meta::meta_str(object, "generateName");
    if !meta::name(object).is_empty() || prefix.is_empty() {
        return;
    }
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    // Upstream truncates the prefix so the name fits in 63 characters.
    let prefix: String = prefix.chars().take(58).collect();
    meta::set_meta(object, "name", Some(format!("{prefix}{suffix}").into()));
}

/// The name must be present and a DNS subdomain (or label, for kinds
/// whose names become DNS labels).
pub fn validate_name(resource: &ResourceType, object: &Object) -> Vec<FieldError> {
    let name = meta::name(object);
    if name.is_empty() {
        return vec![FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )];
    }
    let label_kinds = ["Namespace", "Service"];
    if label_kinds.contains(&resource.kind) {
        return dns1123_label(name)
            .map(|why| vec![FieldError::invalid("metadata.name", &name.into(), &why)])
            .unwrap_or_default();
    }
    dns1123_subdomain(name)
        .map(|why| vec![FieldError::invalid("metadata.name", &name.into(), &why)])
        .unwrap_or_default()
}

/// Upstream's message when `s` is not an RFC 1123 subdomain.
pub fn dns1123_subdomain(s: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = s.split('.').all(|part| is_label(part, usize::MAX));
    (!ok).then(|| MSG.to_string())
}

/// Upstream's message when `s` is not an RFC 1123 label.
pub fn dns1123_label(s: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_label(s, 63)).then(|| MSG.to_string())
}

fn is_label(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_apimachinery::registry::lookup;

    #[test]
    fn create_fills_server_fields_and_resets_status() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "web", "uid": "mine", "resourceVersion": "5"}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        prepare_for_create(deploy, &mut obj, Some("default")).unwrap();
        assert_eq!(obj["kind"], "Deployment");
        assert_eq!(obj["apiVersion"], "apps/v1");
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_ne!(obj["metadata"]["uid"], "mine");
        assert!(obj["metadata"].get("resourceVersion").is_none());
        assert_eq!(obj["status"], json!({}));
    }

    #[test]
    fn generate_name_appends_five_characters() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let mut obj = json!({"metadata": {"generateName": "cfg-"}});
        prepare_for_create(cm, &mut obj, Some("default")).unwrap();
        let name = meta::name(&obj);
        assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");
        assert!(
            obj["metadata"].get("generation").is_none(),
            "configmaps have no generation"
        );
    }

    #[test]
    fn mismatches_are_bad_requests() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let mut obj = json!({"kind": "Secret", "metadata": {"name": "a"}});
        assert_eq!(prepare_for_create(cm, &mut obj, Some("default")).unwrap_err().code, 400);
        let mut obj = json!({"metadata": {"name": "a", "namespace": "other"}});
        assert_eq!(prepare_for_create(cm, &mut obj, Some("default")).unwrap_err().code, 400);
    }

    #[test]
    fn update_keeps_status_and_bumps_generation_on_spec_change() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "web", "uid": "u1", "generation": 3, "creationTimestamp": "t"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "web", "labels": {"a": "b"}}, "spec": {"replicas": 2}, "status": {"replicas": 7}});
        prepare_for_update(deploy, None, &mut new, &old).unwrap();
        assert_eq!(new["status"]["replicas"], 1);
        assert_eq!(new["metadata"]["generation"], 4);
        assert_eq!(new["metadata"]["uid"], "u1");
        assert_eq!(new["metadata"]["labels"]["a"], "b");

        let mut labels_only = json!({"metadata": {"name": "web", "labels": {"x": "y"}}, "spec": {"replicas": 1}});
        prepare_for_update(deploy, None, &mut labels_only, &old).unwrap();
        assert_eq!(
            labels_only["metadata"]["generation"], 3,
            "metadata changes do not bump generation"
        );
    }

    #[test]
    fn daemon_set_template_generation_counts_template_changes() {
        let ds = lookup("apps", "v1", "daemonsets").unwrap();
        let generation = |o: &Value| o["metadata"]["annotations"]["deprecated.daemonset.template.generation"].clone();
        let mut created = json!({"metadata": {"name": "d", "annotations": {"deprecated.daemonset.template.generation": "7"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}});
        prepare_for_create(ds, &mut created, Some("default")).unwrap();
        assert_eq!(generation(&created), "1", "clients cannot set it");
        let mut same = created.clone();
        same["spec"]["minReadySeconds"] = 5.into();
        prepare_for_update(ds, None, &mut same, &created).unwrap();
        assert_eq!(generation(&same), "1");
        let mut changed = same.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = "b".into();
        prepare_for_update(ds, None, &mut changed, &same).unwrap();
        assert_eq!(generation(&changed), "2");
    }

    #[test]
    fn status_update_changes_only_status() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "web", "uid": "u1", "generation": 3, "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "web", "labels": {"c": "d"}}, "spec": {"replicas": 5}, "status": {"replicas": 2}});
        prepare_for_update(deploy, Some("status"), &mut new, &old).unwrap();
        assert_eq!(new["spec"]["replicas"], 1);
        assert_eq!(new["status"]["replicas"], 2);
        assert_eq!(new["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(new["metadata"]["generation"], 3);
    }

    #[test]
    fn qos_classes() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "c", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed",
            "requests default to limits"
        );
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "1"}}))), "Burstable");
    }

    #[test]
    fn names_are_validated_as_upstream() {
        let cm = lookup("", "v1", "configmaps").unwrap();
        let ns = lookup("", "v1", "namespaces").unwrap();
        assert!(validate_name(cm, &json!({"metadata": {"name": "a.b-c"}})).is_empty());
        assert_eq!(
            validate_name(cm, &json!({"metadata": {"name": "A"}}))[0].field,
            "metadata.name"
        );
        assert!(!validate_name(ns, &json!({"metadata": {"name": "a.b"}})).is_empty());
        assert_eq!(
            validate_name(cm, &json!({"metadata": {}}))[0].reason,
            "FieldValueRequired"
        );
    }
}
