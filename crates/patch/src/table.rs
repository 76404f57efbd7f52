//! Upstream's per-field patch metadata: which fields of the built-in types are
//! merged, and how, by a strategic merge patch.
//!
//! Each row is `(OpenAPI definition name, JSON field name, strategy)`; the
//! definition names are the ones `k8s-openapi` gives its schemas (and upstream
//! its OpenAPI document), so a walk over the schemas finds them.
//!
//! Sources, per class of entry:
//! - Everything is upstream's Go struct tags `patchStrategy` / `patchMergeKey`
//!   (published in OpenAPI as `x-kubernetes-patch-strategy` /
//!   `x-kubernetes-patch-merge-key`). The rows were read from the
//!   `+patchStrategy=` / `+patchMergeKey=` markers that upstream's types.go
//!   comments carry into the generated protobuf definitions (crate `k8s-pb`,
//!   which documents kubernetes/api, apimachinery, apiextensions-apiserver and
//!   kube-aggregator), restricted to the definitions that exist in Kubernetes
//!   1.33, and spot-checked against kubernetes/api `core/v1/types.go`.
//! - Three rows for 1.33-only definitions absent from that crate were checked
//!   against upstream types.go by hand: `resource.k8s.io/v1alpha3`
//!   `ResourceClaimStatus.reservedFor`, `storagemigration.k8s.io/v1alpha1`
//!   conditions, and CRD `JSONSchemaProps.x-kubernetes-validations`.
//! - Where SMP differs from the `x-kubernetes-list-type` keys that
//!   `k8s-openapi`'s `DeepMerge` encodes, SMP wins here: container `ports`
//!   merge by `containerPort` alone (not `containerPort`+`protocol`), service
//!   `ports` by `port`, `topologySpreadConstraints` by `topologyKey`, and
//!   `JobStatus.conditions` / `PodStatus.hostIPs` merge although their list
//!   type is atomic.
//! - Fields not listed (e.g. `tolerations`, node `taints`, `args`) are
//!   replaced wholesale, as upstream.

/// How a strategic merge patch treats one field (upstream's `patchStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldStrategy {
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: a list of objects merged element-wise by `<key>`.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge,retainKeys" patchMergeKey:"<key>"`: merged by `<key>`; each element is a
    /// union whose unset members clients clear with `$retainKeys`.
    MergeByKeyRetainKeys(&'static str),
    /// `patchStrategy:"merge"` without a key: a list of primitives merged as a set.
    MergeSet,
    /// `patchStrategy:"retainKeys"`: an object union; clients send `$retainKeys` to clear other members.
    RetainKeys,
    /// `patchStrategy:"replace"`: the patch value replaces the field wholesale.
    Replace,
}

impl FieldStrategy {
    /// For a list field: `Some(Some(key))` to merge by key, `Some(None)` to merge as a set,
    /// `None` to replace the list.
    pub fn list_merge(self) -> Option<Option<&'static str>> {
        match self {
            FieldStrategy::MergeByKey(key) | FieldStrategy::MergeByKeyRetainKeys(key) => Some(Some(key)),
            FieldStrategy::MergeSet => Some(None),
            FieldStrategy::RetainKeys | FieldStrategy::Replace => None,
        }
    }
}

use FieldStrategy::{MergeByKey, MergeByKeyRetainKeys, MergeSet, Replace, RetainKeys};

/// The strategy of `field` in the definition `definition`, if upstream gives it one.
pub fn field_strategy(definition: &str, field: &str) -> Option<FieldStrategy> {
    TABLE
        .iter()
        .find(|(d, f, _)| *d == definition && *f == field)
        .map(|(_, _, strategy)| *strategy)
}

/// Every row, for tests and tools.
pub fn entries() -> &'static [(&'static str, &'static str, FieldStrategy)] {
    TABLE
}

#[rustfmt::skip]
static TABLE: &[(&str, &str, FieldStrategy)] = &[
    ("io.k8s.api.admissionregistration.v1.MutatingWebhook", "matchConditions", MergeByKey("name")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration", "webhooks", MergeByKey("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "matchConditions", MergeByKey("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "variables", MergeByKey("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "matchConditions", MergeByKey("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration", "webhooks", MergeByKey("name")),
    ("io.k8s.api.admissionregistration.v1alpha1.MutatingAdmissionPolicySpec", "matchConditions", MergeByKey("name")),
    ("io.k8s.api.admissionregistration.v1beta1.ValidatingAdmissionPolicySpec", "matchConditions", MergeByKey("name")),
    ("io.k8s.api.admissionregistration.v1beta1.ValidatingAdmissionPolicySpec", "variables", MergeByKey("name")),
    ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", RetainKeys),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.batch.v1.JobStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.core.v1.ComponentStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.core.v1.Container", "env", MergeByKey("name")),
    ("io.k8s.api.core.v1.Container", "ports", MergeByKey("containerPort")),
    ("io.k8s.api.core.v1.Container", "volumeDevices", MergeByKey("devicePath")),
    ("io.k8s.api.core.v1.Container", "volumeMounts", MergeByKey("mountPath")),
    ("io.k8s.api.core.v1.ContainerStatus", "allocatedResourcesStatus", MergeByKey("name")),
    ("io.k8s.api.core.v1.ContainerStatus", "volumeMounts", MergeByKey("mountPath")),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", MergeByKey("name")),
    ("io.k8s.api.core.v1.EphemeralContainer", "ports", MergeByKey("containerPort")),
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", MergeByKey("devicePath")),
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", MergeByKey("mountPath")),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", MergeSet),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", MergeByKey("type")),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.core.v1.PodSpec", "containers", MergeByKey("name")),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", MergeByKey("name")),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", MergeByKey("ip")),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", MergeByKey("name")),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", MergeByKey("name")),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", MergeByKeyRetainKeys("name")),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", MergeByKey("name")),
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", MergeByKey("topologyKey")),
    ("io.k8s.api.core.v1.PodSpec", "volumes", MergeByKeyRetainKeys("name")),
    ("io.k8s.api.core.v1.PodStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", MergeByKey("ip")),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", MergeByKey("ip")),
    ("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses", MergeByKeyRetainKeys("name")),
    ("io.k8s.api.core.v1.ReplicationControllerStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", MergeByKey("name")),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", MergeByKey("port")),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.flowcontrol.v1.FlowSchemaStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.networking.v1.ServiceCIDRStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.networking.v1beta1.ServiceCIDRStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector", Replace),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", MergeByKey("type")),
    ("io.k8s.api.resource.v1beta1.ResourceClaimStatus", "reservedFor", MergeByKey("uid")),
    ("io.k8s.api.resource.v1beta2.ResourceClaimStatus", "reservedFor", MergeByKey("uid")),
    ("io.k8s.api.storage.v1.CSINodeSpec", "drivers", MergeByKey("name")),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", MergeSet),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", MergeByKey("uid")),
    ("io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIServiceStatus", "conditions", MergeByKey("type")),
    // Checked by hand against upstream types.go (definitions of 1.33 not in k8s-pb).
    ("io.k8s.api.resource.v1alpha3.ResourceClaimStatus", "reservedFor", MergeByKey("uid")),
    ("io.k8s.api.storagemigration.v1alpha1.StorageVersionMigrationStatus", "conditions", MergeByKey("type")),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
        "x-kubernetes-validations",
        MergeByKey("rule"),
    ),
];
