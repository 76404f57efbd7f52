//! Resource names and quantities: container requests and limits, overhead,
//! quotas, limit ranges and volume capacities.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::field::{Errs, child, forbidden, index, invalid, not_found_because, raw, required};
use super::formats;
use super::json::Node;
use super::quantity::Quantity;

const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

pub(super) fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

pub(super) fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn is_extended(name: &str) -> bool {
    if is_native(name) || name.starts_with("requests.") {
        return false;
    }
    formats::is_qualified_name(&format!("requests.{name}")).is_empty()
}

pub(super) fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

fn is_integer_resource(name: &str) -> bool {
    INTEGER_RESOURCES.contains(&name) || is_extended(name)
}

fn is_standard(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name) || name.starts_with("hugepages-") || name.starts_with("requests.hugepages-")
}

/// `validateResourceName`: qualified, and standard when unprefixed.
pub(super) fn validate_resource_name(name: &str, path: &str, errs: &mut Errs) -> bool {
    let before = errs.len();
    for msg in formats::is_qualified_name(name) {
        errs.push(invalid(path, name, &msg));
    }
    if errs.len() != before {
        return false;
    }
    if !name.contains('/') && !is_standard(name) {
        errs.push(invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        ));
        return false;
    }
    true
}

/// `validateContainerResourceName`.
pub(super) fn validate_container_resource_name(name: &str, path: &str, errs: &mut Errs) {
    validate_resource_name(name, path, errs);
    if !name.contains('/') {
        if !["cpu", "memory", "ephemeral-storage"].contains(&name) && !is_hugepages(name) {
            errs.push(invalid(path, name, "must be a standard resource for containers"));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(invalid(path, name, "doesn't follow extended resource name standard"));
    }
}

/// A quantity at `node`, or an error when it does not parse.
pub(super) fn quantity(node: &Node, errs: &mut Errs) -> Option<Quantity> {
    let value = node.value?;
    match Quantity::from_json(value) {
        Some(Ok(q)) => Some(q),
        Some(Err(msg)) => {
            let shown = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
            errs.push(invalid(&node.path, shown, msg));
            None
        }
        None => {
            errs.push(invalid(&node.path, raw(value.to_string()), "must be of type string"));
            None
        }
    }
}

/// `ValidateResourceQuantityValue`: non-negative, and whole for integer resources.
pub(super) fn validate_quantity_value(name: &str, q: &Quantity, path: &str, errs: &mut Errs) {
    if q.is_negative() {
        errs.push(invalid(path, q.canonical(), "must be greater than or equal to 0"));
    }
    if is_integer_resource(name) && !q.is_integer() {
        errs.push(invalid(path, raw(q.go_repr()), "must be an integer"));
    }
}

/// `ValidatePositiveQuantityValue`.
pub(super) fn validate_positive_quantity(q: &Quantity, path: &str, errs: &mut Errs) -> bool {
    if q.is_negative() || q.is_zero() {
        errs.push(invalid(path, q.canonical(), "must be greater than zero"));
        return false;
    }
    true
}

fn hugepage_size(name: &str) -> Option<Quantity> {
    Quantity::parse(name.strip_prefix("hugepages-")?).ok()
}

fn validate_hugepage_value(name: &str, q: &Quantity, path: &str, errs: &mut Errs) {
    let Some(size) = hugepage_size(name) else { return };
    let (v, s) = (q.value(), size.value());
    if s <= 0 || v < 0 || v % s != 0 {
        errs.push(invalid(
            path,
            q.canonical(),
            &format!("{} is not positive integer multiple of {name}", q.canonical()),
        ));
    }
}

/// A resource list (`limits`, `requests`, ...) read as name → quantity, validating names and values.
fn resource_list(node: &Node, container: bool, errs: &mut Errs) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    for (name, value) in node.entries(errs) {
        if container {
            validate_container_resource_name(name, &value.path, errs);
        } else {
            validate_resource_name(name, &value.path, errs);
        }
        if let Some(q) = quantity(&value, errs) {
            validate_quantity_value(name, &q, &value.path, errs);
            if is_hugepages(name) {
                validate_hugepage_value(name, &q, &value.path, errs);
            }
            out.insert(name.to_string(), q);
        }
    }
    out
}

