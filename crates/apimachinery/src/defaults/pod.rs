//! Defaulting of `PodSpec`s, shared by Pods and every kind embedding a pod
//! template (upstream's generated walkers call the same `corev1` defaulters
//! for each of them).
//!
//! Upstream splits this in two on purpose: `SetDefaults_PodSpec` and the
//! container, volume and probe defaulters run on every pod spec, while
//! `SetDefaults_Pod` — requests copied from limits, `enableServiceLinks`,
//! host ports under `hostNetwork` — runs on Pods only, so those fields never
//! appear in a Deployment's template.

use serde_json::{Value, json};

use super::{
    Obj, child, image, is_empty_str, is_unset, is_zero_int, items, present, present_path, set_if_empty, set_if_unset,
    set_if_zero, str_or_empty,
};

/// Every member of `VolumeSource`: a volume setting none of them is an `emptyDir`.
const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// The file mode of secret, configMap, downwardAPI and projected volumes: 0644.
const DEFAULT_MODE: i64 = 0o644;

/// `SetObjectDefaults_Pod`: the Pod-only defaults, then the pod spec's.
pub(super) fn pod(object: &mut Obj) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    for key in ["containers", "initContainers"] {
        for container in items(spec, key) {
            requests_from_limits(container);
        }
    }
    set_if_unset(spec, "enableServiceLinks", true);
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for key in ["containers", "initContainers"] {
            for container in items(spec, key) {
                host_ports(container);
            }
        }
    }
    pod_spec(spec);
}

/// Defaults `parent[key]`, a non-pointer `PodTemplateSpec`.
pub(super) fn template(parent: &mut Obj, key: &str) {
    if let Some(template) = child(parent, key) {
        template_spec(template);
    }
}

