//! Pod networking across nodes, the way k3s's flannel does it in its
//! `host-gw` backend: every node routes each *other* node's `spec.podCIDR`
//! to that node's InternalIP, so a packet from a pod leaves through the
//! node's own interface and arrives at the right node with both pod
//! addresses intact — Kubernetes requires pods to see each other's real IPs.
//! (This needs the nodes on one link, as host-gw does; no tunnel.)
//!
//! Two more pieces keep the pod range on the machine and the rest working:
//!
//! * a blackhole route for the whole cluster CIDR: a pod address nobody
//!   owns is dropped here instead of following the default route off the
//!   machine (the bridge's range and the other nodes' ranges are more
//!   specific and win);
//! * masquerading of traffic from the cluster CIDR to anything outside it
//!   (flannel's rule), in an nftables table of our own: replies from the
//!   world must find their way back, but pod-to-pod traffic keeps its
//!   source. This is why the CNI bridge's own `ipMasq` is off.
//!
//! IPv4 only, like the service proxy's table. Our routes carry the route
//! protocol [`ROUTE_PROTOCOL`] so that they are told apart from everyone
//! else's: removed on a clean shutdown, and by `capstan killall`
//! ([`remove_all`]) after an unclean one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};

/// Our nftables table (family `ip`).
pub const TABLE: &str = "capstan-node";

/// The route protocol our routes are tagged with (`ip route ... proto 162`):
/// a number no routing daemon in iproute2's `rt_protos` list uses.
pub const ROUTE_PROTOCOL: &str = "162";

/// How often the kernel is checked against what the nodes ask for: routes
/// that could not be added are retried (a node's address may become
/// reachable later), routes or rules someone removed are put back.
const RESYNC: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{command}: {message}")]
    Command { command: String, message: String },
}

/// The node this runs on and the cluster's pod range.
#[derive(Debug, Clone)]
pub struct HostGw {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub cluster_cidr: IpNet,
}

/// Destination pod range → the node address it is routed through.
type Routes = BTreeMap<IpNet, IpAddr>;

/// Node name → the routes to its pod ranges.
type ByNode = BTreeMap<String, Vec<(IpNet, IpAddr)>>;

