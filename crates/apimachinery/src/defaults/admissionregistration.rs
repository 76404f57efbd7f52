//! admissionregistration.k8s.io/v1
//! (`pkg/apis/admissionregistration/v1/defaults.go`).

use serde_json::json;

use super::{Obj, child, items, present, present_path, set_if_unset};

pub(super) fn apply(kind: &str, object: &mut Obj) {
    match kind {
        "MutatingWebhookConfiguration" => webhooks(object, true),
        "ValidatingWebhookConfiguration" => webhooks(object, false),
        "ValidatingAdmissionPolicy" => {
            if let Some(spec) = child(object, "spec") {
                set_if_unset(spec, "failurePolicy", "Fail");
                if let Some(constraints) = present(spec, "matchConstraints") {
                    match_resources(constraints);
                }
            }
        }
        "ValidatingAdmissionPolicyBinding" => {
            if let Some(resources) = present_path(object, &["spec", "matchResources"]) {
                match_resources(resources);
            }
        }
        _ => {}
    }
}

/// Webhooks fail closed, match equivalent requests, select everything, time
/// out after 10 seconds and (mutating ones) are not reinvoked.
fn webhooks(object: &mut Obj, mutating: bool) {
    for webhook in items(object, "webhooks") {
        set_if_unset(webhook, "failurePolicy", "Fail");
        set_if_unset(webhook, "matchPolicy", "Equivalent");
        set_if_unset(webhook, "namespaceSelector", json!({}));
        set_if_unset(webhook, "objectSelector", json!({}));
        set_if_unset(webhook, "timeoutSeconds", 10);
        if mutating {
            set_if_unset(webhook, "reinvocationPolicy", "Never");
        }
        if let Some(service) = present_path(webhook, &["clientConfig", "service"]) {
            set_if_unset(service, "port", 443);
        }
        rules(webhook, "rules");
    }
}

fn match_resources(resources: &mut Obj) {
    set_if_unset(resources, "matchPolicy", "Equivalent");
    set_if_unset(resources, "namespaceSelector", json!({}));
    set_if_unset(resources, "objectSelector", json!({}));
    rules(resources, "resourceRules");
    rules(resources, "excludeResourceRules");
}

/// Rules cover every scope unless they say otherwise.
fn rules(parent: &mut Obj, key: &str) {
    for rule in items(parent, key) {
        set_if_unset(rule, "scope", "*");
    }
}
