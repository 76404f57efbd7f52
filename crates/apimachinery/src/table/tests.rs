use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::*;
use crate::registry::{RESOURCES, lookup_kind};

const NOW: &str = "2024-06-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

/// The timestamp `seconds` before [`NOW`].
fn ago(seconds: i64) -> String {
    crate::meta::format_time(now() - SignedDuration::from_secs(seconds))
}

fn resource(api_version: &str, kind: &str) -> &'static ResourceType {
    lookup_kind(api_version, kind).unwrap_or_else(|| panic!("{api_version} {kind} not served"))
}

fn cells(api_version: &str, kind: &str, obj: Value) -> Vec<Value> {
    let rows = rows(resource(api_version, kind), &[obj], IncludeObject::None, now());
    rows[0]["cells"].as_array().unwrap().clone()
}

fn column_names(api_version: &str, kind: &str) -> Vec<(&'static str, i32)> {
    columns(resource(api_version, kind))
        .iter()
        .map(|c| (c.name, c.priority))
        .collect()
}

/// Object metadata created an hour ago.
fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(3600)})
}

#[test]
fn human_duration_boundaries() {
    let cases: &[(i64, &str)] = &[
        (-3, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (121, "2m1s"),
        (200, "3m20s"),
        (599, "9m59s"),
        (600, "10m"),
        (659, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600 - 1, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86400 - 1, "7d23h"),
        (8 * 86400, "8d"),
        (90 * 86400, "90d"),
        (2 * 365 * 86400 - 1, "729d"),
        (2 * 365 * 86400, "2y"),
        (2 * 365 * 86400 + 5 * 86400, "2y5d"),
        (8 * 365 * 86400 - 1, "7y364d"),
        (8 * 365 * 86400, "8y"),
        (300 * 365 * 86400, "292y"),
    ];
    for (seconds, want) in cases {
        assert_eq!(human_duration(SignedDuration::from_secs(*seconds)), *want, "{seconds}s");
    }
    assert_eq!(human_duration(SignedDuration::from_millis(-1999)), "0s");
    assert_eq!(human_duration(SignedDuration::from_millis(119_999)), "119s");
}

#[test]
fn table_has_upstream_shape() {
    let pods = resource("v1", "Pod");
    let pod = json!({"metadata": meta("web"), "spec": {"containers": [{"name": "c"}]}});
    let table = table(pods, std::slice::from_ref(&pod), IncludeObject::Metadata, now());
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(table["metadata"], json!({}));
    let name = &table["columnDefinitions"][0];
    assert_eq!(name["name"], "Name");
    assert_eq!(name["type"], "string");
    assert_eq!(name["format"], "name");
    assert_eq!(name["priority"], 0);
    assert!(name["description"].as_str().unwrap().starts_with("Name must be unique"));
    assert_eq!(table["columnDefinitions"][5]["priority"], 1);
    assert_eq!(table["columnDefinitions"][1]["format"], "");
    let row = &table["rows"][0];
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(row["object"]["metadata"]["name"], "web");
    assert!(row.get("conditions").is_none());

    let headless = table_without_headers(pods, std::slice::from_ref(&pod), IncludeObject::None, now());
    assert_eq!(headless["columnDefinitions"], Value::Null);
    assert_eq!(headless["rows"][0]["object"], Value::Null);
    let full = super::rows(pods, std::slice::from_ref(&pod), IncludeObject::Object, now());
    assert_eq!(full[0]["object"], pod);
}

#[test]
fn empty_tables_have_empty_rows_except_the_default_tables() {
    let empty =
        |api_version, kind| table(resource(api_version, kind), &[], IncludeObject::Metadata, now())["rows"].clone();
    assert_eq!(empty("v1", "Pod"), json!([]));
    assert_eq!(empty("rbac.authorization.k8s.io/v1", "Role"), Value::Null);
}

#[test]
fn include_object_parses_the_query_parameter() {
    assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
    assert_eq!(IncludeObject::parse("Metadata"), Some(IncludeObject::Metadata));
    assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
    assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
    assert_eq!(IncludeObject::parse("object"), None);
}

#[test]
fn partial_object_metadata_keeps_all_metadata() {
    let obj = json!({"kind": "Pod", "metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {}});
    let partial = partial_object_metadata(&obj);
    assert_eq!(
        partial,
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": {"name": "a", "labels": {"x": "y"}, "creationTimestamp": null}})
    );
}

#[test]
fn columns_per_kind() {
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "v1",
            "Pod",
            &["Name", "Ready", "Status", "Restarts", "Age"],
            &["IP", "Node", "Nominated Node", "Readiness Gates"],
        ),
        (
            "v1",
            "Node",
            &["Name", "Status", "Roles", "Age", "Version"],
            &[
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime",
            ],
        ),
        ("v1", "Namespace", &["Name", "Status", "Age"], &[]),
        (
            "v1",
            "Service",
            &["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"],
            &["Selector"],
        ),
        ("v1", "Endpoints", &["Name", "Endpoints", "Age"], &[]),
        ("v1", "ConfigMap", &["Name", "Data", "Age"], &[]),
        ("v1", "Secret", &["Name", "Type", "Data", "Age"], &[]),
        ("v1", "ServiceAccount", &["Name", "Secrets", "Age"], &[]),
        (
            "v1",
            "Event",
            &["Last Seen", "Type", "Reason", "Object", "Message"],
            &["Subobject", "Source", "First Seen", "Count", "Name"],
        ),
        (
            "events.k8s.io/v1",
            "Event",
            &["Last Seen", "Type", "Reason", "Object", "Message"],
            &["Subobject", "Source", "First Seen", "Count", "Name"],
        ),
        (
            "v1",
            "PersistentVolume",
            &[
                "Name",
                "Capacity",
                "Access Modes",
                "Reclaim Policy",
                "Status",
                "Claim",
                "StorageClass",
                "VolumeAttributesClass",
                "Reason",
                "Age",
            ],
            &["VolumeMode"],
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            &[
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "VolumeAttributesClass",
                "Age",
            ],
            &["VolumeMode"],
        ),
        (
            "v1",
            "ReplicationController",
            &["Name", "Desired", "Current", "Ready", "Age"],
            &["Containers", "Images", "Selector"],
        ),
        ("v1", "ResourceQuota", &["Name", "Request", "Limit", "Age"], &[]),
        ("v1", "LimitRange", &["Name", "Created At"], &[]),
        (
            "v1",
            "PodTemplate",
            &["Name", "Containers", "Images", "Pod Labels"],
            &[],
        ),
        ("v1", "ComponentStatus", &["Name", "Status", "Message", "Error"], &[]),
        (
            "apps/v1",
            "Deployment",
            &["Name", "Ready", "Up-to-date", "Available", "Age"],
            &["Containers", "Images", "Selector"],
        ),
        (
            "apps/v1",
            "ReplicaSet",
            &["Name", "Desired", "Current", "Ready", "Age"],
            &["Containers", "Images", "Selector"],
        ),
        (
            "apps/v1",
            "StatefulSet",
            &["Name", "Ready", "Age"],
            &["Containers", "Images"],
        ),
        (
            "apps/v1",
            "DaemonSet",
            &[
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
            ],
            &["Containers", "Images", "Selector"],
        ),
        (
            "apps/v1",
            "ControllerRevision",
            &["Name", "Controller", "Revision", "Age"],
            &[],
        ),
        (
            "batch/v1",
            "Job",
            &["Name", "Status", "Completions", "Duration", "Age"],
            &["Containers", "Images", "Selector"],
        ),
        (
            "batch/v1",
            "CronJob",
            &[
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
            ],
            &["Containers", "Images", "Selector"],
        ),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            &["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"],
            &[],
        ),
        (
            "autoscaling/v1",
            "HorizontalPodAutoscaler",
            &["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"],
            &[],
        ),
        (
            "policy/v1",
            "PodDisruptionBudget",
            &["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"],
            &[],
        ),
        ("coordination.k8s.io/v1", "Lease", &["Name", "Holder", "Age"], &[]),
        (
            "storage.k8s.io/v1",
            "StorageClass",
            &[
                "Name",
                "Provisioner",
                "ReclaimPolicy",
                "VolumeBindingMode",
                "AllowVolumeExpansion",
                "Age",
            ],
            &[],
        ),
        (
            "storage.k8s.io/v1",
            "CSIDriver",
            &[
                "Name",
                "AttachRequired",
                "PodInfoOnMount",
                "StorageCapacity",
                "TokenRequests",
                "RequiresRepublish",
                "Modes",
                "Age",
            ],
            &[],
        ),
        ("storage.k8s.io/v1", "CSINode", &["Name", "Drivers", "Age"], &[]),
        (
            "storage.k8s.io/v1",
            "VolumeAttachment",
            &["Name", "Attacher", "PV", "Node", "Attached", "Age"],
            &[],
        ),
        (
            "storage.k8s.io/v1",
            "CSIStorageCapacity",
            &["Name", "StorageClassName", "Capacity"],
            &[],
        ),
        (
            "networking.k8s.io/v1",
            "Ingress",
            &["Name", "Class", "Hosts", "Address", "Ports", "Age"],
            &[],
        ),
        (
            "networking.k8s.io/v1",
            "IngressClass",
            &["Name", "Controller", "Parameters", "Age"],
            &[],
        ),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            &["Name", "Pod-Selector", "Age"],
            &[],
        ),
        ("networking.k8s.io/v1", "IPAddress", &["Name", "ParentRef"], &[]),
        ("networking.k8s.io/v1", "ServiceCIDR", &["Name", "CIDRs", "Age"], &[]),
        ("rbac.authorization.k8s.io/v1", "Role", &["Name", "Created At"], &[]),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            &["Name", "Created At"],
            &[],
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            &["Name", "Role", "Age"],
            &["Users", "Groups", "ServiceAccounts"],
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            &["Name", "Role", "Age"],
            &["Users", "Groups", "ServiceAccounts"],
        ),
        (
            "scheduling.k8s.io/v1",
            "PriorityClass",
            &["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"],
            &[],
        ),
        ("node.k8s.io/v1", "RuntimeClass", &["Name", "Handler", "Age"], &[]),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            &["Name", "AddressType", "Ports", "Endpoints", "Age"],
            &[],
        ),
        (
            "certificates.k8s.io/v1",
            "CertificateSigningRequest",
            &[
                "Name",
                "Age",
                "SignerName",
                "Requestor",
                "RequestedDuration",
                "Condition",
            ],
            &[],
        ),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            &["Name", "Created At"],
            &[],
        ),
        (
            "admissionregistration.k8s.io/v1",
            "MutatingWebhookConfiguration",
            &["Name", "Webhooks", "Age"],
            &[],
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            &["Name", "Webhooks", "Age"],
            &[],
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicy",
            &["Name", "Validations", "ParamKind", "Age"],
            &[],
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicyBinding",
            &["Name", "PolicyName", "ParamRef", "Age"],
            &[],
        ),
    ];
    for (api_version, kind, default, wide) in cases {
        let want: Vec<(&str, i32)> = default
            .iter()
            .map(|n| (*n, 0))
            .chain(wide.iter().map(|n| (*n, 1)))
            .collect();
        let mut got = column_names(api_version, kind);
        // Upstream interleaves: priority-1 columns need not trail (events, priority classes).
        got.sort_by_key(|(_, priority)| *priority);
        assert_eq!(got, want, "{api_version} {kind}");
    }
}

