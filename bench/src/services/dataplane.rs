//! Real connections through the proxy's rules, to tell when a Service
//! works without asking `nft` (whose listings dump the whole table and
//! whose monitor makes the kernel build an event for every object of a
//! commit — both would slow the sync being timed).
//!
//! In the benchmark's namespace only: every endpoint address (10.44.0.0/15)
//! is made local (`ip route add local … dev lo`) and a listener on port
//! 8080 accepts for all of them; the client connects from an address of its
//! own. A connection to a ClusterIP then succeeds exactly when the proxy's
//! DNAT is in the kernel: before that, the service CIDR leads to the
//! proxy's sink device, where the SYN goes unanswered.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use super::objects::{SERVICE_PORT, TARGET_PORT};

/// The probing client's address.
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 1);
/// Covers the endpoint addresses and their replacements.
const ENDPOINTS: &str = "10.44.0.0/15";
/// How long a probe waits for its connection.
const PROBE_TIMEOUT: Duration = Duration::from_millis(10);

/// The endpoints' listener; stops accepting when dropped.
pub struct Endpoints {
    accept: JoinHandle<()>,
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Makes the endpoint addresses answer in this (the benchmark's) namespace.
pub async fn serve_endpoints() -> Result<Endpoints> {
    ip(&["addr", "add", &format!("{CLIENT}/32"), "dev", "lo"])?;
    ip(&["route", "add", "local", ENDPOINTS, "dev", "lo"])?;
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, TARGET_PORT))
        .await
        .context("listening for the endpoints")?;
    let accept = tokio::spawn(async move {
        // Accepted connections are dropped at once: that they were made is the answer.
        while listener.accept().await.is_ok() {}
    });
    Ok(Endpoints { accept })
}

/// Whether a connection to the Service at `cluster_ip` reaches an endpoint.
pub async fn reaches(cluster_ip: Ipv4Addr) -> bool {
    let Ok(socket) = TcpSocket::new_v4() else { return false };
    if socket.bind(SocketAddr::from((CLIENT, 0))).is_err() {
        return false;
    }
    let connect = socket.connect(SocketAddr::from((cluster_ip, SERVICE_PORT)));
    matches!(tokio::time::timeout(PROBE_TIMEOUT, connect).await, Ok(Ok(_)))
}

fn ip(args: &[&str]) -> Result<()> {
    let status = Command::new("ip")
        .args(args)
        .status()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    ensure!(status.success(), "ip {} failed with {status}", args.join(" "));
    Ok(())
}
