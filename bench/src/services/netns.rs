//! The benchmark's own network namespace: the proxy's nftables table, its
//! sink device and the service-CIDR route are programmed for real, but only
//! here, and vanish with the last process of the benchmark's tree.

use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// Moves this process into a fresh network namespace with `lo` up.
///
/// Must run before any other thread exists: a namespace belongs to a thread,
/// and only threads (and children) created afterwards inherit it — so the
/// async runtime is built after this, and every child process starts here.
pub fn enter() -> Result<()> {
    let host = namespace_of("/proc/1/ns/net");
    // SAFETY: unshare(2) has no memory-safety preconditions; it affects only this (still single) thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "creating a network namespace: {err} (capstan-bench services needs root: it programs nftables \
             inside a namespace of its own)"
        );
    }
    let ours = namespace_of("/proc/self/ns/net");
    ensure!(
        ours.is_some() && ours != host,
        "still in the host's network namespace ({ours:?}); refusing to program nftables"
    );
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .context("running `ip link set lo up` (is iproute2 installed?)")?;
    ensure!(status.success(), "`ip link set lo up` failed with {status}");
    Ok(())
}

/// The namespace a `/proc/<pid>/ns/net` link names (`net:[4026531840]`).
fn namespace_of(link: &str) -> Option<String> {
    std::fs::read_link(link).ok().map(|p| p.display().to_string())
}
