//! docker-archive image tarballs (the format of `docker save`), built from
//! files in memory.
//!
//! A docker archive holds `manifest.json` (the image names and where the
//! config and layers are), the image config (`<sha256>.json`, whose
//! `rootfs.diff_ids` are the digests of the uncompressed layers) and one
//! `layer.tar` per layer. containerd imports it into the `k8s.io` namespace
//! and CRI can run it at once. Capstan builds its pause image this way, and
//! tests build busybox images from Debian's static `/bin/busybox`.
//!
//! Every image here has one layer; entries get uid/gid 0 and a fixed mtime,
//! so the same input gives the same bytes (and the same image ID).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Error;

/// Fixed modification time of every entry (2000-01-01), for reproducible layers.
const MTIME: u64 = 946_684_800;

/// One entry of the image's file system.
#[derive(Clone, Debug)]
enum Entry {
    File { path: String, bytes: Vec<u8>, mode: u32 },
    Dir { path: String, mode: u32 },
    Symlink { path: String, target: String },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::File { path, .. } | Entry::Dir { path, .. } | Entry::Symlink { path, .. } => path,
        }
    }
}

/// An image to be written as a docker archive: a name, files, and the
/// process settings of its config.
#[derive(Clone, Debug)]
pub struct Image {
    name: String,
    entries: Vec<Entry>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    workdir: Option<String>,
}

impl Image {
    /// An empty image named `name` (a full reference, e.g. `docker.io/library/busybox:1.36`).
    pub fn new(name: impl Into<String>) -> Image {
        Image {
            name: name.into(),
            entries: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            workdir: None,
        }
    }

    /// Adds a file at `path` (relative to the image root; a leading `/` is ignored).
    pub fn file(mut self, path: &str, bytes: Vec<u8>, mode: u32) -> Image {
        self.entries.push(Entry::File {
            path: clean(path),
            bytes,
            mode,
        });
        self
    }

    /// Adds a directory.
    pub fn dir(mut self, path: &str, mode: u32) -> Image {
        self.entries.push(Entry::Dir {
            path: clean(path),
            mode,
        });
        self
    }

    /// Adds a symbolic link at `path` pointing to `target`.
    pub fn symlink(mut self, path: &str, target: &str) -> Image {
        self.entries.push(Entry::Symlink {
            path: clean(path),
            target: target.into(),
        });
        self
    }

    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Image {
        self.entrypoint = args.into_iter().map(Into::into).collect();
        self
    }

    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Image {
        self.cmd = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds `NAME=value` to the image's environment (after the default PATH).
    pub fn env(mut self, var: impl Into<String>) -> Image {
        self.env.push(var.into());
        self
    }

    pub fn workdir(mut self, dir: impl Into<String>) -> Image {
        self.workdir = Some(dir.into());
        self
    }

    /// The image's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The docker-archive tarball.
    pub fn to_archive(&self) -> Result<Vec<u8>, Error> {
        let layer = self.layer()?;
        let diff_id = hex(&Sha256::digest(&layer));
        let config = serde_json::to_vec(&self.config(&diff_id)).map_err(|e| Error::Archive(e.to_string()))?;
        let config_name = format!("{}.json", hex(&Sha256::digest(&config)));
        let layer_name = format!("{diff_id}/layer.tar");
        let manifest = json!([{ "Config": config_name, "RepoTags": [self.name], "Layers": [layer_name] }]);
        let manifest = serde_json::to_vec(&manifest).map_err(|e| Error::Archive(e.to_string()))?;
        let mut archive = tar::Builder::new(Vec::new());
        append_file(&mut archive, &config_name, &config, 0o644)?;
        append_dir(&mut archive, &diff_id, 0o755)?;
        append_file(&mut archive, &layer_name, &layer, 0o644)?;
        append_file(&mut archive, "manifest.json", &manifest, 0o644)?;
        archive.into_inner().map_err(archive_error)
    }

    /// Writes the docker-archive tarball to `path` (atomically: a temporary
    /// file renamed into place, so an importer never sees half a tarball).
    pub fn write_to(&self, path: &Path) -> Result<(), Error> {
        let bytes = self.to_archive()?;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(Error::io(format!("creating {}", tmp.display())))?;
        file.write_all(&bytes)
            .map_err(Error::io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, path).map_err(Error::io(format!("renaming to {}", path.display())))
    }

    /// The single layer: every entry, parent directories first.
    fn layer(&self) -> Result<Vec<u8>, Error> {
        let mut layer = tar::Builder::new(Vec::new());
        let explicit: BTreeSet<&str> = self.entries.iter().map(Entry::path).collect();
        let mut written = BTreeSet::new();
        for entry in &self.entries {
            for parent in parents(entry.path()) {
                if !explicit.contains(parent.as_str()) && written.insert(parent.clone()) {
                    append_dir(&mut layer, &parent, 0o755)?;
                }
            }
            match entry {
                Entry::File { path, bytes, mode } => append_file(&mut layer, path, bytes, *mode)?,
                Entry::Dir { path, mode } => append_dir(&mut layer, path, *mode)?,
                Entry::Symlink { path, target } => append_symlink(&mut layer, path, target)?,
            }
            written.insert(entry.path().to_string());
        }
        layer.into_inner().map_err(archive_error)
    }

    fn config(&self, diff_id: &str) -> serde_json::Value {
        let mut config = json!({ "Env": self.env });
        if !self.entrypoint.is_empty() {
            config["Entrypoint"] = json!(self.entrypoint);
        }
        if !self.cmd.is_empty() {
            config["Cmd"] = json!(self.cmd);
        }
        if let Some(workdir) = &self.workdir {
            config["WorkingDir"] = json!(workdir);
        }
        json!({
            "architecture": oci_arch(),
            "os": "linux",
            "created": "2000-01-01T00:00:00Z",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
            "history": [{ "created": "2000-01-01T00:00:00Z", "created_by": "capstan archive" }],
        })
    }
}

/// Applets a busybox test image links by default: enough for shells,
/// web servers, probes and the usual file and network tools.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "ash", "cat", "echo", "env", "false", "grep", "head", "hostname", "httpd", "id", "ip", "kill", "ls", "mkdir",
    "mount", "nc", "nslookup", "ping", "ps", "pwd", "rm", "seq", "sleep", "sort", "tail", "tee", "test", "touch",
    "true", "uname", "wc", "wget", "whoami", "yes", "date", "dd", "printf", "stat", "top", "tr", "sed",
];