/// `ValidateContainerResourceRequirements` for the `resources` node of a container.
pub(super) fn validate_requirements(node: &Node, claims: &BTreeSet<String>, errs: &mut Errs) {
    let node = node.object(errs);
    let limits_node = node.field("limits");
    let requests_node = node.field("requests");
    let limits = resource_list(&limits_node, true, errs);
    let requests = resource_list(&requests_node, true, errs);
    for (name, request) in &requests {
        match limits.get(name) {
            Some(limit) => {
                if request.cmp(limit) != Ordering::Equal && !overcommit_allowed(name) {
                    errs.push(invalid(
                        &requests_node.path,
                        request.canonical(),
                        &format!("must be equal to {name} limit of {}", limit.canonical()),
                    ));
                } else if request.cmp(limit) == Ordering::Greater {
                    errs.push(invalid(
                        &requests_node.path,
                        request.canonical(),
                        &format!("must be less than or equal to {name} limit of {}", limit.canonical()),
                    ));
                }
            }
            None if !overcommit_allowed(name) => {
                errs.push(required(
                    &limits_node.path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
    }
    let cpu_or_memory = |m: &BTreeMap<String, Quantity>| m.contains_key("cpu") || m.contains_key("memory");
    let hugepages = |m: &BTreeMap<String, Quantity>| m.keys().any(|k| is_hugepages(k));
    if !cpu_or_memory(&limits) && !cpu_or_memory(&requests) && (hugepages(&limits) || hugepages(&requests)) {
        errs.push(forbidden(&node.path, "HugePages require cpu or memory"));
    }
    validate_claim_refs(&node.field("claims"), claims, errs);
}

/// `spec.overhead`, validated as container limits under `overhead.limits`.
pub(super) fn validate_overhead(node: &Node, errs: &mut Errs) {
    let limits = Node::new(node.value, child(&node.path, "limits"));
    resource_list(&limits, true, errs);
}

/// A plain resource list (quota hard/used, PV capacity), names checked by `name_check`.
pub(super) fn quantities(node: &Node, errs: &mut Errs) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    for (name, value) in node.entries(errs) {
        if let Some(q) = quantity(&value, errs) {
            out.insert(name.to_string(), q);
        }
    }
    out
}

fn validate_claim_refs(node: &Node, pod_claims: &BTreeSet<String>, errs: &mut Errs) {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for (i, item) in node.items(errs).iter().enumerate() {
        let path = index(&node.path, i);
        let name = item.field("name").string(errs);
        if name.is_empty() {
            errs.push(required(&path, ""));
            continue;
        }
        let request = item.field("request").string(errs);
        if names.contains(name) {
            errs.push(super::field::duplicate(&path, name));
        } else {
            let mut key = name.to_string();
            if !request.is_empty() {
                super::meta::validate_dns_label(request, &child(&path, "request"), errs);
                key = format!("{name}/{request}");
            }
            if names.contains(&key) {
                errs.push(super::field::duplicate(&path, key.as_str()));
            } else if request.is_empty() && names.iter().any(|k| k.split_once('/').is_some_and(|(n, _)| n == name)) {
                errs.push(super::field::duplicate(&path, name));
            }
            names.insert(key);
        }
        if !pod_claims.contains(name) {
            let detail = if pod_claims.is_empty() {
                "must be one of the names in pod.spec.resourceClaims which is empty".to_string()
            } else {
                let all: Vec<&str> = pod_claims.iter().map(String::as_str).collect();
                format!(
                    "must be one of the names in pod.spec.resourceClaims: {}",
                    all.join(", ")
                )
            };
            errs.push(not_found_because(&path, name, &detail));
        }
    }
}
