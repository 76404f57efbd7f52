//! Pod volumes and the `PersistentVolumeClaimSpec` they (and claims) share.

use std::collections::{BTreeMap, BTreeSet};

use super::field::{Errs, child, duplicate, forbidden, invalid, not_supported, required, too_long};
use super::formats;
use super::json::Node;
use super::meta::{self, NameRule};
use super::resources;

/// What mounts need to know about a (valid) volume.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct VolumeInfo {
    /// A PVC or generic ephemeral volume (the only kinds usable as block devices).
    pub claim: bool,
    /// An image volume (no subPath allowed).
    pub image: bool,
}

pub(super) type Volumes = BTreeMap<String, VolumeInfo>;

/// The volume source fields, in upstream's checking order, with the path
/// upstream reports a second source at (it misspells two of them).
const SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// `ValidateVolumes`: names and sources; returns the valid volumes by name.
pub(super) fn validate_volumes(node: &Node, pod_name: &str, is_pod: bool, errs: &mut Errs) -> Volumes {
    let items = node.items(errs);
    let created_claims: BTreeSet<String> = if pod_name.is_empty() {
        BTreeSet::new()
    } else {
        items
            .iter()
            .filter(|v| v.field("ephemeral").present())
            .map(|v| format!("{pod_name}-{}", v.field("name").peek_str()))
            .collect()
    };
    let mut vols = Volumes::new();
    for item in &items {
        let item = item.object(errs);
        let name_node = item.field("name");
        let name = name_node.string(errs);
        let mut local = Vec::new();
        let info = validate_source(&item, name, pod_name, is_pod, &mut local);
        if name.is_empty() {
            local.push(required(&name_node.path, ""));
        } else {
            meta::validate_dns_label(name, &name_node.path, &mut local);
        }
        if vols.contains_key(name) {
            local.push(duplicate(&name_node.path, name));
        }
        if local.is_empty() {
            vols.insert(name.to_string(), info);
        } else {
            errs.append(&mut local);
        }
        let claim = item.field("persistentVolumeClaim").field("claimName");
        if created_claims.contains(claim.peek_str()) {
            errs.push(invalid(
                &claim.path,
                claim.peek_str(),
                "must not reference a PVC that gets created for an ephemeral volume",
            ));
        }
    }
    vols
}

