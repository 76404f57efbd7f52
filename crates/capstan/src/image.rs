//! `capstan image`: the node's images without a registry, like k3s's
//! `agent/images` directory.
//!
//! `capstan image import FILE…` copies image tarballs (docker-archive or
//! OCI) into `<data-dir>/agent/images/`, where the node imports them at
//! every start, and imports them at once when the node's containerd runs.
//! `capstan image ls` lists what CRI sees.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use capstan_containerd::{config, import_images};
use clap::{Args, Subcommand};
use k8s_cri::v1::ListImagesRequest;
use k8s_cri::v1::image_service_client::ImageServiceClient;

#[derive(Args)]
pub struct ImageArgs {
    /// The node's data dir.
    #[arg(long, default_value = "/var/lib/capstan", env = "CAPSTAN_DATA_DIR", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Add image tarballs to the node (imported now if the node runs, and at every start).
    Import {
        /// docker-archive or OCI image tarballs (`*.tar`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the images the node's container runtime has.
    Ls,
}

impl ImageArgs {
    pub fn run(self) -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let endpoint = config::endpoint(&self.data_dir.join("agent/containerd"));
        match self.command {
            ImageCommand::Import { files } => runtime.block_on(import(&self.data_dir, &endpoint, &files)),
            ImageCommand::Ls => runtime.block_on(list(&endpoint)),
        }
    }
}

async fn import(data_dir: &Path, endpoint: &Path, files: &[PathBuf]) -> Result<()> {
    let dir = data_dir.join("agent/images");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for file in files {
        let Some(name) = file
            .file_name()
            .filter(|n| Path::new(n).extension().is_some_and(|e| e == "tar"))
        else {
            bail!("{}: not a .tar image tarball", file.display());
        };
        std::fs::copy(file, dir.join(name)).with_context(|| format!("copying {}", file.display()))?;
        println!("added {}", dir.join(name).display());
    }
    if capstan_containerd::cri::version(endpoint).await.is_err() {
        println!("the node's containerd is not running; the images are imported at its next start");
        return Ok(());
    }
    let report = import_images(endpoint, &dir).await?;
    for tarball in &report.imported {
        println!("imported {}", tarball.display());
    }
    Ok(())
}

async fn list(endpoint: &Path) -> Result<()> {
    let channel = capstan_containerd::cri::channel(endpoint)
        .await
        .with_context(|| format!("is the node running? no container runtime at {}", endpoint.display()))?;
    let images = ImageServiceClient::new(channel)
        .list_images(ListImagesRequest { filter: None })
        .await?
        .into_inner();
    println!("{:<60} {:<20} {:>10}", "IMAGE", "ID", "SIZE");
    let mut rows: Vec<(String, String, u64)> = images
        .images
        .into_iter()
        .flat_map(|image| {
            let id: String = image.id.trim_start_matches("sha256:").chars().take(13).collect();
            let tags = if image.repo_tags.is_empty() {
                vec!["<none>".to_string()]
            } else {
                image.repo_tags
            };
            tags.into_iter().map(move |tag| (tag, id.clone(), image.size))
        })
        .collect();
    rows.sort();
    for (tag, id, size) in rows {
        println!("{tag:<60} {id:<20} {:>10}", human_size(size));
    }
    Ok(())
}

/// Sizes as crictl prints them (`1.99MB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}{}", UNITS[unit]).replace(".000", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_crictl() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_996_800), "1.997MB");
        assert_eq!(human_size(2_000_000), "2MB");
    }
}
