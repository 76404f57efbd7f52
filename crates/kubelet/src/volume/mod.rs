//! Pod volumes on the node (upstream `pkg/volume` plugins and the
//! kubelet's volume manager, reduced to what one node without attachable
//! storage needs).
//!
//! [`prepare`] sets up every volume of a pod under
//! `<pod_dir>/volumes/kubernetes.io~<plugin>/<name>` (hostPath volumes use
//! the host path itself) and returns [`Volumes`], from which
//! [`Volumes::mounts_for`] gives each container's CRI mounts. `prepare` is
//! idempotent and cheap when nothing changed: the pod worker re-runs it
//! periodically, which is how ConfigMap, Secret, downward API and token
//! updates reach running containers (see [`atomic`]). [`cleanup`] unmounts
//! the tmpfs mounts and removes the volumes when the pod is gone.
//!
//! A volume that cannot be set up fails the whole call with
//! [`VolumeError`], whose text is upstream's `FailedMount` event message.

pub mod atomic;
pub mod configmap;
pub mod downwardapi;
pub mod emptydir;
pub mod hostpath;
pub mod projected;
pub mod secret;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_cri::v1::{KeyValue, Mount, MountPropagation};
use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::fieldpath::NodeFacts;
use crate::objects::Objects;
use crate::securitycontext::{self, FsGroup};

/// The event reason for [`VolumeError`].
pub const FAILED_MOUNT: &str = "FailedMount";

/// A volume that could not be set up, worded as upstream's event:
/// `MountVolume.SetUp failed for volume "x" : configmap "y" not found`.
#[derive(Debug, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {cause}")]
pub struct VolumeError {
    pub volume: String,
    pub cause: String,
}

/// A container's mount that cannot be made (a container config error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MountError {
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    NoVolume { volume: String, container: String },
    #[error("failed to create subPath directory for volumeMount \"{mount}\" of container \"{container}\"")]
    SubPath { mount: String, container: String },
    #[error("failed to prepare subPath for volumeMount \"{mount}\" of container \"{container}\"")]
    SubPathEscapes { mount: String, container: String },
}

/// Everything the plugins need to set up one pod's volumes.
pub struct Context<'a, O: Objects> {
    pub objects: &'a O,
    pub pod: &'a Pod,
    pub pod_dir: &'a Path,
    pub node: &'a NodeFacts,
    pub fs_group: Option<FsGroup>,
}

impl<O: Objects> Context<'_, O> {
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `<pod_dir>/volumes/kubernetes.io~<plugin>/<name>`.
    pub fn volume_dir(&self, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir
            .join("volumes")
            .join(format!("kubernetes.io~{plugin}"))
            .join(name)
    }
}

/// One prepared volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub host_path: PathBuf,
    /// Forced read-only whatever the volumeMount says (configMap, secret,
    /// downwardAPI, projected).
    pub read_only: bool,
    /// An emptyDir's `sizeLimit` on disk in bytes, for eviction.
    pub size_limit: Option<i64>,
}

/// A pod's prepared volumes by name.
#[derive(Debug, Clone, Default)]
pub struct Volumes {
    pub by_name: BTreeMap<String, Prepared>,
}

/// Sets up all volumes of `pod` (see the module doc).
pub async fn prepare(
    objects: &impl Objects,
    pod: &Pod,
    pod_dir: &Path,
    node: &NodeFacts,
) -> Result<Volumes, VolumeError> {
    let ctx = Context {
        objects,
        pod,
        pod_dir,
        node,
        fs_group: securitycontext::fs_group(pod),
    };
    let mut volumes = Volumes::default();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let prepared = prepare_one(&ctx, volume).await.map_err(|cause| VolumeError {
            volume: volume.name.clone(),
            cause,
        })?;
        volumes.by_name.insert(volume.name.clone(), prepared);
    }
    Ok(volumes)
}

async fn prepare_one(ctx: &Context<'_, impl Objects>, volume: &Volume) -> Result<Prepared, String> {
    let name = &volume.name;
    if let Some(source) = &volume.empty_dir {
        emptydir::setup(ctx, name, source)
    } else if let Some(source) = &volume.host_path {
        hostpath::setup(source)
    } else if let Some(source) = &volume.config_map {
        configmap::setup(ctx, name, source).await
    } else if let Some(source) = &volume.secret {
        secret::setup(ctx, name, source).await
    } else if let Some(source) = &volume.downward_api {
        downwardapi::setup(ctx, name, source)
    } else if let Some(source) = &volume.projected {
        projected::setup(ctx, name, source).await
    } else {
        Err("no volume plugin matched".into())
    }
}

impl Volumes {
    /// The host path of a volume.
    pub fn host_path(&self, name: &str) -> Option<&Path> {
        self.by_name.get(name).map(|p| p.host_path.as_path())
    }

