//! Table-driven checks of the messages upstream prints, valid objects that
//! must pass, and a mutation sweep proving malformed input never panics.

use serde_json::{Value, json};

use super::validate;
use crate::registry::lookup_kind;
use crate::{ApiError, FieldError};

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_message).collect()
}

fn check(group: &str, kind: &str, object: &Value, old: Option<&Value>) -> Vec<String> {
    messages(&validate(group, "v1", kind, object, old))
}

fn container(name: &str) -> Value {
    json!({
        "name": name,
        "image": "nginx:1.27",
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "512Mi"}},
        "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
        "env": [{"name": "MODE", "value": "prod"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": 80, "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
        }
    })
}

fn pod_spec() -> Value {
    json!({
        "containers": [container("web")],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": pod_spec()
    })
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()})
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template(),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600
        }
    })
}

fn job_template() -> Value {
    let mut t = template();
    t["spec"]["restartPolicy"] = json!("Never");
    t
}

fn job() -> Value {
    let mut t = job_template();
    t["metadata"]["labels"] = json!({
        "batch.kubernetes.io/controller-uid": "u1",
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u1",
        "job-name": "pi"
    });
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "template": t,
            "backoffLimit": 6, "completions": 1, "parallelism": 1, "completionMode": "NonIndexed",
            "suspend": false, "podReplacementPolicy": "TerminatingOrFailed"
        }
    })
}

fn cron_job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {
            "schedule": "*/5 * * * *",
            "concurrencyPolicy": "Allow",
            "suspend": false,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": {"template": job_template(), "backoffLimit": 6}}
        }
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                      {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}],
            "selector": {"app": "web"},
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster"
        }
    })
}

/// A pod using most of the spec, as upstream would store it.
fn rich_pod() -> Value {
    let mut p = pod();
    p["metadata"]["annotations"] = json!({
        "controller.kubernetes.io/pod-deletion-cost": "-5",
        "container.apparmor.security.beta.kubernetes.io/web": "runtime/default",
        "example.com/Note": "x"
    });
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true, "blockOwnerDeletion": true}]);
    p["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    let spec = &mut p["spec"];
    spec["serviceAccountName"] = json!("builder");
    spec["initContainers"] = json!([
        {"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]},
        {"name": "sidecar", "image": "envoy", "restartPolicy": "Always",
         "startupProbe": {"tcpSocket": {"port": 9901}, "failureThreshold": 30, "periodSeconds": 1},
         "readinessProbe": {"grpc": {"port": 9901}},
         "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}
    ]);
    let c = &mut spec["containers"][0];
    c["envFrom"] =
        json!([{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "sec", "optional": true}}]);
    c["env"] = json!([
        {"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "my.env-name", "value": "x"}
    ]);
    c["volumeMounts"] = json!([
        {"name": "data", "mountPath": "/data", "subPath": "a/b"},
        {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true, "recursiveReadOnly": "IfPossible"},
        {"name": "proj", "mountPath": "/var/run/proj"}
    ]);
    c["readinessProbe"] = json!({"exec": {"command": ["cat", "/ready"]}, "initialDelaySeconds": 5});
    c["lifecycle"] =
        json!({"postStart": {"httpGet": {"port": "http", "httpHeaders": [{"name": "X-Trace", "value": "1"}]}}});
    c["securityContext"] = json!({"runAsUser": 1000, "runAsNonRoot": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}});
    c["resizePolicy"] = json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"}]);
    spec["volumes"] = json!([
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420, "items": [{"key": "a", "path": "a.conf", "mode": 256}]}},
        {"name": "proj", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi", "medium": "Memory"}},
        {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
        {"name": "eph", "ephemeral": {"volumeClaimTemplate": {"metadata": {"labels": {"a": "b"}}, "spec": {"accessModes": ["ReadWriteOncePod"], "resources": {"requests": {"storage": "1Gi"}}}}}}
    ]);
    spec["affinity"] = json!({
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}], "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]
        },
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname", "matchLabelKeys": ["pod-template-hash"]}}]}
    });
    spec["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}, "minDomains": 2, "nodeTaintsPolicy": "Honor"}]);
    spec["dnsPolicy"] = json!("None");
    spec["dnsConfig"] = json!({"nameservers": ["1.1.1.1", "2001:4860:4860::8888"], "searches": ["svc.cluster.local", "_sip._tcp.example.com."], "options": [{"name": "ndots", "value": "2"}]});
    spec["securityContext"] = json!({"fsGroup": 2000, "supplementalGroups": [3000], "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}], "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}, "fsGroupChangePolicy": "OnRootMismatch"});
    spec["hostAliases"] = json!([{"ip": "127.0.0.1", "hostnames": ["foo.local"]}]);
    spec["readinessGates"] = json!([{"conditionType": "example.com/ready"}]);
    spec["priorityClassName"] = json!("high");
    spec["runtimeClassName"] = json!("gvisor");
    spec["preemptionPolicy"] = json!("Never");
    spec["hostname"] = json!("web-0");
    spec["subdomain"] = json!("web");
    spec["activeDeadlineSeconds"] = json!(3600);
    spec["os"] = json!({"name": "linux"});
    spec["overhead"] = json!({"cpu": "250m"});
    spec["nodeSelector"] = json!({"disktype": "ssd"});
    p
}

