//! Bodies built the way kubectl builds them: a typed object (k8s-pb's prost structs, generated from
//! upstream's `.proto` files) encoded with prost, wrapped in a `runtime.Unknown` envelope after the `k8s\0`
//! prefix. Like Go, the helpers write the zero values of fields that are not pointers (`generateName: ""`,
//! `generation: 0`, an empty `creationTimestamp`), which the JSON must leave out as upstream does.

use std::collections::BTreeMap;

use capstan_protobuf::{DecodeError, decode};
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::networking::v1 as networking;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Value, json};

/// `k8s\0` + `runtime.Unknown{typeMeta, raw, contentEncoding: "", contentType: ""}`, as client-go writes it.
fn body(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(envelope.encode_to_vec());
    out
}

fn decoded(api_version: &str, kind: &str, object: &impl Message) -> Value {
    decode(&body(api_version, kind, object)).unwrap()
}

fn s(value: &str) -> Option<String> {
    Some(value.to_string())
}

/// ObjectMeta as Go writes a new object's: every string field, `generation: 0`, an empty creationTimestamp.
fn meta(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    })
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn quantity(value: &str) -> Quantity {
    Quantity { string: s(value) }
}

fn int(value: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(value),
        str_val: s(""),
    })
}

fn string(value: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(value),
    })
}

#[test]
fn namespace() {
    let ns = core::Namespace {
        metadata: meta("team-a"),
        spec: Some(core::NamespaceSpec::default()),
        status: Some(core::NamespaceStatus {
            phase: s(""),
            ..Default::default()
        }),
    };
    assert_eq!(
        decoded("v1", "Namespace", &ns),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "creationTimestamp": null},
            "spec": {},
            "status": {},
        })
    );
}

#[test]
fn configmap_with_binary_data() {
    let cm = core::ConfigMap {
        metadata: meta("settings"),
        data: labels(&[("mode", "fast"), ("empty", "")]),
        binary_data: [("blob".to_string(), vec![0, 1, 2, 255])].into(),
        immutable: None,
    };
    assert_eq!(
        decoded("v1", "ConfigMap", &cm),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "creationTimestamp": null},
            "data": {"mode": "fast", "empty": ""},
            "binaryData": {"blob": "AAEC/w=="},
        })
    );
}

#[test]
fn secret_bytes_are_base64() {
    let secret = core::Secret {
        metadata: meta("db"),
        data: [
            ("password".to_string(), b"s3cr3t".to_vec()),
            ("none".to_string(), Vec::new()),
        ]
        .into(),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
        immutable: Some(false),
    };
    assert_eq!(
        decoded("v1", "Secret", &secret),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "creationTimestamp": null},
            "data": {"password": "czNjcjN0", "none": ""},
            "type": "Opaque",
            // A pointer set to false is written, as upstream does.
            "immutable": false,
        })
    );
}

fn container(name: &str, image: &str) -> core::Container {
    core::Container {
        name: s(name),
        image: s(image),
        working_dir: s(""),
        resources: Some(core::ResourceRequirements::default()),
        termination_message_path: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        termination_message_policy: s(""),
        ..Default::default()
    }
}

fn pod_template(labels_: &[(&str, &str)], containers: Vec<core::Container>) -> Option<core::PodTemplateSpec> {
    let mut metadata = meta("").unwrap();
    metadata.name = s("");
    metadata.labels = labels(labels_);
    Some(core::PodTemplateSpec {
        metadata: Some(metadata),
        spec: Some(core::PodSpec {
            containers,
            restart_policy: s(""),
            dns_policy: s(""),
            service_account_name: s(""),
            node_name: s(""),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            scheduler_name: s(""),
            ..Default::default()
        }),
    })
}

