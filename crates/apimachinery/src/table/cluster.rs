//! Printers for the remaining groups: networking, RBAC, storage, scheduling,
//! node, discovery, certificates, coordination and admission registration.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::cells::{
    age, annotation, bool_at, format_label_selector, get, human_duration, int_at, len_at, list_at, list_with_more,
    map_at, name, opt_bool, opt_int, opt_str, or, str_at,
};
use super::core_api::load_balancer_ingress;
use super::{AGE, Column, NAME, Printer, docs, quantity};

pub(super) fn printer(group: &str, kind: &str) -> Option<Printer> {
    let printer = match (group, kind) {
        ("networking.k8s.io", "Ingress") => Printer::new(INGRESS, ingress),
        ("networking.k8s.io", "IngressClass") => Printer::new(INGRESS_CLASS, ingress_class),
        ("networking.k8s.io", "NetworkPolicy") => Printer::new(NETWORK_POLICY, network_policy),
        ("networking.k8s.io", "ServiceCIDR") => Printer::new(SERVICE_CIDR, service_cidr),
        ("networking.k8s.io", "IPAddress") => Printer::new(IP_ADDRESS, ip_address),
        ("rbac.authorization.k8s.io", "RoleBinding") => Printer::new(ROLE_BINDING, role_binding),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => Printer::new(CLUSTER_ROLE_BINDING, role_binding),
        ("certificates.k8s.io", "CertificateSigningRequest") => Printer::new(CSR, certificate_signing_request),
        ("coordination.k8s.io", "Lease") => Printer::new(LEASE, lease),
        ("storage.k8s.io", "StorageClass") => Printer::new(STORAGE_CLASS, storage_class),
        ("storage.k8s.io", "VolumeAttachment") => Printer::new(VOLUME_ATTACHMENT, volume_attachment),
        ("storage.k8s.io", "CSINode") => Printer::new(CSI_NODE, csi_node),
        ("storage.k8s.io", "CSIDriver") => Printer::new(CSI_DRIVER, csi_driver),
        ("storage.k8s.io", "CSIStorageCapacity") => Printer::new(CSI_STORAGE_CAPACITY, csi_storage_capacity),
        ("scheduling.k8s.io", "PriorityClass") => Printer::new(PRIORITY_CLASS, priority_class),
        ("node.k8s.io", "RuntimeClass") => Printer::new(RUNTIME_CLASS, runtime_class),
        ("discovery.k8s.io", "EndpointSlice") => Printer::new(ENDPOINT_SLICE, endpoint_slice),
        ("admissionregistration.k8s.io", kind) => return admission_printer(kind),
        _ => return None,
    };
    Some(printer)
}

fn admission_printer(kind: &str) -> Option<Printer> {
    Some(match kind {
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => Printer::new(WEBHOOKS, webhooks),
        "ValidatingAdmissionPolicy" => Printer::new(VALIDATING_POLICY, validating_policy),
        "ValidatingAdmissionPolicyBinding" => Printer::new(POLICY_BINDING, policy_binding),
        _ => return None,
    })
}

const INGRESS: &[Column] = &[
    NAME,
    Column::string(
        "Class",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    Column::string(
        "Hosts",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    Column::string(
        "Address",
        "Address is a list containing ingress points for the load-balancer",
    ),
    Column::string("Ports", "Ports of TLS configurations that open"),
    AGE,
];

fn ingress(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports = if list_at(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj).into(),
        opt_str(obj, &["spec", "ingressClassName"]).unwrap_or("<none>").into(),
        ingress_hosts(list_at(obj, &["spec", "rules"])).into(),
        load_balancer_ingress(get(obj, &["status", "loadBalancer", "ingress"]))
            .join(",")
            .into(),
        ports.into(),
        age(obj, now).into(),
    ]
}

/// The first three non-empty rule hosts, then `+ N more...` (counting rules,
/// as upstream does); `*` for none.
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
            break;
        }
        hosts.extend(opt_str(rule, &["host"]).filter(|host| !host.is_empty()));
    }
    if hosts.is_empty() {
        return "*".into();
    }
    if more {
        return format!("{} + {} more...", hosts.join(","), rules.len() - MAX);
    }
    hosts.join(",")
}

const INGRESS_CLASS: &[Column] = &[
    NAME,
    Column::string("Controller", "Controller that is responsible for handling this class"),
    Column::string("Parameters", "A reference to a resource with additional parameters"),
    AGE,
];

