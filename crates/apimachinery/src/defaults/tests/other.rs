use serde_json::json;

use super::{Case, check_all};

#[test]
fn horizontal_pod_autoscaler() {
    let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
    check_all(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        vec![Case {
            name: "kubectl autoscale deployment web --max=5",
            before: json!({"spec": {"maxReplicas": 5, "scaleTargetRef": target}}),
            after: json!({"spec": {"maxReplicas": 5, "minReplicas": 1, "scaleTargetRef": target}}),
        }],
    );
    let cpu_80 = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    let memory = json!([{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}]);
    check_all(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        vec![
            Case {
                name: "no metrics means 80% CPU",
                before: json!({"spec": {"maxReplicas": 5, "scaleTargetRef": target, "metrics": []}}),
                after: json!({"spec": {"maxReplicas": 5, "minReplicas": 1, "scaleTargetRef": target, "metrics": cpu_80}}),
            },
            Case {
                name: "explicit metrics, no behavior",
                before: json!({"spec": {"minReplicas": 2, "maxReplicas": 5, "metrics": memory}}),
                after: json!({"spec": {"minReplicas": 2, "maxReplicas": 5, "metrics": memory}}),
            },
            Case {
                name: "a partial behavior is completed",
                before: json!({"spec": {"maxReplicas": 5, "metrics": memory, "behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                }}}),
                after: json!({"spec": {"minReplicas": 1, "maxReplicas": 5, "metrics": memory, "behavior": {
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "selectPolicy": "Max",
                        "policies": [
                            {"type": "Pods", "value": 4, "periodSeconds": 15},
                            {"type": "Percent", "value": 100, "periodSeconds": 15},
                        ],
                    },
                    "scaleDown": {
                        "stabilizationWindowSeconds": 60,
                        "selectPolicy": "Max",
                        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                    },
                }}}),
            },
            Case {
                name: "an empty behavior gets both directions",
                before: json!({"spec": {"maxReplicas": 3, "metrics": memory, "behavior": {"scaleUp": {"selectPolicy": "Disabled"}}}}),
                after: json!({"spec": {"minReplicas": 1, "maxReplicas": 3, "metrics": memory, "behavior": {
                    "scaleUp": {
                        "stabilizationWindowSeconds": 0,
                        "selectPolicy": "Disabled",
                        "policies": [
                            {"type": "Pods", "value": 4, "periodSeconds": 15},
                            {"type": "Percent", "value": 100, "periodSeconds": 15},
                        ],
                    },
                    "scaleDown": {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                }}}),
            },
        ],
    );
}

#[test]
fn network_policy_and_ingress_class() {
    check_all(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        vec![
            Case {
                name: "deny all ingress",
                before: json!({"spec": {"podSelector": {}}}),
                after: json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
            },
            Case {
                name: "egress rules make it an egress policy too; ports are TCP",
                before: json!({"spec": {
                    "podSelector": {"matchLabels": {"app": "db"}},
                    "ingress": [{"ports": [{"port": 5432}, {"port": 53, "protocol": "UDP"}]}],
                    "egress": [{"ports": [{"port": 443}]}],
                }}),
                after: json!({"spec": {
                    "podSelector": {"matchLabels": {"app": "db"}},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"ports": [{"port": 5432, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}],
                    "egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}],
                }}),
            },
            Case {
                name: "explicit policy types",
                before: json!({"spec": {"policyTypes": ["Egress"], "egress": []}}),
                after: json!({"spec": {"policyTypes": ["Egress"], "egress": []}}),
            },
        ],
    );
    check_all(
        "networking.k8s.io/v1",
        "IngressClass",
        vec![
            Case {
                name: "parameters are cluster-scoped",
                before: json!({"spec": {"controller": "x/y", "parameters": {"kind": "Params", "name": "p"}}}),
                after: json!({"spec": {"controller": "x/y", "parameters": {"kind": "Params", "name": "p", "scope": "Cluster"}}}),
            },
            Case {
                name: "no parameters",
                before: json!({"spec": {"controller": "x/y"}}),
                after: json!({"spec": {"controller": "x/y"}}),
            },
        ],
    );
    let ingress = json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {}}]}}]}});
    assert_eq!(
        super::defaulted("networking.k8s.io/v1", "Ingress", ingress.clone()),
        ingress
    );
}

