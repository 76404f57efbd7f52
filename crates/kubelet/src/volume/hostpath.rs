//! `hostPath`: a file or directory of the node, checked against the
//! volume's `type` with upstream's messages, and created for the
//! `…OrCreate` types.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::HostPathVolumeSource;

use super::Prepared;

pub(super) fn setup(source: &HostPathVolumeSource) -> Result<Prepared, String> {
    let path = Path::new(&source.path);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("invalid HostPath `{}`: must not contain '..'", source.path));
    }
    check_type(path, source.type_.as_deref().unwrap_or_default())?;
    Ok(Prepared {
        host_path: path.to_path_buf(),
        read_only: false,
        size_limit: None,
    })
}

/// Upstream's `checkType`: the path must be what `type` says; the
/// `…OrCreate` types create a directory (0755) or an empty file (0644)
/// when nothing is there.
pub fn check_type(path: &Path, kind: &str) -> Result<(), String> {
    let shown = path.display();
    let meta = fs::metadata(path).ok();
    let file_type = meta.as_ref().map(|m| m.file_type());
    let is = |f: fn(&fs::FileType) -> bool| file_type.as_ref().is_some_and(f);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => make_dir(path).map_err(|e| e.to_string()),
        "DirectoryOrCreate" | "Directory" if !is(fs::FileType::is_dir) => {
            Err(format!("hostPath type check failed: {shown} is not a directory"))
        }
        "DirectoryOrCreate" | "Directory" => Ok(()),
        "FileOrCreate" if meta.is_none() => make_file(path).map_err(|e| e.to_string()),
        "FileOrCreate" | "File" if !is(fs::FileType::is_file) => {
            Err(format!("hostPath type check failed: {shown} is not a file"))
        }
        "FileOrCreate" | "File" => Ok(()),
        "Socket" if !is(FileTypeExt::is_socket) => {
            Err(format!("hostPath type check failed: {shown} is not a socket file"))
        }
        "CharDevice" if !is(FileTypeExt::is_char_device) => {
            Err(format!("hostPath type check failed: {shown} is not a character device"))
        }
        "BlockDevice" if !is(FileTypeExt::is_block_device) => {
            Err(format!("hostPath type check failed: {shown} is not a block device"))
        }
        "Socket" | "CharDevice" | "BlockDevice" => Ok(()),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

fn make_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

fn make_file(path: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
        .map(drop)
}