impl HostGw {
    /// Installs the blackhole and the masquerade rule, then keeps the
    /// other nodes' routes in step with the Node objects until dropped (or
    /// the watch ends); call [`HostGw::teardown`] after.
    ///
    /// Every [`RESYNC`] the kernel is asked again, as flannel does: what
    /// someone else removed is put back, a route that could not be added is
    /// retried, and routes an earlier run left to nodes now gone are removed.
    pub async fn run(&self, client: kube::Client) {
        match self.setup() {
            Ok(()) => {
                tracing::info!(cluster_cidr = %self.cluster_cidr, "host-gw: cluster CIDR blackholed, traffic leaving it masqueraded")
            }
            Err(err) => tracing::error!(%err, "host-gw: pod traffic to other nodes or the outside may not work"),
        }
        let nodes = watcher::watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff();
        futures::pin_mut!(nodes);
        let mut known: Option<ByNode> = None;
        let mut listing: Option<ByNode> = None;
        let mut installed = Routes::new();
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            let (changed, recheck) = tokio::select! {
                event = nodes.next() => match event {
                    Some(Ok(event)) => (self.apply_event(&mut known, &mut listing, event), false),
                    Some(Err(err)) => {
                        tracing::warn!(%err, "host-gw: watching nodes");
                        continue;
                    }
                    None => return,
                },
                _ = resync.tick() => (false, true),
            };
            if recheck {
                if let Err(err) = self.setup() {
                    tracing::warn!(%err, "host-gw: restoring the blackhole and masquerade rule");
                }
                installed = kernel_routes();
            }
            // Nothing is removed before the first complete list of nodes.
            if let (Some(known), None) = (&known, &listing)
                && (changed || recheck)
            {
                let wanted: Routes = known.values().flatten().copied().collect();
                self.sync(&wanted, &mut installed);
            }
        }
    }

    /// Removes everything of ours: routes, the blackhole, the nftables table.
    pub fn teardown(&self) {
        if let Err(err) = remove_all() {
            tracing::warn!(%err, "host-gw: removing our routes and rules");
        }
    }

    /// The blackhole for the cluster CIDR, the masquerade table, and packet
    /// forwarding (which routing pod traffic needs; k3s turns it on too).
    fn setup(&self) -> Result<(), Error> {
        if let Err(err) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
            tracing::warn!(%err, "host-gw: enabling net.ipv4.ip_forward");
        }
        let cidr = self.cluster_cidr.trunc().to_string();
        run("ip", &["route", "replace", "blackhole", &cidr, "proto", ROUTE_PROTOCOL])?;
        nft(&masquerade_script(self.cluster_cidr))
    }

    /// Brings the kernel's routes to what the nodes ask for; a route that
    /// fails stays out of `installed` and is tried again next time.
    fn sync(&self, wanted: &Routes, installed: &mut Routes) {
        let (remove, add) = diff(installed, wanted);
        for cidr in remove {
            let dst = cidr.to_string();
            match run("ip", &["route", "del", &dst, "proto", ROUTE_PROTOCOL]) {
                Ok(()) => tracing::info!(%cidr, "host-gw: route removed"),
                Err(err) => tracing::warn!(%err, "host-gw: removing a route"),
            }
            installed.remove(&cidr);
        }
        for (cidr, via) in add {
            let (dst, gw) = (cidr.to_string(), via.to_string());
            match run("ip", &["route", "replace", &dst, "via", &gw, "proto", ROUTE_PROTOCOL]) {
                Ok(()) => {
                    tracing::info!(%cidr, %via, "host-gw: route added");
                    installed.insert(cidr, via);
                }
                Err(err) => tracing::warn!(%err, "host-gw: adding a route"),
            }
        }
    }

    /// The routes to `node`'s pod ranges: none for ourselves, for a node
    /// without a range or address yet, or for one whose address is ours or
    /// loopback (hollow nodes): a next hop on this very stack would loop.
    fn routes_to(&self, node: &Node) -> Vec<(IpNet, IpAddr)> {
        if node.name_any() == self.node_name {
            return Vec::new();
        }
        let addresses = internal_ips(node);
        pod_cidrs(node)
            .into_iter()
            .filter(|cidr| cidr.addr().is_ipv4() == self.cluster_cidr.addr().is_ipv4())
            .filter_map(|cidr| {
                let via = addresses.iter().find(|ip| ip.is_ipv4() == cidr.addr().is_ipv4())?;
                let usable = !via.is_loopback() && !via.is_unspecified() && *via != self.node_ip;
                usable.then_some((cidr.trunc(), *via))
            })
            .collect()
    }

    /// Folds a watch event into the routes each node asks for (`known`,
    /// `None` until the first list is complete; during a relist the nodes
    /// go to `listing` and replace `known` at its end). True when what is
    /// wanted may have changed: node status updates that change no route
    /// (most of them) cost no sync.
    fn apply_event(&self, known: &mut Option<ByNode>, listing: &mut Option<ByNode>, event: Event<Node>) -> bool {
        match event {
            Event::Apply(node) => {
                let routes = self.routes_to(&node);
                let known = known.get_or_insert_default();
                known.insert(node.name_any(), routes.clone()).unwrap_or_default() != routes
            }
            Event::Delete(node) => known
                .get_or_insert_default()
                .remove(&node.name_any())
                .is_some_and(|routes| !routes.is_empty()),
            Event::Init => {
                *listing = Some(ByNode::new());
                false
            }
            Event::InitApply(node) => {
                let routes = self.routes_to(&node);
                listing.get_or_insert_default().insert(node.name_any(), routes);
                false
            }
            Event::InitDone => {
                *known = Some(listing.take().unwrap_or_default());
                true
            }
        }
    }
}

/// Our routes in the kernel (the blackhole aside): `<dst> via <gw> ...`
/// lines of `ip -4 route show proto 162`; `ip` prints a /32 without its length.
fn kernel_routes() -> Routes {
    let output = Command::new("ip")
        .args(["-4", "route", "show", "proto", ROUTE_PROTOCOL])
        .output();
    match output {
        Ok(output) if output.status.success() => parse_routes(&String::from_utf8_lossy(&output.stdout)),
        Ok(output) => {
            tracing::warn!(stderr = %stderr(&output), "host-gw: listing our routes");
            Routes::new()
        }
        Err(err) => {
            tracing::warn!(%err, "host-gw: listing our routes");
            Routes::new()
        }
    }
}