fn ingress_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match get(obj, &["spec", "parameters"]).filter(|p| p.is_object()) {
        None => "<none>".to_string(),
        Some(p) => {
            let kind = match opt_str(p, &["apiGroup"]) {
                Some(group) => format!("{}.{group}", str_at(p, &["kind"])),
                None => str_at(p, &["kind"]).to_string(),
            };
            format!("{kind}/{}", str_at(p, &["name"]))
        }
    };
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "controller"]).into(),
        parameters.into(),
        age(obj, now).into(),
    ]
}

const NETWORK_POLICY: &[Column] = &[NAME, Column::string("Pod-Selector", docs::NETPOL_POD_SELECTOR), AGE];

fn network_policy(obj: &Value, now: Timestamp) -> Vec<Value> {
    // `podSelector` is a struct upstream, never nil: absent reads as empty.
    let selector = get(obj, &["spec", "podSelector"]).filter(|s| !s.is_null());
    let selector = format_label_selector(Some(selector.unwrap_or(&Value::Object(Default::default()))));
    vec![name(obj).into(), selector.into(), age(obj, now).into()]
}

const SERVICE_CIDR: &[Column] = &[NAME, Column::string("CIDRs", docs::SERVICE_CIDRS), AGE];

fn service_cidr(obj: &Value, now: Timestamp) -> Vec<Value> {
    let cidrs: Vec<&str> = list_at(obj, &["spec", "cidrs"])
        .iter()
        .map(|c| c.as_str().unwrap_or(""))
        .collect();
    vec![name(obj).into(), cidrs.join(",").into(), age(obj, now).into()]
}

/// Upstream defines two columns here but prints three cells (the age too);
/// kubectl ignores the extra cell.
const IP_ADDRESS: &[Column] = &[NAME, Column::string("ParentRef", docs::IP_PARENT_REF)];

fn ip_address(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parent = match get(obj, &["spec", "parentRef"]).filter(|p| p.is_object()) {
        None => "<none>".to_string(),
        Some(p) => {
            let (group, resource) = (str_at(p, &["group"]), str_at(p, &["resource"]));
            let mut text = if group.is_empty() {
                resource.to_string()
            } else {
                format!("{resource}.{group}")
            };
            text = text.to_lowercase();
            if let Some(namespace) = opt_str(p, &["namespace"]).filter(|n| !n.is_empty()) {
                text = format!("{text}/{namespace}");
            }
            format!("{text}/{}", str_at(p, &["name"]))
        }
    };
    vec![name(obj).into(), parent.into(), age(obj, now).into()]
}

const ROLE_BINDING: &[Column] = &[
    NAME,
    Column::string("Role", docs::ROLE_BINDING_ROLE_REF),
    AGE,
    Column::string("Users", "Users in the roleBinding").wide(),
    Column::string("Groups", "Groups in the roleBinding").wide(),
    Column::string("ServiceAccounts", "ServiceAccounts in the roleBinding").wide(),
];

const CLUSTER_ROLE_BINDING: &[Column] = &[
    NAME,
    Column::string("Role", docs::CLUSTER_ROLE_BINDING_ROLE_REF),
    AGE,
    Column::string("Users", "Users in the clusterRoleBinding").wide(),
    Column::string("Groups", "Groups in the clusterRoleBinding").wide(),
    Column::string("ServiceAccounts", "ServiceAccounts in the clusterRoleBinding").wide(),
];

