//! The nftables ruleset for a set of [`ServicePort`]s, in the shape of
//! upstream kube-proxy's nftables mode, in one table of our own:
//!
//! * `service-ips` maps `address . protocol . port` to the service's chain,
//!   for ClusterIPs (`svc-…`) and external/LoadBalancer IPs (`ext-…`);
//!   `service-nodeports` maps `protocol . port` on any local address
//!   (`fib daddr type local`, 127.0.0.1 included) to `ext-…`.
//! * `svc-…` picks an endpoint at random (`numgen random mod N`) or by
//!   client affinity, `sep-…` DNATs to it; the `ext-…` chain marks traffic
//!   for masquerade unless `externalTrafficPolicy: Local` keeps the client
//!   address (and only local endpoints).
//! * A service port without endpoints is in `no-endpoint-services`, which
//!   the filter chains answer with REJECT, as upstream.
//!
//! A [`Ruleset`] is plain data; [`Ruleset::script`] renders it whole and
//! [`Ruleset::diff`] renders only what changed since the last one, so an
//! endpoint change rewrites one chain and one map element, not the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Endpoint, ServicePort};

/// The mark that asks postrouting to masquerade (upstream's 0x4000).
const MASQUERADE_MARK: &str = "0x4000";

/// What the rules need to know about the node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// Traffic from outside this range is masqueraded on its way to a ClusterIP.
    pub cluster_cidr: Option<IpNet>,
}

/// The whole table: fixed chains, the maps' elements, per-service chains.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ruleset {
    pub table: String,
    /// `service-ips` elements: `10.43.0.5 . tcp . 80` → `goto svc-…`.
    pub service_ips: BTreeMap<String, String>,
    /// `service-nodeports` elements: `tcp . 30080` → `goto ext-…`.
    pub node_ports: BTreeMap<String, String>,
    /// `no-endpoint-services` elements: `10.43.0.5 . tcp . 80` → `goto reject-chain`.
    pub no_endpoints: BTreeMap<String, String>,
    /// `no-endpoint-nodeports` elements.
    pub no_endpoint_node_ports: BTreeMap<String, String>,
    /// Affinity sets: name → timeout in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
    /// Per-service and per-endpoint chains and their rules.
    pub chains: BTreeMap<String, Vec<String>>,
}

impl Ruleset {
    pub fn build(table: &str, node: &NodeInfo, ports: &[ServicePort]) -> Ruleset {
        let mut rules = Ruleset {
            table: table.to_string(),
            ..Ruleset::default()
        };
        for port in ports {
            rules.add_service_port(node, port);
        }
        rules
    }

    fn add_service_port(&mut self, node: &NodeInfo, port: &ServicePort) {
        let id = port.id();
        let proto = port.protocol.nft();
        let svc = chain_name("svc", &id);
        let ext = chain_name("ext", &id);
        let cluster = port.cluster_endpoints(&node.name);
        let external = port.external_endpoints(&node.name);
        for ip in port.cluster_ips.iter().filter(|ip| ip.is_ipv4()) {
            let key = format!("{ip} . {proto} . {}", port.port);
            if cluster.is_empty() {
                self.no_endpoints.insert(key, "goto reject-chain".into());
            } else {
                self.service_ips.insert(key, format!("goto {svc}"));
            }
        }
        for ip in port.external_ips.iter().filter(|ip| ip.is_ipv4()) {
            let key = format!("{ip} . {proto} . {}", port.port);
            if external.is_empty() {
                self.no_endpoints.insert(key, "goto reject-chain".into());
            } else {
                self.service_ips.insert(key, format!("goto {ext}"));
            }
        }
        if let Some(node_port) = port.node_port {
            let key = format!("{proto} . {node_port}");
            if external.is_empty() {
                self.no_endpoint_node_ports.insert(key, "goto reject-chain".into());
            } else {
                self.node_ports.insert(key, format!("goto {ext}"));
            }
        }
        if !cluster.is_empty() {
            let mut rules = Vec::new();
            if let (Some(cidr), Some(ip)) = (node.cluster_cidr, port.cluster_ips.iter().find(|ip| ip.is_ipv4())) {
                rules.push(format!(
                    "ip daddr {ip} {proto} dport {} ip saddr != {cidr} jump mark-for-masquerade",
                    port.port
                ));
            }
            rules.extend(self.balance(port, &cluster));
            self.chains.insert(svc.clone(), rules);
        }
        if !external.is_empty() && (port.node_port.is_some() || !port.external_ips.is_empty()) {
            let mut rules = Vec::new();
            if port.external_local {
                // The client address is kept; only loopback clients must be masqueraded.
                rules.push("ip saddr 127.0.0.0/8 jump mark-for-masquerade".to_string());
            } else {
                rules.push("jump mark-for-masquerade".to_string());
            }
            rules.extend(self.balance(port, &external));
            self.chains.insert(ext, rules);
        }
    }

