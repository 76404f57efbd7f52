use serde_json::{Value, json};

use super::{Case, check_all, with_pod_spec_defaults};

/// A template as `kubectl create` writes it, and its defaulted form.
fn nginx_template() -> (Value, Value) {
    let before = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
    });
    let after = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": with_pod_spec_defaults(json!({"containers": [{
            "name": "nginx", "image": "nginx", "imagePullPolicy": "Always", "resources": {},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        }]})),
    });
    (before, after)
}

#[test]
fn deployment() {
    let (template, defaulted_template) = nginx_template();
    check_all(
        "apps/v1",
        "Deployment",
        vec![
            Case {
                name: "kubectl create deployment web --image=nginx",
                before: json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "labels": {"app": "web"}},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": "web"}},
                        "strategy": {},
                        "template": template,
                    },
                    "status": {},
                }),
                after: json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "labels": {"app": "web"}},
                    "spec": {
                        "progressDeadlineSeconds": 600,
                        "replicas": 1,
                        "revisionHistoryLimit": 10,
                        "selector": {"matchLabels": {"app": "web"}},
                        "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
                        "template": defaulted_template,
                    },
                    "status": {},
                }),
            },
            Case {
                name: "Recreate has no rolling update parameters",
                before: json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}, "revisionHistoryLimit": 0,
                    "progressDeadlineSeconds": 60}}),
                after: json!({"spec": {
                    "replicas": 3, "strategy": {"type": "Recreate"}, "revisionHistoryLimit": 0, "progressDeadlineSeconds": 60,
                    "template": {"spec": with_pod_spec_defaults(json!({}))},
                }}),
            },
            Case {
                name: "partial rolling update",
                before: json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}}),
                after: json!({"spec": {
                    "progressDeadlineSeconds": 600,
                    "replicas": 1,
                    "revisionHistoryLimit": 10,
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
                    "template": {"spec": with_pod_spec_defaults(json!({}))},
                }}),
            },
        ],
    );
}

#[test]
fn replica_set() {
    let (template, defaulted_template) = nginx_template();
    check_all(
        "apps/v1",
        "ReplicaSet",
        vec![Case {
            name: "one replica",
            before: json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
            after: json!({"spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": defaulted_template}}),
        }],
    );
}

#[test]
fn stateful_set() {
    let (template, defaulted_template) = nginx_template();
    check_all(
        "apps/v1",
        "StatefulSet",
        vec![
            Case {
                name: "typical",
                before: json!({"metadata": {"name": "db"}, "spec": {
                    "serviceName": "db",
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": template,
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                    }}],
                }}),
                after: json!({"metadata": {"name": "db"}, "spec": {
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                    "podManagementPolicy": "OrderedReady",
                    "replicas": 1,
                    "revisionHistoryLimit": 10,
                    "selector": {"matchLabels": {"app": "web"}},
                    "serviceName": "db",
                    "template": defaulted_template,
                    "updateStrategy": {"rollingUpdate": {"partition": 0}, "type": "RollingUpdate"},
                    "volumeClaimTemplates": [{
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                            "volumeMode": "Filesystem",
                        },
                        "status": {"phase": "Pending"},
                    }],
                }}),
            },
            Case {
                name: "explicit RollingUpdate without parameters gets no partition",
                before: json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}, "podManagementPolicy": "Parallel",
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}}),
                after: json!({"spec": {
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
                    "podManagementPolicy": "Parallel",
                    "replicas": 1,
                    "revisionHistoryLimit": 10,
                    "template": {"spec": with_pod_spec_defaults(json!({}))},
                    "updateStrategy": {"type": "RollingUpdate"},
                }}),
            },
            Case {
                name: "rolling update parameters without a type",
                before: json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}),
                after: json!({"spec": {
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                    "podManagementPolicy": "OrderedReady",
                    "replicas": 1,
                    "revisionHistoryLimit": 10,
                    "template": {"spec": with_pod_spec_defaults(json!({}))},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "partition": 0}},
                }}),
            },
            Case {
                name: "OnDelete",
                before: json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
                after: json!({"spec": {
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                    "podManagementPolicy": "OrderedReady",
                    "replicas": 1,
                    "revisionHistoryLimit": 10,
                    "template": {"spec": with_pod_spec_defaults(json!({}))},
                    "updateStrategy": {"type": "OnDelete"},
                }}),
            },
        ],
    );
}

#[test]
fn daemon_set() {
    let (template, defaulted_template) = nginx_template();
    check_all(
        "apps/v1",
        "DaemonSet",
        vec![
            Case {
                name: "typical",
                before: json!({"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template}}),
                after: json!({"spec": {
                    "revisionHistoryLimit": 10,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": defaulted_template,
                    "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}, "type": "RollingUpdate"},
                }}),
            },
            Case {
                name: "OnDelete",
                before: json!({"spec": {"updateStrategy": {"type": "OnDelete"}, "revisionHistoryLimit": 2}}),
                after: json!({"spec": {
                    "revisionHistoryLimit": 2,
                    "template": {"spec": with_pod_spec_defaults(json!({}))},
                    "updateStrategy": {"type": "OnDelete"},
                }}),
            },
        ],
    );
}

#[test]
fn other_apps_kinds_and_versions_are_untouched() {
    let object = json!({"metadata": {"name": "x"}, "data": {"a": 1}, "revision": 1});
    assert_eq!(
        super::defaulted("apps/v1", "ControllerRevision", object.clone()),
        object
    );
    let deployment = json!({"spec": {}});
    assert_eq!(
        super::defaulted("apps/v1beta1", "Deployment", deployment.clone()),
        deployment
    );
}