fn parse_routes(text: &str) -> Routes {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (dst, "via", gw) = (words.first()?, *words.get(1)?, words.get(2)?) else {
                return None;
            };
            let dst = dst
                .parse()
                .ok()
                .or_else(|| dst.parse::<IpAddr>().ok().map(IpNet::from))?;
            Some((dst, gw.parse().ok()?))
        })
        .collect()
}

/// What to delete (gone or changed) and what to add (new or changed).
fn diff(installed: &Routes, wanted: &Routes) -> (Vec<IpNet>, Vec<(IpNet, IpAddr)>) {
    let remove = installed
        .iter()
        .filter(|(cidr, via)| wanted.get(cidr) != Some(via))
        .map(|(cidr, _)| *cidr)
        .collect();
    let add = wanted
        .iter()
        .filter(|(cidr, via)| installed.get(cidr) != Some(via))
        .map(|(cidr, via)| (*cidr, *via))
        .collect();
    (remove, add)
}

/// `spec.podCIDRs`, or the older single `spec.podCIDR`.
fn pod_cidrs(node: &Node) -> Vec<IpNet> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    let texts = match &spec.pod_cidrs {
        Some(cidrs) if !cidrs.is_empty() => cidrs.clone(),
        _ => spec.pod_cidr.iter().cloned().collect(),
    };
    texts.iter().filter_map(|text| text.parse().ok()).collect()
}

