//! Strategic-merge-patch metadata: which lists merge by which key, which
//! fields keep only the keys given (`retainKeys`). `kubectl apply` computes
//! its patches from the v3 schemas and reads these as
//! `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`;
//! without them it would replace `containers` wholesale instead of merging
//! by `name`. `k8s-openapi`'s schemas do not carry them, so they are
//! written down here, as upstream's Go types declare them for the served
//! versions.

use serde_json::{Map, Value};

/// (definition, field, `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key` or empty).
pub(crate) const PATCH_META: &[(&str, &str, &str, &str)] = &[
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhook",
        "matchConditions",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
        "webhooks",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec",
        "matchConditions",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec",
        "variables",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhook",
        "matchConditions",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
        "webhooks",
        "merge",
        "name",
    ),
    ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "merge", "type"),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", ""),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", "type"),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", "type"),
    ("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "merge", "type"),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        "conditions",
        "merge",
        "type",
    ),
    ("io.k8s.api.batch.v1.JobStatus", "conditions", "merge", "type"),
    ("io.k8s.api.core.v1.ComponentStatus", "conditions", "merge", "type"),
    ("io.k8s.api.core.v1.Container", "env", "merge", "name"),
    ("io.k8s.api.core.v1.Container", "ports", "merge", "containerPort"),
    ("io.k8s.api.core.v1.Container", "volumeDevices", "merge", "devicePath"),
    ("io.k8s.api.core.v1.Container", "volumeMounts", "merge", "mountPath"),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        "allocatedResourcesStatus",
        "merge",
        "name",
    ),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        "volumeMounts",
        "merge",
        "mountPath",
    ),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", "merge", "name"),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "merge",
        "containerPort",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeDevices",
        "merge",
        "devicePath",
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "volumeMounts",
        "merge",
        "mountPath",
    ),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", "merge", "type"),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", ""),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", "merge", "type"),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", "merge", "type"),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        "conditions",
        "merge",
        "type",
    ),
    ("io.k8s.api.core.v1.PodSpec", "containers", "merge", "name"),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", "name"),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", "ip"),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", "name"),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", "name"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "resourceClaims",
        "merge,retainKeys",
        "name",
    ),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", "merge", "name"),
    (
        "io.k8s.api.core.v1.PodSpec",
        "topologySpreadConstraints",
        "merge",
        "topologyKey",
    ),
    ("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", "name"),
    ("io.k8s.api.core.v1.PodStatus", "conditions", "merge", "type"),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", "merge", "ip"),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", "merge", "ip"),
    (
        "io.k8s.api.core.v1.PodStatus",
        "resourceClaimStatuses",
        "merge,retainKeys",
        "name",
    ),
    (
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        "conditions",
        "merge",
        "type",
    ),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", "merge", "name"),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", "port"),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", "merge", "type"),
    (
        "io.k8s.api.networking.v1.ServiceCIDRStatus",
        "conditions",
        "merge",
        "type",
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        "selector",
        "replace",
        "",
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        "conditions",
        "merge",
        "type",
    ),
    ("io.k8s.api.storage.v1.CSINodeSpec", "drivers", "merge", "name"),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
        "x-kubernetes-validations",
        "merge",
        "rule",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "merge",
        "",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "merge",
        "uid",
    ),
];

/// Writes the extensions onto the fields' schemas.
pub(crate) fn annotate(schemas: &mut Map<String, Value>) {
    for (definition, field, strategy, key) in PATCH_META {
        let Some(Value::Object(property)) = schemas
            .get_mut(*definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
        else {
            continue;
        };
        property.insert("x-kubernetes-patch-strategy".into(), Value::from(*strategy));
        if !key.is_empty() {
            property.insert("x-kubernetes-patch-merge-key".into(), Value::from(*key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::DEFINITIONS;

    #[test]
    fn every_entry_names_a_real_field() {
        for (definition, field, _, _) in PATCH_META {
            let property = &DEFINITIONS.schemas[*definition]["properties"][*field];
            assert!(property.is_object(), "{definition}.{field} does not exist");
        }
    }

    #[test]
    fn containers_merge_by_name() {
        let containers = &DEFINITIONS.schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let strategy = &DEFINITIONS.schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert!(strategy.get("x-kubernetes-patch-merge-key").is_none());
    }
}