    /// The CRI mounts of a container's `volumeMounts`: `subPath` (and
    /// `subPathExpr`, expanded with the container's `env`) are created
    /// inside the volume and may not leave it; read-only when the mount or
    /// the volume says so; propagation as asked (private by default).
    pub fn mounts_for(&self, container: &Container, env: &[KeyValue]) -> Result<Vec<Mount>, MountError> {
        let mut mounts = Vec::new();
        for vm in container.volume_mounts.iter().flatten() {
            let Some(volume) = self.by_name.get(&vm.name) else {
                return Err(MountError::NoVolume {
                    volume: vm.name.clone(),
                    container: container.name.clone(),
                });
            };
            let sub_path = match (&vm.sub_path, &vm.sub_path_expr) {
                (Some(p), _) if !p.is_empty() => p.clone(),
                (_, Some(expr)) if !expr.is_empty() => crate::envvars::expand(expr, |name| {
                    env.iter().find(|kv| kv.key == name).map(|kv| kv.value.clone())
                }),
                _ => String::new(),
            };
            let host_path = if sub_path.is_empty() {
                volume.host_path.clone()
            } else {
                sub_path_of(&volume.host_path, &sub_path).map_err(|escapes| {
                    let (mount, container) = (vm.name.clone(), container.name.clone());
                    if escapes {
                        MountError::SubPathEscapes { mount, container }
                    } else {
                        MountError::SubPath { mount, container }
                    }
                })?
            };
            let propagation = match vm.mount_propagation.as_deref() {
                Some("HostToContainer") => MountPropagation::PropagationHostToContainer,
                Some("Bidirectional") => MountPropagation::PropagationBidirectional,
                _ => MountPropagation::PropagationPrivate,
            };
            mounts.push(Mount {
                container_path: vm.mount_path.clone(),
                host_path: host_path.to_string_lossy().into_owned(),
                readonly: vm.read_only.unwrap_or(false) || volume.read_only,
                propagation: propagation as i32,
                ..Default::default()
            });
        }
        Ok(mounts)
    }
}

/// `volume/sub_path`, created as a directory with the volume's mode when
/// missing; `Err(true)` when it resolves outside the volume (a symlink
/// planted by a container must not expose the host).
fn sub_path_of(volume: &Path, sub_path: &str) -> Result<PathBuf, bool> {
    let joined = volume.join(sub_path);
    if fs::symlink_metadata(&joined).is_err() {
        let mode = fs::metadata(volume).map(|m| m.permissions().mode()).unwrap_or(0o755);
        fs::create_dir_all(&joined).map_err(|_| false)?;
        let _ = fs::set_permissions(&joined, fs::Permissions::from_mode(mode & 0o7777));
    }
    let root = volume.canonicalize().map_err(|_| false)?;
    let resolved = joined.canonicalize().map_err(|_| false)?;
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(true)
    }
}

/// Gives a volume to the pod's `fsGroup` (upstream `SetVolumeOwnership`):
/// group-owned, group-readable (and writable unless `read_only`),
/// directories setgid so new files inherit the group. Symlinks are left
/// alone. With `OnRootMismatch` the walk is skipped when the root is
/// already right.
pub fn set_ownership(dir: &Path, group: FsGroup, read_only: bool) -> io::Result<()> {
    let (file_mask, dir_mask) = if read_only { (0o440, 0o2550) } else { (0o660, 0o2770) };
    if group.on_root_mismatch {
        let meta = fs::metadata(dir)?;
        if meta.gid() == group.gid && meta.mode() & dir_mask == dir_mask {
            return Ok(());
        }
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::lchown(&path, None, Some(group.gid))?;
        let mask = if meta.is_dir() { dir_mask } else { file_mask };
        fs::set_permissions(&path, fs::Permissions::from_mode((meta.mode() & 0o7777) | mask))?;
        if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// Whether `path` is a mount point: its device differs from its parent's.
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let (Ok(own), Some(Ok(parent))) = (fs::metadata(path), path.parent().map(fs::metadata)) else {
        return false;
    };
    own.dev() != parent.dev()
}

/// Unmounts a pod's tmpfs volumes and removes its volume directories.
/// Nothing is deleted under a path that is still mounted.
pub fn cleanup(pod_dir: &Path) -> io::Result<()> {
    let root = pod_dir.join("volumes");
    let plugins = match fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for plugin in plugins {
        for volume in fs::read_dir(plugin?.path())? {
            let path = volume?.path();
            if is_mount_point(&path) {
                emptydir::unmount(&path)?;
            }
        }
    }
    fs::remove_dir_all(root)
}

#[cfg(test)]
mod tests;
