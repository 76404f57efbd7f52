//! Pod IPs from a node's `spec.podCIDR`, handed out the way CNI's
//! host-local IPAM plugin does on a real node: the network address and the
//! gateway (the first host, `.1`) are never given out, nor the IPv4
//! broadcast address; allocation continues after the last address handed
//! out and wraps around, so freed addresses are reused only after the rest
//! of the range. A pod keeps its address until it is released.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid podCIDR {0:?}")]
    InvalidCidr(String),
    #[error("no IP addresses available in range set: {0}")]
    Exhausted(IpNet),
}

/// The allocations of every node this process runs.
#[derive(Debug, Default)]
pub struct PodIps {
    nodes: HashMap<String, NodeRange>,
    /// Pod UID to the node it holds an address on.
    owners: HashMap<String, String>,
}

#[derive(Debug)]
struct NodeRange {
    cidr: IpNet,
    /// Offset from the network address of the last address handed out.
    last: u128,
    /// Offset to the UID of the pod holding it.
    used: BTreeMap<u128, String>,
}

impl PodIps {
    /// The address of pod `uid` on `node`, allocating one if it has none.
    /// `previous` (the pod's reported `status.podIP`) is taken back when it
    /// is in range and free, so a restarted agent keeps pods' addresses.
    pub fn assign(&mut self, node: &str, cidr: &str, uid: &str, previous: Option<&str>) -> Result<IpAddr, Error> {
        let cidr: IpNet = cidr.parse().map_err(|_| Error::InvalidCidr(cidr.to_string()))?;
        let range = self
            .nodes
            .entry(node.to_string())
            .or_insert_with(|| NodeRange::new(cidr));
        if range.cidr != cidr {
            // The node got another range: every address it handed out is gone.
            range.used.values().for_each(|uid| {
                self.owners.remove(uid);
            });
            *range = NodeRange::new(cidr);
        }
        if let Some(offset) = range
            .used
            .iter()
            .find(|(_, owner)| owner.as_str() == uid)
            .map(|(o, _)| *o)
        {
            return Ok(range.address(offset));
        }
        let offset = match previous.and_then(|ip| range.free_offset_of(ip)) {
            Some(offset) => offset,
            None => range.next_free()?,
        };
        range.used.insert(offset, uid.to_string());
        range.last = offset;
        self.owners.insert(uid.to_string(), node.to_string());
        Ok(range.address(offset))
    }

    /// Frees the address of pod `uid`, if it holds one.
    pub fn release(&mut self, uid: &str) {
        if let Some(node) = self.owners.remove(uid)
            && let Some(range) = self.nodes.get_mut(&node)
        {
            range.used.retain(|_, owner| owner != uid);
        }
    }

    /// Frees the addresses of every pod for which `live` is false.
    pub fn retain(&mut self, live: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.owners.keys().filter(|uid| !live(uid)).cloned().collect();
        gone.iter().for_each(|uid| self.release(uid));
    }
}

impl NodeRange {
    fn new(cidr: IpNet) -> NodeRange {
        NodeRange {
            cidr,
            last: 1,
            used: BTreeMap::new(),
        }
    }

    /// Offsets that may be handed out: after the network address and the
    /// gateway, before the IPv4 broadcast address.
    fn bounds(&self) -> (u128, u128) {
        let size = 1u128 << (self.cidr.max_prefix_len() - self.cidr.prefix_len()).min(127);
        let end = if self.cidr.network().is_ipv4() {
            size.saturating_sub(2)
        } else {
            size - 1
        };
        (2, end)
    }

    fn address(&self, offset: u128) -> IpAddr {
        match self.cidr.network() {
            IpAddr::V4(net) => IpAddr::V4((u32::from(net) + offset as u32).into()),
            IpAddr::V6(net) => IpAddr::V6((u128::from(net) + offset).into()),
        }
    }