/// The node's `InternalIP` addresses from `status.addresses`.
fn internal_ips(node: &Node) -> Vec<IpAddr> {
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    addresses
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// Our table, replaced as a whole: traffic from pods (the cluster CIDR) to
/// anything outside the cluster CIDR (and not multicast) is masqueraded.
fn masquerade_script(cluster_cidr: IpNet) -> String {
    let cidr = cluster_cidr.trunc();
    format!(
        "add table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         add table ip {TABLE}\n\
         add chain ip {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
         add rule ip {TABLE} postrouting ip saddr {cidr} ip daddr != {cidr} ip daddr != 224.0.0.0/4 masquerade fully-random\n"
    )
}

/// Removes every route tagged with [`ROUTE_PROTOCOL`] (the other nodes'
/// ranges and the blackhole) and our nftables table; for a clean shutdown
/// and `capstan killall`. Nothing there is fine.
pub fn remove_all() -> Result<(), Error> {
    let routes = run("ip", &["-4", "route", "flush", "proto", ROUTE_PROTOCOL]);
    let table = nft(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"));
    routes.and(table)
}

/// Applies `script` with `nft -f -`: one atomic transaction.
fn nft(script: &str) -> Result<(), Error> {
    use std::io::Write;
    let error = |message: String| failed("nft -f -", message);
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| error(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| error(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| error(e.to_string()))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(error(stderr(&output))),
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), Error> {
    let error = |message: String| failed(&format!("{program} {}", args.join(" ")), message);
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| error(e.to_string()))?;
    match output.status.success() {
        true => Ok(()),
        false => Err(error(stderr(&output))),
    }
}

fn failed(command: &str, message: String) -> Error {
    Error::Command {
        command: command.to_string(),
        message,
    }
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        Node {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(Into::into),
                pod_cidrs: cidr.map(|c| vec![c.into()]),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: Some(
                    ip.iter()
                        .map(|ip| NodeAddress {
                            type_: "InternalIP".into(),
                            address: ip.to_string(),
                        })
                        .chain([NodeAddress {
                            type_: "Hostname".into(),
                            address: name.into(),
                        }])
                        .collect(),
                ),
                ..Default::default()
            }),
        }
    }

    fn hostgw() -> HostGw {
        HostGw {
            node_name: "a".into(),
            node_ip: "10.99.0.2".parse().unwrap(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
        }
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn other_nodes_ranges_are_routed_via_their_internal_ip() {
        let gw = hostgw();
        assert_eq!(
            gw.routes_to(&node("b", Some("10.42.1.0/24"), Some("10.99.0.3"))),
            [(net("10.42.1.0/24"), "10.99.0.3".parse().unwrap())]
        );
    }

    #[test]
    fn no_route_to_ourselves_to_loopback_or_without_a_range_or_address() {
        let gw = hostgw();
        for node in [
            node("a", Some("10.42.0.0/24"), Some("10.99.0.2")),
            node("hollow-0", Some("10.42.5.0/24"), Some("127.1.0.1")),
            node("same-ip", Some("10.42.6.0/24"), Some("10.99.0.2")),
            node("no-range", None, Some("10.99.0.4")),
            node("no-address", Some("10.42.7.0/24"), None),
            node("v6-only", Some("10.42.8.0/24"), Some("fd00::5")),
        ] {
            assert_eq!(gw.routes_to(&node), [], "{}", node.name_any());
        }
    }

    #[test]
    fn changed_routes_are_replaced_and_gone_ones_removed() {
        let installed: Routes = [
            (net("10.42.1.0/24"), "10.99.0.3".parse().unwrap()),
            (net("10.42.2.0/24"), "10.99.0.4".parse().unwrap()),
        ]
        .into();
        let wanted: Routes = [
            (net("10.42.1.0/24"), "10.99.0.3".parse().unwrap()),
            (net("10.42.2.0/24"), "10.99.0.9".parse().unwrap()),
            (net("10.42.3.0/24"), "10.99.0.5".parse().unwrap()),
        ]
        .into();
        let (remove, add) = diff(&installed, &wanted);
        assert_eq!(remove, [net("10.42.2.0/24")]);
        assert_eq!(
            add,
            [
                (net("10.42.2.0/24"), "10.99.0.9".parse().unwrap()),
                (net("10.42.3.0/24"), "10.99.0.5".parse().unwrap())
            ]
        );
    }

    #[test]
    fn a_relist_replaces_the_known_nodes_and_only_route_changes_count() {
        let gw = hostgw();
        let names = |known: &Option<ByNode>| known.as_ref().map(|k| k.keys().cloned().collect::<Vec<_>>());
        let (mut known, mut listing) = (None, None);
        let b = || node("b", Some("10.42.1.0/24"), Some("10.99.0.3"));
        assert!(!gw.apply_event(&mut known, &mut listing, Event::Init));
        assert!(!gw.apply_event(&mut known, &mut listing, Event::InitApply(b())));
        assert_eq!(
            names(&known),
            None,
            "nothing is known before the first list is complete"
        );
        assert!(gw.apply_event(&mut known, &mut listing, Event::InitDone));
        assert_eq!(names(&known), Some(vec!["b".to_string()]));
        assert!(
            !gw.apply_event(&mut known, &mut listing, Event::Apply(b())),
            "same routes"
        );
        let moved = node("b", Some("10.42.1.0/24"), Some("10.99.0.9"));
        assert!(gw.apply_event(&mut known, &mut listing, Event::Apply(moved)));
        assert!(!gw.apply_event(&mut known, &mut listing, Event::Apply(node("c", None, None))));
        gw.apply_event(&mut known, &mut listing, Event::Init);
        gw.apply_event(&mut known, &mut listing, Event::InitApply(node("c", None, None)));
        assert!(gw.apply_event(&mut known, &mut listing, Event::InitDone));
        assert_eq!(names(&known), Some(vec!["c".to_string()]));
        assert!(!gw.apply_event(&mut known, &mut listing, Event::Delete(node("c", None, None))));
        assert_eq!(names(&known), Some(vec![]));
    }

    #[test]
    fn our_routes_are_read_back_from_ip_route_show() {
        let text = "blackhole 10.42.0.0/16 \n10.42.1.0/24 via 10.99.0.3 dev eth0 \n10.42.9.7 via 10.99.0.4 dev eth0 \n";
        let routes = parse_routes(text);
        assert_eq!(
            routes,
            Routes::from([
                (net("10.42.1.0/24"), "10.99.0.3".parse().unwrap()),
                (net("10.42.9.7/32"), "10.99.0.4".parse().unwrap()),
            ])
        );
    }

    #[test]
    fn only_traffic_leaving_the_cluster_cidr_is_masqueraded() {
        let script = masquerade_script(net("10.42.0.7/16"));
        assert!(script.contains("type nat hook postrouting priority srcnat"), "{script}");
        assert!(
            script.contains(
                "ip saddr 10.42.0.0/16 ip daddr != 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random"
            ),
            "{script}"
        );
    }
}
