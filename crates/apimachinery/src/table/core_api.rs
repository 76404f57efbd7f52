//! Printers for the core (`v1`) group, and for `events.k8s.io` events, which
//! upstream serves from the same storage and prints the same way.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::cells::{
    age, annotation, containers, format_labels, get, int_at, is_deleting, join_host_port, len_at, list_at, map_at,
    name, opt_int, opt_str, or, since, str_at, time_at,
};
use super::{AGE, CONTAINERS, Column, IMAGES, NAME, Printer, docs, pod, quantity};

pub(super) fn printer(kind: &str) -> Option<Printer> {
    Some(match kind {
        "Pod" => pod::PRINTER,
        "PodTemplate" => Printer::new(POD_TEMPLATE, pod_template),
        "ReplicationController" => Printer::new(REPLICATION_CONTROLLER, replication_controller),
        "Service" => Printer::new(SERVICE, service),
        "Endpoints" => Printer::new(ENDPOINTS, endpoints),
        "Node" => Printer::new(NODE, node),
        "Event" => Printer::new(EVENT, event),
        "Namespace" => Printer::new(NAMESPACE, namespace),
        "Secret" => Printer::new(SECRET, secret),
        "ServiceAccount" => Printer::new(SERVICE_ACCOUNT, service_account),
        "PersistentVolume" => Printer::new(PERSISTENT_VOLUME, persistent_volume),
        "PersistentVolumeClaim" => Printer::new(PERSISTENT_VOLUME_CLAIM, persistent_volume_claim),
        "ComponentStatus" => Printer::new(COMPONENT_STATUS, component_status),
        "ConfigMap" => Printer::new(CONFIG_MAP, config_map),
        "ResourceQuota" => Printer::new(RESOURCE_QUOTA, resource_quota),
        _ => return None,
    })
}

const POD_TEMPLATE: &[Column] = &[
    NAME,
    Column::string("Containers", "Names of each container in the template."),
    Column::string("Images", "Images referenced by each container in the template."),
    Column::string("Pod Labels", "The labels for the pod template."),
];

fn pod_template(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(get(obj, &["template", "spec"]));
    let labels = format_labels(map_at(obj, &["template", "metadata", "labels"]));
    vec![name(obj).into(), names.into(), images.into(), labels.into()]
}