    /// The rules that pick an endpoint: affinity first, then random.
    fn balance(&mut self, port: &ServicePort, endpoints: &[&Endpoint]) -> Vec<String> {
        let id = port.id();
        let mut rules = Vec::new();
        for endpoint in endpoints {
            let sep = endpoint_chain(&id, endpoint);
            let mut sep_rules = Vec::new();
            if let Some(timeout) = port.affinity_timeout {
                let set = chain_name("affinity", &format!("{id}@{}:{}", endpoint.ip, endpoint.port));
                self.affinity_sets.insert(set.clone(), timeout);
                rules.push(format!("ip saddr @{set} goto {sep}"));
                sep_rules.push(format!("update @{set} {{ ip saddr }}"));
            }
            // Hairpin: a pod reaching itself through the service is masqueraded.
            sep_rules.push(format!("ip saddr {} jump mark-for-masquerade", endpoint.ip));
            sep_rules.push(format!(
                "meta l4proto {} dnat to {}:{}",
                port.protocol.nft(),
                endpoint.ip,
                endpoint.port
            ));
            self.chains.insert(sep, sep_rules);
        }
        let targets: Vec<String> = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{i} : goto {}", endpoint_chain(&id, e)))
            .collect();
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            endpoints.len(),
            targets.join(", ")
        ));
        rules
    }

    /// The whole table, replacing whatever was there, in one transaction.
    pub fn script(&self) -> String {
        let mut out = String::new();
        let table = &self.table;
        // Create-then-delete makes the delete safe when the table is absent.
        let _ = writeln!(
            out,
            "add table ip {table}\ndelete table ip {table}\nadd table ip {table}"
        );
        self.fixed(&mut out);
        for (set, timeout) in &self.affinity_sets {
            let _ = writeln!(
                out,
                "add set ip {table} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
            );
        }
        for name in self.chains.keys() {
            let _ = writeln!(out, "add chain ip {table} {name}");
        }
        for (name, rules) in &self.chains {
            for rule in rules {
                let _ = writeln!(out, "add rule ip {table} {name} {rule}");
            }
        }
        self.elements(&mut out, None);
        out
    }

    /// Only what changed since `old`, applied in one transaction: new and
    /// changed chains are (re)filled, map elements swapped, stale chains and
    /// sets removed once nothing jumps to them.
    pub fn diff(&self, old: &Ruleset) -> String {
        if old.table != self.table || old == &Ruleset::default() {
            return self.script();
        }
        let table = &self.table;
        let mut out = String::new();
        for (set, timeout) in &self.affinity_sets {
            if old.affinity_sets.get(set) != Some(timeout) {
                if old.affinity_sets.contains_key(set) {
                    let _ = writeln!(out, "delete set ip {table} {set}");
                }
                let _ = writeln!(
                    out,
                    "add set ip {table} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
                );
            }
        }
        let changed: Vec<(&String, &Vec<String>)> = self
            .chains
            .iter()
            .filter(|(name, rules)| old.chains.get(*name) != Some(rules))
            .collect();
        for (name, _) in &changed {
            let _ = writeln!(out, "add chain ip {table} {name}\nflush chain ip {table} {name}");
        }
        for (name, rules) in &changed {
            for rule in rules.iter() {
                let _ = writeln!(out, "add rule ip {table} {name} {rule}");
            }
        }
        self.elements(&mut out, Some(old));
        // Stale chains: flushed first (they may jump to each other), then deleted.
        let stale: Vec<&String> = old
            .chains
            .keys()
            .filter(|name| !self.chains.contains_key(*name))
            .collect();
        for name in &stale {
            let _ = writeln!(out, "flush chain ip {table} {name}");
        }
        for name in &stale {
            let _ = writeln!(out, "delete chain ip {table} {name}");
        }
        for set in old
            .affinity_sets
            .keys()
            .filter(|s| !self.affinity_sets.contains_key(*s))
        {
            let _ = writeln!(out, "delete set ip {table} {set}");
        }
        out
    }

    /// Map elements: all of them, or (with `old`) those that changed.
    fn elements(&self, out: &mut String, old: Option<&Ruleset>) {
        let table = &self.table;
        let maps = [
            ("service-ips", &self.service_ips, old.map(|o| &o.service_ips)),
            ("service-nodeports", &self.node_ports, old.map(|o| &o.node_ports)),
            ("no-endpoint-services", &self.no_endpoints, old.map(|o| &o.no_endpoints)),
            (
                "no-endpoint-nodeports",
                &self.no_endpoint_node_ports,
                old.map(|o| &o.no_endpoint_node_ports),
            ),
        ];
        for (map, new, old) in maps {
            let empty = BTreeMap::new();
            let old = old.unwrap_or(&empty);
            for (key, verdict) in old {
                if new.get(key) != Some(verdict) {
                    let _ = writeln!(out, "delete element ip {table} {map} {{ {key} }}");
                }
            }
            for (key, verdict) in new {
                if old.get(key) != Some(verdict) {
                    let _ = writeln!(out, "add element ip {table} {map} {{ {key} : {verdict} }}");
                }
            }
        }
    }

    /// The chains and maps every ruleset has.
    fn fixed(&self, out: &mut String) {
        let table = &self.table;
        let base = format!(
            "add map ip {table} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
add map ip {table} service-nodeports {{ type inet_proto . inet_service : verdict; }}
add map ip {table} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict; }}
add map ip {table} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict; }}
add chain ip {table} reject-chain
add rule ip {table} reject-chain reject
add chain ip {table} mark-for-masquerade
add rule ip {table} mark-for-masquerade meta mark set meta mark or {MASQUERADE_MARK}
add chain ip {table} services
add rule ip {table} services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip {table} services fib daddr type local meta l4proto . th dport vmap @service-nodeports
add chain ip {table} nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add rule ip {table} nat-prerouting jump services
add chain ip {table} nat-output {{ type nat hook output priority -100; policy accept; }}
add rule ip {table} nat-output jump services
add chain ip {table} nat-postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add rule ip {table} nat-postrouting meta mark and {MASQUERADE_MARK} == 0 return
add rule ip {table} nat-postrouting meta mark set meta mark xor {MASQUERADE_MARK}
add rule ip {table} nat-postrouting masquerade fully-random
add chain ip {table} endpoints-check
add rule ip {table} endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip {table} endpoints-check fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
add chain ip {table} filter-input {{ type filter hook input priority -110; policy accept; }}
add rule ip {table} filter-input ct state new jump endpoints-check
add chain ip {table} filter-forward {{ type filter hook forward priority -110; policy accept; }}
add rule ip {table} filter-forward ct state new jump endpoints-check
add chain ip {table} filter-output {{ type filter hook output priority -110; policy accept; }}
add rule ip {table} filter-output ct state new jump endpoints-check
"
        );
        out.push_str(&base);
    }
}