#[test]
fn endpoint_slice() {
    check_all(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        vec![Case {
            name: "unnamed TCP ports",
            before: json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
                "ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
            after: json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
                "ports": [{"name": "", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        }],
    );
}

#[test]
fn role_bindings() {
    let before = json!({
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "ServiceAccount", "name": "default", "namespace": "default"},
        ],
    });
    let after = json!({
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "ServiceAccount", "name": "default", "namespace": "default"},
        ],
    });
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        check_all(
            "rbac.authorization.k8s.io/v1",
            kind,
            vec![Case {
                name: "kubectl create rolebinding",
                before: before.clone(),
                after: after.clone(),
            }],
        );
    }
    let role = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
    assert_eq!(
        super::defaulted("rbac.authorization.k8s.io/v1", "Role", role.clone()),
        role
    );
}

#[test]
fn storage() {
    check_all(
        "storage.k8s.io/v1",
        "StorageClass",
        vec![
            Case {
                name: "delete and bind immediately",
                before: json!({"metadata": {"name": "fast"}, "provisioner": "example.com/ssd"}),
                after: json!({"metadata": {"name": "fast"}, "provisioner": "example.com/ssd",
                    "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
            },
            Case {
                name: "explicit",
                before: json!({"reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"}),
                after: json!({"reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"}),
            },
        ],
    );
    check_all(
        "storage.k8s.io/v1",
        "CSIDriver",
        vec![Case {
            name: "driver",
            before: json!({"metadata": {"name": "csi.example.com"}, "spec": {"podInfoOnMount": true}}),
            after: json!({"metadata": {"name": "csi.example.com"}, "spec": {
                "attachRequired": true,
                "fsGroupPolicy": "ReadWriteOnceWithFSType",
                "podInfoOnMount": true,
                "requiresRepublish": false,
                "seLinuxMount": false,
                "storageCapacity": false,
                "volumeLifecycleModes": ["Persistent"],
            }}),
        }],
    );
    check_all(
        "storage.k8s.io/v1",
        "VolumeAttachment",
        vec![Case {
            name: "inline volume sources",
            before: json!({"spec": {"attacher": "a", "nodeName": "n", "source": {"inlineVolumeSpec": {
                "hostPath": {"path": "/x"}, "capacity": {"storage": "1Gi"},
            }}}}),
            after: json!({"spec": {"attacher": "a", "nodeName": "n", "source": {"inlineVolumeSpec": {
                "hostPath": {"path": "/x", "type": ""}, "capacity": {"storage": "1Gi"},
            }}}}),
        }],
    );
}

#[test]
fn priority_class() {
    check_all(
        "scheduling.k8s.io/v1",
        "PriorityClass",
        vec![
            Case {
                name: "preempts lower priorities",
                before: json!({"metadata": {"name": "high"}, "value": 1000}),
                after: json!({"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "PreemptLowerPriority"}),
            },
            Case {
                name: "explicit",
                before: json!({"value": 1, "preemptionPolicy": "Never"}),
                after: json!({"value": 1, "preemptionPolicy": "Never"}),
            },
        ],
    );
}

#[test]
fn admission_webhooks_and_policies() {
    let rule = json!({"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]});
    let defaulted_rule = json!({"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "*"});
    let webhook = json!({
        "name": "hook.example.com",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"service": {"namespace": "ns", "name": "svc"}},
        "rules": [rule],
    });
    let defaulted_webhook = json!({
        "name": "hook.example.com",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"service": {"namespace": "ns", "name": "svc", "port": 443}},
        "rules": [defaulted_rule],
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "namespaceSelector": {},
        "objectSelector": {},
        "timeoutSeconds": 10,
    });
    check_all(
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
        vec![Case {
            name: "validating",
            before: json!({"webhooks": [webhook]}),
            after: json!({"webhooks": [defaulted_webhook]}),
        }],
    );
    let mut defaulted_mutating = defaulted_webhook.clone();
    defaulted_mutating["reinvocationPolicy"] = json!("Never");
    check_all(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        vec![
            Case {
                name: "mutating",
                before: json!({"webhooks": [webhook]}),
                after: json!({"webhooks": [defaulted_mutating]}),
            },
            Case {
                name: "URL webhooks with explicit settings",
                before: json!({"webhooks": [{"name": "u", "clientConfig": {"url": "https://x"}, "failurePolicy": "Ignore",
                    "matchPolicy": "Exact", "namespaceSelector": {"matchLabels": {"a": "b"}}, "objectSelector": {},
                    "timeoutSeconds": 3, "reinvocationPolicy": "IfNeeded"}]}),
                after: json!({"webhooks": [{"name": "u", "clientConfig": {"url": "https://x"}, "failurePolicy": "Ignore",
                    "matchPolicy": "Exact", "namespaceSelector": {"matchLabels": {"a": "b"}}, "objectSelector": {},
                    "timeoutSeconds": 3, "reinvocationPolicy": "IfNeeded"}]}),
            },
        ],
    );
    let resource_rule =
        json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["*"], "resources": ["deployments"]});
    let mut defaulted_resource_rule = resource_rule.clone();
    defaulted_resource_rule["scope"] = json!("*");
    let match_defaults = json!({
        "matchPolicy": "Equivalent", "namespaceSelector": {}, "objectSelector": {},
        "resourceRules": [defaulted_resource_rule],
    });
    check_all(
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicy",
        vec![
            Case {
                name: "policy",
                before: json!({"spec": {"matchConstraints": {"resourceRules": [resource_rule]},
                    "validations": [{"expression": "true"}]}}),
                after: json!({"spec": {"failurePolicy": "Fail", "matchConstraints": match_defaults,
                    "validations": [{"expression": "true"}]}}),
            },
            Case {
                name: "no constraints",
                before: json!({"spec": {"failurePolicy": "Ignore"}}),
                after: json!({"spec": {"failurePolicy": "Ignore"}}),
            },
        ],
    );
    check_all(
        "admissionregistration.k8s.io/v1",
        "ValidatingAdmissionPolicyBinding",
        vec![
            Case {
                name: "binding with match resources",
                before: json!({"spec": {"policyName": "p", "validationActions": ["Deny"],
                    "matchResources": {"resourceRules": [resource_rule]}}}),
                after: json!({"spec": {"policyName": "p", "validationActions": ["Deny"], "matchResources": match_defaults}}),
            },
            Case {
                name: "binding without",
                before: json!({"spec": {"policyName": "p", "validationActions": ["Deny"]}}),
                after: json!({"spec": {"policyName": "p", "validationActions": ["Deny"]}}),
            },
        ],
    );
}

#[test]
fn custom_resource_definition() {
    let versions = json!([
        {"name": "v1beta1", "served": true, "storage": false},
        {"name": "v1", "served": true, "storage": true},
    ]);
    check_all(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        vec![
            Case {
                name: "names, conversion and stored versions",
                before: json!({"spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"kind": "CronTab", "plural": "crontabs"}, "versions": versions}}),
                after: json!({
                    "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"kind": "CronTab", "plural": "crontabs", "singular": "crontab", "listKind": "CronTabList"},
                        "conversion": {"strategy": "None"},
                        "versions": versions},
                    "status": {"storedVersions": ["v1"]},
                }),
            },
            Case {
                name: "webhook conversion service port",
                before: json!({"spec": {"names": {"kind": "A", "singular": "a1", "listKind": "AList"},
                    "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                        "clientConfig": {"service": {"namespace": "n", "name": "s"}}}}},
                    "status": {"storedVersions": ["v1alpha1"]}}),
                after: json!({"spec": {"names": {"kind": "A", "singular": "a1", "listKind": "AList"},
                    "conversion": {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                        "clientConfig": {"service": {"namespace": "n", "name": "s", "port": 443}}}}},
                    "status": {"storedVersions": ["v1alpha1"]}}),
            },
        ],
    );
}

#[test]
fn kinds_of_groups_without_defaults_are_untouched() {
    let object = json!({"metadata": {"name": "x"}, "spec": {"a": 1}});
    for (api_version, kind) in [
        ("coordination.k8s.io/v1", "Lease"),
        ("certificates.k8s.io/v1", "CertificateSigningRequest"),
        ("policy/v1", "PodDisruptionBudget"),
        ("events.k8s.io/v1", "Event"),
        ("node.k8s.io/v1", "RuntimeClass"),
        ("example.com/v1", "CronTab"),
    ] {
        assert_eq!(
            super::defaulted(api_version, kind, object.clone()),
            object,
            "{api_version} {kind}"
        );
    }
}
