//! Importing image tarballs into containerd's `k8s.io` namespace (the one
//! CRI uses), with `ctr images import`, which ships with containerd.
//!
//! [`import_images`] runs at every agent start over `<data-dir>/agent/images/`.
//! It remembers what it imported in `<dir>/.imported.json` (file name, size,
//! mtime, sha256, image names) and skips a file whose content is unchanged
//! and whose images containerd still has, so restarts stay fast.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::{ImageSpec, ImageStatusRequest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::{Error, archive, cri, pause};

/// The containerd namespace of CRI.
pub const NAMESPACE: &str = "k8s.io";

/// The record of imported files, kept in the images directory.
const RECORD: &str = ".imported.json";

/// What the record knows about one imported tarball.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Imported {
    size: u64,
    mtime_ns: u128,
    sha256: String,
    images: Vec<String>,
}

/// What [`import_images`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Tarballs imported now.
    pub imported: Vec<PathBuf>,
    /// Tarballs skipped: imported before and unchanged.
    pub skipped: Vec<PathBuf>,
}

/// Imports every `*.tar` in `dir` into the containerd at `endpoint`,
/// skipping tarballs imported before. A missing `dir` is not an error.
pub async fn import_images(endpoint: &Path, dir: &Path) -> Result<ImportReport, Error> {
    let mut report = ImportReport::default();
    let Ok(listing) = fs::read_dir(dir) else {
        return Ok(report);
    };
    let mut tarballs: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "tar") && path.is_file())
        .collect();
    tarballs.sort();
    let record_path = dir.join(RECORD);
    let mut record: BTreeMap<String, Imported> = fs::read(&record_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    for tarball in tarballs {
        let name = tarball.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let current = describe(&tarball, record.get(&name))?;
        if record.get(&name) == Some(&current) && all_present(endpoint, &current.images).await? {
            report.skipped.push(tarball);
            continue;
        }
        import_archive(endpoint, &tarball).await?;
        record.insert(name, current);
        report.imported.push(tarball);
    }
    if !report.imported.is_empty() {
        let bytes = serde_json::to_vec_pretty(&record).map_err(|e| Error::Archive(e.to_string()))?;
        fs::write(&record_path, bytes).map_err(Error::io(format!("writing {}", record_path.display())))?;
    }
    Ok(report)
}

/// Imports one tarball (docker-archive or OCI layout) and unpacks it for
/// the overlayfs snapshotter, as CRI needs.
pub async fn import_archive(endpoint: &Path, tarball: &Path) -> Result<(), Error> {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(endpoint)
        .args([
            "--namespace",
            NAMESPACE,
            "images",
            "import",
            "--snapshotter",
            "overlayfs",
        ])
        .arg(tarball)
        .output()
        .await
        .map_err(Error::io("running ctr"))?;
    if output.status.success() {
        tracing::info!(tarball = %tarball.display(), "imported image tarball");
        Ok(())
    } else {
        Err(Error::Import {
            path: tarball.to_path_buf(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Imports the pause image unless containerd already has it.
pub async fn ensure_pause(endpoint: &Path) -> Result<(), Error> {
    if image_present(endpoint, pause::IMAGE).await? {
        return Ok(());
    }
    // A temporary file: the endpoint may be a runtime that is not ours.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tarball = std::env::temp_dir().join(format!("capstan-pause-{}-{seq}.tar", std::process::id()));
    pause::image().write_to(&tarball)?;
    let result = import_archive(endpoint, &tarball).await;
    let _ = fs::remove_file(&tarball);
    result
}

/// Whether CRI's image service knows `image`.
pub async fn image_present(endpoint: &Path, image: &str) -> Result<bool, Error> {
    let mut images = ImageServiceClient::new(cri::channel(endpoint).await?);
    let request = ImageStatusRequest {
        image: Some(ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        verbose: false,
    };
    let status = images
        .image_status(request)
        .await
        .map_err(Error::cri("ImageStatus"))?
        .into_inner();
    Ok(status.image.is_some())
}

async fn all_present(endpoint: &Path, images: &[String]) -> Result<bool, Error> {
    for image in images {
        if !image_present(endpoint, image).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Size, mtime, digest and image names of a tarball; the digest and names
/// are taken from `known` when size and mtime match it (no re-hashing).
fn describe(tarball: &Path, known: Option<&Imported>) -> Result<Imported, Error> {
    let meta = fs::metadata(tarball).map_err(Error::io(format!("reading {}", tarball.display())))?;
    let size = meta.len();
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    if let Some(known) = known.filter(|k| k.size == size && k.mtime_ns == mtime_ns) {
        return Ok(known.clone());
    }
    let mut file = fs::File::open(tarball).map_err(Error::io(format!("opening {}", tarball.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(Error::io(format!("reading {}", tarball.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sha256 = archive::hex(&hasher.finalize());
    Ok(Imported {
        size,
        mtime_ns,
        sha256,
        images: image_names(tarball),
    })
}

/// The image names a tarball declares: `RepoTags` of a docker archive's
/// `manifest.json`, or the ref-name annotations of an OCI `index.json`.
/// Normalised as containerd does (`busybox` → `docker.io/library/busybox:latest`).
fn image_names(tarball: &Path) -> Vec<String> {
    let Ok(file) = fs::File::open(tarball) else {
        return Vec::new();
    };
    let mut archive = tar::Archive::new(file);
    let Ok(entries) = archive.entries() else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let path = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let json: Option<serde_json::Value> = match path.trim_start_matches("./") {
            "manifest.json" | "index.json" => serde_json::from_reader(entry).ok(),
            _ => continue,
        };
        let Some(json) = json else { continue };
        let names: Vec<String> = if let Some(manifests) = json.as_array() {
            manifests
                .iter()
                .flat_map(|m| m["RepoTags"].as_array().cloned().unwrap_or_default())
                .filter_map(|tag| tag.as_str().map(normalize))
                .collect()
        } else {
            json["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|m| {
                    let annotations = &m["annotations"];
                    annotations["io.containerd.image.name"]
                        .as_str()
                        .or(annotations["org.opencontainers.image.ref.name"].as_str())
                })
                .filter(|name| name.contains(':') || name.contains('/'))
                .map(normalize)
                .collect()
        };
        if !names.is_empty() {
            return names;
        }
    }
    Vec::new()
}

/// Docker's reference normalisation: a default registry, `library/` for
/// official images and the `latest` tag.
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let has_domain = !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name.to_string()
    } else if first.is_empty() {
        format!("docker.io/library/{rest}")
    } else {
        format!("docker.io/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(digest) => format!("{full}@{digest}"),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("capstan/pause:1"), "docker.io/capstan/pause:1");
        assert_eq!(normalize("127.0.0.1:5000/bb"), "127.0.0.1:5000/bb:latest");
        assert_eq!(normalize("localhost/bb:2"), "localhost/bb:2");
        assert_eq!(normalize("busybox@sha256:ab"), "docker.io/library/busybox@sha256:ab");
    }

    #[test]
    fn reads_names_from_a_docker_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bb.tar");
        archive::Image::new("example.test/bb:1")
            .file("a", vec![1], 0o644)
            .write_to(&path)
            .unwrap();
        assert_eq!(image_names(&path), ["example.test/bb:1"]);
    }
}