#[test]
fn deployment() {
    let mut web = container("web", "nginx:1.27");
    web.ports = vec![core::ContainerPort {
        name: s("http"),
        host_port: Some(0),
        container_port: Some(80),
        protocol: s("TCP"),
        host_ip: s(""),
    }];
    web.resources = Some(core::ResourceRequirements {
        limits: [
            ("cpu".to_string(), quantity("500m")),
            ("memory".to_string(), quantity("128Mi")),
        ]
        .into(),
        requests: [("cpu".to_string(), quantity("250m"))].into(),
        claims: Vec::new(),
    });
    web.env = vec![core::EnvVar {
        name: s("POD_IP"),
        value: s(""),
        value_from: Some(core::EnvVarSource {
            field_ref: Some(core::ObjectFieldSelector {
                api_version: s("v1"),
                field_path: s("status.podIP"),
            }),
            ..Default::default()
        }),
    }];
    let deployment = apps::Deployment {
        metadata: meta("web"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![],
            }),
            template: pod_template(&[("app", "web")], vec![web]),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: string("25%"),
                    max_surge: int(1),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(0),
            paused: Some(false),
            progress_deadline_seconds: None,
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    };
    assert_eq!(
        decoded("apps/v1", "Deployment", &deployment),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
                        }],
                    },
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
                // A pointer: zero is kept.
                "revisionHistoryLimit": 0,
            },
            "status": {},
        })
    );
}

#[test]
fn job_and_cronjob() {
    let mut container = container("hello", "busybox");
    container.command = vec!["sh".into(), "-c".into(), "echo hi".into()];
    let mut template = pod_template(&[], vec![container]);
    template.as_mut().unwrap().spec.as_mut().unwrap().restart_policy = s("OnFailure");
    let job_spec = batch::JobSpec {
        template: template.clone(),
        backoff_limit: Some(0),
        ttl_seconds_after_finished: Some(100),
        ..Default::default()
    };
    let job = batch::Job {
        metadata: meta("once"),
        spec: Some(job_spec.clone()),
        status: Some(batch::JobStatus {
            active: Some(0),
            succeeded: Some(0),
            failed: Some(0),
            ..Default::default()
        }),
    };
    let spec_json = json!({
        "template": {
            "metadata": {"creationTimestamp": null},
            "spec": {
                "containers": [{"name": "hello", "image": "busybox", "command": ["sh", "-c", "echo hi"], "resources": {}}],
                "restartPolicy": "OnFailure",
            },
        },
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 100,
    });
    assert_eq!(
        decoded("batch/v1", "Job", &job),
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once", "creationTimestamp": null},
            "spec": spec_json,
            "status": {},
        })
    );

    let cronjob = batch::CronJob {
        metadata: meta("nightly"),
        spec: Some(batch::CronJobSpec {
            schedule: s("0 3 * * *"),
            time_zone: s("Europe/Paris"),
            concurrency_policy: s(""),
            suspend: Some(false),
            job_template: Some(batch::JobTemplateSpec {
                metadata: meta("nightly"),
                spec: Some(job_spec),
            }),
            ..Default::default()
        }),
        status: Some(batch::CronJobStatus {
            last_schedule_time: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
    };
    assert_eq!(
        decoded("batch/v1", "CronJob", &cronjob),
        json!({
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "nightly", "creationTimestamp": null},
            "spec": {
                "schedule": "0 3 * * *",
                "timeZone": "Europe/Paris",
                "suspend": false,
                "jobTemplate": {"metadata": {"name": "nightly", "creationTimestamp": null}, "spec": spec_json},
            },
            "status": {"lastScheduleTime": "2024-01-02T03:04:05Z"},
        })
    );
}

#[test]
fn service_ports_with_int_and_named_targets() {
    let port = |name: &str, port: i32, target: Option<IntOrString>| core::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        port: Some(port),
        target_port: target,
        node_port: Some(0),
        app_protocol: None,
    };
    let service = core::Service {
        metadata: meta("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![port("http", 80, int(8080)), port("https", 443, string("https"))],
            selector: labels(&[("app", "web")]),
            cluster_ip: s(""),
            cluster_ips: vec![],
            r#type: s("ClusterIP"),
            session_affinity: s(""),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ip_families: vec!["IPv4".into()],
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    assert_eq!(
        decoded("v1", "Service", &service),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
                "ipFamilies": ["IPv4"],
            },
            "status": {"loadBalancer": {}},
        })
    );
}

#[test]
fn service_account() {
    let sa = core::ServiceAccount {
        metadata: meta("builder"),
        secrets: vec![],
        image_pull_secrets: vec![core::LocalObjectReference { name: s("registry") }],
        automount_service_account_token: Some(false),
    };
    assert_eq!(
        decoded("v1", "ServiceAccount", &sa),
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "builder", "creationTimestamp": null},
            "imagePullSecrets": [{"name": "registry"}],
            "automountServiceAccountToken": false,
        })
    );
}

