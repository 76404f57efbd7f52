//! Capstan's container runtime side: its own containerd, supervised.
//!
//! A Capstan node runs containers through CRI v1 on a containerd of its own
//! (Debian's 1.6), started as a child process with a config, socket and
//! state under `<data-dir>/agent/containerd` so it never meets a system
//! containerd or another Capstan on the same machine.
//!
//! Where to start:
//!
//! * [`Containerd::start`] writes the config ([`config`]), starts
//!   containerd in its own session, waits until its CRI socket answers and
//!   keeps it running (restarted with back-off if it dies) until
//!   [`Containerd::stop`].
//! * [`registries`] turns a k3s-style `registries.yaml` (`--registry-config`)
//!   into containerd `certs.d/<host>/hosts.toml` files, and keeps the
//!   credentials the kubelet hands to `PullImage`.
//! * [`pause`] is the sandbox image: a 1.5 KB static binary built from
//!   `pause/pause.rs` by `build.rs`, packed with [`archive`] (docker-archive
//!   tarballs, also used by tests to build busybox images) and imported by
//!   [`import`] at start when containerd lacks it.
//! * [`import::import_images`] imports every tarball in
//!   `<data-dir>/agent/images/` (skipping ones already imported).
//! * [`killall`] removes everything a node leaves behind (sandboxes,
//!   processes, mounts, netns, cgroups, the CNI bridge and its firewall
//!   rules), like k3s's `k3s-killall.sh`; `capstan killall` runs it.
//! * [`cri::channel`] is the gRPC channel over the unix socket that both
//!   this crate and the kubelet's CRI client use.

pub mod archive;
pub mod config;
pub mod cri;
pub mod import;
pub mod killall;
pub mod pause;
mod process;
pub mod registries;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::ContainerdConfig;
pub use import::import_images;
pub use process::Containerd;

use std::path::PathBuf;

/// What can go wrong running containerd and its images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to the CRI socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("CRI call {call} failed: {status}")]
    Cri {
        call: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("containerd did not start: {0}")]
    Start(String),
    #[error("registry config {path}: {message}")]
    RegistryConfig { path: PathBuf, message: String },
    #[error("importing {path}: {message}")]
    Import { path: PathBuf, message: String },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("invalid image archive: {0}")]
    Archive(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    pub(crate) fn cri(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
        move |status| Error::Cri {
            call,
            status: Box::new(status),
        }
    }
}