const REPLICATION_CONTROLLER: &[Column] = &[
    NAME,
    Column::integer("Desired", docs::RC_SPEC_REPLICAS),
    Column::integer("Current", docs::RC_STATUS_REPLICAS),
    Column::integer("Ready", docs::RC_STATUS_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    Column::string("Selector", docs::RC_SPEC_SELECTOR).wide(),
];

fn replication_controller(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(get(obj, &["spec", "template", "spec"]));
    vec![
        name(obj).into(),
        desired_replicas(obj).into(),
        int_at(obj, &["status", "replicas"]).into(),
        int_at(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_labels(map_at(obj, &["spec", "selector"])).into(),
    ]
}

/// `spec.replicas`, which upstream's defaulting sets to 1 when absent.
pub(super) fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

const SERVICE: &[Column] = &[
    NAME,
    Column::string("Type", docs::SVC_TYPE),
    Column::string("Cluster-IP", docs::SVC_CLUSTER_IP),
    Column::string("External-IP", docs::SVC_EXTERNAL_IPS),
    Column::string("Port(s)", docs::SVC_PORTS),
    AGE,
    Column::string("Selector", docs::SVC_SELECTOR).wide(),
];

fn service(obj: &Value, now: Timestamp) -> Vec<Value> {
    let cluster_ip = list_at(obj, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_str(obj, &["spec", "clusterIP"]))
        .unwrap_or("");
    vec![
        name(obj).into(),
        service_type(obj).into(),
        or(cluster_ip, "<none>").into(),
        service_external_ip(obj).into(),
        or(&service_ports(list_at(obj, &["spec", "ports"])), "<none>").into(),
        age(obj, now).into(),
        format_labels(map_at(obj, &["spec", "selector"])).into(),
    ]
}

/// `spec.type`, defaulted to `ClusterIP` as upstream does.
fn service_type(obj: &Value) -> &str {
    or_static(str_at(obj, &["spec", "type"]), "ClusterIP")
}

fn or_static<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() { default } else { s }
}

/// Upstream's `getServiceExternalIP` (wide, so never clipped).
fn service_external_ip(obj: &Value) -> String {
    let external: Vec<&str> = list_at(obj, &["spec", "externalIPs"])
        .iter()
        .map(|ip| ip.as_str().unwrap_or(""))
        .collect();
    match service_type(obj) {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut all = load_balancer_ingress(get(obj, &["status", "loadBalancer", "ingress"]));
            all.extend(external.iter().map(|ip| ip.to_string()));
            or(&all.join(","), "<pending>")
        }
        "ExternalName" => str_at(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".into(),
    }
}

/// The sorted, distinct IPs (or else hostnames) of load balancer ingress points.
pub(super) fn load_balancer_ingress(ingress: Option<&Value>) -> Vec<String> {
    let points = ingress.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let set: BTreeSet<&str> = points
        .iter()
        .map(|point| or_static(str_at(point, &["ip"]), str_at(point, &["hostname"])))
        .filter(|s| !s.is_empty())
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// `80/TCP`, `80:30080/TCP`, comma-separated.
fn service_ports(ports: &[Value]) -> String {
    let pieces: Vec<String> = ports
        .iter()
        .map(|port| {
            let number = int_at(port, &["port"]);
            let protocol = or_static(str_at(port, &["protocol"]), "TCP");
            match int_at(port, &["nodePort"]) {
                node_port if node_port > 0 => format!("{number}:{node_port}/{protocol}"),
                _ => format!("{number}/{protocol}"),
            }
        })
        .collect();
    pieces.join(",")
}

const ENDPOINTS: &[Column] = &[NAME, Column::string("Endpoints", docs::ENDPOINTS_SUBSETS), AGE];

fn endpoints(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        format_endpoints(list_at(obj, &["subsets"])).into(),
        age(obj, now).into(),
    ]
}

/// Upstream's `formatEndpoints`: the first three `ip:port`s (or IPs, for a
/// subset without ports), then `+ N more...`.
fn format_endpoints(subsets: &[Value]) -> String {
    const MAX: usize = 3;
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut all = Vec::new();
    for subset in subsets {
        let ips: Vec<&str> = list_at(subset, &["addresses"])
            .iter()
            .map(|a| str_at(a, &["ip"]))
            .collect();
        let ports = list_at(subset, &["ports"]);
        if ports.is_empty() {
            all.extend(ips.iter().map(|ip| ip.to_string()));
        }
        for port in ports {
            all.extend(ips.iter().map(|ip| join_host_port(ip, int_at(port, &["port"]))));
        }
    }
    let shown = all.iter().take(MAX).cloned().collect::<Vec<_>>().join(",");
    if all.len() > MAX {
        format!("{shown} + {} more...", all.len() - MAX)
    } else {
        shown
    }
}

const NODE: &[Column] = &[
    NAME,
    Column::string("Status", "The status of the node"),
    Column::string("Roles", "The roles of the node"),
    AGE,
    Column::string("Version", docs::NODE_KUBELET_VERSION),
    Column::string("Internal-IP", docs::NODE_ADDRESSES).wide(),
    Column::string("External-IP", docs::NODE_ADDRESSES).wide(),
    Column::string("OS-Image", docs::NODE_OS_IMAGE).wide(),
    Column::string("Kernel-Version", docs::NODE_KERNEL_VERSION).wide(),
    Column::string("Container-Runtime", docs::NODE_RUNTIME_VERSION).wide(),
];

fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
    let info = |field: &str| or(str_at(obj, &["status", "nodeInfo", field]), "<unknown>");
    vec![
        name(obj).into(),
        node_status(obj).into(),
        or(&node_roles(obj).join(","), "<none>").into(),
        age(obj, now).into(),
        str_at(obj, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(obj, "InternalIP").into(),
        node_address(obj, "ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

/// `Ready`, `NotReady` or `Unknown` (from the last `Ready` condition), plus
/// `SchedulingDisabled` for a cordoned node.
fn node_status(obj: &Value) -> String {
    let ready = list_at(obj, &["status", "conditions"])
        .iter()
        .rfind(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if super::cells::bool_at(obj, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role=<role>` labels.
fn node_roles(obj: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    for (key, value) in map_at(obj, &["metadata", "labels"]).into_iter().flatten() {
        if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if key == "kubernetes.io/role" {
            roles.extend(value.as_str().filter(|v| !v.is_empty()).map(str::to_string));
        }
    }
    roles.into_iter().collect()
}

fn node_address(obj: &Value, type_: &str) -> String {
    let address = list_at(obj, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == type_)
        .map(|a| str_at(a, &["address"]).to_string());
    address.unwrap_or_else(|| "<none>".into())
}

const EVENT: &[Column] = &[
    Column::string("Last Seen", docs::EVENT_LAST_TIMESTAMP),
    Column::string("Type", docs::EVENT_TYPE),
    Column::string("Reason", docs::EVENT_REASON),
    Column::string("Object", docs::EVENT_INVOLVED_OBJECT),
    Column::string("Subobject", docs::OBJECT_REF_FIELD_PATH).wide(),
    Column::string("Source", docs::EVENT_SOURCE).wide(),
    Column::string("Message", docs::EVENT_MESSAGE),
    Column::string("First Seen", docs::EVENT_FIRST_TIMESTAMP).wide(),
    Column::string("Count", docs::EVENT_COUNT).wide(),
    NAME.wide(),
];

/// A `v1` event field, or its `events.k8s.io/v1` name for events of that group.
fn event_field<'a>(obj: &'a Value, core: &str, events: &str) -> Option<&'a Value> {
    obj.get(core).or_else(|| obj.get(events)).filter(|v| !v.is_null())
}

fn event(obj: &Value, now: Timestamp) -> Vec<Value> {
    let field = |core: &str, events: &str| event_field(obj, core, events).unwrap_or(&Value::Null);
    let involved = field("involvedObject", "regarding");
    let source = field("source", "deprecatedSource");
    let first =
        time_at(field("firstTimestamp", "deprecatedFirstTimestamp"), &[]).or_else(|| time_at(obj, &["eventTime"]));
    let first_seen = since(first, now);
    let mut last_seen = match time_at(field("lastTimestamp", "deprecatedLastTimestamp"), &[]) {
        Some(last) => since(Some(last), now),
        None => first_seen.clone(),
    };
    let mut count = field("count", "deprecatedCount").as_i64().unwrap_or(0);
    if let Some(series) = obj.get("series").filter(|s| s.is_object()) {
        last_seen = since(time_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(involved, &["kind"]).to_lowercase();
    let target = match str_at(involved, &["name"]) {
        "" => kind,
        involved_name => format!("{kind}/{involved_name}"),
    };
    vec![
        last_seen.into(),
        str_at(obj, &["type"]).into(),
        str_at(obj, &["reason"]).into(),
        target.into(),
        str_at(involved, &["fieldPath"]).into(),
        event_source(obj, source).into(),
        field("message", "note").as_str().unwrap_or("").trim().into(),
        first_seen.into(),
        count.into(),
        name(obj).into(),
    ]
}

/// `component, host`, falling back to the reporting controller and instance.
fn event_source(obj: &Value, source: &Value) -> String {
    let component = or(str_at(source, &["component"]), str_at(obj, &["reportingController"]));
    let host = or(str_at(source, &["host"]), str_at(obj, &["reportingInstance"]));
    if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    }
}

const NAMESPACE: &[Column] = &[NAME, Column::string("Status", "The status of the namespace"), AGE];

fn namespace(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream's defaulting sets an absent phase to Active.
    let phase = or(str_at(obj, &["status", "phase"]), "Active");
    vec![name(obj).into(), phase.into(), age(obj, now).into()]
}

const SECRET: &[Column] = &[
    NAME,
    Column::string("Type", docs::SECRET_TYPE),
    Column::string("Data", docs::SECRET_DATA),
    AGE,
];

fn secret(obj: &Value, now: Timestamp) -> Vec<Value> {
    let type_ = or(str_at(obj, &["type"]), "Opaque");
    vec![
        name(obj).into(),
        type_.into(),
        len_at(obj, &["data"]).into(),
        age(obj, now).into(),
    ]
}

const SERVICE_ACCOUNT: &[Column] = &[NAME, Column::string("Secrets", docs::SA_SECRETS), AGE];

fn service_account(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj).into(), len_at(obj, &["secrets"]).into(), age(obj, now).into()]
}

const PERSISTENT_VOLUME: &[Column] = &[
    NAME,
    Column::string("Capacity", docs::PV_CAPACITY),
    Column::string("Access Modes", docs::PV_ACCESS_MODES),
    Column::string("Reclaim Policy", docs::PV_RECLAIM_POLICY),
    Column::string("Status", docs::PV_PHASE),
    Column::string("Claim", docs::PV_CLAIM_REF),
    Column::string("StorageClass", "StorageClass of the pv"),
    Column::string("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
    Column::string("Reason", docs::PV_REASON),
    AGE,
    Column::string("VolumeMode", docs::PV_VOLUME_MODE).wide(),
];

fn persistent_volume(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match get(obj, &["spec", "claimRef"]).filter(|c| c.is_object()) {
        Some(claim) => format!("{}/{}", str_at(claim, &["namespace"]), str_at(claim, &["name"])),
        None => String::new(),
    };
    let class = annotation(obj, STORAGE_CLASS_ANNOTATION).unwrap_or(str_at(obj, &["spec", "storageClassName"]));
    vec![
        name(obj).into(),
        quantity::format(get(obj, &["spec", "capacity", "storage"])).into(),
        access_modes(list_at(obj, &["spec", "accessModes"])).into(),
        or(str_at(obj, &["spec", "persistentVolumeReclaimPolicy"]), "Retain").into(),
        volume_phase(obj).into(),
        claim.into(),
        class.into(),
        or(str_at(obj, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        str_at(obj, &["status", "reason"]).into(),
        age(obj, now).into(),
        or(str_at(obj, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

const STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// A PV's or PVC's phase (defaulted to `Pending`), or `Terminating`.
fn volume_phase(obj: &Value) -> String {
    if is_deleting(obj) {
        return "Terminating".into();
    }
    or(str_at(obj, &["status", "phase"]), "Pending")
}

/// `RWO,ROX,RWX,RWOP`: the modes present, in that order.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    let names = [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ];
    let present: Vec<&str> = names
        .iter()
        .filter(|(mode, _)| has(mode))
        .map(|(_, short)| *short)
        .collect();
    present.join(",")
}

const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME,
    Column::string("Status", docs::PVC_PHASE),
    Column::string("Volume", docs::PVC_VOLUME_NAME),
    Column::string("Capacity", docs::PVC_CAPACITY),
    Column::string("Access Modes", docs::PVC_ACCESS_MODES),
    Column::string("StorageClass", "StorageClass of the pvc"),
    Column::string("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
    AGE,
    Column::string("VolumeMode", docs::PVC_VOLUME_MODE).wide(),
];

fn persistent_volume_claim(obj: &Value, now: Timestamp) -> Vec<Value> {
    let volume = str_at(obj, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        let capacity = quantity::format(get(obj, &["status", "capacity", "storage"]));
        (capacity, access_modes(list_at(obj, &["status", "accessModes"])))
    };
    let class = annotation(obj, STORAGE_CLASS_ANNOTATION).unwrap_or(str_at(obj, &["spec", "storageClassName"]));
    vec![
        name(obj).into(),
        volume_phase(obj).into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        class.into(),
        or(str_at(obj, &["spec", "volumeAttributesClassName"]), "<unset>").into(),
        age(obj, now).into(),
        or(str_at(obj, &["spec", "volumeMode"]), "Filesystem").into(),
    ]
}

const COMPONENT_STATUS: &[Column] = &[
    NAME,
    Column::string("Status", "Status of the component conditions"),
    Column::string("Message", "Message of the component conditions"),
    Column::string("Error", "Error of the component conditions"),
];

fn component_status(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let healthy = list_at(obj, &["conditions"])
        .iter()
        .find(|c| str_at(c, &["type"]) == "Healthy");
    let status = match healthy {
        Some(c) if str_at(c, &["status"]) == "True" => "Healthy",
        Some(_) => "Unhealthy",
        None => "Unknown",
    };
    let condition = healthy.unwrap_or(&Value::Null);
    let (message, error) = (str_at(condition, &["message"]), str_at(condition, &["error"]));
    vec![name(obj).into(), status.into(), message.into(), error.into()]
}

const CONFIG_MAP: &[Column] = &[NAME, Column::string("Data", docs::CONFIGMAP_DATA), AGE];

fn config_map(obj: &Value, now: Timestamp) -> Vec<Value> {
    let data = len_at(obj, &["data"]) + len_at(obj, &["binaryData"]);
    vec![name(obj).into(), data.into(), age(obj, now).into()]
}

const RESOURCE_QUOTA: &[Column] = &[
    NAME,
    Column::string(
        "Request",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    Column::string(
        "Limit",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
    ),
    AGE,
];

/// `resource: used/hard` for each hard limit, sorted; `limits.*` ones in the
/// Limit column, the rest in Request.
fn resource_quota(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = map_at(obj, &["status", "hard"])
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    resources.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for resource in resources {
        let used = quantity::format(get(obj, &["status", "used", resource]));
        let hard = quantity::format(get(obj, &["status", "hard", resource]));
        let entry = format!("{resource}: {used}/{hard}");
        match resource.split_once('.') {
            Some(("limits", _)) => limits.push(entry),
            _ => requests.push(entry),
        }
    }
    vec![
        name(obj).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
        age(obj, now).into(),
    ]
}
