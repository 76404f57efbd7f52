//! networking.k8s.io/v1 and discovery.k8s.io/v1
//! (`pkg/apis/{networking,discovery}/v1/defaults.go`).

use serde_json::{Value, json};

use super::{Obj, child, is_empty_list, items, present, set_if_unset};

pub(super) fn apply(kind: &str, object: &mut Obj) {
    match kind {
        "NetworkPolicy" => network_policy(object),
        "IngressClass" => {
            if let Some(parameters) = present(object, "spec").and_then(|spec| present(spec, "parameters")) {
                set_if_unset(parameters, "scope", "Cluster");
            }
        }
        _ => {}
    }
}

/// A policy without `policyTypes` is an ingress policy, and an egress one too
/// when it has egress rules; ports are TCP unless stated otherwise.
fn network_policy(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    if is_empty_list(spec, "policyTypes") {
        let has_egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|rules| !rules.is_empty());
        let types = if has_egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        spec.insert("policyTypes".into(), types);
    }
    for direction in ["ingress", "egress"] {
        for rule in items(spec, direction) {
            for port in items(rule, "ports") {
                set_if_unset(port, "protocol", "TCP");
            }
        }
    }
}

/// EndpointSlice ports are unnamed TCP ports unless stated otherwise.
pub(super) fn endpoint_slice(object: &mut Obj) {
    for port in items(object, "ports") {
        set_if_unset(port, "name", "");
        set_if_unset(port, "protocol", "TCP");
    }
}