#[test]
fn column_types_follow_upstream() {
    let types =
        |api_version, kind| -> Vec<&str> { columns(resource(api_version, kind)).iter().map(|c| c.type_).collect() };
    assert_eq!(types("v1", "Pod")[3], "string", "RESTARTS");
    assert_eq!(
        types("v1", "ConfigMap")[1],
        "string",
        "DATA: a string column of integer cells"
    );
    assert_eq!(types("apps/v1", "ReplicaSet")[1..4], ["integer"; 3]);
    assert_eq!(types("batch/v1", "CronJob")[3], "boolean");
    assert_eq!(types("rbac.authorization.k8s.io/v1", "Role")[1], "date");
    let events = columns(resource("v1", "Event"));
    assert_eq!(
        (events[9].name, events[9].format, events[9].priority),
        ("Name", "name", 1)
    );
    let attachments = columns(resource("storage.k8s.io/v1", "VolumeAttachment"));
    assert_eq!(attachments[1].format, "name", "upstream marks Attacher as a name");
}

#[test]
fn every_row_has_one_cell_per_column() {
    for resource in RESOURCES.iter().filter(|r| r.is_stored()) {
        let rows = rows(resource, &[json!({"metadata": meta("x")})], IncludeObject::None, now());
        let cells = rows[0]["cells"].as_array().unwrap().len();
        let want = columns(resource).len() + usize::from(resource.kind == "IPAddress");
        assert_eq!(cells, want, "{} {}", resource.api_version(), resource.kind);
    }
}