/// Defaults the spec of a `PodTemplateSpec`.
pub(super) fn template_spec(template: &mut Obj) {
    if let Some(spec) = child(template, "spec") {
        pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` and the defaulters of everything a pod spec holds.
pub(super) fn pod_spec(spec: &mut Obj) {
    set_if_empty(spec, "dnsPolicy", "ClusterFirst");
    set_if_empty(spec, "restartPolicy", "Always");
    set_if_unset(spec, "securityContext", json!({}));
    set_if_unset(spec, "terminationGracePeriodSeconds", 30);
    set_if_empty(spec, "schedulerName", "default-scheduler");
    for volume in items(spec, "volumes") {
        self::volume(volume);
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for container in items(spec, key) {
            self::container(container);
        }
    }
}

/// Pods only: a resource with a limit but no request requests its limit.
fn requests_from_limits(container: &mut Obj) {
    let Some(resources) = present(container, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    if let Some(requests) = child(resources, "requests") {
        for (name, quantity) in limits {
            requests.entry(name).or_insert(quantity);
        }
    }
}

/// Pods with `hostNetwork: true`: each container port is also the host port.
fn host_ports(container: &mut Obj) {
    for port in items(container, "ports") {
        let container_port = port.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
        if container_port != 0 && is_zero_int(port, "hostPort") {
            port.insert("hostPort".into(), container_port.into());
        }
    }
}

/// `SetDefaults_Container` plus its ports, env, probes and lifecycle hooks.
fn container(container: &mut Obj) {
    if is_empty_str(container, "imagePullPolicy") {
        // An image of the wrong JSON type is malformed: leave both alone.
        if let Some(image) = str_or_empty(container, "image") {
            let policy = image::pull_policy(image);
            container.insert("imagePullPolicy".into(), policy.into());
        }
    }
    set_if_empty(container, "terminationMessagePath", "/dev/termination-log");
    set_if_empty(container, "terminationMessagePolicy", "File");
    for port in items(container, "ports") {
        set_if_empty(port, "protocol", "TCP");
    }
    for env in items(container, "env") {
        if let Some(field_ref) = present_path(env, &["valueFrom", "fieldRef"]) {
            object_field_selector(field_ref);
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = present(container, key) {
            self::probe(probe);
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(http_get) = present_path(container, &["lifecycle", hook, "httpGet"]) {
            http_get_action(http_get);
        }
    }
}

/// `SetDefaults_Probe` and its handlers'.
fn probe(probe: &mut Obj) {
    set_if_zero(probe, "timeoutSeconds", 1);
    set_if_zero(probe, "periodSeconds", 10);
    set_if_zero(probe, "successThreshold", 1);
    set_if_zero(probe, "failureThreshold", 3);
    if let Some(http_get) = present(probe, "httpGet") {
        http_get_action(http_get);
    }
    if let Some(grpc) = present(probe, "grpc") {
        set_if_unset(grpc, "service", "");
    }
}

fn http_get_action(action: &mut Obj) {
    set_if_empty(action, "path", "/");
    set_if_empty(action, "scheme", "HTTP");
}

/// `SetDefaults_ObjectFieldSelector`.
pub(super) fn object_field_selector(selector: &mut Obj) {
    set_if_empty(selector, "apiVersion", "v1");
}

/// `SetDefaults_Volume` and the defaulters of each volume source.
fn volume(volume: &mut Obj) {
    if VOLUME_SOURCES.iter().all(|source| is_unset(volume, source)) {
        volume.insert("emptyDir".into(), json!({}));
    }
    if let Some(image) = present(volume, "image")
        && is_empty_str(image, "pullPolicy")
        && let Some(reference) = str_or_empty(image, "reference")
    {
        let policy = image::pull_policy(reference);
        image.insert("pullPolicy".into(), policy.into());
    }
    for source in ["secret", "configMap"] {
        if let Some(source) = present(volume, source) {
            set_if_unset(source, "defaultMode", DEFAULT_MODE);
        }
    }
    if let Some(downward_api) = present(volume, "downwardAPI") {
        set_if_unset(downward_api, "defaultMode", DEFAULT_MODE);
        downward_api_items(downward_api);
    }
    if let Some(projected) = present(volume, "projected") {
        projected_volume(projected);
    }
    if let Some(template_spec) =
        present_path(volume, &["ephemeral", "volumeClaimTemplate"]).and_then(|template| child(template, "spec"))
    {
        claim_spec(template_spec);
    }
    persistent_sources(volume);
}

/// Sources a Pod and a PersistentVolume have in common, with the same defaults.
pub(super) fn persistent_sources(source: &mut Obj) {
    if let Some(host_path) = present(source, "hostPath") {
        set_if_unset(host_path, "type", "");
    }
    if let Some(iscsi) = present(source, "iscsi") {
        set_if_empty(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = present(source, "rbd") {
        set_if_empty(rbd, "pool", "rbd");
        set_if_empty(rbd, "user", "admin");
        set_if_empty(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(azure_disk) = present(source, "azureDisk") {
        set_if_unset(azure_disk, "cachingMode", "ReadWrite");
        set_if_unset(azure_disk, "kind", "Shared");
        set_if_unset(azure_disk, "fsType", "ext4");
        set_if_unset(azure_disk, "readOnly", false);
    }
    if let Some(scale_io) = present(source, "scaleIO") {
        set_if_empty(scale_io, "storageMode", "ThinProvisioned");
        set_if_empty(scale_io, "fsType", "xfs");
    }
}

fn projected_volume(projected: &mut Obj) {
    set_if_unset(projected, "defaultMode", DEFAULT_MODE);
    for source in items(projected, "sources") {
        if let Some(downward_api) = present(source, "downwardAPI") {
            downward_api_items(downward_api);
        }
        if let Some(token) = present(source, "serviceAccountToken") {
            set_if_unset(token, "expirationSeconds", 3600);
        }
    }
}

fn downward_api_items(downward_api: &mut Obj) {
    for item in items(downward_api, "items") {
        if let Some(field_ref) = present(item, "fieldRef") {
            object_field_selector(field_ref);
        }
    }
}

/// `SetDefaults_PersistentVolumeClaimSpec`.
pub(super) fn claim_spec(spec: &mut Obj) {
    set_if_unset(spec, "volumeMode", "Filesystem");
}

/// `SetDefaults_PersistentVolumeClaim` (status) and its spec's defaults, as
/// applied to claims and to StatefulSet claim templates.
pub(super) fn claim(claim: &mut Obj) {
    if let Some(status) = child(claim, "status") {
        set_if_empty(status, "phase", "Pending");
    }
    if let Some(spec) = child(claim, "spec") {
        claim_spec(spec);
    }
}
