use serde_json::json;

use super::{Case, check_all, defaulted, with_pod_spec_defaults};

#[test]
fn pod() {
    check_all(
        "v1",
        "Pod",
        vec![
            Case {
                name: "kubectl run web --image=nginx",
                before: json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "web", "labels": {"run": "web"}},
                    "spec": {
                        "containers": [{"name": "web", "image": "nginx", "resources": {}}],
                        "dnsPolicy": "ClusterFirst",
                        "restartPolicy": "Always",
                    },
                    "status": {},
                }),
                after: json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "web", "labels": {"run": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx",
                            "imagePullPolicy": "Always",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }],
                        "dnsPolicy": "ClusterFirst",
                        "enableServiceLinks": true,
                        "restartPolicy": "Always",
                        "schedulerName": "default-scheduler",
                        "securityContext": {},
                        "terminationGracePeriodSeconds": 30,
                    },
                    "status": {},
                }),
            },
            Case {
                name: "no spec at all",
                before: json!({"metadata": {"name": "p"}}),
                after: json!({
                    "metadata": {"name": "p"},
                    "spec": with_pod_spec_defaults(json!({"enableServiceLinks": true})),
                }),
            },
            Case {
                name: "explicit values are kept",
                before: json!({"spec": {
                    "containers": [{
                        "name": "c", "image": "nginx", "imagePullPolicy": "Never",
                        "terminationMessagePath": "/tmp/log", "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                    "dnsPolicy": "Default",
                    "enableServiceLinks": false,
                    "restartPolicy": "Never",
                    "schedulerName": "other",
                    "securityContext": {"runAsUser": 1000},
                    "terminationGracePeriodSeconds": 0,
                }}),
                after: json!({"spec": {
                    "containers": [{
                        "name": "c", "image": "nginx", "imagePullPolicy": "Never",
                        "terminationMessagePath": "/tmp/log", "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                    "dnsPolicy": "Default",
                    "enableServiceLinks": false,
                    "restartPolicy": "Never",
                    "schedulerName": "other",
                    "securityContext": {"runAsUser": 1000},
                    "terminationGracePeriodSeconds": 0,
                }}),
            },
            Case {
                name: "empty strings and nulls count as unset",
                before: json!({"spec": {
                    "containers": [
                        {"name": "c", "image": "nginx:1.27", "imagePullPolicy": ""},
                        {"name": "n", "image": null, "imagePullPolicy": null},
                    ],
                    "dnsPolicy": "",
                    "securityContext": null,
                    "terminationGracePeriodSeconds": null,
                }}),
                after: json!({"spec": with_pod_spec_defaults(json!({
                    "containers": [
                        {
                            "name": "c", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                        },
                        {
                            "name": "n", "image": null, "imagePullPolicy": "IfNotPresent",
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                        },
                    ],
                    "enableServiceLinks": true,
                }))}),
            },
            Case {
                name: "requests default to limits, in pods only",
                before: json!({"spec": {
                    "containers": [
                        {"name": "a", "image": "x:1", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                        {"name": "b", "image": "x:1", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "500m"}}},
                        {"name": "c", "image": "x:1", "resources": {"limits": {}}},
                    ],
                    "initContainers": [
                        {"name": "i", "image": "x:1", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "100m"}}},
                    ],
                }}),
                after: json!({"spec": with_pod_spec_defaults(json!({
                    "containers": [
                        {
                            "name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent",
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}},
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                        },
                        {
                            "name": "b", "image": "x:1", "imagePullPolicy": "IfNotPresent",
                            "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "500m"}},
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                        },
                        {
                            "name": "c", "image": "x:1", "imagePullPolicy": "IfNotPresent",
                            "resources": {"limits": {}},
                            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                        },
                    ],
                    "enableServiceLinks": true,
                    "initContainers": [{
                        "name": "i", "image": "x:1", "imagePullPolicy": "IfNotPresent",
                        "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    }],
                }))}),
            },
            Case {
                name: "host network ports become host ports",
                before: json!({"spec": {
                    "hostNetwork": true,
                    "containers": [{"name": "c", "image": "x:1", "ports": [
                        {"containerPort": 8080},
                        {"containerPort": 9090, "hostPort": 19090, "protocol": "UDP"},
                    ]}],
                }}),
                after: json!({"spec": with_pod_spec_defaults(json!({
                    "hostNetwork": true,
                    "enableServiceLinks": true,
                    "containers": [{
                        "name": "c", "image": "x:1", "imagePullPolicy": "IfNotPresent",
                        "ports": [
                            {"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"},
                            {"containerPort": 9090, "hostPort": 19090, "protocol": "UDP"},
                        ],
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    }],
                }))}),
            },
            Case {
                name: "probes, hooks, env, ports and every container list",
                before: json!({"spec": {
                    "containers": [{
                        "name": "c", "image": "registry.k8s.io/app:latest",
                        "ports": [{"containerPort": 80}],
                        "env": [
                            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "PLAIN", "value": "x"},
                            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        ],
                        "livenessProbe": {"httpGet": {"port": 8080}},
                        "readinessProbe": {"grpc": {"port": 9000}, "timeoutSeconds": 0, "periodSeconds": 5},
                        "startupProbe": {"tcpSocket": {"port": 80}, "failureThreshold": 30},
                        "lifecycle": {
                            "preStop": {"httpGet": {"port": 80, "path": "/stop", "scheme": "HTTPS"}},
                            "postStart": {"exec": {"command": ["true"]}},
                        },
                    }],
                    "ephemeralContainers": [{"name": "debug", "image": "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000"}],
                    "initContainers": [{"name": "init", "image": "busybox", "readinessProbe": {"exec": {"command": ["true"]}}}],
                }}),
                after: json!({"spec": with_pod_spec_defaults(json!({
                    "containers": [{
                        "name": "c", "image": "registry.k8s.io/app:latest", "imagePullPolicy": "Always",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [
                            {"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                            {"name": "PLAIN", "value": "x"},
                            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        ],
                        "livenessProbe": {
                            "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
                            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
                        },
                        "readinessProbe": {
                            "grpc": {"port": 9000, "service": ""},
                            "timeoutSeconds": 1, "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3,
                        },
                        "startupProbe": {
                            "tcpSocket": {"port": 80},
                            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 30,
                        },
                        "lifecycle": {
                            "preStop": {"httpGet": {"port": 80, "path": "/stop", "scheme": "HTTPS"}},
                            "postStart": {"exec": {"command": ["true"]}},
                        },
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    }],
                    "enableServiceLinks": true,
                    "ephemeralContainers": [{
                        "name": "debug",
                        "image": "busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                        "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    }],
                    "initContainers": [{
                        "name": "init", "image": "busybox", "imagePullPolicy": "Always",
                        "readinessProbe": {
                            "exec": {"command": ["true"]},
                            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
                        },
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    }],
                }))}),
            },
            Case {
                name: "volumes",
                before: json!({"spec": {"containers": [], "volumes": [
                    {"name": "scratch"},
                    {"name": "cache", "emptyDir": {"medium": "Memory"}},
                    {"name": "secret", "secret": {"secretName": "s"}},
                    {"name": "config", "configMap": {"name": "c", "defaultMode": 256}},
                    {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "token", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}},
                        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                    ]}},
                    {"name": "host", "hostPath": {"path": "/var/log"}},
                    {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}},
                    {"name": "img", "image": {"reference": "quay.io/data:v1"}},
                    {"name": "disk", "azureDisk": {"diskName": "d", "diskURI": "u"}},
                    {"name": "ceph", "rbd": {"monitors": ["m"], "image": "i"}},
                    {"name": "iscsi", "iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0}},
                    {"name": "sio", "scaleIO": {"gateway": "g", "system": "s", "secretRef": {"name": "x"}}},
                ]}}),
                after: json!({"spec": with_pod_spec_defaults(json!({"containers": [], "enableServiceLinks": true, "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "cache", "emptyDir": {"medium": "Memory"}},
                    {"name": "secret", "secret": {"secretName": "s", "defaultMode": 420}},
                    {"name": "config", "configMap": {"name": "c", "defaultMode": 256}},
                    {"name": "info", "downwardAPI": {"defaultMode": 420, "items": [
                        {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
                    ]}},
                    {"name": "token", "projected": {"defaultMode": 420, "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                        {"downwardAPI": {"items": [
                            {"path": "ns", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
                        ]}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                    ]}},
                    {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
                    {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {
                        "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                    }}}},
                    {"name": "img", "image": {"reference": "quay.io/data:v1", "pullPolicy": "IfNotPresent"}},
                    {"name": "disk", "azureDisk": {
                        "diskName": "d", "diskURI": "u",
                        "cachingMode": "ReadWrite", "kind": "Shared", "fsType": "ext4", "readOnly": false,
                    }},
                    {"name": "ceph", "rbd": {
                        "monitors": ["m"], "image": "i", "pool": "rbd", "user": "admin", "keyring": "/etc/ceph/keyring",
                    }},
                    {"name": "iscsi", "iscsi": {"targetPortal": "t", "iqn": "q", "lun": 0, "iscsiInterface": "default"}},
                    {"name": "sio", "scaleIO": {
                        "gateway": "g", "system": "s", "secretRef": {"name": "x"},
                        "storageMode": "ThinProvisioned", "fsType": "xfs",
                    }},
                ]}))}),
            },
        ],
    );
}

