//! The resource registry: every kind the API server serves, and how.
//!
//! Group, version, kind, plural and scope come from `k8s-openapi` (generated
//! from the upstream OpenAPI document), so they cannot drift from upstream.
//! What the generated types do not carry — short names, categories,
//! subresources, verbs — is upstream's discovery data, written down once
//! here. The generic REST layer, discovery and the storage keys are all
//! driven by this table; adding a kind is adding a line.

use std::sync::LazyLock;

use k8s_openapi::{ClusterResourceScope, ListableResource, NamespaceResourceScope, Resource};

/// A served resource type: one (group, version, plural).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// The URL segment and storage name, e.g. `deployments`.
    pub plural: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: Vec<Subresource>,
}

/// A subresource such as `deployments/scale`, with the kind it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subresource {
    pub name: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

/// The verbs of an ordinary resource.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NO_COLLECTION_DELETE: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const READ_ONLY: &[&str] = &["get", "list"];
const CREATE_ONLY: &[&str] = &["create"];
const GET_PATCH_UPDATE: &[&str] = &["get", "patch", "update"];
const CONNECT: &[&str] = &["create", "get"];

impl ResourceType {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` in the core group: how upstream error
    /// messages name a resource.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The lower-case kind, which discovery calls the singular name.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// Whether this is its group's preferred version: walking only those
    /// visits each resource once, however many versions serve it.
    pub fn is_preferred_version(&self) -> bool {
        groups()
            .iter()
            .any(|g| g.name == self.group && g.preferred_version() == self.version)
    }

    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether objects of this type can be listed and stored (unlike
    /// create-only review kinds such as `TokenReview`).
    pub fn is_stored(&self) -> bool {
        self.verbs.contains(&"get")
    }

    /// Objects live under `/registry/[<group>/]<plural>/`, one key per object:
    /// `<prefix><namespace>/<name>` or `<prefix><name>`. Versions of one
    /// resource share it, as upstream: `autoscaling/v1` and `v2`
    /// HorizontalPodAutoscalers are the same objects.
    pub fn storage_prefix(&self) -> String {
        // Events of both groups are one resource, stored as core events.
        let group = crate::conversion::storage_version(self.group, self.plural).map_or(self.group, |(g, _)| g);
        if group.is_empty() {
            format!("/registry/{}/", self.plural)
        } else {
            format!("/registry/{group}/{}/", self.plural)
        }
    }
}

trait Scoped {
    const NAMESPACED: bool;
}
impl Scoped for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Scoped for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

fn stored<T>() -> ResourceType
where
    T: ListableResource,
    T::Scope: Scoped,
{
    ResourceType {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: T::LIST_KIND,
        plural: T::URL_PATH_SEGMENT,
        namespaced: <T::Scope as Scoped>::NAMESPACED,
        short_names: &[],
        categories: &[],
        verbs: ALL_VERBS,
        subresources: Vec::new(),
    }
}

/// A create-only kind (reviews): POSTed, answered, never stored.
fn review<T: Resource>(plural: &'static str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: "",
        plural,
        namespaced,
        short_names: &[],
        categories: &[],
        verbs: CREATE_ONLY,
        subresources: Vec::new(),
    }
}

impl ResourceType {
    fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
    fn verbs(mut self, verbs: &'static [&'static str]) -> Self {
        self.verbs = verbs;
        self
    }
    fn sub(mut self, subresources: Vec<Subresource>) -> Self {
        self.subresources = subresources;
        self
    }
}

const fn sub(
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource {
        name,
        group,
        version,
        kind,
        verbs,
    }
}

const fn status(kind: &'static str, group: &'static str, version: &'static str) -> Subresource {
    sub("status", group, version, kind, GET_PATCH_UPDATE)
}

const SCALE: Subresource = sub("scale", "autoscaling", "v1", "Scale", GET_PATCH_UPDATE);

const POD_SUBRESOURCES: &[Subresource] = &[
    sub("attach", "", "v1", "PodAttachOptions", CONNECT),
    sub("binding", "", "v1", "Binding", CREATE_ONLY),
    sub("ephemeralcontainers", "", "v1", "Pod", GET_PATCH_UPDATE),
    sub("eviction", "policy", "v1", "Eviction", CREATE_ONLY),
    sub("exec", "", "v1", "PodExecOptions", CONNECT),
    sub("log", "", "v1", "Pod", &["get"]),
    sub("portforward", "", "v1", "PodPortForwardOptions", CONNECT),
    sub(
        "proxy",
        "",
        "v1",
        "PodProxyOptions",
        &["create", "delete", "get", "patch", "update"],
    ),
    sub("resize", "", "v1", "Pod", GET_PATCH_UPDATE),
    status("Pod", "", "v1"),
];

/// Every resource type served, in discovery order within each group.
pub static RESOURCES: LazyLock<Vec<ResourceType>> = LazyLock::new(|| {
    use k8s_openapi::api::{
        admissionregistration, apps, authentication, authorization, autoscaling, batch, certificates, coordination,
        core, discovery, events, networking, node, policy, rbac, scheduling, storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
    vec![
        // core/v1
        stored::<core::v1::ComponentStatus>().short(&["cs"]).verbs(READ_ONLY),
        stored::<core::v1::ConfigMap>().short(&["cm"]),
        stored::<core::v1::Endpoints>().short(&["ep"]),
        stored::<core::v1::Event>().short(&["ev"]),
        stored::<core::v1::LimitRange>().short(&["limits"]),
        stored::<core::v1::Namespace>()
            .short(&["ns"])
            .verbs(NO_COLLECTION_DELETE)
            .sub(vec![
                sub("finalize", "", "v1", "Namespace", &["update"]),
                status("Namespace", "", "v1"),
            ]),
        stored::<core::v1::Node>().short(&["no"]).sub(vec![
            sub(
                "proxy",
                "",
                "v1",
                "NodeProxyOptions",
                &["create", "delete", "get", "patch", "update"],
            ),
            status("Node", "", "v1"),
        ]),
        stored::<core::v1::PersistentVolumeClaim>()
            .short(&["pvc"])
            .sub(vec![status("PersistentVolumeClaim", "", "v1")]),
        stored::<core::v1::PersistentVolume>()
            .short(&["pv"])
            .sub(vec![status("PersistentVolume", "", "v1")]),
        stored::<core::v1::Pod>()
            .short(&["po"])
            .all()
            .sub(POD_SUBRESOURCES.to_vec()),
        stored::<core::v1::PodTemplate>(),
        stored::<core::v1::ReplicationController>()
            .short(&["rc"])
            .all()
            .sub(vec![SCALE, status("ReplicationController", "", "v1")]),
        stored::<core::v1::ResourceQuota>()
            .short(&["quota"])
            .sub(vec![status("ResourceQuota", "", "v1")]),
        stored::<core::v1::Secret>(),
        stored::<core::v1::ServiceAccount>().short(&["sa"]).sub(vec![sub(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            CREATE_ONLY,
        )]),
        stored::<core::v1::Service>().short(&["svc"]).all().sub(vec![
            sub(
                "proxy",
                "",
                "v1",
                "ServiceProxyOptions",
                &["create", "delete", "get", "patch", "update"],
            ),
            status("Service", "", "v1"),
        ]),
        // admissionregistration.k8s.io/v1
        stored::<admissionregistration::v1::MutatingWebhookConfiguration>(),
        stored::<admissionregistration::v1::ValidatingAdmissionPolicy>().sub(vec![status(
            "ValidatingAdmissionPolicy",
            "admissionregistration.k8s.io",
            "v1",
        )]),
        stored::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>(),
        stored::<admissionregistration::v1::ValidatingWebhookConfiguration>(),
        // apiextensions.k8s.io/v1
        stored::<apiextensions::v1::CustomResourceDefinition>()
            .short(&["crd", "crds"])
            .sub(vec![status("CustomResourceDefinition", "apiextensions.k8s.io", "v1")]),
        // apps/v1
        stored::<apps::v1::ControllerRevision>(),
        stored::<apps::v1::DaemonSet>()
            .short(&["ds"])
            .all()
            .sub(vec![status("DaemonSet", "apps", "v1")]),
        stored::<apps::v1::Deployment>()
            .short(&["deploy"])
            .all()
            .sub(vec![SCALE, status("Deployment", "apps", "v1")]),
        stored::<apps::v1::ReplicaSet>()
            .short(&["rs"])
            .all()
            .sub(vec![SCALE, status("ReplicaSet", "apps", "v1")]),
        stored::<apps::v1::StatefulSet>()
            .short(&["sts"])
            .all()
            .sub(vec![SCALE, status("StatefulSet", "apps", "v1")]),
        // authentication.k8s.io/v1, authorization.k8s.io/v1
        review::<authentication::v1::SelfSubjectReview>("selfsubjectreviews", false),
        review::<authentication::v1::TokenReview>("tokenreviews", false),
        review::<authorization::v1::LocalSubjectAccessReview>("localsubjectaccessreviews", true),
        review::<authorization::v1::SelfSubjectAccessReview>("selfsubjectaccessreviews", false),
        review::<authorization::v1::SelfSubjectRulesReview>("selfsubjectrulesreviews", false),
        review::<authorization::v1::SubjectAccessReview>("subjectaccessreviews", false),
        // autoscaling/v1 and v2
        stored::<autoscaling::v1::HorizontalPodAutoscaler>()
            .short(&["hpa"])
            .all()
            .sub(vec![status("HorizontalPodAutoscaler", "autoscaling", "v1")]),
        stored::<autoscaling::v2::HorizontalPodAutoscaler>()
            .short(&["hpa"])
            .all()
            .sub(vec![status("HorizontalPodAutoscaler", "autoscaling", "v2")]),
        // batch/v1
        stored::<batch::v1::CronJob>()
            .short(&["cj"])
            .all()
            .sub(vec![status("CronJob", "batch", "v1")]),
        stored::<batch::v1::Job>().all().sub(vec![status("Job", "batch", "v1")]),
        // certificates.k8s.io/v1
        stored::<certificates::v1::CertificateSigningRequest>()
            .short(&["csr"])
            .sub(vec![
                sub(
                    "approval",
                    "certificates.k8s.io",
                    "v1",
                    "CertificateSigningRequest",
                    GET_PATCH_UPDATE,
                ),
                status("CertificateSigningRequest", "certificates.k8s.io", "v1"),
            ]),
        // coordination.k8s.io/v1
        stored::<coordination::v1::Lease>(),
        // discovery.k8s.io/v1
        stored::<discovery::v1::EndpointSlice>(),
        // events.k8s.io/v1
        stored::<events::v1::Event>().short(&["ev"]),
        // networking.k8s.io/v1
        stored::<networking::v1::IngressClass>(),
        stored::<networking::v1::Ingress>()
            .short(&["ing"])
            .sub(vec![status("Ingress", "networking.k8s.io", "v1")]),
        stored::<networking::v1::IPAddress>().short(&["ip"]),
        stored::<networking::v1::NetworkPolicy>().short(&["netpol"]),
        stored::<networking::v1::ServiceCIDR>().sub(vec![status("ServiceCIDR", "networking.k8s.io", "v1")]),
        // node.k8s.io/v1
        stored::<node::v1::RuntimeClass>(),
        // policy/v1
        stored::<policy::v1::PodDisruptionBudget>()
            .short(&["pdb"])
            .sub(vec![status("PodDisruptionBudget", "policy", "v1")]),
        // rbac.authorization.k8s.io/v1
        stored::<rbac::v1::ClusterRoleBinding>(),
        stored::<rbac::v1::ClusterRole>(),
        stored::<rbac::v1::RoleBinding>(),
        stored::<rbac::v1::Role>(),
        // scheduling.k8s.io/v1
        stored::<scheduling::v1::PriorityClass>().short(&["pc"]),
        // storage.k8s.io/v1
        stored::<storage::v1::CSIDriver>(),
        stored::<storage::v1::CSINode>(),
        stored::<storage::v1::CSIStorageCapacity>(),
        stored::<storage::v1::StorageClass>().short(&["sc"]),
        stored::<storage::v1::VolumeAttachment>().sub(vec![status("VolumeAttachment", "storage.k8s.io", "v1")]),
    ]
});

/// The resource type served at `/apis/<group>/<version>/<plural>` (or
/// `/api/v1/<plural>` for the core group).
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource type of a `kind` in an `apiVersion`, as written in objects.
pub fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    let (group, version) = split_api_version(api_version);
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// A served API group with its versions, newest preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGroup {
    pub name: &'static str,
    pub versions: Vec<&'static str>,
}

impl ApiGroup {
    pub fn preferred_version(&self) -> &'static str {
        self.versions[0]
    }
}

/// The served groups in discovery order (core first), each with its
/// versions, preferred first.
pub fn groups() -> Vec<ApiGroup> {
    let mut groups: Vec<ApiGroup> = Vec::new();
    for r in RESOURCES.iter() {
        match groups.iter_mut().find(|g| g.name == r.group) {
            Some(g) if !g.versions.contains(&r.version) => g.versions.push(r.version),
            Some(_) => {}
            None => groups.push(ApiGroup {
                name: r.group,
                versions: vec![r.version],
            }),
        }
    }
    for group in &mut groups {
        group.versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    }
    groups
}

/// Kubernetes version ordering: GA over beta over alpha, then higher numbers.
fn version_priority(version: &str) -> (u8, u32, u32) {
    let rest = version.trim_start_matches('v');
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stability, minor) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n.parse().unwrap_or(0))
    } else {
        (2, 0)
    };
    (stability, major, minor)
}

/// The resources of one group version.
pub fn resources_of(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceType> {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_come_from_the_generated_types() {
        let deploy = lookup("apps", "v1", "deployments").unwrap();
        assert_eq!(
            (deploy.kind, deploy.list_kind, deploy.namespaced),
            ("Deployment", "DeploymentList", true)
        );
        assert_eq!(deploy.qualified_plural(), "deployments.apps");
        assert_eq!(deploy.storage_prefix(), "/registry/apps/deployments/");
        let ns = lookup("", "v1", "namespaces").unwrap();
        assert!(!ns.namespaced);
        assert_eq!(ns.storage_prefix(), "/registry/namespaces/");
        assert_eq!(lookup_kind("v1", "Pod").unwrap().plural, "pods");
        assert!(lookup("", "v1", "deployments").is_none());
    }

    #[test]
    fn plurals_are_unique_per_group_version() {
        let mut seen = std::collections::HashSet::new();
        for r in RESOURCES.iter() {
            assert!(seen.insert((r.group, r.version, r.plural)), "{} listed twice", r.plural);
        }
    }

    #[test]
    fn autoscaling_prefers_v2_and_core_comes_first() {
        let groups = groups();
        assert_eq!(groups[0].name, "");
        let autoscaling = groups.iter().find(|g| g.name == "autoscaling").unwrap();
        assert_eq!(autoscaling.versions, vec!["v2", "v1"]);
        assert_eq!(
            version_priority("v1beta1").cmp(&version_priority("v1")),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn every_group_the_issue_names_is_served() {
        let names: Vec<&str> = groups().iter().map(|g| g.name).collect();
        for group in [
            "",
            "apps",
            "batch",
            "autoscaling",
            "policy",
            "networking.k8s.io",
            "discovery.k8s.io",
            "rbac.authorization.k8s.io",
            "storage.k8s.io",
            "coordination.k8s.io",
            "events.k8s.io",
            "scheduling.k8s.io",
            "node.k8s.io",
            "certificates.k8s.io",
            "apiextensions.k8s.io",
            "admissionregistration.k8s.io",
        ] {
            assert!(names.contains(&group), "group {group:?} not served");
        }
    }
}