/// Valid objects of many kinds, each as upstream would store it.
fn valid_objects() -> Vec<(&'static str, &'static str, Value)> {
    let mut sts_template = template();
    sts_template["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "www", "mountPath": "/www"}]);
    vec![
        ("", "Pod", pod()),
        ("", "Pod", rich_pod()),
        ("apps", "Deployment", deployment()),
        (
            "apps",
            "ReplicaSet",
            json!({"metadata": {"name": "rs", "namespace": "d"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template()}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"metadata": {"name": "ds", "namespace": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}, "template": template(), "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}, "revisionHistoryLimit": 10}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"metadata": {"name": "db", "namespace": "d"}, "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "web"}}, "template": sts_template, "podManagementPolicy": "OrderedReady", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}, "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        ("batch", "Job", job()),
        ("batch", "CronJob", cron_job()),
        ("", "Service", service()),
        (
            "",
            "Service",
            json!({"metadata": {"name": "ext", "namespace": "d"}, "spec": {"type": "ExternalName", "externalName": "example.com.", "sessionAffinity": "None"}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "headless", "namespace": "d"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "x"}}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "lb", "namespace": "d"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}], "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000, "allocateLoadBalancerNodePorts": true, "loadBalancerSourceRanges": ["10.0.0.0/8"]}}),
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "cfg", "namespace": "d"}, "data": {"app.properties": "a=b", "KEY_1": "v"}, "binaryData": {"bin": "AAEC"}}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "tls", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "reg", "namespace": "d"}, "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "eyJhdXRocyI6e319"}}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "s", "namespace": "d"}, "stringData": {"password": "x"}}),
        ),
        (
            "",
            "Namespace",
            json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}}, "spec": {"finalizers": ["kubernetes"]}}),
        ),
        (
            "",
            "ServiceAccount",
            json!({"metadata": {"name": "default", "namespace": "d"}}),
        ),
        (
            "",
            "Node",
            json!({"metadata": {"name": "node-1.example.com"}, "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24", "fd00::/64"], "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}, "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}),
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "data", "namespace": "d"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}, "storageClassName": "standard", "volumeMode": "Filesystem"}}),
        ),
        (
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv1"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}, "hostPath": {"path": "/mnt/data", "type": ""}, "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}}),
        ),
        (
            "",
            "Endpoints",
            json!({"metadata": {"name": "web", "namespace": "d"}, "subsets": [{"addresses": [{"ip": "10.1.2.3", "nodeName": "n1"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]}]}),
        ),
        (
            "",
            "Event",
            json!({"metadata": {"name": "p.17f", "namespace": "default"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "Started", "message": "ok", "type": "Normal", "count": 1, "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z", "source": {"component": "kubelet"}}),
        ),
        (
            "events.k8s.io",
            "Event",
            json!({"metadata": {"name": "p.17f", "namespace": "default"}, "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "Started", "note": "ok", "type": "Normal", "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "kubelet", "reportingInstance": "n1", "action": "Start"}),
        ),
        (
            "",
            "LimitRange",
            json!({"metadata": {"name": "lr", "namespace": "d"}, "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "2"}, "min": {"cpu": "50m"}}]}}),
        ),
        (
            "",
            "ResourceQuota",
            json!({"metadata": {"name": "rq", "namespace": "d"}, "spec": {"hard": {"pods": "10", "requests.cpu": "4", "count/deployments.apps": "5"}}}),
        ),
        (
            "",
            "PodTemplate",
            json!({"metadata": {"name": "pt", "namespace": "d"}, "template": template()}),
        ),
        (
            "",
            "ReplicationController",
            json!({"metadata": {"name": "rc", "namespace": "d"}, "spec": {"replicas": 1, "selector": {"app": "web"}, "template": template()}}),
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"metadata": {"name": "ing", "namespace": "d"}, "spec": {"ingressClassName": "nginx", "rules": [{"host": "*.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}], "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}]}}),
        ),
        (
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"metadata": {"name": "np", "namespace": "d"}, "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"protocol": "TCP", "port": 80, "endPort": 90}]}], "policyTypes": ["Ingress", "Egress"]}}),
        ),
        (
            "networking.k8s.io",
            "IngressClass",
            json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}),
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": {"name": "reader", "namespace": "d"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            json!({"metadata": {"name": "system:reader"}, "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": {"name": "rb", "namespace": "d"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}, "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "d"}, {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            json!({"metadata": {"name": "crb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}, "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}]}),
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"metadata": {"name": "pdb", "namespace": "d"}, "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}}),
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "high"}, "value": 1000000, "preemptionPolicy": "PreemptLowerPriority"}),
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": {"name": "kube-scheduler", "namespace": "kube-system"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 2}}),
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"metadata": {"name": "web-abc", "namespace": "d"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": true}, "nodeName": "n1"}], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": {"name": "standard"}, "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}),
        ),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            json!({"metadata": {"name": "widgets.example.com"}, "spec": {}}),
        ),
    ]
}