#[test]
fn malformed_objects_never_panic() {
    let junk = [
        json!(null),
        json!([1, 2]),
        json!("pod"),
        json!({"metadata": 5, "spec": "x", "status": [1]}),
        json!({"metadata": {"name": 1, "creationTimestamp": "yesterday", "labels": [], "deletionTimestamp": 3},
               "spec": {"containers": {"a": 1}, "initContainers": [null, 5], "ports": [null, {"port": "x"}],
                        "replicas": "three", "selector": {"matchExpressions": [null, {"operator": 7}]},
                        "metrics": [{"type": "Pods"}, {"type": "External", "external": 3}, {"type": "Resource"}],
                        "capacity": {"storage": [1]}, "parameters": "x", "paramRef": {"selector": {}}},
               "status": {"containerStatuses": [null, {"state": {"terminated": "x"}}],
                          "initContainerStatuses": [{"state": {"waiting": 5}}, {"lastState": {"terminated": {"finishedAt": 7}}}],
                          "conditions": "ready", "hard": {"cpu": {}}, "loadBalancer": {"ingress": [5]}},
               "subsets": [{"addresses": [null], "ports": [{"port": 80}]}], "series": {}, "data": 5,
               "involvedObject": "x", "regarding": {"kind": 5}, "webhooks": "x"}),
    ];
    for resource in RESOURCES.iter() {
        let rows = rows(resource, &junk, IncludeObject::Metadata, now());
        assert_eq!(rows.len(), junk.len(), "{}", resource.kind);
    }
}

fn pod(status: Value) -> Value {
    json!({
        "metadata": meta("web"),
        "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "log", "image": "busybox"}], "nodeName": "n1"},
        "status": status,
    })
}

fn running(ready: bool) -> Value {
    json!({"name": "app", "ready": ready, "restartCount": 0, "state": {"running": {"startedAt": ago(60)}}})
}

fn pod_cells(obj: Value) -> (String, String, String) {
    let cells = cells("v1", "Pod", obj);
    let s = |i: usize| cells[i].as_str().unwrap().to_string();
    (s(1), s(2), s(3))
}

