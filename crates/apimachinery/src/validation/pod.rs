//! `PodSpec` validation (upstream's `ValidatePodSpec` and friends), shared by
//! Pods, PodTemplates and every workload's pod template.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::field::{Errs, child, duplicate, forbidden, index, invalid, not_found, not_supported, raw, required};
use super::formats;
use super::json::{Node, diff, normalized};
use super::meta::{self, NameRule};
use super::resources;
use super::volumes::{self, Volumes};

/// Whether the spec belongs to a Pod or to a template (some rules differ).
#[derive(Debug, Clone, Copy)]
pub(super) struct PodOpts {
    pub is_pod: bool,
}

/// What every container's validation needs from the pod.
struct Ctx<'a> {
    volumes: &'a Volumes,
    claims: &'a BTreeSet<String>,
    grace: i64,
    restart_policy: &'a str,
    host_users: bool,
}

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// The pod's restart policy, defaulted.
pub(super) fn restart_policy<'a>(spec: &Node<'a>) -> &'a str {
    match spec.field("restartPolicy").peek_str() {
        "" => "Always",
        p => p,
    }
}

/// `ValidatePodSpec`. `pod_name` is the pod's name (empty for templates).
pub(super) fn validate_pod_spec(spec: &Node, pod_name: &str, opts: PodOpts, errs: &mut Errs) {
    let spec = spec.object(errs);
    let grace = spec.field("terminationGracePeriodSeconds").int(errs).unwrap_or(30);
    let host_users = spec.field("hostUsers").bool(errs).unwrap_or(true);
    let vols = volumes::validate_volumes(&spec.field("volumes"), pod_name, opts.is_pod, errs);
    let claims = validate_resource_claims(&spec.field("resourceClaims"), errs);
    let ctx = Ctx {
        volumes: &vols,
        claims: &claims,
        grace,
        restart_policy: restart_policy(&spec),
        host_users,
    };
    validate_containers(&spec.field("containers"), &ctx, errs);
    validate_init_containers(&spec.field("initContainers"), &spec.field("containers"), &ctx, errs);
    validate_host_network_deps(&spec, opts, errs);
    validate_policies(&spec, errs);
    meta::validate_labels(&spec.field("nodeSelector"), errs);
    validate_pod_security_context(&spec, errs);
    validate_affinity(&spec.field("affinity"), errs);
    validate_dns_config(&spec, errs);
    validate_gates(&spec, errs);
    validate_topology_spread(&spec.field("topologySpreadConstraints"), errs);
    validate_pod_names(&spec, errs);
    validate_pod_misc(&spec, errs);
}

fn validate_policies(spec: &Node, errs: &mut Errs) {
    let restart = spec.field("restartPolicy");
    if let Some(p) = restart.str(errs)
        && !p.is_empty()
        && !RESTART_POLICIES.contains(&p)
    {
        errs.push(not_supported(&restart.path, p, RESTART_POLICIES));
    }
    let dns = spec.field("dnsPolicy");
    if let Some(p) = dns.str(errs)
        && !p.is_empty()
        && !DNS_POLICIES.contains(&p)
    {
        errs.push(not_supported(&dns.path, p, DNS_POLICIES));
    }
}