fn validate_source(volume: &Node, name: &str, pod_name: &str, is_pod: bool, errs: &mut Errs) -> VolumeInfo {
    let mut count = 0;
    let mut info = VolumeInfo::default();
    for (field, reported) in SOURCES {
        let source = volume.field(field);
        if !source.present() {
            continue;
        }
        if count > 0 {
            errs.push(forbidden(
                &child(&volume.path, reported),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let source = source.object(errs);
        info.claim = matches!(*field, "persistentVolumeClaim" | "ephemeral");
        info.image = *field == "image";
        validate_one_source(field, &source, is_pod, errs);
        if *field == "ephemeral" && !pod_name.is_empty() && !name.is_empty() {
            let claim_name = format!("{pod_name}-{name}");
            for msg in formats::is_dns1123_subdomain(&claim_name) {
                errs.push(invalid(
                    &child(&volume.path, "name"),
                    name,
                    &format!("PVC name \"{claim_name}\": {msg}"),
                ));
            }
        }
    }
    // No source at all is defaulted to an emptyDir upstream.
    info
}

/// The persistent volume sources, in upstream's checking order, with the path a
/// second source is reported at.
pub(super) const PV_SOURCES: &[(&str, &str)] = &[
    ("hostPath", "hostPath"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("nfs", "nfs"),
    ("rbd", "rbd"),
    ("quobyte", "quobyte"),
    ("cephfs", "cephFS"),
    ("iscsi", "iscsi"),
    ("cinder", "cinder"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("scaleIO", "scaleIO"),
    ("local", "local"),
    ("storageos", "storageos"),
    ("csi", "csi"),
];

/// A PersistentVolume has exactly one source (upstream never reports a
/// `flexVolume` as the extra one); returns the one validated.
pub(super) fn validate_pv_source(spec: &Node, errs: &mut Errs) -> Option<&'static str> {
    let mut found = None;
    for (field, reported) in PV_SOURCES {
        let source = spec.field(field);
        if !source.present() {
            continue;
        }
        if found.is_some() && *field != "flexVolume" {
            errs.push(forbidden(
                &child(&spec.path, reported),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        found = Some(*field);
        let source = source.object(errs);
        match *field {
            "local" => {
                let path = source.field("path");
                let p = path.string(errs);
                if p.is_empty() {
                    errs.push(required(&path.path, ""));
                } else {
                    validate_path_no_backsteps(p, &path.path, errs);
                }
            }
            "csi" => {
                validate_csi_driver_name(&source.field("driver"), errs);
                require_str(&source, "volumeHandle", errs);
            }
            _ => validate_one_source(field, &source, false, errs),
        }
    }
    if found.is_none() {
        errs.push(required(&spec.path, "must specify a volume type"));
    }
    found
}

fn require_str(node: &Node, field: &str, errs: &mut Errs) -> bool {
    let f = node.field(field);
    if f.string(errs).is_empty() {
        errs.push(required(&f.path, ""));
        return false;
    }
    true
}

fn validate_one_source(kind: &str, source: &Node, is_pod: bool, errs: &mut Errs) {
    let simple_required: &[&str] = match kind {
        "gitRepo" => &["repository"],
        "awsElasticBlockStore" | "cinder" | "portworxVolume" => &["volumeID"],
        "glusterfs" => &["endpoints", "path"],
        "rbd" => &["image"],
        "quobyte" => &["volume"],
        "flexVolume" => &["driver"],
        "azureFile" => &["secretName", "shareName"],
        "vsphereVolume" => &["volumePath"],
        "photonPersistentDisk" => &["pdID"],
        "azureDisk" => &["diskName", "diskURI"],
        "scaleIO" => &["gateway", "system", "volumeName"],
        "iscsi" => &["targetPortal", "iqn"],
        "persistentVolumeClaim" => &["claimName"],
        _ => &[],
    };
    for field in simple_required {
        require_str(source, field, errs);
    }
    match kind {
        "emptyDir" => validate_empty_dir(source, errs),
        "hostPath" => validate_host_path(source, errs),
        "gitRepo" => {
            let dir = source.field("directory");
            validate_local_descending_path(dir.string(errs), &dir.path, errs);
        }
        "gcePersistentDisk" => {
            let pd = Node::new(source.value, child(parent(&source.path), "persistentDisk"));
            require_str(&pd, "pdName", errs);
        }
        "secret" => validate_key_projection(source, "secretName", errs),
        "configMap" => validate_key_projection(source, "name", errs),
        "nfs" => validate_nfs(source, errs),
        "downwardAPI" => validate_downward_api(source, errs),
        "projected" => validate_projected(source, errs),
        "csi" => validate_csi_driver_name(&source.field("driver"), errs),
        "ephemeral" => validate_ephemeral(source, errs),
        "image" => validate_image_source(source, is_pod, errs),
        "rbd" | "cephfs" => {
            let monitors = source.field("monitors");
            if monitors.len() == 0 {
                let path = if kind == "cephfs" {
                    child(&child(parent(&source.path), "cephfs"), "monitors")
                } else {
                    monitors.path.clone()
                };
                errs.push(required(&path, ""));
            }
        }
        "storageos" => validate_storageos(source, errs),
        _ => {}
    }
}

fn validate_storageos(source: &Node, errs: &mut Errs) {
    if require_str(source, "volumeName", errs) {
        let v = source.field("volumeName");
        meta::validate_dns_label(v.peek_str(), &v.path, errs);
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('.').map(|(p, _)| p).unwrap_or("")
}

fn validate_empty_dir(source: &Node, errs: &mut Errs) {
    let size = source.field("sizeLimit");
    if size.present()
        && let Some(q) = resources::quantity(&size, errs)
        && q.is_negative()
    {
        errs.push(forbidden(
            &size.path,
            "SizeLimit field must be a valid resource quantity",
        ));
    }
}

fn validate_host_path(source: &Node, errs: &mut Errs) {
    let path = source.field("path");
    let p = path.string(errs);
    if p.is_empty() {
        errs.push(required(&path.path, ""));
        return;
    }
    validate_path_no_backsteps(p, &path.path, errs);
    let kind = source.field("type");
    if let Some(t) = kind.str(errs) {
        const TYPES: &[&str] = &[
            "",
            "BlockDevice",
            "CharDevice",
            "Directory",
            "DirectoryOrCreate",
            "File",
            "FileOrCreate",
            "Socket",
        ];
        if !TYPES.contains(&t) {
            errs.push(not_supported(&kind.path, t, TYPES));
        }
    }
}

fn validate_nfs(source: &Node, errs: &mut Errs) {
    require_str(source, "server", errs);
    let path = source.field("path");
    let p = path.peek_str();
    if p.is_empty() {
        errs.push(required(&path.path, ""));
    }
    if !p.starts_with('/') {
        errs.push(invalid(&path.path, p, "must be an absolute path"));
    }
}

fn validate_mode(node: &Node, errs: &mut Errs) {
    if let Some(mode) = node.int(errs)
        && !(0..=0o777).contains(&mode)
    {
        errs.push(invalid(&node.path, mode, FILE_MODE_ERROR));
    }
}

/// Secret and ConfigMap volume sources: a name, a default mode and key-to-path items.
fn validate_key_projection(source: &Node, name_field: &str, errs: &mut Errs) {
    require_str(source, name_field, errs);
    validate_mode(&source.field("defaultMode"), errs);
    for item in source.field("items").items(errs) {
        validate_key_to_path(&item.object(errs), errs);
    }
}

fn validate_key_to_path(item: &Node, errs: &mut Errs) {
    require_str(item, "key", errs);
    let path = item.field("path");
    let p = path.string(errs);
    if p.is_empty() {
        errs.push(required(&path.path, ""));
    }
    validate_local_non_reserved_path(p, &path.path, errs);
    validate_mode(&item.field("mode"), errs);
}

/// Not absolute, no `..` element.
pub(super) fn validate_local_descending_path(target: &str, path: &str, errs: &mut Errs) {
    if target.starts_with('/') {
        errs.push(invalid(path, target, "must be a relative path"));
    }
    validate_path_no_backsteps(target, path, errs);
}

pub(super) fn validate_path_no_backsteps(target: &str, path: &str, errs: &mut Errs) {
    if target.split('/').any(|part| part == "..") {
        errs.push(invalid(path, target, "must not contain '..'"));
    }
}

pub(super) fn validate_local_non_reserved_path(target: &str, path: &str, errs: &mut Errs) {
    validate_local_descending_path(target, path, errs);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(invalid(path, target, "must not start with '..'"));
    }
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

fn validate_downward_api(source: &Node, errs: &mut Errs) {
    validate_mode(&source.field("defaultMode"), errs);
    for item in source.field("items").items(errs) {
        validate_downward_api_file(&item.object(errs), &source.path, errs);
    }
}

fn validate_downward_api_file(file: &Node, parent_path: &str, errs: &mut Errs) {
    let path = file.field("path");
    let p = path.string(errs);
    if p.is_empty() {
        errs.push(required(&child(parent_path, "path"), ""));
    }
    validate_local_non_reserved_path(p, &child(parent_path, "path"), errs);
    let field_ref = file.field("fieldRef");
    let resource_ref = file.field("resourceFieldRef");
    if field_ref.present() {
        super::pod::validate_object_field_selector(
            &field_ref.object(errs),
            VOLUME_FIELD_PATHS,
            &child(parent_path, "fieldRef"),
            errs,
        );
        if resource_ref.present() {
            errs.push(invalid(
                parent_path,
                "resource",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if resource_ref.present() {
        let node = Node::new(resource_ref.value, child(parent_path, "resourceFieldRef"));
        super::pod::validate_resource_field_selector(&node.object(errs), true, errs);
    } else {
        errs.push(required(
            parent_path,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
    validate_mode(&file.field("mode"), errs);
}

fn validate_projected(source: &Node, errs: &mut Errs) {
    validate_mode(&source.field("defaultMode"), errs);
    let mut paths: BTreeSet<String> = BTreeSet::new();
    let mut check_path = |p: &str, bad: &str, errs: &mut Errs| {
        if !p.is_empty() && !paths.insert(p.to_string()) {
            errs.push(invalid(&source.path, bad, "conflicting duplicate paths"));
        }
    };
    for src in source.field("sources").items(errs) {
        let src = src.object(errs);
        let mut count = 0;
        for kind in ["secret", "configMap"] {
            let s = src.field(kind).object(errs);
            if !s.present() {
                continue;
            }
            count += 1;
            require_str(&s, "name", errs);
            for item in s.field("items").items(errs) {
                let item = item.object(errs);
                validate_key_to_path(&item, errs);
                check_path(item.field("path").peek_str(), s.field("name").peek_str(), errs);
            }
        }
        let dapi = src.field("downwardAPI").object(errs);
        if dapi.present() {
            count += 1;
            for item in dapi.field("items").items(errs) {
                let item = item.object(errs);
                validate_downward_api_file(&item, &dapi.path, errs);
                let p = item.field("path").peek_str();
                check_path(p, p, errs);
            }
        }
        let token = src.field("serviceAccountToken").object(errs);
        if token.present() {
            count += 1;
            validate_token_projection(&token, &source.path, errs);
        }
        let bundle = src.field("clusterTrustBundle").object(errs);
        if bundle.present() {
            count += 1;
            let p = bundle.field("path");
            if p.string(errs).is_empty() {
                errs.push(required(&p.path, ""));
            }
            validate_local_non_reserved_path(p.peek_str(), &p.path, errs);
            check_path(p.peek_str(), p.peek_str(), errs);
        }
        if count > 1 {
            errs.push(forbidden(
                &src.path,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
}

fn validate_token_projection(token: &Node, projected_path: &str, errs: &mut Errs) {
    let exp = token.field("expirationSeconds");
    let seconds = exp.int(errs).unwrap_or(3600);
    if seconds < 600 {
        errs.push(invalid(
            &exp.path,
            seconds,
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > 1 << 32 {
        errs.push(invalid(
            &exp.path,
            seconds,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let p = token.field("path").string(errs);
    if p.is_empty() {
        errs.push(required(&child(projected_path, "path"), ""));
    } else {
        validate_local_non_reserved_path(p, &child(projected_path, "path"), errs);
    }
}

/// `ValidateCSIDriverName`.
pub(super) fn validate_csi_driver_name(node: &Node, errs: &mut Errs) {
    let name = node.string(errs);
    if name.is_empty() {
        errs.push(required(&node.path, ""));
    }
    if name.len() > 63 {
        errs.push(too_long(&node.path, 63));
    }
    for msg in formats::is_dns1123_subdomain(&name.to_lowercase()) {
        errs.push(invalid(&node.path, name, &msg));
    }
}

fn validate_ephemeral(source: &Node, errs: &mut Errs) {
    let template = source.field("volumeClaimTemplate").object(errs);
    if !template.present() {
        errs.push(required(&template.path, ""));
        return;
    }
    let metadata = template.field("metadata").object(errs);
    meta::validate_annotations(&metadata.field("annotations"), errs);
    meta::validate_labels(&metadata.field("labels"), errs);
    if let Some(map) = metadata.as_map() {
        for key in map.keys().filter(|k| !["labels", "annotations"].contains(&k.as_str())) {
            errs.push(forbidden(&child(&metadata.path, key), "cannot be set"));
        }
    }
    validate_pvc_spec(&template.field("spec"), errs);
}

fn validate_image_source(source: &Node, is_pod: bool, errs: &mut Errs) {
    let reference = source.field("reference");
    if is_pod && reference.string(errs).is_empty() {
        errs.push(required(&reference.path, ""));
    }
    let policy = source.field("pullPolicy");
    if let Some(p) = policy.str(errs)
        && !p.is_empty()
        && !["Always", "IfNotPresent", "Never"].contains(&p)
    {
        errs.push(not_supported(&policy.path, p, &["Always", "IfNotPresent", "Never"]));
    }
}

pub(super) const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];

/// Access modes are supported values, and `ReadWriteOncePod` stands alone.
pub(super) fn validate_access_modes(node: &Node, errs: &mut Errs) {
    let modes = node.strings(errs);
    let (mut once_pod, mut other) = (false, false);
    for mode in &modes {
        if !ACCESS_MODES.contains(mode) {
            errs.push(not_supported(&node.path, *mode, ACCESS_MODES));
        }
        if *mode == "ReadWriteOncePod" {
            once_pod = true;
        } else if ACCESS_MODES.contains(mode) {
            other = true;
        }
    }
    if once_pod && other {
        errs.push(forbidden(
            &node.path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// `ValidatePersistentVolumeClaimSpec`.
pub(super) fn validate_pvc_spec(spec: &Node, errs: &mut Errs) {
    let spec = spec.object(errs);
    let modes = spec.field("accessModes");
    if modes.len() == 0 {
        errs.push(required(&modes.path, "at least 1 access mode is required"));
    }
    let selector = spec.field("selector");
    if selector.present() {
        meta::validate_label_selector(&selector, errs);
    }
    validate_access_modes(&modes, errs);
    let storage_path = super::field::key(&spec.field("resources").path, "storage");
    let storage = spec.field("resources").field("requests").field("storage");
    match storage.present().then(|| resources::quantity(&storage, errs)) {
        None => errs.push(required(&storage_path, "")),
        Some(None) => {}
        Some(Some(q)) => {
            if resources::validate_positive_quantity(&q, &storage_path, errs) {
                resources::validate_quantity_value("storage", &q, &storage_path, errs);
            }
        }
    }
    let class = spec.field("storageClassName");
    if let Some(c) = class.str(errs)
        && !c.is_empty()
    {
        meta::validate_name_field(&class, NameRule::Subdomain, c, errs);
    }
    let mode = spec.field("volumeMode");
    if let Some(m) = mode.str(errs)
        && !["Block", "Filesystem"].contains(&m)
    {
        errs.push(not_supported(&mode.path, m, &["Block", "Filesystem"]));
    }
    for field in ["dataSource", "dataSourceRef"] {
        let source = spec.field(field).object(errs);
        if source.present() {
            validate_data_source(&source, errs);
        }
    }
}

fn validate_data_source(source: &Node, errs: &mut Errs) {
    require_str(source, "name", errs);
    let kind = source.field("kind").peek_str();
    if kind.is_empty() {
        errs.push(required(&source.field("kind").path, ""));
    }
    let group = source.field("apiGroup").string(errs);
    if group.is_empty() && kind != "PersistentVolumeClaim" {
        errs.push(invalid(
            &source.path,
            kind,
            "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
        ));
    }
    if !group.is_empty() {
        meta::validate_dns_subdomain(group, &source.field("apiGroup").path, errs);
    }
}