#[test]
fn pod_status_cases() {
    let waiting = |reason: &str| {
        json!({"name": "app", "restartCount": 5, "state": {"waiting": {"reason": reason}},
                                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}})
    };
    let cases: Vec<(&str, Value, (&str, &str, &str))> = vec![
        (
            "pending, no statuses",
            json!({"phase": "Pending"}),
            ("0/2", "Pending", "0"),
        ),
        ("absent phase reads as Pending", json!({}), ("0/2", "Pending", "0")),
        (
            "running",
            json!({"phase": "Running", "containerStatuses": [running(true), running(true)]}),
            ("2/2", "Running", "0"),
        ),
        (
            "crash loop with restarts and last restart age",
            json!({"phase": "Running", "containerStatuses": [running(true), waiting("CrashLoopBackOff")]}),
            ("1/2", "CrashLoopBackOff", "5 (5m ago)"),
        ),
        (
            "container creating",
            json!({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}),
            ("0/2", "ContainerCreating", "5 (5m ago)"),
        ),
        (
            "completed",
            json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            ("0/2", "Completed", "0"),
        ),
        (
            "terminated without reason: exit code",
            json!({"phase": "Failed", "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 2}}}]}),
            ("0/2", "ExitCode:2", "0"),
        ),
        (
            "terminated without reason: signal",
            json!({"phase": "Failed", "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
            ("0/2", "Signal:9", "0"),
        ),
        (
            "completed container but another still running and pod ready",
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
                {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, running(true)]}),
            ("1/2", "Running", "0"),
        ),
        (
            "completed container but another still running, pod not ready",
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}, running(true)]}),
            ("1/2", "NotReady", "0"),
        ),
        (
            "evicted: the pod's reason",
            json!({"phase": "Failed", "reason": "Evicted"}),
            ("0/2", "Evicted", "0"),
        ),
        (
            "scheduling gated",
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ("0/2", "SchedulingGated", "0"),
        ),
    ];
    for (what, status, (ready, reason, restarts)) in cases {
        assert_eq!(
            pod_cells(pod(status)),
            (ready.into(), reason.into(), restarts.into()),
            "{what}"
        );
    }
}

fn init_pod(init_statuses: Value, sidecar: bool) -> Value {
    let mut obj = pod(json!({"phase": "Pending", "initContainerStatuses": init_statuses}));
    let mut second = json!({"name": "side", "image": "envoy"});
    if sidecar {
        second["restartPolicy"] = json!("Always");
    }
    obj["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"}, second]);
    obj
}