#[test]
fn pod_template() {
    check_all(
        "v1",
        "PodTemplate",
        vec![Case {
            name: "pod-only defaults stay out of templates",
            before: json!({"metadata": {"name": "t"}, "template": {"spec": {
                "hostNetwork": true,
                "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                    "resources": {"limits": {"cpu": "1"}}}],
            }}}),
            after: json!({"metadata": {"name": "t"}, "template": {"spec": with_pod_spec_defaults(json!({
                "hostNetwork": true,
                "containers": [{
                    "name": "c", "image": "nginx", "imagePullPolicy": "Always",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "1"}},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                }],
            }))}}),
        }],
    );
}

#[test]
fn replication_controller() {
    let container = json!({"name": "c", "image": "nginx:1.27"});
    let defaulted_container = json!({
        "name": "c", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    });
    check_all(
        "v1",
        "ReplicationController",
        vec![
            Case {
                name: "selector, labels and replicas from the template",
                before: json!({"metadata": {"name": "rc"}, "spec": {"template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container]},
                }}}),
                after: json!({"metadata": {"name": "rc", "labels": {"app": "web"}}, "spec": {
                    "replicas": 1,
                    "selector": {"app": "web"},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": with_pod_spec_defaults(json!({"containers": [defaulted_container]})),
                    },
                }}),
            },
            Case {
                name: "explicit selector and labels are kept",
                before: json!({"metadata": {"labels": {"tier": "x"}}, "spec": {
                    "replicas": 0,
                    "selector": {"app": "web", "v": "1"},
                    "template": {"metadata": {"labels": {"app": "web", "v": "1", "extra": "y"}}},
                }}),
                after: json!({"metadata": {"labels": {"tier": "x"}}, "spec": {
                    "replicas": 0,
                    "selector": {"app": "web", "v": "1"},
                    "template": {
                        "metadata": {"labels": {"app": "web", "v": "1", "extra": "y"}},
                        "spec": with_pod_spec_defaults(json!({})),
                    },
                }}),
            },
            Case {
                name: "no template: only replicas",
                before: json!({"spec": {}}),
                after: json!({"spec": {"replicas": 1}}),
            },
        ],
    );
}