#[test]
fn self_subject_access_review() {
    let review = authz::SelfSubjectAccessReview {
        metadata: meta(""),
        spec: Some(authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(authz::ResourceAttributes {
                namespace: s("kube-system"),
                verb: s("list"),
                group: s(""),
                version: s(""),
                resource: s("pods"),
                subresource: s(""),
                name: s(""),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            denied: Some(false),
            reason: s(""),
            evaluation_error: s(""),
        }),
    };
    assert_eq!(
        decoded("authorization.k8s.io/v1", "SelfSubjectAccessReview", &review),
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"resourceAttributes": {"namespace": "kube-system", "verb": "list", "resource": "pods"}},
            // `allowed` is required upstream: its false is written.
            "status": {"allowed": false},
        })
    );
}

#[test]
fn subject_access_review_extra_is_a_map_of_arrays() {
    let review = authz::SubjectAccessReview {
        metadata: meta("sar"),
        spec: Some(authz::SubjectAccessReviewSpec {
            user: s("alice"),
            groups: vec!["devs".into()],
            extra: [
                (
                    "scopes".to_string(),
                    authz::ExtraValue {
                        items: vec!["a".into(), "b".into()],
                    },
                ),
                ("none".to_string(), authz::ExtraValue { items: vec![] }),
            ]
            .into(),
            uid: s(""),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decoded("authorization.k8s.io/v1", "SubjectAccessReview", &review)["spec"],
        json!({"user": "alice", "groups": ["devs"], "extra": {"scopes": ["a", "b"], "none": []}})
    );
}

#[test]
fn role_and_binding() {
    let role = rbac::Role {
        metadata: meta("reader"),
        rules: vec![rbac::PolicyRule {
            verbs: vec!["get".into(), "list".into()],
            api_groups: vec!["".into()],
            resources: vec!["pods".into()],
            resource_names: vec![],
            non_resource_ur_ls: vec![],
        }],
    };
    assert_eq!(
        decoded("rbac.authorization.k8s.io/v1", "Role", &role),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader", "creationTimestamp": null},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}],
        })
    );
    let cluster_role = rbac::ClusterRole {
        metadata: meta("health"),
        rules: vec![rbac::PolicyRule {
            verbs: vec!["get".into()],
            non_resource_ur_ls: vec!["/healthz".into()],
            ..Default::default()
        }],
        aggregation_rule: None,
    };
    assert_eq!(
        decoded("rbac.authorization.k8s.io/v1", "ClusterRole", &cluster_role)["rules"],
        json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}])
    );
    let binding = rbac::RoleBinding {
        metadata: meta("read-pods"),
        subjects: vec![
            rbac::Subject {
                kind: s("User"),
                api_group: s("rbac.authorization.k8s.io"),
                name: s("alice"),
                namespace: s(""),
            },
            rbac::Subject {
                kind: s("ServiceAccount"),
                api_group: s(""),
                name: s("ci"),
                namespace: s("build"),
            },
        ],
        role_ref: Some(rbac::RoleRef {
            api_group: s("rbac.authorization.k8s.io"),
            kind: s("Role"),
            name: s("reader"),
        }),
    };
    assert_eq!(
        decoded("rbac.authorization.k8s.io/v1", "RoleBinding", &binding),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "read-pods", "creationTimestamp": null},
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        })
    );
}

#[test]
fn pod_disruption_budget() {
    let pdb = policy::PodDisruptionBudget {
        metadata: meta("web"),
        spec: Some(policy::PodDisruptionBudgetSpec {
            min_available: None,
            selector: Some(meta::LabelSelector {
                match_labels: BTreeMap::new(),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: vec!["web".into(), "api".into()],
                }],
            }),
            max_unavailable: string("50%"),
            unhealthy_pod_eviction_policy: None,
        }),
        status: Some(policy::PodDisruptionBudgetStatus {
            observed_generation: Some(0),
            disruptions_allowed: Some(0),
            current_healthy: Some(0),
            desired_healthy: Some(0),
            expected_pods: Some(0),
            ..Default::default()
        }),
    };
    assert_eq!(
        decoded("policy/v1", "PodDisruptionBudget", &pdb),
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "creationTimestamp": null},
            "spec": {
                "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]},
                "maxUnavailable": "50%",
            },
            // Required upstream, so Go writes them even at zero.
            "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
        })
    );
}

