//! Malformed input: defaulting must never panic, must stay idempotent, and
//! must leave values of the wrong JSON type where they are.

use serde_json::{Value, json};

use super::defaulted;
use crate::registry::RESOURCES;

/// Rich objects of every defaulted kind, to be corrupted node by node.
fn samples() -> Vec<(&'static str, &'static str, Value)> {
    let container = json!({
        "name": "c", "image": "nginx",
        "ports": [{"containerPort": 80}],
        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
        "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 5},
        "readinessProbe": {"grpc": {"port": 9000}},
        "lifecycle": {"preStop": {"httpGet": {"port": 80}}},
    });
    let pod_spec = json!({
        "hostNetwork": true,
        "containers": [container],
        "initContainers": [container],
        "ephemeralContainers": [container],
        "volumes": [
            {"name": "a"},
            {"name": "b", "secret": {"secretName": "s"}},
            {"name": "c", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}},
                {"downwardAPI": {"items": [{"path": "p", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
            {"name": "d", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "e", "image": {"reference": "x"}},
            {"name": "f", "rbd": {"image": "i"}, "hostPath": {"path": "/"}},
        ],
    });
    // Pods exercise the whole pod spec; templates elsewhere only need to be reached.
    let template =
        json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"image": "x", "ports": [{}]}]}});
    let claim = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}});
    let rules = json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["pods"]}]);
    let webhooks = json!([{"name": "w", "clientConfig": {"service": {"name": "s", "namespace": "n"}}, "rules": rules}]);
    vec![
        ("v1", "Pod", json!({"metadata": {"name": "p"}, "spec": pod_spec})),
        ("v1", "PodTemplate", json!({"template": template})),
        (
            "v1",
            "ReplicationController",
            json!({"metadata": {}, "spec": {"selector": {}, "template": template}}),
        ),
        (
            "v1",
            "Service",
            json!({
                "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "externalIPs": ["1.2.3.4"],
                    "sessionAffinityConfig": {"clientIP": {}}, "ports": [{"port": 80, "targetPort": ""}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}},
            }),
        ),
        ("v1", "Secret", json!({"type": ""})),
        (
            "v1",
            "Namespace",
            json!({"metadata": {"name": "n", "labels": {"a": "b"}}, "status": {}}),
        ),
        ("v1", "Node", json!({"status": {"capacity": {"cpu": "1"}}})),
        (
            "v1",
            "PersistentVolume",
            json!({"spec": {"hostPath": {"path": "/"}, "scaleIO": {}, "azureDisk": {}}}),
        ),
        ("v1", "PersistentVolumeClaim", json!({"spec": {}, "status": {}})),
        ("v1", "Endpoints", json!({"subsets": [{"ports": [{"port": 1}]}]})),
        (
            "v1",
            "LimitRange",
            json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "1"}}]}}),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({"spec": {"strategy": {"rollingUpdate": {}}, "template": template}}),
        ),
        ("apps/v1", "ReplicaSet", json!({"spec": {"template": template}})),
        (
            "apps/v1",
            "StatefulSet",
            json!({"spec": {"updateStrategy": {"rollingUpdate": {}},
            "persistentVolumeClaimRetentionPolicy": {}, "volumeClaimTemplates": [claim], "template": template}}),
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"spec": {"updateStrategy": {"rollingUpdate": {}}, "template": template}}),
        ),
        (
            "batch/v1",
            "Job",
            json!({"metadata": {}, "spec": {"backoffLimitPerIndex": 1, "template": template,
            "podFailurePolicy": {"rules": [{"onPodConditions": [{"type": "T"}]}]}}}),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
        ),
        ("autoscaling/v1", "HorizontalPodAutoscaler", json!({"spec": {}})),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            json!({"spec": {"metrics": [],
            "behavior": {"scaleUp": {"policies": []}, "scaleDown": {}}}}),
        ),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            json!({"spec": {"ingress": [{"ports": [{}]}], "egress": [{"ports": [{}]}]}}),
        ),
        (
            "networking.k8s.io/v1",
            "IngressClass",
            json!({"spec": {"parameters": {}}}),
        ),
        ("discovery.k8s.io/v1", "EndpointSlice", json!({"ports": [{}]})),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            json!({"roleRef": {}, "subjects": [{"kind": "User"}]}),
        ),
        ("storage.k8s.io/v1", "StorageClass", json!({})),
        (
            "storage.k8s.io/v1",
            "CSIDriver",
            json!({"spec": {"volumeLifecycleModes": []}}),
        ),
        (
            "storage.k8s.io/v1",
            "VolumeAttachment",
            json!({"spec": {"source": {"inlineVolumeSpec": {"rbd": {}}}}}),
        ),
        ("scheduling.k8s.io/v1", "PriorityClass", json!({})),
        (
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            json!({"webhooks": webhooks}),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            json!({"webhooks": webhooks}),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicy",
            json!({"spec": {"matchConstraints": {
            "resourceRules": rules, "excludeResourceRules": rules}}}),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicyBinding",
            json!({"spec": {"matchResources": {
            "resourceRules": rules}}}),
        ),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            json!({"spec": {"names": {"kind": "K"},
            "conversion": {"webhook": {"clientConfig": {"service": {}}}},
            "versions": [{"name": "v1", "storage": true}]}}),
        ),
    ]
}

