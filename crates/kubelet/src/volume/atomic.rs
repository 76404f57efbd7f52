//! Writing a volume's files so that a running container never sees a mix
//! of old and new ones (upstream's `AtomicWriter`).
//!
//! The files live in a timestamped directory `..<time>`; the symlink
//! `..data` points to it and each visible top-level name is a symlink into
//! `..data`. An update writes a new timestamped directory, replaces
//! `..data` with one `rename(2)` and only then removes the old directory,
//! so containers that mounted the volume directory see the new files at
//! once. An unchanged payload writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use crate::securitycontext::FsGroup;

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// One file: its content and mode (`defaultMode` or the item's `mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path → file.
pub type Payload = BTreeMap<String, FileProjection>;

/// A payload path that would leave the volume.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("invalid path {0:?}: must be relative and may not contain '..'")]
    InvalidPath(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn validate(path: &str) -> Result<(), WriteError> {
    let ok = !path.is_empty()
        && !path.starts_with("..")
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(WriteError::InvalidPath(path.to_string()))
    }
}

/// The files currently published under `..data`, or `None` when nothing is.
fn current(dir: &Path) -> Option<Payload> {
    let data = dir.join(DATA_DIR);
    fs::symlink_metadata(&data).ok()?;
    let mut payload = Payload::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(data.join(&rel)).ok()? {
            let entry = entry.ok()?;
            let rel = rel.join(entry.file_name());
            let meta = entry.metadata().ok()?;
            if meta.is_dir() {
                stack.push(rel);
            } else {
                let data = fs::read(entry.path()).ok()?;
                let mode = meta.permissions().mode() & 0o7777;
                payload.insert(rel.to_string_lossy().into_owned(), FileProjection { data, mode });
            }
        }
    }
    Some(payload)
}

/// The first component of each path: the names visible at the top.
fn top_level(payload: &Payload) -> BTreeSet<String> {
    payload
        .keys()
        .filter_map(|p| Path::new(p).components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

fn timestamped_name() -> String {
    let now = jiff::Timestamp::now();
    format!(
        "..{}.{:09}{}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond(),
        std::process::id()
    )
}

/// Publishes `payload` in `dir` (see the module doc). Returns whether
/// anything changed. `fs_group` makes the files group-owned and
/// group-readable, as the volume's ownership requires.
pub fn write(dir: &Path, payload: &Payload, fs_group: Option<FsGroup>) -> Result<bool, WriteError> {
    for path in payload.keys() {
        validate(path)?;
    }
    let expected = match fs_group {
        // With an fsGroup the modes are widened, so compare data and paths only.
        Some(_) => current(dir).map(|c| {
            c.len() == payload.len() && c.iter().all(|(p, f)| payload.get(p).is_some_and(|n| n.data == f.data))
        }),
        None => current(dir).map(|c| &c == payload),
    };
    if expected == Some(true) {
        return Ok(false);
    }
    fs::create_dir_all(dir)?;
    let old = fs::read_link(dir.join(DATA_DIR)).ok();

    let name = timestamped_name();
    let new_dir = dir.join(&name);
    fs::create_dir(&new_dir)?;
    fs::set_permissions(&new_dir, fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let target = new_dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &file.data)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode & 0o7777))?;
    }
    if let Some(group) = fs_group {
        super::set_ownership(&new_dir, group, true)?;
    }

    let tmp = dir.join(DATA_DIR_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&name, &tmp)?;
    fs::rename(&tmp, dir.join(DATA_DIR))?;

    let visible = top_level(payload);
    for name in &visible {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_DIR).join(name), &link)?;
        }
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with("..") || visible.contains(&file_name) {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            fs::remove_file(entry.path())?;
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != name.as_str()) {
        fs::remove_dir_all(dir.join(old))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn writes_swaps_and_prunes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        let first: Payload = [
            ("a".to_string(), file("1", 0o644)),
            ("sub/b".to_string(), file("2", 0o400)),
        ]
        .into();
        assert!(write(&dir, &first, None).unwrap());
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
        let mode = fs::metadata(dir.join("sub/b")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        let old_target = fs::read_link(dir.join(DATA_DIR)).unwrap();

        // The same payload again: nothing is rewritten.
        assert!(!write(&dir, &first, None).unwrap());
        assert_eq!(fs::read_link(dir.join(DATA_DIR)).unwrap(), old_target);

        // An update: new content, a removed key, a new key; the old directory goes.
        let second: Payload = [
            ("a".to_string(), file("one", 0o644)),
            ("c".to_string(), file("3", 0o644)),
        ]
        .into();
        assert!(write(&dir, &second, None).unwrap());
        assert_eq!(fs::read_to_string(dir.join("a")).unwrap(), "one");
        assert_eq!(fs::read_to_string(dir.join("c")).unwrap(), "3");
        assert!(fs::symlink_metadata(dir.join("sub")).is_err());
        assert!(!dir.join(&old_target).exists());
        let names: BTreeSet<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}"); // a, c, ..data, ..<time>
    }

    #[test]
    fn paths_may_not_escape() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a/../../b", "..data"] {
            let payload: Payload = [(bad.to_string(), file("x", 0o644))].into();
            assert!(
                matches!(write(tmp.path(), &payload, None), Err(WriteError::InvalidPath(_))),
                "{bad}"
            );
        }
    }
}