#[test]
fn ingress() {
    let backend = |service: &str, port: networking::ServiceBackendPort| networking::IngressBackend {
        service: Some(networking::IngressServiceBackend {
            name: s(service),
            port: Some(port),
        }),
        resource: None,
    };
    let ingress = networking::Ingress {
        metadata: meta("site"),
        spec: Some(networking::IngressSpec {
            ingress_class_name: s("nginx"),
            default_backend: None,
            tls: vec![networking::IngressTls {
                hosts: vec!["foo.com".into()],
                secret_name: s("cert"),
            }],
            rules: vec![networking::IngressRule {
                host: s("foo.com"),
                ingress_rule_value: Some(networking::IngressRuleValue {
                    http: Some(networking::HttpIngressRuleValue {
                        paths: vec![
                            networking::HttpIngressPath {
                                path: s("/api"),
                                path_type: s("Prefix"),
                                backend: Some(backend(
                                    "api",
                                    networking::ServiceBackendPort {
                                        name: s(""),
                                        number: Some(8080),
                                    },
                                )),
                            },
                            networking::HttpIngressPath {
                                path: s("/"),
                                path_type: s("Exact"),
                                backend: Some(backend(
                                    "web",
                                    networking::ServiceBackendPort {
                                        name: s("http"),
                                        number: Some(0),
                                    },
                                )),
                            },
                        ],
                    }),
                }),
            }],
        }),
        status: Some(networking::IngressStatus {
            load_balancer: Some(networking::IngressLoadBalancerStatus::default()),
        }),
    };
    assert_eq!(
        decoded("networking.k8s.io/v1", "Ingress", &ingress),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "site", "creationTimestamp": null},
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{"hosts": ["foo.com"], "secretName": "cert"}],
                // IngressRuleValue is inlined into the rule, as Go's `json:",inline"` does.
                "rules": [{"host": "foo.com", "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 8080}}}},
                    {"path": "/", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                ]}}],
            },
            "status": {"loadBalancer": {}},
        })
    );
}

#[test]
fn pod_with_inlined_volume_sources_probes_and_ephemeral_containers() {
    let mut app = container("app", "app:1");
    app.volume_mounts = vec![core::VolumeMount {
        name: s("config"),
        read_only: Some(true),
        mount_path: s("/etc/app"),
        sub_path: s(""),
        ..Default::default()
    }];
    app.liveness_probe = Some(core::Probe {
        handler: Some(core::ProbeHandler {
            http_get: Some(core::HttpGetAction {
                path: s("/healthz"),
                port: string("http"),
                host: s(""),
                scheme: s("HTTP"),
                http_headers: vec![],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        timeout_seconds: Some(1),
        period_seconds: Some(10),
        success_threshold: Some(1),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    });
    let pod = core::Pod {
        metadata: meta("app"),
        spec: Some(core::PodSpec {
            volumes: vec![core::Volume {
                name: s("config"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference { name: s("settings") }),
                        items: vec![],
                        default_mode: Some(420),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            }],
            containers: vec![app],
            ephemeral_containers: vec![core::EphemeralContainer {
                ephemeral_container_common: Some(core::EphemeralContainerCommon {
                    name: s("debugger"),
                    image: s("busybox"),
                    stdin: Some(true),
                    tty: Some(true),
                    ..Default::default()
                }),
                target_container_name: s("app"),
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        decoded("v1", "Pod", &pod)["spec"],
        json!({
            "volumes": [{"name": "config", "configMap": {"name": "settings", "defaultMode": 420}}],
            "containers": [{
                "name": "app",
                "image": "app:1",
                "resources": {},
                "volumeMounts": [{"name": "config", "readOnly": true, "mountPath": "/etc/app"}],
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
            }],
            "ephemeralContainers": [{"name": "debugger", "image": "busybox", "stdin": true, "tty": true, "targetContainerName": "app"}],
            "terminationGracePeriodSeconds": 0,
        })
    );
}

#[test]
fn times_and_micro_times() {
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: Some(meta::ObjectMeta {
            name: s("node-1"),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(40),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            acquire_time: Some(meta::MicroTime::default()),
            ..Default::default()
        }),
    };
    assert_eq!(
        decoded("coordination.k8s.io/v1", "Lease", &lease),
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "node-1", "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "renewTime": "2024-01-02T03:04:05.123456Z",
                "acquireTime": null,
            },
        })
    );
}

#[test]
fn managed_fields_and_raw_extensions_embed_their_json() {
    let revision = apps::ControllerRevision {
        metadata: Some(meta::ObjectMeta {
            name: s("web-1"),
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl"),
                operation: s("Update"),
                api_version: s("apps/v1"),
                time: Some(meta::Time {
                    seconds: Some(0),
                    nanos: Some(0),
                }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:spec":{".":{}}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
            ..Default::default()
        }),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"replicas":2}}"#.to_vec()),
        }),
        revision: Some(1),
    };
    assert_eq!(
        decoded("apps/v1", "ControllerRevision", &revision),
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": "web-1",
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    // Unix time 0 encoded explicitly is not Go's zero time.
                    "time": "1970-01-01T00:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {".": {}}},
                }],
            },
            "data": {"spec": {"replicas": 2}},
            "revision": 1,
        })
    );

    // A RawExtension may itself hold a protobuf body.
    let inner = body(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: meta("inner"),
            ..Default::default()
        },
    );
    let list = core::List {
        metadata: None,
        items: vec![RawExtension { raw: Some(inner) }, RawExtension { raw: None }],
    };
    assert_eq!(
        decoded("v1", "List", &list)["items"],
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner", "creationTimestamp": null}}, null])
    );

    let bad = apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(b"{not json".to_vec()),
        }),
        ..Default::default()
    };
    assert!(matches!(
        decode(&body("apps/v1", "ControllerRevision", &bad)),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn options_kinds_decode_in_every_group_version() {
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("u-1"),
            resource_version: None,
        }),
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    let want = json!({
        "apiVersion": "apps/v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u-1"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    });
    assert_eq!(decoded("apps/v1", "DeleteOptions", &options), want);
    let eviction = policy::Eviction {
        metadata: meta("pod-1"),
        delete_options: Some(options),
    };
    assert_eq!(
        decoded("policy/v1", "Eviction", &eviction)["deleteOptions"]["gracePeriodSeconds"],
        json!(0)
    );
}