    fn free_offset_of(&self, ip: &str) -> Option<u128> {
        let ip: IpAddr = ip.parse().ok()?;
        if !self.cidr.contains(&ip) {
            return None;
        }
        let offset = match (ip, self.cidr.network()) {
            (IpAddr::V4(ip), IpAddr::V4(net)) => (u32::from(ip) - u32::from(net)) as u128,
            (IpAddr::V6(ip), IpAddr::V6(net)) => u128::from(ip) - u128::from(net),
            _ => return None,
        };
        let (first, last) = self.bounds();
        ((first..=last).contains(&offset) && !self.used.contains_key(&offset)).then_some(offset)
    }

    /// The first free offset after the last one handed out, wrapping around.
    fn next_free(&self) -> Result<u128, Error> {
        let (first, last) = self.bounds();
        if last < first || (self.used.len() as u128) > last - first {
            return Err(Error::Exhausted(self.cidr));
        }
        let start = if self.last >= last {
            first
        } else {
            self.last.max(first - 1) + 1
        };
        let mut offset = start;
        // Terminates: fewer addresses are used than the range holds.
        while self.used.contains_key(&offset) {
            offset = if offset >= last { first } else { offset + 1 };
        }
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn skips_network_and_gateway_and_goes_on_sequentially() {
        let mut ips = PodIps::default();
        assert_eq!(ips.assign("n", "10.42.3.0/24", "a", None), Ok(ip("10.42.3.2")));
        assert_eq!(ips.assign("n", "10.42.3.0/24", "b", None), Ok(ip("10.42.3.3")));
        // Asking again answers the same address.
        assert_eq!(ips.assign("n", "10.42.3.0/24", "a", None), Ok(ip("10.42.3.2")));
        // Nodes have their own ranges.
        assert_eq!(ips.assign("m", "10.42.4.0/24", "c", None), Ok(ip("10.42.4.2")));
    }

    #[test]
    fn freed_addresses_are_reused_after_wrapping_around() {
        let mut ips = PodIps::default();
        // A /29 has hosts .1-.6 after the network; .1 is the gateway, .7 broadcast.
        let cidr = "10.0.0.0/29";
        for uid in ["a", "b", "c", "d", "e"] {
            ips.assign("n", cidr, uid, None).unwrap();
        }
        assert_eq!(
            ips.assign("n", cidr, "f", None),
            Err(Error::Exhausted("10.0.0.0/29".parse().unwrap()))
        );
        ips.release("b");
        assert_eq!(ips.assign("n", cidr, "f", None), Ok(ip("10.0.0.3")));
        ips.retain(|uid| uid != "d");
        assert_eq!(ips.assign("n", cidr, "g", None), Ok(ip("10.0.0.5")));
    }

    #[test]
    fn a_reported_address_is_taken_back_when_free() {
        let mut ips = PodIps::default();
        assert_eq!(
            ips.assign("n", "10.42.0.0/24", "a", Some("10.42.0.77")),
            Ok(ip("10.42.0.77"))
        );
        // Out of range or taken: a fresh one.
        assert_eq!(
            ips.assign("n", "10.42.0.0/24", "b", Some("10.42.0.77")),
            Ok(ip("10.42.0.78"))
        );
        assert_eq!(
            ips.assign("n", "10.42.0.0/24", "c", Some("10.1.0.5")),
            Ok(ip("10.42.0.79"))
        );
        assert_eq!(
            ips.assign("n", "10.42.0.0/24", "d", Some("10.42.0.1")),
            Ok(ip("10.42.0.80"))
        );
    }

    #[test]
    fn a_new_range_drops_old_addresses_and_bad_ranges_are_errors() {
        let mut ips = PodIps::default();
        ips.assign("n", "10.42.0.0/24", "a", None).unwrap();
        assert_eq!(ips.assign("n", "10.42.9.0/24", "a", None), Ok(ip("10.42.9.2")));
        assert_eq!(
            ips.assign("n", "10.42.0.0/33", "a", None),
            Err(Error::InvalidCidr("10.42.0.0/33".into()))
        );
        assert_eq!(ips.assign("v6", "fd00:42::/64", "b", None), Ok(ip("fd00:42::2")));
        assert!(matches!(
            ips.assign("tiny", "10.0.0.0/31", "c", None),
            Err(Error::Exhausted(_))
        ));
    }
}