/// A busybox image: `/bin/busybox` (the static binary's bytes) with a
/// symlink `/bin/<applet>` for each applet, the usual top-level
/// directories, and `sh` as its command.
pub fn busybox(name: &str, busybox: Vec<u8>, applets: &[&str]) -> Image {
    let mut image = Image::new(name).file("bin/busybox", busybox, 0o755);
    for dir in ["etc", "root", "var", "home", "proc", "sys", "dev"] {
        image = image.dir(dir, 0o755);
    }
    image = image.dir("tmp", 0o1777);
    for applet in applets {
        image = image.symlink(&format!("bin/{applet}"), "busybox");
    }
    image.cmd(["sh"])
}

/// The OCI name of this machine's architecture.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn clean(path: &str) -> String {
    path.trim_start_matches('/').trim_end_matches('/').to_string()
}

/// `a/b/c` → `a`, `a/b`.
fn parents(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).collect()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(MTIME);
    header.set_size(size);
    header
}

fn append_file(archive: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut header = header(tar::EntryType::Regular, mode, bytes.len() as u64);
    archive.append_data(&mut header, path, bytes).map_err(archive_error)
}

fn append_dir(archive: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> Result<(), Error> {
    let mut header = header(tar::EntryType::Directory, mode, 0);
    archive
        .append_data(&mut header, format!("{path}/"), std::io::empty())
        .map_err(archive_error)
}

fn append_symlink(archive: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) -> Result<(), Error> {
    let mut header = header(tar::EntryType::Symlink, 0o777, 0);
    archive.append_link(&mut header, path, target).map_err(archive_error)
}

fn archive_error(err: std::io::Error) -> Error {
    Error::Archive(err.to_string())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn entries(tarball: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(tarball);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                (path, bytes)
            })
            .collect()
    }

    #[test]
    fn archive_has_manifest_config_and_layer_with_matching_diff_id() {
        let image = busybox("example.test/bb:1", b"#!fake".to_vec(), &["sh", "sleep"])
            .env("A=b")
            .workdir("/tmp");
        let tarball = image.to_archive().unwrap();
        let files = entries(&tarball);
        let manifest: serde_json::Value =
            serde_json::from_slice(&files.iter().find(|(p, _)| p == "manifest.json").unwrap().1).unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], "example.test/bb:1");
        let config_name = manifest[0]["Config"].as_str().unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&files.iter().find(|(p, _)| p == config_name).unwrap().1).unwrap();
        let layer_name = manifest[0]["Layers"][0].as_str().unwrap();
        let layer = &files.iter().find(|(p, _)| p == layer_name).unwrap().1;
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", hex(&Sha256::digest(layer)))
        );
        assert_eq!(config["config"]["Cmd"], json!(["sh"]));
        assert_eq!(config["config"]["WorkingDir"], "/tmp");
        assert_eq!(config["config"]["Env"][1], "A=b");
        let layer_paths: Vec<String> = entries(layer).into_iter().map(|(p, _)| p).collect();
        assert_eq!(layer_paths[..2], ["bin/".to_string(), "bin/busybox".to_string()]);
        assert!(layer_paths.contains(&"tmp/".to_string()) && layer_paths.contains(&"bin/sleep".to_string()));
    }

    #[test]
    fn same_input_gives_same_bytes() {
        let a = Image::new("x:1")
            .file("/a/b", b"hi".to_vec(), 0o644)
            .to_archive()
            .unwrap();
        let b = Image::new("x:1")
            .file("/a/b", b"hi".to_vec(), 0o644)
            .to_archive()
            .unwrap();
        assert_eq!(a, b);
    }
}