/// A RoleBinding or ClusterRoleBinding: `Kind/name` of the role, and the
/// subjects by kind (service accounts as `namespace/name`).
fn role_binding(obj: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        str_at(obj, &["roleRef", "kind"]),
        str_at(obj, &["roleRef", "name"])
    );
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list_at(obj, &["subjects"]) {
        let subject_name = str_at(subject, &["name"]);
        match str_at(subject, &["kind"]) {
            "ServiceAccount" => service_accounts.push(format!("{}/{subject_name}", str_at(subject, &["namespace"]))),
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    vec![
        name(obj).into(),
        role.into(),
        age(obj, now).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

const CSR: &[Column] = &[
    NAME,
    AGE,
    Column::string("SignerName", docs::CSR_SIGNER_NAME),
    Column::string("Requestor", docs::CSR_REQUEST),
    Column::string("RequestedDuration", docs::CSR_EXPIRATION),
    Column::string("Condition", docs::CSR_CONDITIONS),
];

fn certificate_signing_request(obj: &Value, now: Timestamp) -> Vec<Value> {
    let duration = opt_int(obj, &["spec", "expirationSeconds"]).map_or_else(
        || "<none>".to_string(),
        |seconds| human_duration(SignedDuration::from_secs(seconds)),
    );
    vec![
        name(obj).into(),
        age(obj, now).into(),
        or(str_at(obj, &["spec", "signerName"]), "<none>").into(),
        str_at(obj, &["spec", "username"]).into(),
        duration.into(),
        csr_condition(obj).into(),
    ]
}

/// `Denied`, `Approved` or `Pending`, then `,Failed` and `,Issued`.
fn csr_condition(obj: &Value) -> String {
    let conditions = list_at(obj, &["status", "conditions"]);
    let has = |type_: &str| conditions.iter().any(|c| str_at(c, &["type"]) == type_);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !str_at(obj, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    status
}

const LEASE: &[Column] = &[NAME, Column::string("Holder", docs::LEASE_HOLDER), AGE];

fn lease(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "holderIdentity"]).into(),
        age(obj, now).into(),
    ]
}

const STORAGE_CLASS: &[Column] = &[
    NAME,
    Column::string("Provisioner", docs::SC_PROVISIONER),
    Column::string("ReclaimPolicy", docs::SC_RECLAIM_POLICY),
    Column::string("VolumeBindingMode", docs::SC_BINDING_MODE),
    Column::string("AllowVolumeExpansion", docs::SC_ALLOW_EXPANSION),
    AGE,
];

fn storage_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    let is_default = |key: &str| annotation(obj, key) == Some("true");
    let mut display_name = name(obj).to_string();
    if is_default("storageclass.kubernetes.io/is-default-class")
        || is_default("storageclass.beta.kubernetes.io/is-default-class")
    {
        display_name.push_str(" (default)");
    }
    vec![
        display_name.into(),
        str_at(obj, &["provisioner"]).into(),
        or(str_at(obj, &["reclaimPolicy"]), "Delete").into(),
        or(str_at(obj, &["volumeBindingMode"]), "Immediate").into(),
        bool_at(obj, &["allowVolumeExpansion"]).into(),
        age(obj, now).into(),
    ]
}

const VOLUME_ATTACHMENT: &[Column] = &[
    NAME,
    Column::string("Attacher", docs::VA_ATTACHER).named(),
    Column::string("PV", docs::VA_PV),
    Column::string("Node", docs::VA_NODE),
    Column::boolean("Attached", docs::VA_ATTACHED),
    AGE,
];

fn volume_attachment(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "attacher"]).into(),
        str_at(obj, &["spec", "source", "persistentVolumeName"]).into(),
        str_at(obj, &["spec", "nodeName"]).into(),
        bool_at(obj, &["status", "attached"]).into(),
        age(obj, now).into(),
    ]
}

const CSI_NODE: &[Column] = &[
    NAME,
    Column::integer(
        "Drivers",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

fn csi_node(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        len_at(obj, &["spec", "drivers"]).into(),
        age(obj, now).into(),
    ]
}

const CSI_DRIVER: &[Column] = &[
    NAME,
    Column::boolean("AttachRequired", docs::CSI_ATTACH_REQUIRED),
    Column::boolean("PodInfoOnMount", docs::CSI_POD_INFO),
    Column::boolean("StorageCapacity", docs::CSI_STORAGE_CAPACITY),
    Column::string("TokenRequests", docs::CSI_TOKEN_REQUESTS),
    Column::boolean("RequiresRepublish", docs::CSI_REQUIRES_REPUBLISH),
    Column::string("Modes", docs::CSI_MODES),
    AGE,
];

fn csi_driver(obj: &Value, now: Timestamp) -> Vec<Value> {
    let spec_bool = |field: &str, default: bool| Value::from(opt_bool(obj, &["spec", field]).unwrap_or(default));
    let token_requests = match get(obj, &["spec", "tokenRequests"]).and_then(Value::as_array) {
        Some(requests) => requests
            .iter()
            .map(|r| str_at(r, &["audience"]))
            .collect::<Vec<_>>()
            .join(","),
        None => "<unset>".into(),
    };
    let modes: Vec<&str> = list_at(obj, &["spec", "volumeLifecycleModes"])
        .iter()
        .map(|m| m.as_str().unwrap_or(""))
        .collect();
    // Upstream's defaulting sets absent modes to `Persistent`.
    let modes = or(&modes.join(","), "Persistent");
    vec![
        name(obj).into(),
        spec_bool("attachRequired", true),
        spec_bool("podInfoOnMount", false),
        spec_bool("storageCapacity", false),
        token_requests.into(),
        spec_bool("requiresRepublish", false),
        modes.into(),
        age(obj, now).into(),
    ]
}

const CSI_STORAGE_CAPACITY: &[Column] = &[
    NAME,
    Column::string("StorageClassName", docs::CSISC_CLASS),
    Column::string("Capacity", docs::CSISC_CAPACITY),
];

fn csi_storage_capacity(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let capacity = match get(obj, &["capacity"]) {
        None | Some(Value::Null) => "<unset>".to_string(),
        some => quantity::format(some),
    };
    vec![
        name(obj).into(),
        str_at(obj, &["storageClassName"]).into(),
        capacity.into(),
    ]
}

const PRIORITY_CLASS: &[Column] = &[
    NAME,
    Column::integer("Value", docs::PC_VALUE),
    Column::boolean("Global-Default", docs::PC_GLOBAL_DEFAULT),
    AGE,
    Column::string("PreemptionPolicy", docs::PC_PREEMPTION),
];

fn priority_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream's defaulting sets an absent preemption policy to PreemptLowerPriority.
    let preemption = opt_str(obj, &["preemptionPolicy"]).unwrap_or("PreemptLowerPriority");
    vec![
        name(obj).into(),
        int_at(obj, &["value"]).into(),
        bool_at(obj, &["globalDefault"]).into(),
        age(obj, now).into(),
        preemption.into(),
    ]
}

