//! core/v1 (`pkg/apis/core/v1/defaults.go`).

use serde_json::{Value, json};

use super::{
    Obj, child, copy_map_if_empty, is_unset, is_zero_int, items, labels_from_template, non_empty_map, pod, present,
    present_path, set_if_empty, set_if_unset, str_of, template_labels,
};

/// `v1.DefaultClientIPServiceAffinitySeconds`: three hours.
const CLIENT_IP_AFFINITY_SECONDS: i64 = 10800;

pub(super) fn apply(kind: &str, object: &mut Obj) {
    match kind {
        "Pod" => pod::pod(object),
        "PodTemplate" => pod::template(object, "template"),
        "ReplicationController" => replication_controller(object),
        "Service" => service(object),
        "Secret" => secret(object),
        "Namespace" => namespace(object),
        "Node" => node(object),
        "PersistentVolume" => persistent_volume(object),
        "PersistentVolumeClaim" => pod::claim(object),
        "Endpoints" => endpoints(object),
        "LimitRange" => limit_range(object),
        _ => {}
    }
}

/// Selector and labels from the template's labels, one replica, and the
/// template's pod spec (the template is a pointer here: only if set).
fn replication_controller(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    let labels = present(spec, "template").and_then(|template| template_labels(template));
    if let Some(labels) = &labels {
        copy_map_if_empty(spec, "selector", labels);
    }
    set_if_unset(spec, "replicas", 1);
    if let Some(template) = present(spec, "template") {
        pod::template_spec(template);
    }
    labels_from_template(object, labels.as_ref());
}

/// `type: Opaque`, and `stringData` merged into `data` (base64, winning
/// over a `data` key of the same name) and dropped — upstream does the
/// merge in its v1 → internal conversion, so it is never stored.
fn secret(object: &mut Obj) {
    set_if_empty(object, "type", "Opaque");
    let Some(Value::Object(string_data)) = object.remove("stringData") else {
        return;
    };
    use base64::Engine as _;
    let data = object
        .entry("data")
        .or_insert_with(|| Value::Object(Default::default()));
    if !data.is_object() {
        *data = Value::Object(Default::default());
    }
    let data = data.as_object_mut().expect("made an object above");
    for (key, value) in string_data {
        let text = value.as_str().unwrap_or_default();
        data.insert(key, base64::engine::general_purpose::STANDARD.encode(text).into());
    }
}

