//! Validation of objects on write, as upstream's API server does it.
//!
//! Upstream validates every create and update (`pkg/apis/*/validation`, and
//! apimachinery's `ValidateObjectMeta`) and rejects bad objects with
//! `422 Invalid`, listing one `details.causes` entry per problem. Users and
//! controllers depend on those checks (a Deployment without a selector must
//! be rejected) and on their exact wording, since kubectl prints it:
//! `Deployment.apps "web" is invalid: spec.selector: Required value`. So the
//! rules, field paths and messages here are upstream's (Kubernetes 1.33),
//! including its quirks — a Go-syntax rendering of composite bad values,
//! paths such as `spec.template.labels`, and the kinds upstream leaves
//! unchecked (a StatefulSet's pod spec).
//!
//! [`validate`] works on the JSON form of an object after defaulting. Fields
//! that upstream's defaulting would fill in (restart and DNS policies,
//! protocols, pull policies, strategies, ...) are treated as their defaults
//! when absent. It never panics: a value of the wrong JSON type is reported
//! as an `Invalid value` at its path. Server-managed metadata (uid,
//! timestamps, resourceVersion, generation) is the server's business; on
//! update, only what users may not change is checked here.
//!
//! The code is split by API group; [`pod`] holds the `PodSpec` rules every
//! workload shares, [`meta`] the `ObjectMeta`, label and selector rules,
//! [`formats`] the string formats with upstream's explanations, and
//! [`field`] the rendering of field errors.

mod apps;
mod batch;
mod core;
mod cron;
mod field;
mod formats;
mod json;
mod meta;
mod others;
mod pod;
mod quantity;
mod resources;
mod service;
mod volumes;

pub use cron::parse_go_duration;

#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::FieldError;
use field::Errs;
use json::Node;
use meta::{MetaRules, NameRule};

/// The object being validated and, on update, the stored one.
pub(super) struct Input<'a> {
    object: &'a Value,
    old: Option<&'a Value>,
}

impl<'a> Input<'a> {
    fn object(&self) -> Node<'a> {
        Node::root(self.object)
    }

    fn old(&self) -> Option<Node<'a>> {
        self.old.map(Node::root)
    }
}

/// `ObjectMeta` on create, or its update rules on update.
fn meta_create_or_update(input: &Input, rules: MetaRules, errs: &mut Errs) {
    let metadata = input.object().field("metadata");
    match input.old() {
        None => meta::validate_object_meta(&metadata, rules, errs),
        Some(old) => meta::validate_object_meta_update(&metadata, &old.field("metadata"), rules, errs),
    }
}

/// For kinds whose update validation re-runs the create validation: both on update.
fn meta_full(input: &Input, rules: MetaRules, errs: &mut Errs) {
    meta_create_or_update(input, rules, errs);
    if input.old.is_some() {
        meta::validate_object_meta(&input.object().field("metadata"), rules, errs);
    }
}

/// Validates an object about to be written, as upstream would.
///
/// `object` is the JSON form after defaulting (and name generation); `old`
/// is the stored object on update. Returns the field errors, worded as
/// upstream's (empty when the object is valid); turn them into a `422` with
/// [`crate::ApiError::invalid`].
pub fn validate(group: &str, version: &str, kind: &str, object: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !object.is_object() {
        errs.push(field::invalid(
            "",
            field::raw(object.to_string()),
            "must be of type object",
        ));
        return errs;
    }
    let input = Input {
        object,
        old: old.filter(|o| o.is_object()),
    };
    dispatch(group, version, kind, &input, &mut errs);
    dedup(errs)
}

fn dispatch(group: &str, version: &str, kind: &str, input: &Input, errs: &mut Errs) {
    let subdomain = MetaRules::kube(NameRule::Subdomain);
    match (group, kind) {
        ("", "Pod") => core::validate_pod(input, errs),
        ("", "PodTemplate") => core::validate_pod_template(input, errs),
        ("", "ReplicationController") => core::validate_replication_controller(input, errs),
        ("", "ConfigMap") => core::validate_config_map(input, errs),
        ("", "Secret") => core::validate_secret(input, errs),
        ("", "Service") => core::validate_service(input, errs),
        ("", "Namespace") => core::validate_namespace(input, errs),
        ("", "ServiceAccount") => core::validate_service_account(input, errs),
        ("", "Endpoints") => core::validate_endpoints(input, errs),
        ("", "Event") => core::validate_event(input, false, errs),
        ("events.k8s.io", "Event") => core::validate_event(input, version != "v1beta1", errs),
        ("", "Node") => core::validate_node(input, errs),
        ("", "PersistentVolume") => core::validate_persistent_volume(input, errs),
        ("", "PersistentVolumeClaim") => core::validate_persistent_volume_claim(input, errs),
        ("", "LimitRange") => core::validate_limit_range(input, errs),
        ("", "ResourceQuota") => core::validate_resource_quota(input, errs),
        ("apps", "Deployment") => apps::validate_deployment(input, errs),
        ("apps", "ReplicaSet") => apps::validate_replica_set(input, errs),
        ("apps", "StatefulSet") => apps::validate_stateful_set(input, errs),
        ("apps", "DaemonSet") => apps::validate_daemon_set(input, errs),
        ("apps", "ControllerRevision") => apps::validate_controller_revision(input, errs),
        ("batch", "Job") => batch::validate_job(input, errs),
        ("batch", "CronJob") => batch::validate_cron_job(input, errs),
        ("networking.k8s.io", "Ingress") => others::validate_ingress(input, errs),
        ("networking.k8s.io", "IngressClass") => others::validate_ingress_class(input, errs),
        ("networking.k8s.io", "NetworkPolicy") => others::validate_network_policy(input, errs),
        ("rbac.authorization.k8s.io", "Role") => others::validate_role(input, false, errs),
        ("rbac.authorization.k8s.io", "ClusterRole") => others::validate_role(input, true, errs),
        ("rbac.authorization.k8s.io", "RoleBinding") => others::validate_role_binding(input, false, errs),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => others::validate_role_binding(input, true, errs),
        ("policy", "PodDisruptionBudget") => others::validate_pod_disruption_budget(input, errs),
        ("scheduling.k8s.io", "PriorityClass") => others::validate_priority_class(input, errs),
        ("coordination.k8s.io", "Lease") => others::validate_lease(input, errs),
        ("discovery.k8s.io", "EndpointSlice") => others::validate_endpoint_slice(input, errs),
        ("storage.k8s.io", "StorageClass") => others::validate_storage_class(input, errs),
        ("authentication.k8s.io" | "authorization.k8s.io", _) => {}
        ("autoscaling", "HorizontalPodAutoscaler")
        | ("node.k8s.io", "RuntimeClass")
        | ("storage.k8s.io", "CSIDriver" | "CSINode" | "VolumeAttachment" | "CSIStorageCapacity") => {
            meta_create_or_update(input, subdomain, errs)
        }
        ("admissionregistration.k8s.io", _) => {
            meta_create_or_update(input, MetaRules::generic(NameRule::Subdomain), errs)
        }
        _ => meta_create_or_update(input, MetaRules::generic(NameRule::PathSegment), errs),
    }
}

/// Drops exact repeats (upstream's message lists each distinct error once).
fn dedup(errs: Errs) -> Errs {
    let mut out: Errs = Vec::with_capacity(errs.len());
    for e in errs {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}
