//! `emptyDir`: a directory that lives as long as the pod, on the node's
//! disk or, with `medium: Memory`, on a tmpfs sized by `sizeLimit`, the
//! pod's memory limit or node allocatable (the smallest that applies), so
//! that it is charged to the pod's memory and cannot fill the node's RAM.
//! Secret and projected volumes use the same tmpfs so their content never
//! touches the disk.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;

use super::{Context, Prepared, is_mount_point, set_ownership};
use crate::objects::Objects;

pub const PLUGIN: &str = "empty-dir";

pub(super) fn setup(
    ctx: &Context<'_, impl Objects>,
    name: &str,
    source: &EmptyDirVolumeSource,
) -> Result<Prepared, String> {
    let dir = ctx.volume_dir(PLUGIN, name);
    let size_limit = source
        .size_limit
        .as_ref()
        .and_then(|q| capstan_scheduler::quantity::value(&q.0))
        .filter(|v| *v > 0);
    match source.medium.as_deref().unwrap_or_default() {
        "" => {
            fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        }
        "Memory" => {
            let size = memory_size(ctx, size_limit);
            mount_tmpfs(&dir, size).map_err(|e| format!("mount of tmpfs on {} failed: {e}", dir.display()))?;
        }
        other => return Err(format!("unsupported medium {other:?} for emptyDir")),
    }
    // 0777 lets any user of the pod write, as upstream; an fsGroup narrows it to the group.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(|e| e.to_string())?;
    if let Some(group) = ctx.fs_group {
        set_ownership(&dir, group, false).map_err(|e| e.to_string())?;
    }
    let on_disk = source.medium.as_deref().unwrap_or_default().is_empty();
    Ok(Prepared {
        host_path: dir,
        read_only: false,
        size_limit: if on_disk { size_limit } else { None },
    })
}

/// The size of a memory-backed volume: the smallest of `sizeLimit`, the
/// pod's memory limit and node allocatable memory (upstream's
/// `calculateEmptyDirMemorySize`); `None` leaves the kernel's default.
pub(super) fn memory_size(ctx: &Context<'_, impl Objects>, size_limit: Option<i64>) -> Option<i64> {
    let allocatable = ctx
        .node
        .allocatable
        .get("memory")
        .and_then(|q| capstan_scheduler::quantity::value(&q.0))
        .filter(|v| *v > 0);
    let pod_limit = crate::resources::pod_resources(ctx.pod).memory_limit;
    [allocatable, pod_limit, size_limit].into_iter().flatten().min()
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Mounts a tmpfs on `dir` unless one is there already (re-runs of `prepare`).
pub(super) fn mount_tmpfs(dir: &Path, size: Option<i64>) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    if is_mount_point(dir) {
        return Ok(());
    }
    let options = size.map(|s| format!("size={s}")).unwrap_or_default();
    let target = c_path(dir)?;
    let options = CString::new(options).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts `dir`, lazily if it is still busy.
pub(super) fn unmount(dir: &Path) -> io::Result<()> {
    let target = c_path(dir)?;
    // SAFETY: `target` is a valid NUL-terminated path.
    if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EBUSY) {
        return Err(err);
    }
    // SAFETY: as above.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