fn validate_pod_names(spec: &Node, errs: &mut Errs) {
    for (field, rule) in [
        ("serviceAccountName", NameRule::Subdomain),
        ("nodeName", NameRule::Subdomain),
    ] {
        let node = spec.field(field);
        let value = node.string(errs);
        if !value.is_empty() {
            meta::validate_name_field(&node, rule, value, errs);
        }
    }
    let deadline = spec.field("activeDeadlineSeconds");
    if let Some(d) = deadline.int(errs)
        && !(1..=i64::from(i32::MAX)).contains(&d)
    {
        errs.push(invalid(
            &deadline.path,
            d,
            &formats::inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    for field in ["hostname", "subdomain"] {
        let node = spec.field(field);
        let value = node.string(errs);
        if !value.is_empty() {
            meta::validate_dns_label(value, &node.path, errs);
        }
    }
}

fn validate_pod_misc(spec: &Node, errs: &mut Errs) {
    validate_tolerations(&spec.field("tolerations"), errs);
    for alias in spec.field("hostAliases").items(errs) {
        let alias = alias.object(errs);
        let ip = alias.field("ip");
        if let Some(msg) = formats::is_valid_ip(ip.string(errs)) {
            errs.push(invalid(&ip.path, ip.peek_str(), &msg));
        }
        for name in alias.field("hostnames").items(errs) {
            meta::validate_dns_subdomain(name.string(errs), &name.path, errs);
        }
    }
    for field in ["priorityClassName", "runtimeClassName"] {
        let node = spec.field(field);
        if let Some(value) = node.str(errs)
            && (!value.is_empty() || field == "runtimeClassName")
        {
            meta::validate_name_field(&node, NameRule::Subdomain, value, errs);
        }
    }
    let preemption = spec.field("preemptionPolicy");
    if let Some(p) = preemption.str(errs) {
        validate_preemption_policy(p, &preemption.path, errs);
    }
    let overhead = spec.field("overhead");
    if overhead.present() {
        resources::validate_overhead(&overhead, errs);
    }
    let os = spec.field("os").object(errs);
    if os.present() {
        let name = os.field("name");
        match name.string(errs) {
            "" => errs.push(required(&name.path, "cannot be empty")),
            "linux" | "windows" => {}
            other => errs.push(not_supported(&os.path, other, &["linux", "windows"])),
        }
    }
}

pub(super) fn validate_preemption_policy(p: &str, path: &str, errs: &mut Errs) {
    match p {
        "PreemptLowerPriority" | "Never" => {}
        "" => errs.push(required(path, "")),
        other => errs.push(not_supported(path, other, &["PreemptLowerPriority", "Never"])),
    }
}

fn validate_resource_claims(node: &Node, errs: &mut Errs) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for item in node.items(errs) {
        let item = item.object(errs);
        let name = item.field("name");
        let n = name.string(errs);
        if n.is_empty() {
            errs.push(required(&name.path, ""));
        } else if names.contains(n) {
            errs.push(duplicate(&name.path, n));
        } else {
            meta::validate_dns_label(n, &name.path, errs);
            names.insert(n.to_string());
        }
        let claim = item.field("resourceClaimName");
        let template = item.field("resourceClaimTemplateName");
        let shown = raw(item.value.map(Value::to_string).unwrap_or_default());
        if claim.present() && template.present() {
            errs.push(invalid(
                &item.path,
                shown,
                "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified",
            ));
        } else if !claim.present() && !template.present() {
            errs.push(invalid(
                &item.path,
                shown,
                "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`",
            ));
        }
        for f in [claim, template] {
            if let Some(v) = f.str(errs) {
                meta::validate_name_field(&f, NameRule::Subdomain, v, errs);
            }
        }
    }
    names
}

fn validate_containers(node: &Node, ctx: &Ctx, errs: &mut Errs) {
    let items = node.items(errs);
    if items.is_empty() {
        errs.push(required(&node.path, ""));
        return;
    }
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for item in &items {
        let c = item.object(errs);
        let name = validate_container_common(&c, ctx, errs);
        if !names.insert(name) {
            errs.push(duplicate(&c.field("name").path, name));
        }
        validate_lifecycle_and_probes(&c, ctx, errs);
        if c.field("restartPolicy").present() {
            errs.push(forbidden(
                &c.field("restartPolicy").path,
                "may not be set for non-init containers",
            ));
        }
    }
    check_host_port_conflicts(&items, &node.path, errs);
}

fn validate_init_containers(node: &Node, regular: &Node, ctx: &Ctx, errs: &mut Errs) {
    let mut names: BTreeSet<&str> = regular
        .peek_items()
        .iter()
        .map(|c| c.field("name").peek_str())
        .collect();
    for item in node.items(errs) {
        let c = item.object(errs);
        let name = validate_container_common(&c, ctx, errs);
        let restart = c.field("restartPolicy");
        let always = match restart.str(errs) {
            Some("Always") => true,
            Some(other) => {
                errs.push(not_supported(&restart.path, other, &["Always"]));
                false
            }
            None => false,
        };
        if names.contains(name) {
            errs.push(duplicate(&c.field("name").path, name));
        } else if !name.is_empty() {
            names.insert(name);
        }
        // Upstream checks each init container alone, so reports it at index 0.
        check_host_port_conflicts(std::slice::from_ref(&c), &node.path, errs);
        if always {
            validate_lifecycle_and_probes(&c, ctx, errs);
        } else {
            for field in ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] {
                if c.field(field).present() {
                    errs.push(forbidden(
                        &c.field(field).path,
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

/// `validateContainerCommon`; returns the container's name.
fn validate_container_common<'a>(c: &Node<'a>, ctx: &Ctx, errs: &mut Errs) -> &'a str {
    let name_node = c.field("name");
    let name = name_node.string(errs);
    if name.is_empty() {
        errs.push(required(&name_node.path, ""));
    } else {
        meta::validate_dns_label(name, &name_node.path, errs);
    }
    let image = c.field("image");
    if image.string(errs).is_empty() {
        errs.push(required(&image.path, ""));
    }
    let tmp = c.field("terminationMessagePolicy");
    if let Some(p) = tmp.str(errs)
        && !p.is_empty()
        && p != "File"
        && p != "FallbackToLogsOnError"
    {
        errs.push(not_supported(&tmp.path, p, &["File", "FallbackToLogsOnError"]));
    }
    validate_container_ports(&c.field("ports"), errs);
    validate_env(&c.field("env"), errs);
    validate_env_from(&c.field("envFrom"), errs);
    let mounts = c.field("volumeMounts");
    let devices = c.field("volumeDevices");
    validate_volume_mounts(&mounts, &devices, c, ctx, errs);
    validate_volume_devices(&devices, &mounts, ctx, errs);
    let pull = c.field("imagePullPolicy");
    if let Some(p) = pull.str(errs)
        && !p.is_empty()
        && !PULL_POLICIES.contains(&p)
    {
        errs.push(not_supported(&pull.path, p, PULL_POLICIES));
    }
    resources::validate_requirements(&c.field("resources"), ctx.claims, errs);
    validate_resize_policy(&c.field("resizePolicy"), ctx.restart_policy, errs);
    validate_security_context(&c.field("securityContext"), ctx.host_users, errs);
    name
}

fn validate_container_ports(node: &Node, errs: &mut Errs) {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for item in node.items(errs) {
        let port = item.object(errs);
        let name_node = port.field("name");
        let name = name_node.string(errs);
        if !name.is_empty() {
            let msgs = formats::is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(invalid(&name_node.path, name, &msg));
                }
            } else if !names.insert(name) {
                errs.push(duplicate(&name_node.path, name));
            }
        }
        let container_port = port.field("containerPort");
        match container_port.int(errs).unwrap_or(0) {
            0 => errs.push(required(&container_port.path, "")),
            p => {
                for msg in formats::is_valid_port_num(p) {
                    errs.push(invalid(&container_port.path, p, &msg));
                }
            }
        }
        let host_port = port.field("hostPort");
        if let Some(p) = host_port.int(errs).filter(|p| *p != 0) {
            for msg in formats::is_valid_port_num(p) {
                errs.push(invalid(&host_port.path, p, &msg));
            }
        }
        validate_protocol(&port.field("protocol"), errs);
    }
}

/// A port protocol, defaulted to TCP when absent.
pub(super) fn validate_protocol(node: &Node, errs: &mut Errs) {
    if let Some(p) = node.str(errs)
        && !p.is_empty()
        && !PROTOCOLS.contains(&p)
    {
        errs.push(not_supported(&node.path, p, PROTOCOLS));
    }
}

/// `AccumulateUniqueHostPorts` over a list of containers.
fn check_host_port_conflicts(containers: &[Node], base: &str, errs: &mut Errs) {
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.field("ports").peek_items().iter().enumerate() {
            let host_port = port.field("hostPort").peek_int().unwrap_or(0);
            if host_port == 0 {
                continue;
            }
            let protocol = match port.field("protocol").peek_str() {
                "" => "TCP",
                p => p,
            };
            let key = format!("{protocol}/{}/{host_port}", port.field("hostIP").peek_str());
            if !seen.insert(key.clone()) {
                let path = format!("{}.ports[{pi}].hostPort", index(base, ci));
                errs.push(duplicate(&path, key));
            }
        }
    }
}

fn validate_env(node: &Node, errs: &mut Errs) {
    for item in node.items(errs) {
        let ev = item.object(errs);
        let name = ev.field("name");
        let n = name.string(errs);
        if n.is_empty() {
            errs.push(required(&name.path, ""));
        } else {
            for msg in formats::is_env_var_name(n) {
                errs.push(invalid(&name.path, n, &msg));
            }
        }
        validate_env_value_from(&ev, errs);
    }
}

fn validate_env_value_from(ev: &Node, errs: &mut Errs) {
    let from = ev.field("valueFrom").object(errs);
    if !from.present() {
        return;
    }
    let mut sources = 0;
    let field_ref = from.field("fieldRef").object(errs);
    if field_ref.present() {
        sources += 1;
        validate_object_field_selector(&field_ref, ENV_FIELD_PATHS, &field_ref.path, errs);
    }
    let resource_ref = from.field("resourceFieldRef").object(errs);
    if resource_ref.present() {
        sources += 1;
        validate_resource_field_selector(&resource_ref, false, errs);
    }
    for kind in ["configMapKeyRef", "secretKeyRef"] {
        let selector = from.field(kind).object(errs);
        if selector.present() {
            sources += 1;
            validate_key_selector(&selector, errs);
        }
    }
    if sources == 0 {
        errs.push(invalid(
            &from.path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if !ev.field("value").peek_str().is_empty() {
        errs.push(invalid(
            &from.path,
            "",
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errs.push(invalid(
            &from.path,
            "",
            "may not have more than one field specified at a time",
        ));
    }
}

fn validate_key_selector(selector: &Node, errs: &mut Errs) {
    let name = selector.field("name");
    let n = name.string(errs);
    meta::validate_name_field(&name, NameRule::Subdomain, n, errs);
    let key = selector.field("key");
    let k = key.string(errs);
    if k.is_empty() {
        errs.push(required(&key.path, ""));
    } else {
        for msg in formats::is_config_map_key(k) {
            errs.push(invalid(&key.path, k, &msg));
        }
    }
}

/// `fieldPath` as upstream's `ConvertDownwardAPIFieldLabel` accepts it.
fn convert_field_label(version: &str, label: &str) -> Result<String, String> {
    if version != "v1" {
        return Err(format!("unsupported pod version: {version}"));
    }
    if let Some((path, _)) = split_subscript(label) {
        return match path {
            "metadata.annotations" | "metadata.labels" => Ok(label.to_string()),
            _ => Err(format!("field label does not support subscript: {label}")),
        };
    }
    match label {
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.name"
        | "metadata.namespace"
        | "metadata.uid"
        | "spec.nodeName"
        | "spec.restartPolicy"
        | "spec.serviceAccountName"
        | "spec.schedulerName"
        | "status.phase"
        | "status.hostIP"
        | "status.hostIPs"
        | "status.podIP"
        | "status.podIPs" => Ok(label.to_string()),
        "spec.host" => Ok("spec.nodeName".to_string()),
        _ => Err(format!("field label not supported: {label}")),
    }
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let s = path.strip_suffix("']")?;
    let (head, sub) = s.split_once("['")?;
    (!head.is_empty()).then_some((head, sub))
}

/// `validateObjectFieldSelector`; errors at `path` (the selector's path).
pub(super) fn validate_object_field_selector(selector: &Node, allowed: &[&str], path: &str, errs: &mut Errs) {
    let version = match selector.field("apiVersion").string(errs) {
        "" => "v1",
        v => v,
    };
    let field_path = selector.field("fieldPath").string(errs);
    if field_path.is_empty() {
        errs.push(required(&child(path, "fieldPath"), ""));
        return;
    }
    let internal = match convert_field_label(version, field_path) {
        Ok(p) => p,
        Err(e) => {
            errs.push(invalid(
                &child(path, "fieldPath"),
                field_path,
                &format!("error converting fieldPath: {e}"),
            ));
            return;
        }
    };
    if let Some((head, sub)) = split_subscript(&internal) {
        match head {
            "metadata.annotations" => meta::validate_qualified_name(&sub.to_lowercase(), path, errs),
            "metadata.labels" => meta::validate_qualified_name(sub, path, errs),
            other => errs.push(invalid(path, other, "does not support subscript")),
        }
    } else if !allowed.contains(&internal.as_str()) {
        errs.push(not_supported(&child(path, "fieldPath"), internal.as_str(), allowed));
    }
}

/// `validateContainerResourceFieldSelector` (`volume`: a downward API file, which needs a container).
pub(super) fn validate_resource_field_selector(selector: &Node, volume: bool, errs: &mut Errs) {
    let container = selector.field("containerName");
    let resource = selector.field("resource");
    let r = resource.string(errs);
    if volume && container.string(errs).is_empty() {
        errs.push(required(&container.path, ""));
    } else if r.is_empty() {
        errs.push(required(&resource.path, ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&r)
        && !r.starts_with("requests.hugepages-")
        && !r.starts_with("limits.hugepages-")
    {
        errs.push(not_supported(&resource.path, r, RESOURCE_FIELD_PATHS));
    }
}

fn validate_env_from(node: &Node, errs: &mut Errs) {
    for item in node.items(errs) {
        let ev = item.object(errs);
        let prefix = ev.field("prefix");
        let p = prefix.string(errs);
        if !p.is_empty() {
            for msg in formats::is_env_var_name(p) {
                errs.push(invalid(&prefix.path, p, &msg));
            }
        }
        let mut sources = 0;
        for kind in ["configMapRef", "secretRef"] {
            let source = ev.field(kind).object(errs);
            if !source.present() {
                continue;
            }
            sources += 1;
            let name = source.field("name");
            let n = name.string(errs);
            if n.is_empty() {
                errs.push(required(&name.path, ""));
            } else {
                for msg in meta::name_errors(NameRule::Subdomain, n, true) {
                    errs.push(invalid(&name.path, n, &msg));
                }
            }
        }
        if sources == 0 {
            errs.push(invalid(
                &node.path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(invalid(
                &node.path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn mount_map<'a>(node: &Node<'a>, path_field: &str) -> BTreeMap<&'a str, &'a str> {
    node.peek_items()
        .iter()
        .map(|m| (m.field("name").peek_str(), m.field(path_field).peek_str()))
        .collect()
}

fn validate_volume_mounts(mounts: &Node, devices: &Node, container: &Node, ctx: &Ctx, errs: &mut Errs) {
    let device_map = mount_map(devices, "devicePath");
    let mut mount_points: BTreeSet<&str> = BTreeSet::new();
    let privileged = container.field("securityContext").field("privileged").peek_bool();
    for item in mounts.items(errs) {
        let m = item.object(errs);
        let name_node = m.field("name");
        let name = name_node.string(errs);
        if name.is_empty() {
            errs.push(required(&name_node.path, ""));
        }
        if !ctx.volumes.contains_key(name) {
            errs.push(not_found(&name_node.path, name));
        }
        let mount_path = m.field("mountPath");
        let mp = mount_path.string(errs);
        if mp.is_empty() {
            errs.push(required(&mount_path.path, ""));
        }
        if !mount_points.insert(mp) {
            errs.push(invalid(&mount_path.path, mp, "must be unique"));
        }
        if device_map.contains_key(name) {
            errs.push(invalid(
                &name_node.path,
                name,
                "must not already exist in volumeDevices",
            ));
        }
        if device_map.values().any(|p| *p == mp) {
            errs.push(invalid(
                &mount_path.path,
                mp,
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub_path = m.field("subPath").string(errs);
        let sub_expr = m.field("subPathExpr").string(errs);
        if ctx.volumes.get(name).is_some_and(|v| v.image) {
            for (field, value) in [("subPath", sub_path), ("subPathExpr", sub_expr)] {
                if !value.is_empty() {
                    errs.push(invalid(
                        &m.field(field).path,
                        value,
                        "not allowed in image volume sources",
                    ));
                }
            }
        }
        if !sub_path.is_empty() {
            volumes::validate_local_descending_path(sub_path, &child(&mounts.path, "subPath"), errs);
        }
        if !sub_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(invalid(
                    &m.field("subPathExpr").path,
                    sub_expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            volumes::validate_local_descending_path(sub_expr, &child(&mounts.path, "subPathExpr"), errs);
        }
        validate_mount_propagation(&m, privileged, &child(&mounts.path, "mountPropagation"), errs);
        validate_recursive_read_only(&m, &child(&mounts.path, "recursiveReadOnly"), errs);
    }
}

fn validate_mount_propagation(mount: &Node, privileged: bool, path: &str, errs: &mut Errs) {
    let Some(mode) = mount.field("mountPropagation").str(errs) else {
        return;
    };
    const MODES: &[&str] = &["Bidirectional", "HostToContainer", "None"];
    if !MODES.contains(&mode) {
        errs.push(not_supported(path, mode, MODES));
    }
    if mode == "Bidirectional" && !privileged {
        errs.push(forbidden(
            path,
            "Bidirectional mount propagation is available only to privileged containers",
        ));
    }
}

fn validate_recursive_read_only(mount: &Node, path: &str, errs: &mut Errs) {
    let Some(mode) = mount.field("recursiveReadOnly").str(errs) else {
        return;
    };
    match mode {
        "Disabled" => {}
        "Enabled" | "IfPossible" => {
            if !mount.field("readOnly").peek_bool() {
                errs.push(forbidden(path, "may only be specified when readOnly is true"));
            }
            let propagation = mount.field("mountPropagation").peek_str();
            if !propagation.is_empty() && propagation != "None" {
                errs.push(forbidden(
                    path,
                    "may only be specified when mountPropagation is None or not specified",
                ));
            }
        }
        other => errs.push(not_supported(path, other, &["Disabled", "Enabled", "IfPossible"])),
    }
}

fn validate_volume_devices(devices: &Node, mounts: &Node, ctx: &Ctx, errs: &mut Errs) {
    let mount_map = mount_map(mounts, "mountPath");
    let mut paths: BTreeSet<&str> = BTreeSet::new();
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for item in devices.items(errs) {
        let d = item.object(errs);
        let name_node = d.field("name");
        let name = name_node.string(errs);
        let path_node = d.field("devicePath");
        let dp = path_node.string(errs);
        if name.is_empty() {
            errs.push(required(&name_node.path, ""));
        }
        if names.contains(name) {
            errs.push(invalid(&name_node.path, name, "must be unique"));
        }
        match ctx.volumes.get(name) {
            Some(v) if !v.claim => errs.push(invalid(
                &name_node.path,
                name,
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            )),
            Some(_) => {}
            None => errs.push(not_found(&name_node.path, name)),
        }
        if dp.is_empty() {
            errs.push(required(&path_node.path, ""));
        }
        if paths.contains(dp) {
            errs.push(invalid(&path_node.path, dp, "must be unique"));
        }
        if !dp.is_empty() && dp.split('/').any(|p| p == "..") {
            errs.push(invalid(&path_node.path, dp, "can not contain backsteps ('..')"));
        } else {
            paths.insert(dp);
        }
        if mount_map.contains_key(name) {
            errs.push(invalid(&name_node.path, name, "must not already exist in volumeMounts"));
        }
        if mount_map.values().any(|p| *p == dp) {
            errs.push(invalid(
                &path_node.path,
                dp,
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !name.is_empty() {
            names.insert(name);
        }
    }
}

fn validate_resize_policy(node: &Node, restart_policy: &str, errs: &mut Errs) {
    let mut seen = BTreeSet::new();
    for (i, item) in node.items(errs).iter().enumerate() {
        let item = item.object(errs);
        let name = item.field("resourceName").string(errs);
        if !seen.insert(name) {
            errs.push(duplicate(&index(&node.path, i), name));
        }
        match name {
            "cpu" | "memory" => {}
            "" => errs.push(required(&node.path, "")),
            other => errs.push(not_supported(&node.path, other, &["cpu", "memory"])),
        }
        let policy = item.field("restartPolicy").string(errs);
        match policy {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(required(&node.path, "")),
            other => errs.push(not_supported(&node.path, other, &["NotRequired", "RestartContainer"])),
        }
        if restart_policy == "Never" && policy != "NotRequired" {
            errs.push(invalid(
                &node.path,
                policy,
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
}

fn validate_lifecycle_and_probes(c: &Node, ctx: &Ctx, errs: &mut Errs) {
    let lifecycle = c.field("lifecycle").object(errs);
    for hook in ["postStart", "preStop"] {
        let handler = lifecycle.field(hook).object(errs);
        if handler.present() {
            validate_handler(&handler, &["exec", "httpGet", "tcpSocket", "sleep"], ctx.grace, errs);
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let node = c.field(probe).object(errs);
        if !node.present() {
            continue;
        }
        validate_probe(&node, ctx.grace, errs);
        let success = node.field("successThreshold");
        match probe {
            "readinessProbe" => {
                let tgps = node.field("terminationGracePeriodSeconds");
                if let Some(v) = tgps.peek_int() {
                    errs.push(invalid(&tgps.path, v, "must not be set for readinessProbes"));
                }
            }
            _ => {
                if let Some(v) = success.peek_int().filter(|v| *v != 1) {
                    errs.push(invalid(&success.path, v, "must be 1"));
                }
            }
        }
    }
}

fn validate_probe(probe: &Node, grace: i64, errs: &mut Errs) {
    validate_handler(probe, &["exec", "httpGet", "tcpSocket", "grpc"], grace, errs);
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        let node = probe.field(field);
        if let Some(v) = node.int(errs) {
            meta::validate_nonnegative(&node.path, v, errs);
        }
    }
    let tgps = probe.field("terminationGracePeriodSeconds");
    if let Some(v) = tgps.int(errs)
        && v <= 0
    {
        errs.push(invalid(&tgps.path, v, "must be greater than 0"));
    }
}

/// Exactly one handler among `kinds`, each validated.
fn validate_handler(node: &Node, kinds: &[&str], grace: i64, errs: &mut Errs) {
    let mut count = 0;
    for kind in kinds {
        let handler = node.field(kind);
        if !handler.present() {
            continue;
        }
        if count > 0 {
            errs.push(forbidden(&handler.path, "may not specify more than 1 handler type"));
            continue;
        }
        count += 1;
        let handler = handler.object(errs);
        match *kind {
            "exec" => {
                if handler.field("command").len() == 0 {
                    errs.push(required(&handler.field("command").path, ""));
                }
            }
            "httpGet" => validate_http_get(&handler, errs),
            "tcpSocket" => validate_port_num_or_name(&handler.field("port"), errs),
            "grpc" => {
                let port = handler.field("port");
                let p = port.int(errs).unwrap_or(0);
                for msg in formats::is_valid_port_num(p) {
                    errs.push(invalid(&port.path, p, &msg));
                }
            }
            _ => {
                let seconds = handler.field("seconds");
                let s = seconds.int(errs).unwrap_or(0);
                if s < 0 || s > grace {
                    errs.push(invalid(
                        &seconds.path,
                        s,
                        &format!("must be non-negative and less than terminationGracePeriodSeconds ({grace})"),
                    ));
                }
            }
        }
    }
    if count == 0 {
        errs.push(required(&node.path, "must specify a handler type"));
    }
}

fn validate_http_get(http: &Node, errs: &mut Errs) {
    http.field("path").str(errs);
    validate_port_num_or_name(&http.field("port"), errs);
    let scheme = http.field("scheme");
    if let Some(s) = scheme.str(errs)
        && !s.is_empty()
        && s != "HTTP"
        && s != "HTTPS"
    {
        errs.push(not_supported(&scheme.path, s, &["HTTP", "HTTPS"]));
    }
    let headers = http.field("httpHeaders");
    for header in headers.items(errs) {
        let name = header.field("name").string(errs);
        for msg in formats::is_http_header_name(name) {
            errs.push(invalid(&headers.path, name, &msg));
        }
    }
}

/// `ValidatePortNumOrName` for an int-or-string port.
pub(super) fn validate_port_num_or_name(node: &Node, errs: &mut Errs) {
    match node.value {
        Some(Value::String(name)) => {
            for msg in formats::is_valid_port_name(name) {
                errs.push(invalid(&node.path, name.as_str(), &msg));
            }
        }
        Some(Value::Number(n)) if n.as_i64().is_some() => {
            let p = n.as_i64().unwrap_or(0);
            for msg in formats::is_valid_port_num(p) {
                errs.push(invalid(&node.path, p, &msg));
            }
        }
        None => {
            for msg in formats::is_valid_port_num(0) {
                errs.push(invalid(&node.path, 0, &msg));
            }
        }
        Some(other) => errs.push(invalid(
            &node.path,
            raw(other.to_string()),
            "must be an integer or a string",
        )),
    }
}

fn validate_host_network_deps(spec: &Node, opts: PodOpts, errs: &mut Errs) {
    if !spec.field("hostNetwork").peek_bool() {
        return;
    }
    for c in spec.field("containers").peek_items() {
        for port in c.field("ports").peek_items() {
            let cp = port.field("containerPort").peek_int().unwrap_or(0);
            let hp_node = port.field("hostPort");
            let hp = hp_node.peek_int().unwrap_or(if opts.is_pod { cp } else { 0 });
            if (opts.is_pod || hp != 0) && hp != cp {
                errs.push(invalid(
                    &hp_node.path,
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
}

fn validate_id(node: &Node, errs: &mut Errs) {
    if let Some(id) = node.int(errs) {
        for msg in formats::is_valid_user_or_group_id(id) {
            errs.push(invalid(&node.path, id, &msg));
        }
    }
}

fn validate_pod_security_context(spec: &Node, errs: &mut Errs) {
    let sc = spec.field("securityContext").object(errs);
    if !sc.present() {
        return;
    }
    for field in ["fsGroup", "runAsUser", "runAsGroup"] {
        validate_id(&sc.field(field), errs);
    }
    for gid in sc.field("supplementalGroups").items(errs) {
        validate_id(&gid, errs);
    }
    let share = spec.field("shareProcessNamespace");
    if share.peek_bool() && spec.field("hostPID").peek_bool() {
        errs.push(invalid(
            &child(&sc.path, "shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    validate_sysctls(spec, &sc.field("sysctls"), errs);
    let policy = sc.field("fsGroupChangePolicy");
    if let Some(p) = policy.str(errs)
        && p != "OnRootMismatch"
        && p != "Always"
    {
        errs.push(not_supported(&policy.path, p, &["Always", "OnRootMismatch"]));
    }
    validate_seccomp_profile(&sc.field("seccompProfile"), errs);
    validate_apparmor_profile(&sc.field("appArmorProfile"), errs);
    let groups_policy = sc.field("supplementalGroupsPolicy");
    if let Some(p) = groups_policy.str(errs)
        && p != "Merge"
        && p != "Strict"
    {
        errs.push(not_supported(&groups_policy.path, p, &["Merge", "Strict"]));
    }
    let selinux = sc.field("seLinuxChangePolicy");
    if let Some(p) = selinux.str(errs)
        && p != "Recursive"
        && p != "MountOption"
    {
        errs.push(not_supported(&selinux.path, p, &["MountOption", "Recursive"]));
    }
}

fn is_valid_sysctl_name(name: &str) -> bool {
    if name.len() > 253 {
        return false;
    }
    let segment_ok = |s: &str| {
        let b = s.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(l)) => {
                (f.is_ascii_lowercase() || f.is_ascii_digit())
                    && (l.is_ascii_lowercase() || l.is_ascii_digit())
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
            }
            _ => false,
        }
    };
    name.split(['.', '/']).all(segment_ok)
}

fn validate_sysctls(spec: &Node, node: &Node, errs: &mut Errs) {
    let mut names = BTreeSet::new();
    let host_network = spec.field("hostNetwork").peek_bool();
    let host_ipc = spec.field("hostIPC").peek_bool();
    for item in node.items(errs) {
        let name_node = item.field("name");
        let name = name_node.string(errs);
        if name.is_empty() {
            errs.push(required(&name_node.path, ""));
        } else if !is_valid_sysctl_name(name) {
            errs.push(invalid(
                &name_node.path,
                name,
                r"must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            ));
        } else if names.contains(name) {
            errs.push(duplicate(&name_node.path, name));
        }
        let normalized = name.replace('/', ".");
        let ipc = normalized == "kernel.sem"
            || ["kernel.shm", "kernel.msg", "fs.mqueue."]
                .iter()
                .any(|p| normalized.starts_with(p));
        if host_network && normalized.starts_with("net.") {
            errs.push(invalid(
                &name_node.path,
                name,
                "may not be specified when 'hostNetwork' is true",
            ));
        } else if host_ipc && ipc {
            errs.push(invalid(
                &name_node.path,
                name,
                "may not be specified when 'hostIPC' is true",
            ));
        }
        names.insert(name);
    }
}

fn validate_seccomp_profile(node: &Node, errs: &mut Errs) {
    let profile = node.object(errs);
    if !profile.present() {
        return;
    }
    let kind = profile.field("type");
    let t = kind.string(errs);
    match t {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(required(&kind.path, "type is required when seccompProfile is set")),
        other => errs.push(not_supported(
            &kind.path,
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    let local = profile.field("localhostProfile");
    if t == "Localhost" {
        match local.str(errs) {
            None => errs.push(required(&local.path, "must be set when seccomp type is Localhost")),
            Some(p) => volumes::validate_local_descending_path(p, &local.path, errs),
        }
    } else if local.present() {
        errs.push(invalid(
            &local.path,
            raw(profile.value.map(Value::to_string).unwrap_or_default()),
            "can only be set when seccomp type is Localhost",
        ));
    }
}

fn validate_apparmor_profile(node: &Node, errs: &mut Errs) {
    let profile = node.object(errs);
    if !profile.present() {
        return;
    }
    let local = profile.field("localhostProfile");
    match profile.field("type").string(errs) {
        "Localhost" => match local.str(errs) {
            None => errs.push(required(&local.path, "must be set when AppArmor type is Localhost")),
            Some(p) if p.trim() != p => errs.push(invalid(&local.path, p, "must not be padded with whitespace")),
            Some("") => errs.push(required(&local.path, "must be set when AppArmor type is Localhost")),
            Some(_) => {}
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(p) = local.str(errs) {
                errs.push(invalid(
                    &local.path,
                    p,
                    "can only be set when AppArmor type is Localhost",
                ));
            }
        }
        "" => errs.push(required(
            &profile.field("type").path,
            "type is required when appArmorProfile is set",
        )),
        other => errs.push(not_supported(
            &profile.field("type").path,
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
}

/// A container's `securityContext`.
fn validate_security_context(node: &Node, host_users: bool, errs: &mut Errs) {
    let sc = node.object(errs);
    if !sc.present() {
        return;
    }
    validate_id(&sc.field("runAsUser"), errs);
    validate_id(&sc.field("runAsGroup"), errs);
    let proc_mount = sc.field("procMount");
    if let Some(p) = proc_mount.str(errs) {
        if p != "Default" && p != "Unmasked" {
            errs.push(not_supported(&proc_mount.path, p, &["Default", "Unmasked"]));
        }
        if host_users && p == "Unmasked" {
            errs.push(invalid(
                &proc_mount.path,
                p,
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    validate_seccomp_profile(&sc.field("seccompProfile"), errs);
    let escalation = sc.field("allowPrivilegeEscalation").bool(errs);
    if escalation == Some(false) {
        let shown = || raw(sc.value.map(Value::to_string).unwrap_or_default());
        if sc.field("privileged").peek_bool() {
            errs.push(invalid(
                &sc.path,
                shown(),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if sc
            .field("capabilities")
            .field("add")
            .peek_strings()
            .contains(&"CAP_SYS_ADMIN")
        {
            errs.push(invalid(
                &sc.path,
                shown(),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    validate_apparmor_profile(&sc.field("appArmorProfile"), errs);
}

fn validate_dns_config(spec: &Node, errs: &mut Errs) {
    let config = spec.field("dnsConfig").object(errs);
    let policy = spec.field("dnsPolicy").peek_str();
    if policy == "None" {
        if !config.present() {
            errs.push(required(
                &config.path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return;
        }
        if config.field("nameservers").len() == 0 {
            errs.push(required(
                &config.field("nameservers").path,
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
            return;
        }
    }
    if !config.present() {
        return;
    }
    let servers = config.field("nameservers");
    let server_list = servers.strings(errs);
    if server_list.len() > 3 {
        errs.push(invalid(
            &servers.path,
            raw(super::field::go_string_slice(Some(&server_list))),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in server_list.iter().enumerate() {
        if let Some(msg) = formats::is_valid_ip(ns) {
            errs.push(invalid(&index(&servers.path, i), *ns, &msg));
        }
    }
    validate_dns_searches(&config.field("searches"), errs);
    for (i, option) in config.field("options").items(errs).iter().enumerate() {
        if option.field("name").string(errs).is_empty() {
            errs.push(required(&index(&config.field("options").path, i), "must not be empty"));
        }
    }
}

fn validate_dns_searches(node: &Node, errs: &mut Errs) {
    let searches = node.strings(errs);
    let shown = || raw(super::field::go_string_slice(Some(&searches)));
    if searches.len() > 32 {
        errs.push(invalid(&node.path, shown(), "must not have more than 32 search paths"));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(invalid(
            &node.path,
            shown(),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        if *search == "." {
            continue;
        }
        let search = search.strip_suffix('.').unwrap_or(search);
        let label_ok = |l: &str| {
            let l = l.strip_prefix('_').unwrap_or(l);
            let b = l.as_bytes();
            let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
            matches!((b.first(), b.last()), (Some(f), Some(e)) if alnum(f) && alnum(e))
                && b.iter().all(|c| alnum(c) || *c == b'-' || *c == b'_')
        };
        let mut msgs = Vec::new();
        if search.len() > formats::DNS1123_SUBDOMAIN_MAX {
            msgs.push(formats::max_len_error(formats::DNS1123_SUBDOMAIN_MAX));
        }
        if !search.split('.').all(label_ok) {
            msgs.push(formats::regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
                r"_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*",
                &["example.com"],
            ));
        }
        for msg in msgs {
            errs.push(invalid(&index(&node.path, i), search, &msg));
        }
    }
}

fn validate_gates(spec: &Node, errs: &mut Errs) {
    for gate in spec.field("readinessGates").items(errs) {
        let t = gate.field("conditionType");
        meta::validate_qualified_name(t.string(errs), &t.path, errs);
    }
    let mut seen = BTreeSet::new();
    for gate in spec.field("schedulingGates").items(errs) {
        let name = gate.field("name").string(errs);
        meta::validate_qualified_name(name, &gate.path, errs);
        if !seen.insert(name) {
            errs.push(duplicate(&gate.path, name));
        }
    }
}

/// `ValidateTolerations`.
pub(super) fn validate_tolerations(node: &Node, errs: &mut Errs) {
    for item in node.items(errs) {
        let t = item.object(errs);
        let key = t.field("key").string(errs);
        if !key.is_empty() {
            meta::validate_label_name(&t.field("key").path, key, errs);
        }
        let operator = t.field("operator");
        let op = operator.string(errs);
        if key.is_empty() && op != "Exists" {
            errs.push(invalid(
                &operator.path,
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = t.field("effect");
        let e = effect.string(errs);
        if t.field("tolerationSeconds").int(errs).is_some() && e != "NoExecute" {
            errs.push(invalid(
                &effect.path,
                e,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = t.field("value").string(errs);
        match op {
            "Equal" | "" => {
                let msgs = formats::is_label_value(value);
                if !msgs.is_empty() {
                    errs.push(invalid(&operator.path, value, &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid(
                        &operator.path,
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(&operator.path, other, &["Equal", "Exists"])),
        }
        if !e.is_empty() {
            validate_taint_effect(e, true, &effect.path, errs);
        }
    }
}

/// `validateTaintEffect`.
pub(super) fn validate_taint_effect(effect: &str, allow_empty: bool, path: &str, errs: &mut Errs) {
    match effect {
        "" if !allow_empty => errs.push(required(path, "")),
        "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
        other => errs.push(not_supported(
            path,
            other,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        )),
    }
}

fn validate_affinity(node: &Node, errs: &mut Errs) {
    let affinity = node.object(errs);
    let node_affinity = affinity.field("nodeAffinity").object(errs);
    let required_terms = node_affinity
        .field("requiredDuringSchedulingIgnoredDuringExecution")
        .object(errs);
    if required_terms.present() {
        validate_node_selector(&required_terms, errs);
    }
    for term in node_affinity
        .field("preferredDuringSchedulingIgnoredDuringExecution")
        .items(errs)
    {
        let term = term.object(errs);
        validate_weight(&term.field("weight"), errs);
        validate_node_selector_term(&term.field("preference").object(errs), true, errs);
    }
    for kind in ["podAffinity", "podAntiAffinity"] {
        let pa = affinity.field(kind).object(errs);
        for term in pa.field("requiredDuringSchedulingIgnoredDuringExecution").items(errs) {
            validate_pod_affinity_term(&term.object(errs), errs);
        }
        for term in pa.field("preferredDuringSchedulingIgnoredDuringExecution").items(errs) {
            let term = term.object(errs);
            validate_weight(&term.field("weight"), errs);
            validate_pod_affinity_term(&term.field("podAffinityTerm").object(errs), errs);
        }
    }
}

fn validate_weight(node: &Node, errs: &mut Errs) {
    let w = node.int(errs).unwrap_or(0);
    if !(1..=100).contains(&w) {
        errs.push(invalid(&node.path, w, "must be in the range 1-100"));
    }
}

/// `ValidateNodeSelector` (required node affinity).
pub(super) fn validate_node_selector(selector: &Node, errs: &mut Errs) {
    let terms = selector.field("nodeSelectorTerms");
    if terms.len() == 0 {
        errs.push(required(&terms.path, "must have at least one node selector term"));
        return;
    }
    for term in terms.items(errs) {
        validate_node_selector_term(&term.object(errs), false, errs);
    }
}

fn validate_node_selector_term(term: &Node, allow_invalid_values: bool, errs: &mut Errs) {
    for req in term.field("matchExpressions").items(errs) {
        let req = req.object(errs);
        let values = req.field("values");
        let list = values.strings(errs);
        let operator = req.field("operator");
        match operator.string(errs) {
            "In" | "NotIn" if list.is_empty() => errs.push(required(
                &values.path,
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !list.is_empty() => errs.push(forbidden(
                &values.path,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "Gt" | "Lt" if list.len() != 1 => errs.push(required(
                &values.path,
                "must be specified single value when `operator` is 'Lt' or 'Gt'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
            other => errs.push(invalid(&operator.path, other, "not a valid selector operator")),
        }
        let key = req.field("key");
        meta::validate_label_name(&key.path, key.string(errs), errs);
        if !allow_invalid_values {
            for (i, v) in list.iter().enumerate() {
                for msg in formats::is_label_value(v) {
                    errs.push(invalid(&index(&values.path, i), *v, &msg));
                }
            }
        }
    }
    for req in term.field("matchFields").items(errs) {
        let req = req.object(errs);
        let values = req.field("values");
        let list = values.strings(errs);
        let operator = req.field("operator");
        match operator.string(errs) {
            "In" | "NotIn" => {
                if list.len() != 1 {
                    errs.push(required(
                        &values.path,
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    ));
                }
            }
            other => errs.push(invalid(&operator.path, other, "not a valid selector operator")),
        }
        let key = req.field("key");
        if key.string(errs) != "metadata.name" {
            errs.push(invalid(&key.path, key.peek_str(), "not a valid field selector key"));
        } else {
            for (i, v) in list.iter().enumerate() {
                for msg in formats::is_dns1123_subdomain(v) {
                    errs.push(invalid(&index(&values.path, i), *v, &msg));
                }
            }
        }
    }
}

fn validate_pod_affinity_term(term: &Node, errs: &mut Errs) {
    meta::validate_label_selector(&term.field("labelSelector"), errs);
    meta::validate_label_selector(&term.field("namespaceSelector"), errs);
    for ns in term.field("namespaces").items(errs) {
        let name = ns.string(errs);
        for msg in formats::is_dns1123_label(name) {
            errs.push(invalid(&child(&term.path, "namespace"), name, &msg));
        }
    }
    let selector_present = term.field("labelSelector").present();
    for field in ["matchLabelKeys", "mismatchLabelKeys"] {
        let keys = term.field(field);
        if keys.len() == 0 {
            continue;
        }
        if !selector_present {
            errs.push(forbidden(
                &keys.path,
                "must not be specified when labelSelector is not set",
            ));
            continue;
        }
        for k in keys.items(errs) {
            meta::validate_label_name(&k.path, k.string(errs), errs);
        }
    }
    let topology = term.field("topologyKey");
    let key = topology.string(errs);
    if key.is_empty() {
        errs.push(required(&topology.path, "can not be empty"));
    }
    meta::validate_label_name(&topology.path, key, errs);
}

fn validate_topology_spread(node: &Node, errs: &mut Errs) {
    let items = node.items(errs);
    for (i, c) in items.iter().enumerate() {
        let c = c.object(errs);
        let skew = c.field("maxSkew");
        let s = skew.int(errs).unwrap_or(0);
        if s <= 0 {
            errs.push(invalid(&skew.path, s, "must be greater than zero"));
        }
        let key = c.field("topologyKey");
        if key.string(errs).is_empty() {
            errs.push(required(&key.path, "can not be empty"));
        }
        let action = c.field("whenUnsatisfiable");
        let a = action.string(errs);
        if a != "DoNotSchedule" && a != "ScheduleAnyway" {
            errs.push(not_supported(&action.path, a, &["DoNotSchedule", "ScheduleAnyway"]));
        }
        let repeated = items[i + 1..].iter().any(|other| {
            other.field("topologyKey").peek_str() == key.peek_str() && other.field("whenUnsatisfiable").peek_str() == a
        });
        if repeated {
            errs.push(duplicate(
                &child(&c.path, "{topologyKey, whenUnsatisfiable}"),
                format!("{{{}, {a}}}", key.peek_str()),
            ));
        }
        let min_domains = c.field("minDomains");
        if let Some(m) = min_domains.int(errs) {
            if m <= 0 {
                errs.push(invalid(&min_domains.path, m, "must be greater than zero"));
            }
            if a != "DoNotSchedule" {
                errs.push(invalid(
                    &min_domains.path,
                    m,
                    &format!("can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {a}"),
                ));
            }
        }
        for field in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            let policy = c.field(field);
            if let Some(p) = policy.str(errs)
                && p != "Honor"
                && p != "Ignore"
            {
                errs.push(not_supported(&policy.path, p, &["Honor", "Ignore"]));
            }
        }
        meta::validate_label_selector(&c.field("labelSelector"), errs);
    }
}

/// Pod-only checks on top of the spec (`validatePodMetadataAndSpec`, create rules).
pub(super) fn validate_pod_only(spec: &Node, create: bool, errs: &mut Errs) {
    let spec = spec.object(errs);
    for field in ["containers", "initContainers"] {
        for c in spec.field(field).peek_items() {
            let image = c.field("image");
            let i = image.peek_str();
            if i.len() != i.trim().len() {
                errs.push(invalid(&image.path, i, "must not have leading or trailing whitespace"));
            }
        }
    }
    if spec.field("serviceAccountName").peek_str().is_empty() {
        for v in spec.field("volumes").peek_items() {
            for s in v.field("projected").field("sources").peek_items() {
                let token = s.field("serviceAccountToken");
                if token.present() {
                    errs.push(forbidden(
                        &token.path,
                        "must not be specified when serviceAccountName is not set",
                    ));
                }
            }
        }
    }
    if create {
        let ephemeral = spec.field("ephemeralContainers");
        if ephemeral.len() > 0 {
            errs.push(forbidden(&ephemeral.path, "cannot be set on create"));
        }
        if !spec.field("nodeName").peek_str().is_empty() && spec.field("schedulingGates").len() > 0 {
            errs.push(forbidden(
                &spec.field("nodeName").path,
                "cannot be set until all schedulingGates have been cleared",
            ));
        }
    }
}

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`'s spec rules: only images, deadlines, tolerations (added) and gates (removed) change.
pub(super) fn validate_pod_spec_update(new: &Node, old: &Node, errs: &mut Errs) {
    for field in ["containers", "initContainers"] {
        let (n, o) = (new.field(field), old.field(field));
        if n.len() != o.len() {
            errs.push(forbidden(&n.path, "pod updates may not add or remove containers"));
            return;
        }
    }
    if !validate_deadline_update(new, old, errs) {
        return;
    }
    validate_toleration_update(&new.field("tolerations"), &old.field("tolerations"), errs);
    validate_gate_update(&new.field("schedulingGates"), &old.field("schedulingGates"), errs);
    let (Some(new_spec), Some(old_spec)) = (new.value, old.value) else {
        return;
    };
    let munged = munge_pod_spec(new_spec, old_spec);
    if normalized(&munged) != normalized(old_spec) {
        errs.push(forbidden(
            &new.path,
            &format!(
                "pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{}",
                diff(Some(old_spec), Some(&munged))
            ),
        ));
    }
}

fn validate_deadline_update(new: &Node, old: &Node, errs: &mut Errs) -> bool {
    let deadline = new.field("activeDeadlineSeconds");
    match (deadline.peek_int(), old.field("activeDeadlineSeconds").peek_int()) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(invalid(
                &deadline.path,
                n,
                &formats::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            false
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(invalid(
                &deadline.path,
                n,
                "must be less than or equal to previous value",
            ));
            false
        }
        (None, Some(_)) => {
            errs.push(invalid(
                &deadline.path,
                raw("null"),
                "must not update from a positive integer to nil value",
            ));
            true
        }
        _ => true,
    }
}

fn validate_toleration_update(new: &Node, old: &Node, errs: &mut Errs) {
    let strip = |v: &Value| {
        let mut v = normalized(v);
        if let Some(m) = v.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        v
    };
    let new_list: Vec<Value> = new.peek_items().iter().filter_map(|t| t.value).map(strip).collect();
    for o in old.peek_items().iter().filter_map(|t| t.value) {
        if !new_list.contains(&strip(o)) {
            errs.push(forbidden(
                &new.path,
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            return;
        }
    }
}

fn validate_gate_update(new: &Node, old: &Node, errs: &mut Errs) {
    let old_names: BTreeSet<&str> = old.peek_items().iter().map(|g| g.field("name").peek_str()).collect();
    for gate in new.peek_items() {
        let name = gate.field("name").peek_str();
        if !old_names.contains(name) {
            errs.push(forbidden(
                &gate.field("name").path,
                &format!("only deletion is allowed, but found new scheduling gate '{name}'"),
            ));
        }
    }
}

/// The new spec with every field that may change copied from the old one.
fn munge_pod_spec(new: &Value, old: &Value) -> Value {
    let mut munged = new.clone();
    let Some(m) = munged.as_object_mut() else { return munged };
    for field in ["containers", "initContainers"] {
        if let (Some(Value::Array(list)), Some(Value::Array(old_list))) = (m.get_mut(field), old.get(field)) {
            for (c, o) in list.iter_mut().zip(old_list) {
                if let Some(c) = c.as_object_mut() {
                    match o.get("image") {
                        Some(image) => c.insert("image".to_string(), image.clone()),
                        None => c.remove("image"),
                    };
                }
            }
        }
    }
    for field in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
        match old.get(field) {
            Some(v) => m.insert(field.to_string(), v.clone()),
            None => m.remove(field),
        };
    }
    let gated = old
        .get("schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty());
    if gated {
        let old_selector = old.get("nodeSelector").and_then(Value::as_object);
        let new_selector = m.get("nodeSelector").and_then(Value::as_object);
        let additions_only = old_selector
            .into_iter()
            .flatten()
            .all(|(k, v)| new_selector.and_then(|n| n.get(k)) == Some(v));
        if additions_only {
            match old.get("nodeSelector") {
                Some(v) => m.insert("nodeSelector".to_string(), v.clone()),
                None => m.remove("nodeSelector"),
            };
        }
    }
    let old_grace = old.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
    let new_grace = m.get("terminationGracePeriodSeconds").and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
        m.insert(
            "terminationGracePeriodSeconds".to_string(),
            Value::from(old_grace.unwrap_or(1)),
        );
    }
    munged
}

/// `ValidatePodTemplateSpec`: template labels/annotations (reported at
/// `<template>.labels`, as upstream does) and the pod spec.
pub(super) fn validate_pod_template_spec(template: &Node, errs: &mut Errs) {
    let template = template.object(errs);
    let metadata = template.field("metadata").object(errs);
    let labels = Node::new(metadata.field("labels").value, child(&template.path, "labels"));
    meta::validate_labels(&labels, errs);
    let annotations = Node::new(
        metadata.field("annotations").value,
        child(&template.path, "annotations"),
    );
    meta::validate_annotations(&annotations, errs);
    let spec = template.field("spec");
    validate_pod_annotations(&annotations, &spec, errs);
    validate_pod_spec(&spec, "", PodOpts { is_pod: false }, errs);
    let ephemeral = spec.field("ephemeralContainers");
    if ephemeral.len() > 0 {
        errs.push(forbidden(
            &ephemeral.path,
            "ephemeral containers not allowed in pod template",
        ));
    }
}

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
const APPARMOR_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn valid_deletion_cost(value: &str) -> bool {
    let first_ok = match value.as_bytes().first() {
        Some(b'-') => true,
        Some(b'0') => value == "0",
        Some(c) => c.is_ascii_digit(),
        None => false,
    };
    first_ok && value.parse::<i32>().is_ok()
}

fn valid_seccomp_profile(profile: &str) -> Result<(), Option<&str>> {
    match profile {
        "runtime/default" | "docker/default" | "unconfined" => Ok(()),
        p => match p.strip_prefix("localhost/") {
            Some(path) => Err(Some(path)),
            None => Err(None),
        },
    }
}

/// `ValidatePodSpecificAnnotations`: annotations with pod semantics (mirror pods,
/// deletion cost, legacy seccomp and AppArmor profiles).
pub(super) fn validate_pod_annotations(annotations: &Node, spec: &Node, errs: &mut Errs) {
    let Some(map) = annotations.peek_string_map() else {
        return;
    };
    if let Some(value) = map.get(MIRROR_ANNOTATION)
        && spec.field("nodeName").peek_str().is_empty()
    {
        errs.push(invalid(
            &super::field::key(&annotations.path, MIRROR_ANNOTATION),
            *value,
            "must set spec.nodeName if mirror pod annotation is set",
        ));
    }
    if let Some(value) = map.get(DELETION_COST_ANNOTATION)
        && !valid_deletion_cost(value)
    {
        errs.push(invalid(
            &super::field::key(&annotations.path, DELETION_COST_ANNOTATION),
            *value,
            "must be a 32bit integer",
        ));
    }
    for (k, v) in &map {
        if *k == SECCOMP_POD_ANNOTATION || k.starts_with(SECCOMP_CONTAINER_PREFIX) {
            let path = child(&annotations.path, k);
            match valid_seccomp_profile(v) {
                Ok(()) => {}
                Err(Some(local)) => volumes::validate_local_descending_path(local, &path, errs),
                Err(None) => errs.push(invalid(&path, *v, "must be a valid seccomp profile")),
            }
        }
    }
    let containers: BTreeSet<&str> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|f| spec.field(f).peek_items())
        .map(|c| c.field("name").peek_str())
        .collect();
    for (k, v) in &map {
        let Some(container) = k.strip_prefix(APPARMOR_PREFIX) else {
            continue;
        };
        let path = super::field::key(&annotations.path, k);
        if !containers.contains(container) {
            errs.push(invalid(&path, container, "container not found"));
        }
        let ok = v.is_empty() || *v == "runtime/default" || *v == "unconfined" || v.starts_with("localhost/");
        if !ok {
            errs.push(invalid(
                &path,
                *v,
                &format!("invalid AppArmor profile name: {}", super::field::go_quote(v)),
            ));
        }
    }
}

/// `ValidatePodSpecificAnnotationUpdates`: AppArmor and mirror annotations are fixed.
pub(super) fn validate_pod_annotation_updates(new: &Node, old: &Node, errs: &mut Errs) {
    let new_map = new.peek_string_map().unwrap_or_default();
    let old_map = old.peek_string_map().unwrap_or_default();
    for (k, v) in &old_map {
        if new_map.get(k) == Some(v) {
            continue;
        }
        let path = super::field::key(&new.path, k);
        if k.starts_with(APPARMOR_PREFIX) {
            errs.push(forbidden(&path, "may not remove or update AppArmor annotations"));
        }
        if *k == MIRROR_ANNOTATION {
            errs.push(forbidden(&path, "may not remove or update mirror pod annotation"));
        }
    }
    for k in new_map.keys().filter(|k| !old_map.contains_key(*k)) {
        let path = super::field::key(&new.path, k);
        if k.starts_with(APPARMOR_PREFIX) {
            errs.push(forbidden(&path, "may not add AppArmor annotations"));
        }
        if *k == MIRROR_ANNOTATION {
            errs.push(forbidden(&path, "may not add mirror pod annotation"));
        }
    }
}