#[test]
fn service() {
    check_all(
        "v1",
        "Service",
        vec![
            Case {
                name: "kubectl create service clusterip web --tcp=80:8080",
                before: json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "web", "labels": {"app": "web"}},
                    "spec": {
                        "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                        "selector": {"app": "web"},
                        "type": "ClusterIP",
                    },
                    "status": {"loadBalancer": {}},
                }),
                after: json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "web", "labels": {"app": "web"}},
                    "spec": {
                        "internalTrafficPolicy": "Cluster",
                        "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                        "selector": {"app": "web"},
                        "sessionAffinity": "None",
                        "type": "ClusterIP",
                    },
                    "status": {"loadBalancer": {}},
                }),
            },
            Case {
                name: "bare ports",
                before: json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": 0}]}}),
                after: json!({"spec": {
                    "internalTrafficPolicy": "Cluster",
                    "ports": [
                        {"port": 80, "protocol": "TCP", "targetPort": 80},
                        {"port": 53, "protocol": "UDP", "targetPort": 53},
                    ],
                    "sessionAffinity": "None",
                    "type": "ClusterIP",
                }}),
            },
            Case {
                name: "NodePort with client-IP affinity",
                before: json!({"spec": {
                    "type": "NodePort",
                    "sessionAffinity": "ClientIP",
                    "ports": [{"port": 443, "targetPort": "", "nodePort": 30443}, {"port": 80, "targetPort": "http"}],
                }}),
                after: json!({"spec": {
                    "type": "NodePort",
                    "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                    "externalTrafficPolicy": "Cluster",
                    "internalTrafficPolicy": "Cluster",
                    "ports": [
                        {"port": 443, "protocol": "TCP", "targetPort": 443, "nodePort": 30443},
                        {"port": 80, "protocol": "TCP", "targetPort": "http"},
                    ],
                }}),
            },
            Case {
                name: "client-IP affinity with its own timeout",
                before: json!({"spec": {
                    "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                    "externalTrafficPolicy": "Local",
                    "internalTrafficPolicy": "Local",
                }}),
                after: json!({"spec": {
                    "type": "ClusterIP",
                    "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                    "externalTrafficPolicy": "Local",
                    "internalTrafficPolicy": "Local",
                }}),
            },
            Case {
                name: "LoadBalancer",
                before: json!({
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"hostname": "lb.example"}]}},
                }),
                after: json!({
                    "spec": {
                        "type": "LoadBalancer",
                        "allocateLoadBalancerNodePorts": true,
                        "externalTrafficPolicy": "Cluster",
                        "internalTrafficPolicy": "Cluster",
                        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                        "sessionAffinity": "None",
                    },
                    "status": {"loadBalancer": {"ingress": [
                        {"ip": "192.0.2.1", "ipMode": "VIP"},
                        {"hostname": "lb.example"},
                    ]}},
                }),
            },
            Case {
                name: "ExternalName: no traffic policies, affinity config dropped",
                before: json!({"spec": {
                    "type": "ExternalName", "externalName": "db.example",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}},
                }}),
                after: json!({"spec": {"type": "ExternalName", "externalName": "db.example", "sessionAffinity": "None"}}),
            },
            Case {
                name: "ClusterIP with external IPs is externally accessible",
                before: json!({"spec": {"externalIPs": ["198.51.100.7"]}}),
                after: json!({"spec": {
                    "externalIPs": ["198.51.100.7"],
                    "externalTrafficPolicy": "Cluster",
                    "internalTrafficPolicy": "Cluster",
                    "sessionAffinity": "None",
                    "type": "ClusterIP",
                }}),
            },
        ],
    );
}