/// `svc-<hash>-ns/name/port`: unique (the hash) and readable (the rest).
fn chain_name(kind: &str, id: &str) -> String {
    let readable: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/') {
                c
            } else {
                '/'
            }
        })
        .take(180)
        .collect();
    format!("{kind}-{:08x}-{readable}", fnv1a(id) as u32)
}

fn endpoint_chain(id: &str, endpoint: &Endpoint) -> String {
    let ip = match endpoint.ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6.to_string().replace(':', "."),
    };
    chain_name("sep", &format!("{id}@{ip}.{}", endpoint.port))
}

/// FNV-1a: a stable hash, so chain names survive restarts.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn endpoint(ip: &str, ready: bool, node: &str) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 8080,
            ready,
            serving: true,
            terminating: !ready,
            node_name: Some(node.into()),
        }
    }

    fn web(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: "web".into(),
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ips: vec!["10.43.1.5".parse().unwrap()],
            node_port: Some(30080),
            external_ips: vec![],
            affinity_timeout: None,
            internal_local: false,
            external_local: false,
            endpoints,
        }
    }

    fn node() -> NodeInfo {
        NodeInfo {
            name: "n1".into(),
            cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
        }
    }

    #[test]
    fn cluster_ips_balance_over_ready_endpoints() {
        let port = web(vec![
            endpoint("10.42.0.5", true, "n1"),
            endpoint("10.42.1.7", true, "n2"),
        ]);
        let rules = Ruleset::build("capstan-proxy", &node(), &[port]);
        let svc = rules.service_ips["10.43.1.5 . tcp . 80"]
            .trim_start_matches("goto ")
            .to_string();
        assert!(svc.starts_with("svc-") && svc.ends_with("-default/web/http"), "{svc}");
        let chain = &rules.chains[&svc];
        assert_eq!(
            chain[0],
            "ip daddr 10.43.1.5 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade"
        );
        assert!(
            chain[1].starts_with("numgen random mod 2 vmap { 0 : goto sep-"),
            "{}",
            chain[1]
        );
        assert_eq!(rules.node_ports.len(), 1);
        let sep = rules.chains.iter().find(|(n, _)| n.contains("10.42.1.7")).unwrap().1;
        assert_eq!(sep[1], "meta l4proto tcp dnat to 10.42.1.7:8080");
        assert!(rules.no_endpoints.is_empty());
    }

    #[test]
    fn no_ready_endpoints_rejects_unless_some_are_terminating_but_serving() {
        let rules = Ruleset::build("t", &node(), &[web(vec![])]);
        assert_eq!(rules.no_endpoints["10.43.1.5 . tcp . 80"], "goto reject-chain");
        assert_eq!(rules.no_endpoint_node_ports["tcp . 30080"], "goto reject-chain");
        assert!(rules.chains.is_empty());
        let terminating = Ruleset::build("t", &node(), &[web(vec![endpoint("10.42.0.5", false, "n1")])]);
        assert!(terminating.no_endpoints.is_empty());
        assert_eq!(terminating.service_ips.len(), 1);
    }

    #[test]
    fn external_traffic_policy_local_uses_local_endpoints_and_keeps_the_client_address() {
        let mut port = web(vec![
            endpoint("10.42.0.5", true, "n1"),
            endpoint("10.42.1.7", true, "n2"),
        ]);
        port.external_local = true;
        let rules = Ruleset::build("t", &node(), &[port]);
        let ext = rules.node_ports["tcp . 30080"].trim_start_matches("goto ").to_string();
        let chain = &rules.chains[&ext];
        assert_eq!(chain[0], "ip saddr 127.0.0.0/8 jump mark-for-masquerade");
        assert!(chain[1].starts_with("numgen random mod 1 "), "{}", chain[1]);
    }

    #[test]
    fn client_ip_affinity_remembers_the_endpoint() {
        let mut port = web(vec![endpoint("10.42.0.5", true, "n1")]);
        port.affinity_timeout = Some(600);
        let rules = Ruleset::build("t", &node(), &[port]);
        assert_eq!(rules.affinity_sets.values().collect::<Vec<_>>(), [&600]);
        let set = rules.affinity_sets.keys().next().unwrap();
        let svc = rules.chains.iter().find(|(n, _)| n.starts_with("svc-")).unwrap().1;
        assert!(svc[1].starts_with(&format!("ip saddr @{set} goto sep-")), "{}", svc[1]);
    }

    #[test]
    fn a_diff_touches_only_what_changed() {
        let before = Ruleset::build("t", &node(), &[web(vec![endpoint("10.42.0.5", true, "n1")])]);
        let after = Ruleset::build(
            "t",
            &node(),
            &[web(vec![
                endpoint("10.42.0.5", true, "n1"),
                endpoint("10.42.0.9", true, "n1"),
            ])],
        );
        let diff = after.diff(&before);
        assert!(!diff.contains("delete table"), "{diff}");
        assert!(diff.contains("10.42.0.9"), "{diff}");
        assert!(!diff.contains("service-ips"), "the map entry did not change:\n{diff}");
        let gone = Ruleset::build("t", &node(), &[web(vec![])]).diff(&after);
        assert!(
            gone.contains("delete element ip t service-ips { 10.43.1.5 . tcp . 80 }"),
            "{gone}"
        );
        assert!(gone.contains("add element ip t no-endpoint-services { 10.43.1.5 . tcp . 80 : goto reject-chain }"));
        assert!(gone.contains("delete chain ip t sep-"), "{gone}");
        assert_eq!(after.diff(&after), "");
    }
}