#[test]
fn valid_objects_pass_on_create_and_update() {
    for (group, kind, object) in valid_objects() {
        let errs = check(group, kind, &object, None);
        assert!(errs.is_empty(), "{kind}: {errs:#?}");
        let errs = check(group, kind, &object, Some(&object));
        assert!(errs.is_empty(), "{kind} update: {errs:#?}");
    }
}

/// (group, kind, object, old, expected messages) — the exact upstream texts.
type Case = (&'static str, &'static str, Value, Option<Value>, Vec<&'static str>);

fn cases() -> Vec<Case> {
    let mut no_image = pod();
    no_image["spec"]["containers"][0]["image"] = json!("");
    let mut dup = pod();
    dup["spec"]["containers"] = json!([container("a"), container("a")]);
    dup["spec"]["containers"][1]["ports"] = json!([]);
    let mut init_dup = pod();
    init_dup["spec"]["initContainers"] = json!([{"name": "web", "image": "busybox"}]);
    let mut mismatch = deployment();
    mismatch["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
    let mut no_selector = deployment();
    no_selector["spec"].as_object_mut().unwrap().remove("selector");
    let mut never = deployment();
    never["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let mut zero = deployment();
    zero["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": 0});
    let mut negative = deployment();
    negative["spec"]["replicas"] = json!(-1);
    let mut moved = deployment();
    moved["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    let mut bad_label = pod();
    bad_label["metadata"]["labels"] = json!({"app": "-bad-"});
    let mut too_big = pod();
    too_big["metadata"]["annotations"] = json!({"a": "x".repeat(262_144)});
    let mut limits = pod();
    limits["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}});
    let mut missing_mount = pod();
    missing_mount["spec"]["volumes"] = json!([]);
    let mut bad_port = pod();
    bad_port["spec"]["containers"][0]["ports"] = json!([{"containerPort": 70000, "protocol": "HTTP"}]);
    let mut bad_policy = pod();
    bad_policy["spec"]["restartPolicy"] = json!("Sometimes");
    let mut changed = pod();
    changed["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
    let mut job_always = job();
    job_always["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    let mut bad_schedule = cron_job();
    bad_schedule["spec"]["schedule"] = json!("x");
    let mut svc_no_ports = service();
    svc_no_ports["spec"]["ports"] = json!([]);
    let mut svc_ip = service();
    svc_ip["spec"]["clusterIP"] = json!("10.96.0.11");
    svc_ip["spec"]["clusterIPs"] = json!(["10.96.0.11"]);
    let immutable_cm = json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
    let mut changed_cm = immutable_cm.clone();
    changed_cm["data"]["a"] = json!("2");
    let rb = json!({"metadata": {"name": "rb", "namespace": "d"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a"}});
    let mut rb2 = rb.clone();
    rb2["roleRef"]["name"] = json!("b");
    vec![
        (
            "",
            "Pod",
            no_image,
            None,
            vec!["spec.containers[0].image: Required value"],
        ),
        (
            "",
            "Pod",
            dup,
            None,
            vec![r#"spec.containers[1].name: Duplicate value: "a""#],
        ),
        (
            "",
            "Pod",
            init_dup,
            None,
            vec![r#"spec.initContainers[0].name: Duplicate value: "web""#],
        ),
        (
            "apps",
            "Deployment",
            mismatch,
            None,
            vec![
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`"#,
            ],
        ),
        (
            "apps",
            "Deployment",
            no_selector,
            None,
            vec![
                "spec.selector: Required value",
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#,
            ],
        ),
        (
            "apps",
            "Deployment",
            never,
            None,
            vec![r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#],
        ),
        (
            "apps",
            "Deployment",
            zero,
            None,
            vec![
                r#"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0"#,
            ],
        ),
        (
            "apps",
            "Deployment",
            negative,
            None,
            vec!["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            "apps",
            "Deployment",
            moved,
            Some(deployment()),
            vec![
                r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"x"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#,
            ],
        ),
        (
            "",
            "Pod",
            bad_label,
            None,
            vec![
                r#"metadata.labels: Invalid value: "-bad-": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#,
            ],
        ),
        (
            "",
            "Pod",
            too_big,
            None,
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"],
        ),
        (
            "",
            "Pod",
            limits,
            None,
            vec![
                r#"spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#,
            ],
        ),
        (
            "",
            "Pod",
            missing_mount,
            None,
            vec![r#"spec.containers[0].volumeMounts[0].name: Not found: "data""#],
        ),
        (
            "",
            "Pod",
            bad_port,
            None,
            vec![
                "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
                r#"spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#,
            ],
        ),
        (
            "",
            "Pod",
            bad_policy,
            None,
            vec![
                r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
            ],
        ),
        (
            "batch",
            "Job",
            job_always,
            None,
            vec![r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#],
        ),
        (
            "batch",
            "CronJob",
            bad_schedule,
            None,
            vec![r#"spec.schedule: Invalid value: "x": expected exactly 5 fields, found 1: [x]"#],
        ),
        ("", "Service", svc_no_ports, None, vec!["spec.ports: Required value"]),
        (
            "",
            "Service",
            svc_ip,
            Some(service()),
            vec![r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set"#],
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "1web", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}}),
            None,
            vec![
                r#"metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
            ],
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "e", "namespace": "d"}, "spec": {"type": "ExternalName"}}),
            None,
            vec!["spec.externalName: Required value"],
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"a b": "x"}}),
            None,
            vec![
                r#"data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#,
            ],
        ),
        (
            "",
            "ConfigMap",
            changed_cm,
            Some(immutable_cm),
            vec!["data: Forbidden: field is immutable when `immutable` is set"],
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "t", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {}}),
            None,
            vec!["data[tls.crt]: Required value", "data[tls.key]: Required value"],
        ),
        (
            "",
            "Namespace",
            json!({"metadata": {"name": "a.b"}}),
            None,
            vec![r#"metadata.name: Invalid value: "a.b": must not contain dots"#],
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": "Bad", "namespace": "d"}}),
            None,
            vec![
                r#"metadata.name: Invalid value: "Bad": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
            ],
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"namespace": "d"}}),
            None,
            vec!["metadata.name: Required value: name or generateName is required"],
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            rb2,
            Some(rb),
            vec![
                r#"roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"b"}: cannot change roleRef"#,
            ],
        ),
        (
            "rbac.authorization.k8s.io",
            "Role",
            json!({"metadata": {"name": "r", "namespace": "d"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
            None,
            vec!["rules[0].verbs: Required value: verbs must contain at least one value"],
        ),
        (
            "policy",
            "PodDisruptionBudget",
            json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": 1, "maxUnavailable": 1}}),
            None,
            vec![
                "spec: Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:(*intstr.IntOrString)(0xc000000000), Selector:(*v1.LabelSelector)(nil), MaxUnavailable:(*intstr.IntOrString)(0xc000000000), UnhealthyPodEvictionPolicy:(*policy.UnhealthyPodEvictionPolicyType)(nil)}: minAvailable and maxUnavailable cannot be both set",
            ],
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "huge"}, "value": 2000000000}),
            None,
            vec!["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"],
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "system-mine"}, "value": 1}),
            None,
            vec![
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class",
            ],
        ),
        (
            "coordination.k8s.io",
            "Lease",
            json!({"metadata": {"name": "l", "namespace": "d"}, "spec": {"leaseDurationSeconds": 0}}),
            None,
            vec!["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"],
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"metadata": {"name": "e", "namespace": "d"}, "addressType": "IP"}),
            None,
            vec![r#"addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6""#],
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": {"name": "s"}}),
            None,
            vec!["provisioner: Required value"],
        ),
        (
            "networking.k8s.io",
            "Ingress",
            json!({"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Regex", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
            None,
            vec![
                r#"spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix""#,
            ],
        ),
        (
            "",
            "Pod",
            json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": []}}),
            None,
            vec!["spec.containers: Required value"],
        ),
        (
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}),
            None,
            vec!["spec: Required value: must specify a volume type"],
        ),
        (
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "local": {"path": "/mnt/disk"}}}),
            None,
            vec!["spec.nodeAffinity: Required value: Local volume requires node affinity"],
        ),
        (
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/"}, "nfs": {"server": "s", "path": "/x"}, "persistentVolumeReclaimPolicy": "Recycle"}}),
            None,
            vec![
                "spec.nfs: Forbidden: may not specify more than 1 volume type",
                "spec.persistentVolumeReclaimPolicy: Forbidden: may not be 'recycle' for a hostPath mount of '/'",
            ],
        ),
        (
            "",
            "LimitRange",
            json!({"metadata": {"name": "lr", "namespace": "d"}, "spec": {"limits": [{"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}}]}}),
            None,
            vec![
                r#"spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: resource.Quantity{i:resource.int64Amount{value:500, scale:-3}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:"500m", Format:"DecimalSI"}: ratio 500m is less than 1"#,
            ],
        ),
        (
            "",
            "LimitRange",
            json!({"metadata": {"name": "lr", "namespace": "d"}, "spec": {"limits": [{"type": "Container", "min": {"cpu": "1"}, "max": {"cpu": "2"}, "maxLimitRequestRatio": {"cpu": "3"}}]}}),
            None,
            vec![
                r#"spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: resource.Quantity{i:resource.int64Amount{value:3, scale:0}, d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:"3", Format:"DecimalSI"}: ratio 3 is greater than max/min = 2.000000"#,
            ],
        ),
    ]
}

#[test]
fn messages_match_upstream() {
    for (group, kind, object, old, expected) in cases() {
        let got = check(group, kind, &object, old.as_ref());
        assert_eq!(got, expected, "{kind}: {object}");
    }
}

#[test]
fn pod_updates_may_only_change_images() {
    let mut changed = pod();
    changed["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
    let errs = check("", "Pod", &changed, Some(&pod()));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"),
        "{}",
        errs[0]
    );
    let mut image = pod();
    image["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert!(check("", "Pod", &image, Some(&pod())).is_empty());
}

#[test]
fn invalid_error_reads_like_kubectl_shows_it() {
    let mut d = deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
    let errs = validate("apps", "v1", "Deployment", &d, None);
    let resource = lookup_kind("apps/v1", "Deployment").unwrap();
    assert_eq!(
        ApiError::invalid(resource, "web", &errs).message,
        r#"Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`"#
    );
    assert_eq!(errs[0].reason, "FieldValueInvalid");
}

#[test]
fn wrong_json_types_are_invalid_values() {
    let mut p = pod();
    p["spec"]["containers"][0]["image"] = json!(5);
    p["spec"]["restartPolicy"] = json!(["Always"]);
    let errs = check("", "Pod", &p, None);
    assert!(
        errs.contains(&"spec.containers[0].image: Invalid value: 5: must be of type string".to_string()),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("spec.restartPolicy: Invalid value: [\"Always\"]")),
        "{errs:?}"
    );
    assert_eq!(check("", "Pod", &json!("not an object"), None).len(), 1);
}

/// Every path of `value`, as a list of JSON-pointer-like steps.
fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(k.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(i.to_string());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn replace(value: &mut Value, path: &[String], with: Value) {
    let mut target = value;
    for step in path {
        target = match target {
            Value::Object(map) => match map.get_mut(step) {
                Some(v) => v,
                None => return,
            },
            Value::Array(items) => match step.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
    }
    *target = with;
}

fn weird_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(i64::MAX),
        json!(""),
        json!("x"),
        json!("-"),
        json!("../..//%2f*.:/"),
        json!("\u{0}\u{7f}é"),
        json!("9999999999999999999999999999999999999999Ei"),
        json!([]),
        json!({}),
        json!([1, "a", null, {}]),
        json!({"a": 1, "b": [null]}),
        json!("x".repeat(300)),
        json!("10e2147483647"),
        json!("-1e-2147483648"),
        json!("1.5e99999999999"),
        json!("é-"),
        json!("TZ=Europe/Paris */5 * * * *"),
        json!("TZ=x"),
        json!("1-2/3,*/0,L,?"),
        json!("::ffff:1.2.3.4/200"),
        json!("-9223372036854775808"),
    ]
}

#[test]
fn malformed_input_never_panics() {
    for (group, kind, object) in valid_objects() {
        let mut all = Vec::new();
        paths(&object, &mut Vec::new(), &mut all);
        for path in &all {
            for (i, weird) in weird_values().into_iter().enumerate() {
                let mut mutated = object.clone();
                replace(&mut mutated, path, weird);
                let _ = validate(group, "v1", kind, &mutated, None);
                if i % 4 == 0 {
                    let _ = validate(group, "v1", kind, &mutated, Some(&object));
                    let _ = validate(group, "v1", kind, &object, Some(&mutated));
                }
            }
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let weird = weird_values();
    let objects = valid_objects();
    for _ in 0..3000 {
        let (group, kind, object) = &objects[(next() % objects.len() as u64) as usize];
        let mut all = Vec::new();
        paths(object, &mut Vec::new(), &mut all);
        let mut mutated = object.clone();
        for _ in 0..(1 + next() % 4) {
            let path = &all[(next() % all.len() as u64) as usize];
            replace(
                &mut mutated,
                path,
                weird[(next() % weird.len() as u64) as usize].clone(),
            );
        }
        let _ = validate(group, "v1", kind, &mutated, Some(object));
        let _ = validate(group, "v1", kind, &mutated, None);
    }
}

#[test]
fn job_completions_are_elastic_only_for_indexed_jobs() {
    let mut old = job();
    old["spec"]["completions"] = json!(3);
    old["spec"]["parallelism"] = json!(3);
    let mut new = old.clone();
    new["spec"]["completions"] = json!(4);
    assert_eq!(
        check("batch", "Job", &new, Some(&old)),
        vec!["spec.completions: Invalid value: 4: field is immutable"]
    );
    old["spec"]["completionMode"] = json!("Indexed");
    new["spec"]["completionMode"] = json!("Indexed");
    assert_eq!(
        check("batch", "Job", &new, Some(&old)),
        vec!["spec.completions: Invalid value: 4: can only be modified in tandem with spec.parallelism"]
    );
    new["spec"]["parallelism"] = json!(4);
    assert!(check("batch", "Job", &new, Some(&old)).is_empty());
}