#[test]
fn secret_namespace_node() {
    check_all(
        "v1",
        "Secret",
        vec![
            Case {
                name: "opaque by default",
                before: json!({"metadata": {"name": "s"}, "data": {"k": "dg=="}}),
                after: json!({"metadata": {"name": "s"}, "data": {"k": "dg=="}, "type": "Opaque"}),
            },
            Case {
                name: "explicit type",
                before: json!({"type": "kubernetes.io/tls"}),
                after: json!({"type": "kubernetes.io/tls"}),
            },
        ],
    );
    check_all(
        "v1",
        "Namespace",
        vec![
            Case {
                name: "kubectl create namespace dev",
                before: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}, "spec": {}, "status": {}}),
                after: json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
                    "spec": {},
                    "status": {"phase": "Active"},
                }),
            },
            Case {
                name: "the name label is enforced",
                before: json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "prod", "a": "b"}},
                    "status": {"phase": "Terminating"}}),
                after: json!({"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev", "a": "b"}},
                    "status": {"phase": "Terminating"}}),
            },
            Case {
                name: "generateName only",
                before: json!({"metadata": {"generateName": "tmp-"}}),
                after: json!({"metadata": {"generateName": "tmp-"}, "status": {"phase": "Active"}}),
            },
        ],
    );
    check_all(
        "v1",
        "Node",
        vec![
            Case {
                name: "allocatable from capacity",
                before: json!({"status": {"capacity": {"cpu": "4", "pods": "110"}}}),
                after: json!({"status": {"capacity": {"cpu": "4", "pods": "110"}, "allocatable": {"cpu": "4", "pods": "110"}}}),
            },
            Case {
                name: "allocatable kept",
                before: json!({"status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3"}}}),
                after: json!({"status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3"}}}),
            },
            Case {
                name: "no status",
                before: json!({"spec": {}}),
                after: json!({"spec": {}}),
            },
        ],
    );
}