#[test]
fn unknown_fields_are_skipped_and_repeated_messages_merge() {
    let mut raw = core::ConfigMap {
        metadata: meta("cm"),
        ..Default::default()
    }
    .encode_to_vec();
    // Field 99 (not in ConfigMap), as a newer client might send.
    raw.extend([0x9a, 0x06, 3, b'x', b'y', b'z']);
    // metadata again: protobuf merges it into the first one.
    let more = meta::ObjectMeta {
        labels: labels(&[("a", "b")]),
        ..Default::default()
    }
    .encode_to_vec();
    raw.push(0x0a);
    raw.push(more.len() as u8);
    raw.extend(more);
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("ConfigMap"),
        }),
        raw: Some(raw),
        ..Default::default()
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(envelope.encode_to_vec());
    assert_eq!(
        decode(&body).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "creationTimestamp": null, "labels": {"a": "b"}},
        })
    );
}

#[test]
fn truncated_bodies_are_errors() {
    let full = body(
        "v1",
        "ConfigMap",
        &core::ConfigMap {
            metadata: meta("cm"),
            ..Default::default()
        },
    );
    for cut in 5..full.len() {
        // Every prefix either fails cleanly or decodes (a cut between fields is a valid shorter message).
        let _ = decode(&full[..cut]);
    }
    assert!(matches!(
        decode(&full[..full.len() - 1]),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn negative_numbers_and_doubles() {
    let event = core::Event {
        metadata: meta("e"),
        count: Some(-2),
        series: None,
        ..Default::default()
    };
    assert_eq!(decoded("v1", "Event", &event)["count"], json!(-2));
}

#[test]
fn many_repeats_of_a_message_field_merge_in_linear_time() {
    // 100k occurrences of `metadata` (a hostile body): each is merged into one, decoded once.
    let mut raw = Vec::new();
    for _ in 0..100_000 {
        raw.extend([0x0a, 0x00]);
    }
    raw.extend([0x0a, 0x05, 0x0a, 0x03, b'c', b'm', b'1']);
    let envelope = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("ConfigMap"),
        }),
        raw: Some(raw),
        ..Default::default()
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(envelope.encode_to_vec());
    let started = std::time::Instant::now();
    assert_eq!(decode(&body).unwrap()["metadata"], json!({"name": "cm1"}));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
