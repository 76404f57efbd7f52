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
        remove_empty_nat_table();
        Ok(())
    }
}

/// CNI's rules live in iptables' `ip nat` table. Once the last sandbox's
/// rules are gone, what is left is empty chains and the portmap plugin's
/// scaffolding (`CNI-HOSTPORT-SETMARK`/`-MASQ` and the base chains' jumps to
/// them). The table is removed then, and only then: any other rule — a live
/// port mapping, someone else's NAT — keeps it.
fn remove_empty_nat_table() {
    let Ok(listing) = std::process::Command::new("nft")
        .args(["list", "table", "ip", "nat"])
        .output()
    else {
        return;
    };
    if listing.status.success() && only_cni_scaffolding(&String::from_utf8_lossy(&listing.stdout)) {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", "ip", "nat"])
            .status();
    }
}

/// Whether an `nft list table` text holds nothing but empty chains and
/// portmap's scaffolding (see [`remove_empty_nat_table`]).
fn only_cni_scaffolding(table: &str) -> bool {
    let mut chain = "";
    table.lines().map(str::trim).all(|line| {
        if let Some(name) = line.strip_prefix("chain ") {
            chain = name.trim_end_matches(" {").trim();
            return true;
        }
        let structural = line.is_empty()
            || line == "}"
            || line.starts_with("table ")
            || line.starts_with("type ")
            || line.starts_with('#');
        structural
            || matches!(chain, "CNI-HOSTPORT-SETMARK" | "CNI-HOSTPORT-MASQ")
            || line.ends_with("jump CNI-HOSTPORT-MASQ")
            || line.ends_with("jump CNI-HOSTPORT-DNAT")
    })
}

#[cfg(test)]
mod tests {
    use super::only_cni_scaffolding;

    const SCAFFOLDING: &str = "table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		 counter packets 6226 bytes 377730 jump CNI-HOSTPORT-MASQ
	}
	chain CNI-HOSTPORT-SETMARK {
		 counter packets 0 bytes 0 meta mark set mark or 0x2000
	}
	chain CNI-HOSTPORT-MASQ {
		meta mark & 0x00002000 == 0x00002000 counter packets 0 bytes 0 masquerade
	}
	chain CNI-HOSTPORT-DNAT {
	}
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter packets 456 bytes 27376 jump CNI-HOSTPORT-DNAT
	}
	chain CNI-49281588fc6e5256ef8dca1d {
	}
}
";

    #[test]
    fn portmap_scaffolding_goes_live_mappings_and_other_rules_stay() {
        assert!(only_cni_scaffolding(SCAFFOLDING));
        let live = SCAFFOLDING.replace(
            "chain CNI-HOSTPORT-DNAT {\n",
            "chain CNI-HOSTPORT-DNAT {\n\t\ttcp dport 8080 jump CNI-DN-1234\n",
        );
        assert!(!only_cni_scaffolding(&live));
        let docker = SCAFFOLDING.replace(
            "jump CNI-HOSTPORT-MASQ\n",
            "jump CNI-HOSTPORT-MASQ\n\t\toifname != \"docker0\" ip saddr 172.17.0.0/16 masquerade\n",
        );
        assert!(!only_cni_scaffolding(&docker));
    }
}