#[test]
fn volumes_and_claims() {
    check_all(
        "v1",
        "PersistentVolume",
        vec![Case {
            name: "host path volume",
            before: json!({"metadata": {"name": "pv"}, "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"},
            }}),
            after: json!({
                "metadata": {"name": "pv"},
                "spec": {
                    "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": "/data", "type": ""},
                    "persistentVolumeReclaimPolicy": "Retain",
                    "volumeMode": "Filesystem",
                },
                "status": {"phase": "Pending"},
            }),
        }],
    );
    check_all(
        "v1",
        "PersistentVolumeClaim",
        vec![
            Case {
                name: "claim",
                before: json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
                after: json!({
                    "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                        "volumeMode": "Filesystem",
                    },
                    "status": {"phase": "Pending"},
                }),
            },
            Case {
                name: "block claim, bound",
                before: json!({"spec": {"volumeMode": "Block"}, "status": {"phase": "Bound"}}),
                after: json!({"spec": {"volumeMode": "Block"}, "status": {"phase": "Bound"}}),
            },
        ],
    );
}

#[test]
fn endpoints_and_limit_ranges() {
    check_all(
        "v1",
        "Endpoints",
        vec![Case {
            name: "ports are TCP",
            before: json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]}),
            after: json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}],
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}]}),
        }],
    );
    check_all(
        "v1",
        "LimitRange",
        vec![Case {
            name: "container defaults from max, default and min",
            before: json!({"spec": {"limits": [
                {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "100m", "ephemeral-storage": "1Gi"},
                    "default": {"memory": "512Mi"}},
                {"type": "Container", "min": {"cpu": "50m"}},
                {"type": "Container"},
                {"type": "Pod", "max": {"cpu": "4"}},
            ]}}),
            after: json!({"spec": {"limits": [
                {"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}, "min": {"cpu": "100m", "ephemeral-storage": "1Gi"},
                    "default": {"memory": "512Mi", "cpu": "2"},
                    "defaultRequest": {"memory": "512Mi", "cpu": "2", "ephemeral-storage": "1Gi"}},
                {"type": "Container", "min": {"cpu": "50m"}, "defaultRequest": {"cpu": "50m"}},
                {"type": "Container"},
                {"type": "Pod", "max": {"cpu": "4"}},
            ]}}),
        }],
    );
}

#[test]
fn kinds_without_defaults_are_untouched() {
    for kind in [
        "ConfigMap",
        "ServiceAccount",
        "Event",
        "ResourceQuota",
        "ComponentStatus",
        "Binding",
    ] {
        let object = json!({"metadata": {"name": "x"}, "spec": {}, "data": {"a": "b"}});
        assert_eq!(defaulted("v1", kind, object.clone()), object, "{kind}");
    }
}
