//! Which Rust types carry the schemas: every kind the registry serves, the
//! kinds its subresources speak, and the shared `meta/v1` types the
//! operations refer to.
//!
//! The registry knows kinds by name only; this table ties each name to the
//! `k8s-openapi` type whose `JsonSchema` impl describes it. A test checks
//! that every kind in the registry has a line here.

use std::borrow::Cow;

use k8s_openapi::Resource;
use schemars::{JsonSchema, SchemaGenerator};

/// A group, version and kind, as `x-kubernetes-group-version-kind` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

/// One type whose schema goes into the documents.
pub(crate) struct Entry {
    /// The kind it is, if it is a kind of its own.
    pub gvk: Option<Gvk>,
    /// Adds the type's schema (and those it refers to) to the generator and
    /// returns its definition name.
    pub register: fn(&mut SchemaGenerator) -> Cow<'static, str>,
}

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) -> Cow<'static, str> {
    generator.subschema_for::<T>();
    T::schema_name()
}

const fn kind<T: Resource + JsonSchema>() -> Entry {
    Entry {
        gvk: Some(Gvk {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
        }),
        register: register::<T>,
    }
}

const fn shared<T: JsonSchema>() -> Entry {
    Entry {
        gvk: None,
        register: register::<T>,
    }
}

/// Definition names of the shared types that operations refer to.
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(crate) const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
pub(crate) const API_GROUP: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup";
pub(crate) const API_GROUP_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList";
pub(crate) const API_VERSIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions";

/// Every type described, kinds first.
pub(crate) fn entries() -> Vec<Entry> {
    use k8s_openapi::api::{
        admissionregistration, apps, authentication, authorization, autoscaling, batch, certificates, coordination,
        core, discovery, events, networking, node, policy, rbac, scheduling, storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    use k8s_openapi::apimachinery::pkg::apis::meta;
    vec![
        kind::<core::v1::Binding>(),
        kind::<core::v1::ComponentStatus>(),
        kind::<core::v1::ConfigMap>(),
        kind::<core::v1::Endpoints>(),
        kind::<core::v1::Event>(),
        kind::<core::v1::LimitRange>(),
        kind::<core::v1::Namespace>(),
        kind::<core::v1::Node>(),
        kind::<core::v1::PersistentVolumeClaim>(),
        kind::<core::v1::PersistentVolume>(),
        kind::<core::v1::Pod>(),
        kind::<core::v1::PodTemplate>(),
        kind::<core::v1::ReplicationController>(),
        kind::<core::v1::ResourceQuota>(),
        kind::<core::v1::Secret>(),
        kind::<core::v1::ServiceAccount>(),
        kind::<core::v1::Service>(),
        kind::<admissionregistration::v1::MutatingWebhookConfiguration>(),
        kind::<admissionregistration::v1::ValidatingAdmissionPolicy>(),
        kind::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>(),
        kind::<admissionregistration::v1::ValidatingWebhookConfiguration>(),
        kind::<apiextensions::v1::CustomResourceDefinition>(),
        kind::<apps::v1::ControllerRevision>(),
        kind::<apps::v1::DaemonSet>(),
        kind::<apps::v1::Deployment>(),
        kind::<apps::v1::ReplicaSet>(),
        kind::<apps::v1::StatefulSet>(),
        kind::<authentication::v1::SelfSubjectReview>(),
        kind::<authentication::v1::TokenRequest>(),
        kind::<authentication::v1::TokenReview>(),
        kind::<authorization::v1::LocalSubjectAccessReview>(),
        kind::<authorization::v1::SelfSubjectAccessReview>(),
        kind::<authorization::v1::SelfSubjectRulesReview>(),
        kind::<authorization::v1::SubjectAccessReview>(),
        kind::<autoscaling::v1::HorizontalPodAutoscaler>(),
        kind::<autoscaling::v1::Scale>(),
        kind::<autoscaling::v2::HorizontalPodAutoscaler>(),
        kind::<batch::v1::CronJob>(),
        kind::<batch::v1::Job>(),
        kind::<certificates::v1::CertificateSigningRequest>(),
        kind::<coordination::v1::Lease>(),
        kind::<discovery::v1::EndpointSlice>(),
        kind::<events::v1::Event>(),
        kind::<networking::v1::IngressClass>(),
        kind::<networking::v1::Ingress>(),
        kind::<networking::v1::IPAddress>(),
        kind::<networking::v1::NetworkPolicy>(),
        kind::<networking::v1::ServiceCIDR>(),
        kind::<node::v1::RuntimeClass>(),
        kind::<policy::v1::Eviction>(),
        kind::<policy::v1::PodDisruptionBudget>(),
        kind::<rbac::v1::ClusterRoleBinding>(),
        kind::<rbac::v1::ClusterRole>(),
        kind::<rbac::v1::RoleBinding>(),
        kind::<rbac::v1::Role>(),
        kind::<scheduling::v1::PriorityClass>(),
        kind::<storage::v1::CSIDriver>(),
        kind::<storage::v1::CSINode>(),
        kind::<storage::v1::CSIStorageCapacity>(),
        kind::<storage::v1::StorageClass>(),
        kind::<storage::v1::VolumeAttachment>(),
        shared::<meta::v1::DeleteOptions>(),
        shared::<meta::v1::Status>(),
        shared::<meta::v1::Patch>(),
        shared::<meta::v1::WatchEvent<k8s_openapi::apimachinery::pkg::runtime::RawExtension>>(),
        shared::<meta::v1::APIResourceList>(),
        shared::<meta::v1::APIGroup>(),
        shared::<meta::v1::APIGroupList>(),
        shared::<meta::v1::APIVersions>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_apimachinery::registry::RESOURCES;

    fn kinds() -> Vec<Gvk> {
        entries().iter().filter_map(|e| e.gvk).collect()
    }

    #[test]
    fn every_served_kind_has_a_schema() {
        let kinds = kinds();
        for r in RESOURCES.iter() {
            let gvk = Gvk {
                group: r.group,
                version: r.version,
                kind: r.kind,
            };
            assert!(kinds.contains(&gvk), "no schema for {gvk:?}");
        }
    }

    #[test]
    fn every_subresource_body_kind_has_a_schema() {
        let kinds = kinds();
        for sub in RESOURCES.iter().flat_map(|r| r.subresources.iter()) {
            if sub.kind.ends_with("Options") {
                continue; // query-parameter kinds of connect subresources: no body
            }
            let gvk = Gvk {
                group: sub.group,
                version: sub.version,
                kind: sub.kind,
            };
            assert!(
                kinds.contains(&gvk),
                "no schema for subresource {} kind {gvk:?}",
                sub.name
            );
        }
    }
}
