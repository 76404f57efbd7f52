//! Who may ask. Cluster DNS listens on a node address so that pods on
//! every node can reach it through the `kube-dns` Service; that address is
//! also reachable from the node's network, where an answering resolver
//! would leak the cluster's names and relay queries for anyone. So only
//! cluster members are served: loopback, the pod and service ranges, and
//! the addresses of Node objects (host processes on other nodes reach the
//! Service masqueraded to their node's address). Everyone else is REFUSED.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

#[derive(Debug, Default, Clone)]
pub struct Clients {
    /// Always allowed: the pod and service ranges.
    pub networks: Vec<IpNet>,
    /// Node name → its addresses, from the Node watch.
    nodes: HashMap<String, Vec<IpAddr>>,
}

impl Clients {
    pub fn new(networks: Vec<IpNet>) -> Clients {
        Clients {
            networks,
            nodes: HashMap::new(),
        }
    }

    pub fn allows(&self, source: IpAddr) -> bool {
        let source = match source {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, IpAddr::V4),
            v4 => v4,
        };
        source.is_loopback()
            || self.networks.iter().any(|net| net.contains(&source))
            || self.nodes.values().flatten().any(|ip| *ip == source)
    }

    pub fn apply_node(&mut self, node: &Node) {
        let addresses = node.status.iter().flat_map(|s| s.addresses.iter().flatten());
        let ips = addresses.filter_map(|a| a.address.parse().ok()).collect();
        self.nodes.insert(node.metadata.name.clone().unwrap_or_default(), ips);
    }

    pub fn delete_node(&mut self, node: &Node) {
        self.nodes.remove(node.metadata.name.as_deref().unwrap_or_default());
    }

    /// After a relist: the nodes `fresh` saw, the configured networks kept.
    pub fn replace_nodes(&mut self, fresh: &Clients) {
        self.nodes = fresh.nodes.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]},
        }))
        .unwrap()
    }

    #[test]
    fn members_only() {
        let mut clients = Clients::new(vec!["10.42.0.0/16".parse().unwrap(), "10.43.0.0/16".parse().unwrap()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(clients.allows(ip("127.0.0.1")));
        assert!(clients.allows(ip("::1")));
        assert!(clients.allows(ip("10.42.3.7")));
        assert!(clients.allows(ip("::ffff:10.43.0.1")));
        assert!(!clients.allows(ip("192.0.2.9")));
        clients.apply_node(&node("a", "192.0.2.9"));
        assert!(clients.allows(ip("192.0.2.9")));
        clients.replace_nodes(&Clients::default());
        assert!(!clients.allows(ip("192.0.2.9")));
        assert!(clients.allows(ip("10.42.3.7")), "a relist keeps the configured ranges");
        clients.apply_node(&node("a", "192.0.2.9"));
        clients.delete_node(&node("a", "192.0.2.9"));
        assert!(!clients.allows(ip("192.0.2.9")));
    }
}
