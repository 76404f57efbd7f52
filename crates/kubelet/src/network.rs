//! The pod network: the CNI configuration containerd's CRI plugin sets up
//! sandboxes with. A `bridge` (the node's gateway, hairpin so a pod
//! reaches itself through a Service) with `host-local` addresses from the node's `spec.podCIDR`
//! (assigned by node IPAM in the controller manager) and `portmap` for
//! `hostPort`s. It is written once the node has its range; until then the
//! runtime reports `NetworkReady=false` and the node is not Ready.
//!
//! The bridge does not masquerade (`ipMasq: false`): it would hide a pod's
//! address from pods on other nodes (everything outside the node's own
//! range is masqueraded). [`crate::hostgw`] masquerades only what leaves
//! the cluster CIDR.

use std::io;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde_json::json;

/// The conflist's file name: the first (only) one the runtime loads.
pub const CONFLIST: &str = "10-capstan.conflist";

/// Where the network configuration and IPAM state live.
#[derive(Debug, Clone)]
pub struct Network {
    pub conf_dir: PathBuf,
    /// host-local's allocations (a directory of its own, not /var/lib/cni).
    pub ipam_dir: PathBuf,
    pub bridge: String,
}

impl Network {
    /// The conflist for a node whose pod range is `cidr`.
    pub fn conflist(&self, cidr: &IpNet) -> serde_json::Value {
        let default_route = if cidr.addr().is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        json!({
            "cniVersion": "1.0.0",
            "name": "capstan",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": cidr.to_string()}]],
                        "routes": [{"dst": default_route}],
                        "dataDir": self.ipam_dir,
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        })
    }

    /// Writes the conflist for `cidr` unless it is already there; the
    /// rename makes the runtime never see half a file.
    pub fn write(&self, cidr: &IpNet) -> io::Result<bool> {
        let text = serde_json::to_string_pretty(&self.conflist(cidr)).map_err(io::Error::other)?;
        let path = self.conf_dir.join(CONFLIST);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        std::fs::create_dir_all(&self.conf_dir)?;
        std::fs::create_dir_all(&self.ipam_dir)?;
        write_atomically(&path, text.as_bytes())?;
        Ok(true)
    }
}

/// Writes `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflist_bridges_the_node_range() {
        let network = Network {
            conf_dir: "/tmp/x/net.d".into(),
            ipam_dir: "/tmp/x/ipam".into(),
            bridge: "capstan0".into(),
        };
        let conf = network.conflist(&"10.42.3.0/24".parse().unwrap());
        assert_eq!(conf["cniVersion"], "1.0.0");
        let bridge = &conf["plugins"][0];
        assert_eq!(bridge["bridge"], "capstan0");
        assert_eq!(
            (
                bridge["isGateway"].as_bool(),
                bridge["ipMasq"].as_bool(),
                bridge["hairpinMode"].as_bool()
            ),
            (Some(true), Some(false), Some(true))
        );
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.42.3.0/24");
        assert_eq!(bridge["ipam"]["dataDir"], "/tmp/x/ipam");
        assert_eq!(conf["plugins"][1]["capabilities"]["portMappings"], true);
    }
}