/// JSON pointers to every node below the root.
fn pointers(value: &Value, prefix: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v))
            .collect(),
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
        _ => return,
    };
    for (segment, child) in children {
        let pointer = format!("{prefix}/{segment}");
        out.push(pointer.clone());
        pointers(child, &pointer, out);
    }
}

/// Values of the wrong shape for (nearly) any field.
fn corruptions() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(7),
        json!(-1.5),
        json!("x"),
        json!([]),
        json!({}),
        json!([1, "x", null]),
        json!({"unexpected": [1]}),
    ]
}

/// Values defaulting must never overwrite: they are set (not null or
/// empty) and, wherever they land, of a type defaulting does not fill in.
fn is_preserved_kind(value: &Value) -> bool {
    matches!(value, Value::Bool(_) | Value::Number(_)) || value == "x" || value == &json!([1, "x", null])
}

/// Fields upstream rewrites whatever they hold.
fn is_overwritten(pointer: &str) -> bool {
    pointer.ends_with("/kubernetes.io~1metadata.name")
}

#[test]
fn corrupted_objects_neither_panic_nor_get_repaired() {
    let mut runs = 0;
    for (api_version, kind, sample) in samples() {
        let mut all = Vec::new();
        pointers(&sample, "", &mut all);
        for pointer in all {
            for corruption in corruptions() {
                let mut object = sample.clone();
                if let Some(node) = object.pointer_mut(&pointer) {
                    *node = corruption.clone();
                }
                let once = defaulted(api_version, kind, object);
                let twice = defaulted(api_version, kind, once.clone());
                assert_eq!(once, twice, "{kind} with {pointer} = {corruption} is not idempotent");
                if is_preserved_kind(&corruption) && !is_overwritten(&pointer) {
                    assert_eq!(
                        once.pointer(&pointer),
                        Some(&corruption),
                        "{kind}: {pointer} = {corruption} was changed"
                    );
                }
                runs += 1;
            }
        }
    }
    assert!(runs > 3000, "only {runs} corrupted objects tried");
}

#[test]
fn non_objects_are_left_alone() {
    for (api_version, kind, _) in samples() {
        for value in [Value::Null, json!(1), json!("pod"), json!([{"spec": {}}])] {
            assert_eq!(defaulted(api_version, kind, value.clone()), value, "{kind}");
        }
    }
}

#[test]
fn every_served_kind_defaults_an_empty_object_idempotently() {
    for resource in RESOURCES.iter() {
        for start in [json!({}), json!({"spec": null, "status": null, "metadata": null})] {
            let once = defaulted(&resource.api_version(), resource.kind, start);
            let twice = defaulted(&resource.api_version(), resource.kind, once.clone());
            assert_eq!(once, twice, "{}", resource.kind);
        }
    }
}

#[test]
fn malformed_fields_are_left_for_validation() {
    let cases = [
        ("apps/v1", "Deployment", json!({"spec": "nope"})),
        (
            "apps/v1",
            "Deployment",
            json!({"spec": {"replicas": "3", "strategy": [], "template": {"spec": 5}}}),
        ),
        (
            "v1",
            "Pod",
            json!({"spec": {"containers": 5, "volumes": {"a": 1}, "securityContext": "x"}}),
        ),
        (
            "v1",
            "Pod",
            json!({"spec": {"containers": [{"image": 5, "imagePullPolicy": 3, "ports": "80"}]}}),
        ),
        ("v1", "Service", json!({"spec": {"ports": [{"port": "80"}], "type": 1}})),
    ];
    let expected = [
        json!({"spec": "nope"}),
        json!({"spec": {"replicas": "3", "strategy": [], "template": {"spec": 5},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}}),
        json!({"spec": {"containers": 5, "volumes": {"a": 1}, "securityContext": "x", "enableServiceLinks": true,
            "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
            "terminationGracePeriodSeconds": 30}}),
        json!({"spec": super::with_pod_spec_defaults(json!({"enableServiceLinks": true, "containers": [{
            "image": 5, "imagePullPolicy": 3, "ports": "80",
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        }]}))}),
        json!({"spec": {"ports": [{"port": "80", "protocol": "TCP"}], "type": 1, "sessionAffinity": "None"}}),
    ];
    for ((api_version, kind, before), after) in cases.into_iter().zip(expected) {
        assert_eq!(defaulted(api_version, kind, before), after, "{kind}");
    }
}