#[test]
fn pod_init_container_cases() {
    let done = json!({"name": "setup", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let cases: Vec<(&str, Value, bool, (&str, &str))> = vec![
        (
            "first init running",
            json!([{"name": "setup", "state": {"running": {}}}]),
            false,
            ("0/2", "Init:0/2"),
        ),
        (
            "first done, second waiting to start",
            json!([done, {"name": "side", "state": {"waiting": {"reason": "PodInitializing"}}}]),
            false,
            ("0/2", "Init:1/2"),
        ),
        (
            "init crash loop",
            json!([{"name": "setup", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
            false,
            ("0/2", "Init:CrashLoopBackOff"),
        ),
        (
            "init failed with reason",
            json!([{"name": "setup", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
            false,
            ("0/2", "Init:Error"),
        ),
        (
            "init failed without reason",
            json!([{"name": "setup", "state": {"terminated": {"exitCode": 3}}}]),
            false,
            ("0/2", "Init:ExitCode:3"),
        ),
        (
            "started sidecar counts as ready and does not block",
            json!([done, {"name": "side", "started": true, "ready": true, "state": {"running": {}}}]),
            true,
            ("1/3", "Pending"),
        ),
    ];
    for (what, statuses, sidecar, (ready, reason)) in cases {
        let (got_ready, got_reason, _) = pod_cells(init_pod(statuses, sidecar));
        assert_eq!((got_ready.as_str(), got_reason.as_str()), (ready, reason), "{what}");
    }
    let looping = init_pod(
        json!([{"name": "setup", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"finishedAt": ago(30)}}}]),
        false,
    );
    assert_eq!(
        pod_cells(looping).2,
        "3 (30s ago)",
        "init restarts count while initializing"
    );
}

#[test]
fn pod_terminating_and_wide_cells() {
    let mut obj = pod(json!({"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [running(true)]}));
    obj["metadata"]["deletionTimestamp"] = json!(ago(1));
    let deleting = cells("v1", "Pod", obj.clone());
    assert_eq!(deleting[2], "Terminating");
    assert_eq!(
        &deleting[5..],
        &[json!("10.0.0.5"), json!("n1"), json!("<none>"), json!("<none>")]
    );

    obj["status"]["reason"] = json!("NodeLost");
    assert_eq!(pod_cells(obj.clone()).1, "Unknown");
    obj["status"] = json!({"phase": "Succeeded"});
    assert_eq!(pod_cells(obj).1, "Succeeded", "a finished pod is not Terminating");

    let mut gated = pod(
        json!({"phase": "Running", "podIPs": [{"ip": "fd00::1"}], "conditions": [
        {"type": "example.com/ready", "status": "True"}, {"type": "other", "status": "False"}]}),
    );
    gated["spec"]["readinessGates"] = json!([{"conditionType": "example.com/ready"}, {"conditionType": "other"}]);
    let wide = cells("v1", "Pod", gated);
    assert_eq!((&wide[5], &wide[8]), (&json!("fd00::1"), &json!("1/2")));
}

#[test]
fn pod_rows_of_finished_pods_carry_a_completed_condition() {
    let rows = rows(
        resource("v1", "Pod"),
        &[pod(json!({"phase": "Succeeded"}))],
        IncludeObject::None,
        now(),
    );
    assert_eq!(
        rows[0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
    );
}

fn service(spec: Value, status: Value) -> Value {
    json!({"metadata": meta("svc"), "spec": spec, "status": status})
}

#[test]
fn service_cells() {
    let cases: Vec<(&str, Value, Value, [&str; 4])> = vec![
        (
            "cluster IP",
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}], "selector": {"k8s-app": "dns"}}),
            json!({}),
            ["ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP"],
        ),
        (
            "node port, protocol defaulted",
            json!({"type": "NodePort", "clusterIPs": ["10.96.1.1"], "ports": [{"port": 80, "nodePort": 30080}]}),
            json!({}),
            ["NodePort", "10.96.1.1", "<none>", "80:30080/TCP"],
        ),
        (
            "pending load balancer",
            json!({"type": "LoadBalancer", "clusterIP": "10.96.1.2", "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}),
            json!({}),
            ["LoadBalancer", "10.96.1.2", "<pending>", "443:31443/TCP"],
        ),
        (
            "load balancer with ingress and external IPs",
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.1.3"], "externalIPs": ["1.1.1.1"], "ports": [{"port": 80}]}),
            json!({"loadBalancer": {"ingress": [{"ip": "9.9.9.9"}, {"hostname": "lb.example.com"}, {"ip": "9.9.9.9"}]}}),
            ["LoadBalancer", "10.96.1.3", "9.9.9.9,lb.example.com,1.1.1.1", "80/TCP"],
        ),
        (
            "external name",
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
            ["ExternalName", "<none>", "db.example.com", "<none>"],
        ),
        (
            "headless with external IPs, type defaulted",
            json!({"clusterIP": "None", "clusterIPs": ["None"], "externalIPs": ["5.5.5.5", "6.6.6.6"]}),
            json!({}),
            ["ClusterIP", "None", "5.5.5.5,6.6.6.6", "<none>"],
        ),
    ];
    for (what, spec, status, want) in cases {
        let row = cells("v1", "Service", service(spec, status));
        let got: Vec<&str> = row[1..5].iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(got, want, "{what}");
        assert_eq!(row[5], "60m");
    }
    let selector = cells(
        "v1",
        "Service",
        service(json!({"selector": {"b": "2", "a": "1"}}), json!({})),
    );
    assert_eq!(selector[6], "a=1,b=2");
}

/// Representative rows: (apiVersion, kind, object, expected cells).
#[test]
fn representative_rows() {
    let created = ago(3600);
    let cases: Vec<(&str, &str, Value, Value)> = vec![
        (
            "v1",
            "Node",
            json!({"metadata": {"name": "n1", "creationTimestamp": created,
                                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
                   "spec": {"unschedulable": true},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}],
                              "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
                              "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian", "kernelVersion": "6.1",
                                           "containerRuntimeVersion": "containerd://2.0"}}}),
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "60m",
                "v1.33.0",
                "192.168.1.2",
                "<none>",
                "Debian",
                "6.1",
                "containerd://2.0"
            ]),
        ),
        (
            "v1",
            "Node",
            json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
            json!([
                "n2",
                "NotReady",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]),
        ),
        (
            "v1",
            "Namespace",
            json!({"metadata": {"name": "kube-system", "creationTimestamp": ago(3 * 86400)}, "status": {"phase": "Terminating"}}),
            json!(["kube-system", "Terminating", "3d"]),
        ),
        (
            "v1",
            "Namespace",
            json!({"metadata": {"name": "new", "creationTimestamp": ago(5)}}),
            json!(["new", "Active", "5s"]),
        ),
        (
            "v1",
            "Endpoints",
            json!({"metadata": meta("web"), "subsets": [
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
                {"addresses": [{"ip": "fd00::1"}]}]}),
            json!(["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...", "60m"]),
        ),
        (
            "v1",
            "Endpoints",
            json!({"metadata": meta("none")}),
            json!(["none", "<none>", "60m"]),
        ),
        (
            "v1",
            "Endpoints",
            json!({"metadata": meta("v6"), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]}),
            json!(["v6", "[fd00::1]:8080", "60m"]),
        ),
        (
            "v1",
            "ConfigMap",
            json!({"metadata": meta("cm"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
            json!(["cm", 3, "60m"]),
        ),
        (
            "v1",
            "Secret",
            json!({"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
            json!(["s", "kubernetes.io/tls", 2, "60m"]),
        ),
        (
            "v1",
            "Secret",
            json!({"metadata": meta("o")}),
            json!(["o", "Opaque", 0, "60m"]),
        ),
        (
            "v1",
            "ServiceAccount",
            json!({"metadata": meta("default"), "secrets": [{"name": "t"}]}),
            json!(["default", 1, "60m"]),
        ),
        (
            "v1",
            "Event",
            json!({"metadata": meta("web.17"), "type": "Warning", "reason": "BackOff", "message": " Back-off restarting \n",
                   "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
                   "source": {"component": "kubelet", "host": "n1"},
                   "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 12}),
            json!([
                "30s",
                "Warning",
                "BackOff",
                "pod/web",
                "spec.containers{app}",
                "kubelet, n1",
                "Back-off restarting",
                "10m",
                12,
                "web.17"
            ]),
        ),
        (
            "v1",
            "Event",
            json!({"metadata": meta("e2"), "type": "Normal", "reason": "Scheduled", "message": "ok",
                   "involvedObject": {"kind": "Node"}, "eventTime": "2024-06-01T11:59:00.000000Z",
                   "reportingController": "default-scheduler"}),
            json!([
                "60s",
                "Normal",
                "Scheduled",
                "node",
                "",
                "default-scheduler",
                "ok",
                "60s",
                1,
                "e2"
            ]),
        ),
        (
            "events.k8s.io/v1",
            "Event",
            json!({"metadata": meta("e3"), "type": "Normal", "reason": "Pulled", "note": "pulled image",
                   "regarding": {"kind": "Pod", "name": "web"}, "eventTime": "2024-06-01T11:50:00.000000Z",
                   "series": {"count": 4, "lastObservedTime": "2024-06-01T11:59:50.000000Z"},
                   "reportingController": "kubelet", "reportingInstance": "n1"}),
            json!([
                "10s",
                "Normal",
                "Pulled",
                "pod/web",
                "",
                "kubelet, n1",
                "pulled image",
                "10m",
                4,
                "e3"
            ]),
        ),
        (
            "v1",
            "PersistentVolume",
            json!({"metadata": {"name": "pv1", "creationTimestamp": created},
                   "spec": {"capacity": {"storage": "1024Mi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                            "persistentVolumeReclaimPolicy": "Delete", "claimRef": {"namespace": "default", "name": "data"},
                            "storageClassName": "standard"},
                   "status": {"phase": "Bound"}}),
            json!([
                "pv1",
                "1Gi",
                "RWO,RWX",
                "Delete",
                "Bound",
                "default/data",
                "standard",
                "<unset>",
                "",
                "60m",
                "Filesystem"
            ]),
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            json!({"metadata": meta("data"), "spec": {"volumeName": "pv1", "storageClassName": "standard", "volumeMode": "Block"},
                   "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}}),
            json!([
                "data", "Bound", "pv1", "10Gi", "RWO", "standard", "<unset>", "60m", "Block"
            ]),
        ),
        (
            "v1",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "p", "creationTimestamp": created,
                                "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
                   "spec": {"storageClassName": "new", "resources": {"requests": {"storage": "1Gi"}}}}),
            json!(["p", "Pending", "", "", "", "old", "<unset>", "60m", "Filesystem"]),
        ),
        (
            "v1",
            "ReplicationController",
            json!({"metadata": meta("rc"), "spec": {"replicas": 3, "selector": {"app": "web"},
                   "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}},
                   "status": {"replicas": 3, "readyReplicas": 2}}),
            json!(["rc", 3, 3, 2, "60m", "a,b", "x,y", "app=web"]),
        ),
        (
            "v1",
            "ResourceQuota",
            json!({"metadata": meta("q"), "status": {
                "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "4000m"},
                "used": {"requests.cpu": "500m", "limits.memory": "512Mi", "pods": "3"}}}),
            json!([
                "q",
                "pods: 3/10, requests.cpu: 500m/2",
                "limits.cpu: 0/4, limits.memory: 512Mi/2Gi",
                "60m"
            ]),
        ),
        (
            "v1",
            "LimitRange",
            json!({"metadata": {"name": "lr", "creationTimestamp": "2024-01-02T03:04:05Z"}}),
            json!(["lr", "2024-01-02T03:04:05Z"]),
        ),
        (
            "v1",
            "PodTemplate",
            json!({"metadata": meta("t"), "template": {"metadata": {"labels": {"app": "web"}},
                   "spec": {"containers": [{"name": "c", "image": "i"}]}}}),
            json!(["t", "c", "i", "app=web"]),
        ),
        (
            "v1",
            "ComponentStatus",
            json!({"metadata": {"name": "etcd-0"}, "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]}),
            json!(["etcd-0", "Healthy", "ok", ""]),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({"metadata": meta("web"), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                       "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                            {"key": "canary", "operator": "DoesNotExist"}]},
                   "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
                   "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}),
            json!([
                "web",
                "2/3",
                3,
                2,
                "60m",
                "nginx",
                "nginx:1.27",
                "app=web,!canary,tier in (a,b)"
            ]),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({"metadata": meta("defaulted"), "spec": {}}),
            json!(["defaulted", "0/1", 0, 0, "60m", "", "", ""]),
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({"metadata": meta("web-5d"), "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
                   "status": {"replicas": 2, "readyReplicas": 1}}),
            json!(["web-5d", 2, 2, 1, "60m", "", "", "app=web"]),
        ),
        (
            "apps/v1",
            "StatefulSet",
            json!({"metadata": meta("db"), "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "pg", "image": "postgres"}]}}},
                   "status": {"readyReplicas": 3}}),
            json!(["db", "3/3", "60m", "pg", "postgres"]),
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"metadata": meta("fluentd"), "spec": {"selector": {"matchLabels": {"app": "f"}},
                   "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": [{"name": "f", "image": "fluentd"}]}}},
                   "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                              "updatedNumberScheduled": 3, "numberAvailable": 2}}),
            json!([
                "fluentd",
                3,
                3,
                2,
                3,
                2,
                "kubernetes.io/os=linux",
                "60m",
                "f",
                "fluentd",
                "app=f"
            ]),
        ),
        (
            "apps/v1",
            "ControllerRevision",
            json!({"metadata": {"name": "fluentd-7c", "creationTimestamp": created, "ownerReferences": [
                       {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "fluentd", "controller": true}]},
                   "revision": 2}),
            json!(["fluentd-7c", "daemonset.apps/fluentd", 2, "60m"]),
        ),
        (
            "batch/v1",
            "Job",
            json!({"metadata": meta("pi"), "spec": {"completions": 1, "selector": {"matchLabels": {"job-name": "pi"}}},
                   "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(400),
                              "conditions": [{"type": "Complete", "status": "True"}]}}),
            json!(["pi", "Complete", "1/1", "3m20s", "60m", "", "", "job-name=pi"]),
        ),
        (
            "batch/v1",
            "Job",
            json!({"metadata": meta("queue"), "spec": {"parallelism": 3}, "status": {"startTime": ago(30)}}),
            json!(["queue", "Running", "0/1 of 3", "30s", "60m", "", "", "<none>"]),
        ),
        (
            "batch/v1",
            "Job",
            json!({"metadata": meta("new"), "spec": {"suspend": true},
                   "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}),
            json!(["new", "Suspended", "0/1", "", "60m", "", "", "<none>"]),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"metadata": meta("hello"), "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {
                       "template": {"spec": {"containers": [{"name": "hello", "image": "busybox"}]}}}}},
                   "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ago(45)}}),
            json!([
                "hello",
                "*/1 * * * *",
                "<none>",
                "False",
                1,
                "45s",
                "60m",
                "hello",
                "busybox",
                "<none>"
            ]),
        ),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            json!({"metadata": meta("web"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 10,
                   "metrics": [
                       {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                       {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1024Mi"}}},
                       {"type": "Pods", "pods": {"target": {"averageValue": "1k"}}}]},
                   "status": {"currentReplicas": 2, "currentMetrics": [
                       {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12}}}]}}),
            json!([
                "web",
                "Deployment/web",
                "cpu: 12%/50%, memory: <unknown>/1Gi + 1 more...",
                "1",
                10,
                2,
                "60m"
            ]),
        ),
        (
            "autoscaling/v1",
            "HorizontalPodAutoscaler",
            json!({"metadata": meta("v1"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2,
                   "maxReplicas": 5, "targetCPUUtilizationPercentage": 70},
                   "status": {"currentReplicas": 2, "currentCPUUtilizationPercentage": 30}}),
            json!(["v1", "Deployment/web", "cpu: 30%/70%", "2", 5, 2, "60m"]),
        ),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            json!({"metadata": meta("bare"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 3}}),
            json!(["bare", "Deployment/x", "cpu: <unknown>/80%", "1", 3, 0, "60m"]),
        ),
        (
            "policy/v1",
            "PodDisruptionBudget",
            json!({"metadata": meta("pdb"), "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}),
            json!(["pdb", "50%", "N/A", 1, "60m"]),
        ),
        (
            "policy/v1",
            "PodDisruptionBudget",
            json!({"metadata": meta("pdb2"), "spec": {"maxUnavailable": 1}}),
            json!(["pdb2", "N/A", "1", 0, "60m"]),
        ),
        (
            "coordination.k8s.io/v1",
            "Lease",
            json!({"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "n1_abc"}}),
            json!(["kube-scheduler", "n1_abc", "60m"]),
        ),
        (
            "storage.k8s.io/v1",
            "StorageClass",
            json!({"metadata": {"name": "standard", "creationTimestamp": created,
                                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                   "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}),
            json!([
                "standard (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                false,
                "60m"
            ]),
        ),
        (
            "storage.k8s.io/v1",
            "CSIDriver",
            json!({"metadata": meta("csi.example.com"), "spec": {"tokenRequests": [{"audience": "a"}, {"audience": "b"}]}}),
            json!(["csi.example.com", true, false, false, "a,b", false, "Persistent", "60m"]),
        ),
        (
            "storage.k8s.io/v1",
            "CSINode",
            json!({"metadata": meta("n1"), "spec": {"drivers": [{"name": "d"}]}}),
            json!(["n1", 1, "60m"]),
        ),
        (
            "storage.k8s.io/v1",
            "VolumeAttachment",
            json!({"metadata": meta("csi-1"), "spec": {"attacher": "csi.example.com", "nodeName": "n1",
                   "source": {"persistentVolumeName": "pv1"}}, "status": {"attached": true}}),
            json!(["csi-1", "csi.example.com", "pv1", "n1", true, "60m"]),
        ),
        (
            "storage.k8s.io/v1",
            "CSIStorageCapacity",
            json!({"metadata": meta("cap"), "storageClassName": "fast", "capacity": "2048Mi"}),
            json!(["cap", "fast", "2Gi"]),
        ),
        (
            "networking.k8s.io/v1",
            "Ingress",
            json!({"metadata": meta("ing"), "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                   "rules": [{"host": "a.example.com"}, {"host": ""}, {"host": "b.example.com"}, {"host": "c.example.com"},
                             {"host": "d.example.com"}]},
                   "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}]}}}),
            json!([
                "ing",
                "nginx",
                "a.example.com,b.example.com,c.example.com + 2 more...",
                "10.0.0.9",
                "80, 443",
                "60m"
            ]),
        ),
        (
            "networking.k8s.io/v1",
            "Ingress",
            json!({"metadata": meta("any"), "spec": {"rules": [{}]}}),
            json!(["any", "<none>", "*", "", "80", "60m"]),
        ),
        (
            "networking.k8s.io/v1",
            "IngressClass",
            json!({"metadata": meta("nginx"), "spec": {"controller": "k8s.io/ingress-nginx",
                   "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}}),
            json!([
                "nginx",
                "k8s.io/ingress-nginx",
                "IngressParameters.k8s.example.com/p",
                "60m"
            ]),
        ),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            json!({"metadata": meta("deny"), "spec": {}}),
            json!(["deny", "<none>", "60m"]),
        ),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            json!({"metadata": meta("web"), "spec": {"podSelector": {"matchLabels": {"app": "web"}}}}),
            json!(["web", "app=web", "60m"]),
        ),
        (
            "networking.k8s.io/v1",
            "IPAddress",
            json!({"metadata": meta("10.96.0.1"), "spec": {"parentRef": {"group": "", "resource": "services",
                   "namespace": "default", "name": "kubernetes"}}}),
            json!(["10.96.0.1", "services/default/kubernetes", "60m"]),
        ),
        (
            "networking.k8s.io/v1",
            "ServiceCIDR",
            json!({"metadata": meta("kubernetes"), "spec": {"cidrs": ["10.96.0.0/12", "fd00::/108"]}}),
            json!(["kubernetes", "10.96.0.0/12,fd00::/108", "60m"]),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            json!({"metadata": meta("rb"), "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [
                {"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}, {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "namespace": "ci", "name": "deployer"}]}),
            json!(["rb", "ClusterRole/view", "60m", "alice, bob", "devs", "ci/deployer"]),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            json!({"metadata": meta("crb"), "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "Group", "name": "system:masters"}]}),
            json!(["crb", "ClusterRole/cluster-admin", "60m", "", "system:masters", ""]),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            json!({"metadata": {"name": "view"}}),
            json!(["view", "0001-01-01T00:00:00Z"]),
        ),
        (
            "scheduling.k8s.io/v1",
            "PriorityClass",
            json!({"metadata": meta("system-node-critical"), "value": 2000001000, "globalDefault": false}),
            json!(["system-node-critical", 2000001000, false, "60m", "PreemptLowerPriority"]),
        ),
        (
            "node.k8s.io/v1",
            "RuntimeClass",
            json!({"metadata": meta("gvisor"), "handler": "runsc"}),
            json!(["gvisor", "runsc", "60m"]),
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            json!({"metadata": meta("web-abc"), "addressType": "IPv4", "ports": [{"port": 80}, {"name": "metrics"}, {}, {"port": 9}],
                   "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}]}),
            json!([
                "web-abc",
                "IPv4",
                "80,metrics,* + 1 more...",
                "10.0.0.1,10.0.0.2,10.0.0.3",
                "60m"
            ]),
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            json!({"metadata": meta("empty"), "addressType": "IPv6"}),
            json!(["empty", "IPv6", "<unset>", "<unset>", "60m"]),
        ),
        (
            "certificates.k8s.io/v1",
            "CertificateSigningRequest",
            json!({"metadata": meta("csr-1"), "spec": {"signerName": "kubernetes.io/kube-apiserver-client",
                   "username": "alice", "expirationSeconds": 86400},
                   "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"}}),
            json!([
                "csr-1",
                "60m",
                "kubernetes.io/kube-apiserver-client",
                "alice",
                "24h",
                "Approved,Issued"
            ]),
        ),
        (
            "certificates.k8s.io/v1",
            "CertificateSigningRequest",
            json!({"metadata": meta("csr-2"), "spec": {"username": "bob"}}),
            json!(["csr-2", "60m", "<none>", "bob", "<none>", "Pending"]),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingWebhookConfiguration",
            json!({"metadata": meta("v"), "webhooks": [{"name": "a"}, {"name": "b"}]}),
            json!(["v", 2, "60m"]),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicy",
            json!({"metadata": meta("p"), "spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                   "validations": [{"expression": "true"}]}}),
            json!(["p", 1, "v1/ConfigMap", "60m"]),
        ),
        (
            "admissionregistration.k8s.io/v1",
            "ValidatingAdmissionPolicyBinding",
            json!({"metadata": meta("b"), "spec": {"policyName": "p", "paramRef": {"selector": {"matchLabels": {"a": "b"}}}}}),
            json!([
                "b",
                "p",
                "&LabelSelector{MatchLabels:map[string]string{a: b,},MatchExpressions:[]LabelSelectorRequirement{},}",
                "60m"
            ]),
        ),
        (
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            json!({"metadata": {"name": "widgets.example.com", "creationTimestamp": "2024-05-01T00:00:00.5Z"}}),
            json!(["widgets.example.com", "2024-05-01T00:00:00Z"]),
        ),
    ];
    for (api_version, kind, obj, want) in cases {
        let name = obj["metadata"]["name"].clone();
        assert_eq!(Value::Array(cells(api_version, kind, obj)), want, "{kind} {name}");
    }
}

#[test]
fn restarts_age_uses_the_latest_termination() {
    let status = json!({"phase": "Running", "containerStatuses": [
        {"name": "a", "restartCount": 2, "ready": true, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": ago(7200)}}},
        {"name": "b", "restartCount": 1, "ready": true, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": ago(90)}}}]});
    assert_eq!(
        pod_cells(pod(status)),
        ("2/2".into(), "Running".into(), "3 (90s ago)".into())
    );
}

#[test]
fn ages_of_missing_or_bad_timestamps_are_unknown() {
    let zero = cells(
        "v1",
        "ConfigMap",
        json!({"metadata": {"name": "x", "creationTimestamp": "0001-01-01T00:00:00Z"}}),
    );
    assert_eq!(zero[2], "<unknown>");
    let future = super::rows(
        resource("v1", "ConfigMap"),
        &[json!({"metadata": {"name": "x", "creationTimestamp": ago(-10)}})],
        IncludeObject::None,
        now(),
    );
    assert_eq!(future[0]["cells"][2], "<invalid>");
}