/// `SetDefaults_Service`. The IP families and cluster IPs are the registry's
/// business, not defaulting's.
fn service(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    session_affinity(spec);
    set_if_empty(spec, "type", "ClusterIP");
    for port in items(spec, "ports") {
        set_if_empty(port, "protocol", "TCP");
        target_port(port);
    }
    let service_type = str_of(spec, "type").to_string();
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let externally_accessible = matches!(service_type.as_str(), "LoadBalancer" | "NodePort")
        || (service_type == "ClusterIP" && has_external_ips);
    if externally_accessible {
        set_if_empty(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(service_type.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_if_unset(spec, "internalTrafficPolicy", "Cluster");
    }
    if service_type == "LoadBalancer" {
        set_if_unset(spec, "allocateLoadBalancerNodePorts", true);
        load_balancer_ip_modes(object);
    }
}

/// `None` affinity drops any affinity config; `ClientIP` without a timeout
/// gets the whole config replaced by the default one.
fn session_affinity(spec: &mut Obj) {
    set_if_empty(spec, "sessionAffinity", "None");
    match str_of(spec, "sessionAffinity") {
        "None" => {
            spec.remove("sessionAffinityConfig");
        }
        "ClientIP" if lacks_affinity_timeout(spec.get("sessionAffinityConfig")) => {
            let config = json!({"clientIP": {"timeoutSeconds": CLIENT_IP_AFFINITY_SECONDS}});
            spec.insert("sessionAffinityConfig".into(), config);
        }
        _ => {}
    }
}

/// Whether a (well-formed) `sessionAffinityConfig` has no client-IP timeout.
fn lacks_affinity_timeout(config: Option<&Value>) -> bool {
    match config {
        None | Some(Value::Null) => true,
        Some(Value::Object(config)) => match config.get("clientIP") {
            None | Some(Value::Null) => true,
            Some(Value::Object(client_ip)) => is_unset(client_ip, "timeoutSeconds"),
            Some(_) => false,
        },
        Some(_) => false,
    }
}

/// A zero or empty `targetPort` becomes the port number.
fn target_port(port: &mut Obj) {
    let unset = is_zero_int(port, "targetPort") || port.get("targetPort") == Some(&json!(""));
    if !unset {
        return;
    }
    let number = match port.get("port") {
        None | Some(Value::Null) => json!(0),
        Some(number @ Value::Number(_)) => number.clone(),
        Some(_) => return,
    };
    port.insert("targetPort".into(), number);
}

/// Load-balancer ingress points with an IP and no `ipMode` are `VIP`s.
fn load_balancer_ip_modes(object: &mut Obj) {
    let Some(load_balancer) = present_path(object, &["status", "loadBalancer"]) else {
        return;
    };
    for ingress in items(load_balancer, "ingress") {
        if !str_of(ingress, "ip").is_empty() {
            set_if_unset(ingress, "ipMode", "VIP");
        }
    }
}

/// The `kubernetes.io/metadata.name` label (for named namespaces) and the
/// `Active` phase.
fn namespace(object: &mut Obj) {
    if let Some(meta) = child(object, "metadata") {
        let name = str_of(meta, "name").to_string();
        if !name.is_empty()
            && let Some(labels) = child(meta, "labels")
        {
            labels.insert("kubernetes.io/metadata.name".into(), name.into());
        }
    }
    if let Some(status) = child(object, "status") {
        set_if_empty(status, "phase", "Active");
    }
}

/// A node reporting capacity but no allocatable has all of it allocatable.
fn node(object: &mut Obj) {
    let Some(status) = present(object, "status") else {
        return;
    };
    if let Some(capacity) = non_empty_map(status, "capacity")
        && is_unset(status, "allocatable")
    {
        status.insert("allocatable".into(), Value::Object(capacity));
    }
}

fn persistent_volume(object: &mut Obj) {
    if let Some(status) = child(object, "status") {
        set_if_empty(status, "phase", "Pending");
    }
    if let Some(spec) = child(object, "spec") {
        set_if_empty(spec, "persistentVolumeReclaimPolicy", "Retain");
        set_if_unset(spec, "volumeMode", "Filesystem");
        pod::persistent_sources(spec);
    }
}

fn endpoints(object: &mut Obj) {
    for subset in items(object, "subsets") {
        for port in items(subset, "ports") {
            set_if_empty(port, "protocol", "TCP");
        }
    }
}

/// For `Container` limits: the default limit falls back to the max, the
/// default request to the default limit and then to the min.
fn limit_range(object: &mut Obj) {
    let Some(spec) = present(object, "spec") else {
        return;
    };
    for item in items(spec, "limits") {
        if str_of(item, "type") == "Container" {
            limit_range_item(item);
        }
    }
}

fn limit_range_item(item: &mut Obj) {
    let map = |key: &str| match item.get(key) {
        None | Some(Value::Null) => Some(Obj::new()),
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => None,
    };
    let (Some(max), Some(min), Some(mut default), Some(mut default_request)) =
        (map("max"), map("min"), map("default"), map("defaultRequest"))
    else {
        return;
    };
    for (name, quantity) in max {
        default.entry(name).or_insert(quantity);
    }
    for (name, quantity) in default.iter().chain(&min) {
        default_request.entry(name.clone()).or_insert_with(|| quantity.clone());
    }
    for (key, map) in [("default", default), ("defaultRequest", default_request)] {
        if !map.is_empty() {
            item.insert(key.into(), Value::Object(map));
        }
    }
}

#[cfg(test)]
mod secret_tests {
    use serde_json::json;

    #[test]
    fn string_data_is_merged_into_data_and_dropped() {
        let mut secret = json!({"data": {"a": "b2xk", "keep": "eA=="}, "stringData": {"a": "new", "b": "two"}});
        super::super::apply_defaults("", "v1", "Secret", &mut secret);
        assert_eq!(
            secret,
            json!({"type": "Opaque", "data": {"a": "bmV3", "keep": "eA==", "b": "dHdv"}})
        );
    }
}
