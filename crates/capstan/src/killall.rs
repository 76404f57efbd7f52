//! `capstan killall`: stop and remove everything a node on this data dir
//! started (sandboxes, containers, containerd, shims, mounts, netns,
//! cgroups, the CNI bridge and its firewall rules, the service proxy's
//! table and route, the host-gw routes and masquerade table), like
//! `k3s-killall.sh`. Everything network-related is per network namespace:
//! run it in the node's.

use std::path::PathBuf;

use anyhow::Context as _;
use capstan_containerd::killall::{KillallOptions, killall};

#[derive(clap::Args)]
pub struct KillallArgs {
    /// The data dir of the node to clean up.
    #[arg(long, default_value = "/var/lib/capstan", env = "CAPSTAN_DATA_DIR")]
    data_dir: PathBuf,
    /// The kubelet's cgroup root whose cgroups are removed.
    #[arg(long, default_value = "/capstan")]
    cgroup_root: String,
    /// The CNI bridge to delete.
    #[arg(long, default_value = "capstan0")]
    cni_bridge: String,
}

impl KillallArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let options = KillallOptions {
            data_dir: self.data_dir,
            cgroup_root: self.cgroup_root,
            cni_bridge: self.cni_bridge,
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let report = runtime.block_on(killall(&options)).context("killall")?;
        println!("{report:?}");
        // The service proxy's table and route (a clean shutdown removes them too).
        capstan_proxy::nft::delete_table("capstan-proxy").context("removing the proxy's nftables table")?;
        capstan_proxy::routes::remove().context("removing the service route")?;
        capstan_kubelet::hostgw::remove_all().context("removing the host-gw routes and masquerade table")?;
        Ok(())
    }
}
