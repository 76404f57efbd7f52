//! The route that makes ClusterIPs reachable from the node itself without
//! ever leaving the machine: the service CIDR points at a sink interface of
//! ours (as kube-proxy's IPVS mode does with its `kube-ipvs0` dummy). A
//! connection from the host finds that route, the nat output hook rewrites
//! its destination to an endpoint and the kernel routes it again; an
//! address no Service holds ends at the sink, which has nothing behind it.
//! The sink is a bridge without ports rather than a `dummy` device: the
//! kernels here are built without the dummy driver, every Linux has bridges.
//!
//! (A blackhole route would do the dropping too, but the kernel refuses to
//! even start a connection on one, so host processes could not use
//! Services at all.)

use std::process::Command;

use ipnet::IpNet;

/// Our sink interface.
pub const DEVICE: &str = "capstan-svc";

#[derive(Debug, thiserror::Error)]
#[error("ip {args}: {message}")]
pub struct RouteError {
    args: String,
    message: String,
}

/// Creates the sink (if missing) and routes `service_cidr` to it.
pub fn ensure(service_cidr: IpNet) -> Result<(), RouteError> {
    if ip(&["link", "show", DEVICE]).is_err() {
        ip(&["link", "add", DEVICE, "type", "bridge"])?;
    }
    ip(&["link", "set", DEVICE, "up"])?;
    ip(&["route", "replace", &service_cidr.to_string(), "dev", DEVICE])
}

/// Removes the device, and its route with it.
pub fn remove() -> Result<(), RouteError> {
    match ip(&["link", "show", DEVICE]) {
        Ok(()) => ip(&["link", "del", DEVICE]),
        Err(_) => Ok(()),
    }
}

fn ip(args: &[&str]) -> Result<(), RouteError> {
    let error = |message: String| RouteError {
        args: args.join(" "),
        message,
    };
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| error(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(error(String::from_utf8_lossy(&output.stderr).trim().to_string()))
    }
}

/// NodePorts answer on 127.0.0.1 too: the kernel must then route
/// loopback-sourced packets to other hosts (pods), as upstream kube-proxy
/// sets it. (CNI's portmap sets the same for hostPorts.)
pub fn allow_localnet() -> std::io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1")
}