/// Upstream looks the description up under a key `ObjectMeta` lacks, so it is empty.
const RUNTIME_CLASS: &[Column] = &[NAME, Column::string("Handler", ""), AGE];

fn runtime_class(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj).into(), str_at(obj, &["handler"]).into(), age(obj, now).into()]
}

const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    Column::string("AddressType", docs::SLICE_ADDRESS_TYPE),
    Column::string("Ports", docs::SLICE_PORTS),
    Column::string("Endpoints", docs::SLICE_ENDPOINTS),
    AGE,
];

fn endpoint_slice(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports = list_at(obj, &["ports"]);
    let port_names: Vec<String> = ports
        .iter()
        .take(3)
        .map(|p| match (opt_int(p, &["port"]), opt_str(p, &["name"])) {
            (Some(port), _) => port.to_string(),
            (None, Some(port_name)) => port_name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<&str> = list_at(obj, &["endpoints"])
        .iter()
        .flat_map(|e| list_at(e, &["addresses"]))
        .map(|a| a.as_str().unwrap_or(""))
        .collect();
    let shown: Vec<String> = addresses.iter().take(3).map(|a| a.to_string()).collect();
    vec![
        name(obj).into(),
        str_at(obj, &["addressType"]).into(),
        list_with_more(&port_names, ports.len(), 3).into(),
        list_with_more(&shown, addresses.len(), 3).into(),
        age(obj, now).into(),
    ]
}

const WEBHOOKS: &[Column] = &[
    NAME,
    Column::integer(
        "Webhooks",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
];

fn webhooks(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj).into(),
        len_at(obj, &["webhooks"]).into(),
        age(obj, now).into(),
    ]
}

const VALIDATING_POLICY: &[Column] = &[
    NAME,
    Column::integer(
        "Validations",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    Column::string(
        "ParamKind",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

fn validating_policy(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param_kind = match get(obj, &["spec", "paramKind"]).filter(|p| p.is_object()) {
        Some(p) => format!("{}/{}", str_at(p, &["apiVersion"]), str_at(p, &["kind"])),
        None => "<unset>".into(),
    };
    vec![
        name(obj).into(),
        len_at(obj, &["spec", "validations"]).into(),
        param_kind.into(),
        age(obj, now).into(),
    ]
}

const POLICY_BINDING: &[Column] = &[
    NAME,
    Column::string(
        "PolicyName",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    Column::string(
        "ParamRef",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

fn policy_binding(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param = match get(obj, &["spec", "paramRef"]).filter(|p| p.is_object()) {
        None => "<unset>".to_string(),
        Some(p) => match (str_at(p, &["name"]), str_at(p, &["namespace"])) {
            ("", _) => match get(p, &["selector"]).filter(|s| s.is_object()) {
                Some(selector) => go_label_selector(selector),
                None => "<unset>".into(),
            },
            (param_name, "") => format!("*/{param_name}"),
            (param_name, namespace) => format!("{namespace}/{param_name}"),
        },
    };
    vec![
        name(obj).into(),
        str_at(obj, &["spec", "policyName"]).into(),
        param.into(),
        age(obj, now).into(),
    ]
}

/// A `metav1.LabelSelector` as its generated Go `String()` prints it.
fn go_label_selector(selector: &Value) -> String {
    let mut labels: Vec<(&String, &str)> = map_at(selector, &["matchLabels"])
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    let labels: String = labels.iter().map(|(k, v)| format!("{k}: {v},")).collect();
    let expressions: String = list_at(selector, &["matchExpressions"])
        .iter()
        .map(|e| {
            let values: Vec<&str> = list_at(e, &["values"])
                .iter()
                .map(|v| v.as_str().unwrap_or(""))
                .collect();
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                str_at(e, &["key"]),
                str_at(e, &["operator"]),
                values.join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}
