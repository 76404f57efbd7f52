//! Checks of the generated tables as a whole, independent of how the generator matched names.
//!
//! For each kind, a protobuf message with every field set (built from the table itself) is decoded; the JSON
//! must then read into k8s-openapi's type for that kind and write back unchanged. A wrong JSON name would be
//! dropped by k8s-openapi and a wrong JSON type would fail to read, so this catches both, for every field
//! reachable from the kind.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::generated::{ANY_VERSION, KINDS};
use crate::schema::{Form, Message, Shape, Ty};

/// Protobuf bytes of `msg` with every field set once (lists with one item, maps with one entry), values
/// chosen to be valid for the special types. A message already being built (a recursive type such as
/// `JSONSchemaProps`) is left out the second time.
fn sample(msg: &'static Message, stack: &mut Vec<&'static str>) -> Vec<u8> {
    let mut out = Vec::new();
    stack.push(msg.name);
    match msg.form {
        Form::IntOrString => {
            varint_field(&mut out, 1, 1);
            len_field(&mut out, 3, b"http");
        }
        Form::RawJson => len_field(&mut out, 1, br#"{"a":[1,"b"]}"#),
        Form::Time | Form::MicroTime => {
            varint_field(&mut out, 1, 1_704_164_645);
            varint_field(&mut out, 2, 123_456_789);
        }
        _ => {
            for field in msg.fields {
                match field.shape {
                    Shape::One | Shape::Inline | Shape::List => value(&mut out, field.tag, field.ty, stack),
                    Shape::Map => {
                        let mut entry = Vec::new();
                        len_field(&mut entry, 1, b"key");
                        value(&mut entry, 2, field.ty, stack);
                        len_field(&mut out, field.tag, &entry);
                    }
                }
            }
        }
    }
    stack.pop();
    out
}

fn value(out: &mut Vec<u8>, tag: u32, ty: Ty, stack: &mut Vec<&'static str>) {
    match ty {
        Ty::Str => len_field(out, tag, b"text"),
        Ty::Bytes => len_field(out, tag, &[0, 1, 254]),
        Ty::Bool => varint_field(out, tag, 1),
        Ty::I32 | Ty::I64 => varint_field(out, tag, 7),
        Ty::F64 => {
            varint(out, u64::from(tag) << 3 | 1);
            out.extend(1.5f64.to_bits().to_le_bytes());
        }
        // A recursive type is built two levels deep, enough to reach all of its fields.
        Ty::Msg(inner) if stack.iter().filter(|name| **name == inner.name).count() >= 2 => {}
        Ty::Msg(inner) => {
            let bytes = sample(inner, stack);
            len_field(out, tag, &bytes);
        }
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(out: &mut Vec<u8>, tag: u32, v: u64) {
    varint(out, u64::from(tag) << 3);
    varint(out, v);
}

fn len_field(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    varint(out, u64::from(tag) << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The object of a kind with every field set, as [`crate::decode`] returns it.
fn full_object(api_version: &str, kind: &str) -> Value {
    let msg =
        crate::generated::lookup(api_version, kind).unwrap_or_else(|| panic!("no table for {api_version} {kind}"));
    let raw = sample(msg, &mut Vec::new());
    let mut body = crate::MAGIC.to_vec();
    let mut type_meta = Vec::new();
    len_field(&mut type_meta, 1, api_version.as_bytes());
    len_field(&mut type_meta, 2, kind.as_bytes());
    len_field(&mut body, 1, &type_meta);
    len_field(&mut body, 2, &raw);
    crate::decode(&body).unwrap_or_else(|e| panic!("{api_version} {kind}: {e}"))
}

#[test]
fn every_kind_decodes_a_message_with_every_field_set() {
    for (api_version, kind, _) in KINDS.iter() {
        let object = full_object(api_version, kind);
        assert_eq!(object["kind"], *kind);
    }
    for (kind, _) in ANY_VERSION.iter() {
        full_object("v1", kind);
    }
}

#[test]
fn kinds_are_sorted_and_unique() {
    assert!(KINDS.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    assert!(ANY_VERSION.windows(2).all(|w| w[0].0 < w[1].0));
}

/// JSON paths present in `a` and not in `b`, and paths whose values differ.
fn differences(a: &Value, b: &Value, path: &str, missing: &mut BTreeSet<String>, differ: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let path = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => differences(value, other, &path, missing, differ),
                    // k8s-openapi reads null as absent, which it is to every reader.
                    None if value.is_null() => {}
                    None => {
                        missing.insert(last_two(&path));
                    }
                }
            }
            // k8s-openapi writes apiVersion and kind of every resource type, also when one is nested (a
            // StatefulSet's volumeClaimTemplates); Go leaves them out there.
            let nested = path.contains('.');
            for key in b.keys().filter(|k| !a.contains_key(*k)) {
                if !(nested && (key == "apiVersion" || key == "kind")) {
                    differ.push(format!("{path}.{key}: added by k8s-openapi"));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), missing, differ);
            }
        }
        _ if a == b => {}
        _ => differ.push(format!("{path}: {a} != {b}")),
    }
}

/// Fields of k8s-pb 0.9 (newer Kubernetes) that k8s-openapi's `v1_33` types do not have yet, so k8s-openapi
/// drops them when it reads the JSON: `parent.field` (the last two names of the JSON path). Checked the
/// other way too: each must still be missing, so the list shrinks when the workspace moves to a newer
/// Kubernetes.
const NEWER_THAN_V1_33: &[&str] = &[
    "allocation.allocationTimestamp",
    "basic.allowMultipleAllocations",
    "basic.bindingConditions",
    "basic.bindingFailureConditions",
    "basic.bindsToNode",
    "conditions.observedGeneration",
    "constraints.distinctAttribute",
    "containers.restartPolicyRules",
    "devices.shareID",
    "ephemeralContainers.restartPolicyRules",
    "firstAvailable.capacity",
    "initContainers.restartPolicyRules",
    "key.requestPolicy",
    "requests.capacity",
    "results.bindingConditions",
    "results.bindingFailureConditions",
    "results.consumedCapacity",
    "results.shareID",
    "sources.podCertificate",
    "spec.extendedResourceName",
    "spec.hostnameOverride",
    "spec.serviceAccountTokenInSecrets",
    "spec.workloadRef",
    "status.allocatedResources",
    "status.declaredFeatures",
    "status.extendedResourceClaimStatus",
    "status.observedGeneration",
    "status.resources",
    "valueFrom.fileKeyRef",
];

/// `spec.hostnameOverride` for `Pod.spec.hostnameOverride`, without list indexes.
fn last_two(path: &str) -> String {
    let names: Vec<&str> = path.split('.').map(|p| p.split('[').next().unwrap_or(p)).collect();
    names[names.len().saturating_sub(2)..].join(".")
}

fn round_trip<T>(missing_all: &mut BTreeSet<String>, failures: &mut Vec<String>)
where
    T: k8s_openapi::Resource + serde::de::DeserializeOwned + serde::Serialize,
{
    let object = full_object(T::API_VERSION, T::KIND);
    let typed: T = match serde_json::from_value(object.clone()) {
        Ok(typed) => typed,
        Err(e) => {
            failures.push(format!(
                "{} {}: k8s-openapi cannot read the JSON: {e}",
                T::API_VERSION,
                T::KIND
            ));
            return;
        }
    };
    let back = serde_json::to_value(&typed).unwrap();
    let mut missing = BTreeSet::new();
    let mut differ = Vec::new();
    differences(&object, &back, T::KIND, &mut missing, &mut differ);
    failures.extend(differ);
    missing_all.extend(missing);
}

macro_rules! round_trips {
    ($($ty:ty),* $(,)?) => {{
        let mut missing = BTreeSet::new();
        let mut failures = Vec::new();
        $(round_trip::<$ty>(&mut missing, &mut failures);)*
        (missing, failures)
    }};
}

#[test]
fn json_reads_into_k8s_openapi_and_writes_back_unchanged() {
    use k8s_openapi::api::{
        admissionregistration, apps, authentication, authorization, autoscaling, batch, certificates, coordination,
        core, discovery, events, flowcontrol, networking, node, policy, rbac, resource, scheduling, storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;
    let (missing, failures) = round_trips!(
        admissionregistration::v1::MutatingWebhookConfiguration,
        admissionregistration::v1::ValidatingAdmissionPolicy,
        admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        admissionregistration::v1::ValidatingWebhookConfiguration,
        apiextensions::v1::CustomResourceDefinition,
        apiregistration::v1::APIService,
        apps::v1::ControllerRevision,
        apps::v1::DaemonSet,
        apps::v1::Deployment,
        apps::v1::ReplicaSet,
        apps::v1::StatefulSet,
        authentication::v1::SelfSubjectReview,
        authentication::v1::TokenRequest,
        authentication::v1::TokenReview,
        authorization::v1::LocalSubjectAccessReview,
        authorization::v1::SelfSubjectAccessReview,
        authorization::v1::SelfSubjectRulesReview,
        authorization::v1::SubjectAccessReview,
        autoscaling::v1::HorizontalPodAutoscaler,
        autoscaling::v1::Scale,
        autoscaling::v2::HorizontalPodAutoscaler,
        batch::v1::CronJob,
        batch::v1::Job,
        certificates::v1::CertificateSigningRequest,
        coordination::v1::Lease,
        core::v1::Binding,
        core::v1::ConfigMap,
        core::v1::Endpoints,
        core::v1::Event,
        core::v1::LimitRange,
        core::v1::Namespace,
        core::v1::Node,
        core::v1::PersistentVolume,
        core::v1::PersistentVolumeClaim,
        core::v1::Pod,
        core::v1::PodTemplate,
        core::v1::ReplicationController,
        core::v1::ResourceQuota,
        core::v1::Secret,
        core::v1::Service,
        core::v1::ServiceAccount,
        discovery::v1::EndpointSlice,
        events::v1::Event,
        flowcontrol::v1::FlowSchema,
        flowcontrol::v1::PriorityLevelConfiguration,
        networking::v1::Ingress,
        networking::v1::IngressClass,
        networking::v1::NetworkPolicy,
        node::v1::RuntimeClass,
        policy::v1::Eviction,
        policy::v1::PodDisruptionBudget,
        rbac::v1::ClusterRole,
        rbac::v1::ClusterRoleBinding,
        rbac::v1::Role,
        rbac::v1::RoleBinding,
        resource::v1beta1::DeviceClass,
        resource::v1beta1::ResourceClaim,
        resource::v1beta1::ResourceSlice,
        scheduling::v1::PriorityClass,
        storage::v1::CSIDriver,
        storage::v1::CSINode,
        storage::v1::CSIStorageCapacity,
        storage::v1::StorageClass,
        storage::v1::VolumeAttachment,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let expected: BTreeSet<String> = NEWER_THAN_V1_33.iter().map(|s| s.to_string()).collect();
    let unexpected: Vec<&String> = missing.difference(&expected).collect();
    let gone: Vec<&String> = expected.difference(&missing).collect();
    assert!(
        unexpected.is_empty(),
        "JSON names k8s-openapi does not know:\n{unexpected:#?}"
    );
    assert!(
        gone.is_empty(),
        "no longer missing, remove from NEWER_THAN_V1_33: {gone:#?}"
    );
}

#[test]
fn special_forms_of_a_full_object() {
    let pod = full_object("v1", "Pod");
    let meta: &Map<String, Value> = pod["metadata"].as_object().unwrap();
    assert_eq!(meta["creationTimestamp"], "2024-01-02T03:04:05Z");
    assert_eq!(meta["managedFields"][0]["fieldsV1"], serde_json::json!({"a": [1, "b"]}));
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(container["resources"]["limits"]["key"], "text");
    let lease = full_object("coordination.k8s.io/v1", "Lease");
    assert_eq!(lease["spec"]["renewTime"], "2024-01-02T03:04:05.123456Z");
}
