//! ClusterIPs, recorded as `networking.k8s.io/v1` IPAddress objects named
//! by the address (upstream's MultiCIDRServiceAllocator, GA in 1.33).
//!
//! Taking an address is creating its IPAddress: the store refuses a second
//! create of the same name, so an address is never handed out twice — not
//! under concurrent requests, not across API servers, not after a restart.
//! The watch cache only suggests candidates; the create decides.

use std::collections::HashSet;
use std::net::IpAddr;

use capstan_apimachinery::meta::{self, Object};
use capstan_apimachinery::{ApiError, ResourceType, registry};
use ipnet::IpNet;
use serde_json::{Value, json};

use crate::objects::{ObjectKey, prefix};
use crate::{ApiServer, strategy};

/// The label upstream's allocator puts on the IPAddresses it manages.
pub const MANAGED_BY: (&str, &str) = ("ipaddress.kubernetes.io/managed-by", "ipallocator.k8s.io");

/// How many candidates a dynamic allocation looks at before calling the
/// range full (an IPv6 range is too large to scan).
const MAX_SCAN: u128 = 1 << 20;

/// The Service an address belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
}

/// Why an address could not be had; the texts are upstream's ipallocator errors.
#[derive(Debug, thiserror::Error)]
pub enum IpError {
    #[error("provided IP is already allocated")]
    Allocated,
    #[error("the provided IP ({0}) is not in the valid range. The range of valid IPs is {1}")]
    NotInRange(IpAddr, IpNet),
    #[error("range is full")]
    Full,
    #[error("{}", .0.message)]
    Api(ApiError),
}

/// The service CIDR's allocator.
pub struct ClusterIps {
    pub cidr: IpNet,
}

impl ClusterIps {
    /// `IPv4` or `IPv6`: the one family this cluster's services get.
    pub fn family(&self) -> &'static str {
        family_of(&self.cidr.addr())
    }

    /// The first usable address, the `kubernetes` Service's.
    pub fn first(&self) -> IpAddr {
        self.address(1)
    }

    /// Takes `wanted`, or any free address when `None`. A dry run only checks.
    pub async fn allocate(
        &self,
        server: &ApiServer,
        wanted: Option<IpAddr>,
        owner: &Owner,
        dry_run: bool,
    ) -> Result<IpAddr, IpError> {
        let mut used = used_addresses(server);
        if let Some(ip) = wanted {
            self.check_in_range(ip)?;
            if dry_run {
                return if used.contains(&ip) {
                    Err(IpError::Allocated)
                } else {
                    Ok(ip)
                };
            }
            return record(server, ip, owner).await.map(|()| ip);
        }
        loop {
            let ip = self.free_candidate(&used).ok_or(IpError::Full)?;
            if dry_run {
                return Ok(ip);
            }
            match record(server, ip, owner).await {
                Err(IpError::Allocated) => {
                    used.insert(ip);
                }
                other => return other.map(|()| ip),
            }
        }
    }

    /// Gives `ip` back, if it is still `owner`'s.
    pub async fn release(&self, server: &ApiServer, ip: IpAddr, owner: &Owner) -> Result<(), ApiError> {
        let name = ip.to_string();
        let key = ObjectKey {
            resource: resource(),
            namespace: None,
            name: &name,
        };
        let Some(current) = server.objects.try_get(key).await? else {
            return Ok(());
        };
        if parent_of(&current).as_ref() != Some(owner) {
            return Ok(());
        }
        let revision = meta::resource_version(&current).parse().ok();
        match server.objects.delete(key, revision).await {
            Err(err) if err.code != 404 && err.code != 409 => Err(err),
            _ => Ok(()),
        }
    }

    fn check_in_range(&self, ip: IpAddr) -> Result<(), IpError> {
        let offset = self.offset_of(ip);
        if offset.is_some_and(|o| o >= 1 && o < self.usable_end()) {
            Ok(())
        } else {
            Err(IpError::NotInRange(ip, self.cidr))
        }
    }

    /// Free addresses come from the upper part of the range first, as
    /// upstream: the lower band stays for Services that ask for a fixed
    /// address (the `kubernetes` Service, cluster DNS at .10).
    fn free_candidate(&self, used: &HashSet<IpAddr>) -> Option<IpAddr> {
        let end = self.usable_end();
        let band = static_band(end);
        [(band.max(1), end), (1, band.max(1))]
            .into_iter()
            .filter(|(lo, hi)| lo < hi)
            .find_map(|(lo, hi)| {
                let span = hi - lo;
                let start = rand::random_range(0..span);
                (0..span.min(MAX_SCAN))
                    .map(|i| self.address(lo + (start + i) % span))
                    .find(|ip| !used.contains(ip))
            })
    }

    fn size(&self) -> u128 {
        let bits = u32::from(self.cidr.max_prefix_len() - self.cidr.prefix_len());
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }

    /// One past the last usable offset: IPv4 loses its broadcast address.
    fn usable_end(&self) -> u128 {
        match self.cidr {
            IpNet::V4(_) => self.size().saturating_sub(1),
            IpNet::V6(_) => self.size(),
        }
    }

    fn address(&self, offset: u128) -> IpAddr {
        match self.cidr.network() {
            IpAddr::V4(net) => IpAddr::V4((u32::from(net).wrapping_add(offset as u32)).into()),
            IpAddr::V6(net) => IpAddr::V6((u128::from(net).wrapping_add(offset)).into()),
        }
    }

    fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        Some(match (ip, self.cidr.network()) {
            (IpAddr::V4(ip), IpAddr::V4(net)) => u128::from(u32::from(ip) - u32::from(net)),
            (IpAddr::V6(ip), IpAddr::V6(net)) => u128::from(ip) - u128::from(net),
            _ => return None,
        })
    }
}

/// Upstream's `calculateRangeOffset`: a sixteenth of the range, at least 16
/// and at most 256 addresses, none for ranges under 16.
fn static_band(size: u128) -> u128 {
    if size < 16 { 0 } else { (size / 16).clamp(16, 256) }
}

pub fn family_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

pub fn resource() -> &'static ResourceType {
    registry::lookup("networking.k8s.io", "v1", "ipaddresses").expect("IPAddress is a built-in kind")
}

/// The addresses that have an IPAddress, as the watch cache knows them.
fn used_addresses(server: &ApiServer) -> HashSet<IpAddr> {
    let (objects, _) = server.cache.list(&prefix(resource(), None));
    objects.iter().filter_map(|o| meta::name(o).parse().ok()).collect()
}

/// The Service an IPAddress names as its parent.
pub fn parent_of(address: &Object) -> Option<Owner> {
    let parent = address.pointer("/spec/parentRef")?;
    if parent.get("resource").and_then(Value::as_str) != Some("services") {
        return None;
    }
    Some(Owner {
        namespace: parent.get("namespace").and_then(Value::as_str)?.to_string(),
        name: parent.get("name").and_then(Value::as_str)?.to_string(),
    })
}

/// Creates the IPAddress that makes `ip` taken.
pub async fn record(server: &ApiServer, ip: IpAddr, owner: &Owner) -> Result<(), IpError> {
    let name = ip.to_string();
    let mut object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IPAddress",
        "metadata": {
            "name": name,
            "labels": {"ipaddress.kubernetes.io/ip-family": family_of(&ip), MANAGED_BY.0: MANAGED_BY.1},
        },
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": owner.namespace, "name": owner.name}},
    });
    strategy::prepare_for_create(resource(), &mut object, None).map_err(IpError::Api)?;
    let key = ObjectKey {
        resource: resource(),
        namespace: None,
        name: &name,
    };
    match server.objects.create(key, object).await {
        Ok(_) => Ok(()),
        Err(err) if err.code == 409 => Err(IpError::Allocated),
        Err(err) => Err(IpError::Api(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(cidr: &str) -> ClusterIps {
        ClusterIps {
            cidr: cidr.parse().unwrap(),
        }
    }

    #[test]
    fn the_range_excludes_network_and_broadcast() {
        let range = ips("10.43.0.0/16");
        assert_eq!(range.first().to_string(), "10.43.0.1");
        assert!(range.check_in_range("10.43.0.10".parse().unwrap()).is_ok());
        assert!(range.check_in_range("10.43.255.254".parse().unwrap()).is_ok());
        for outside in ["10.43.0.0", "10.43.255.255", "10.44.0.1"] {
            let err = range.check_in_range(outside.parse().unwrap()).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "the provided IP ({outside}) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
                )
            );
        }
    }

    #[test]
    fn dynamic_addresses_avoid_the_static_band_until_it_is_all_that_is_left() {
        let range = ips("10.43.0.0/24");
        assert_eq!(static_band(range.usable_end()), 16);
        let mut used = HashSet::new();
        for _ in 0..(255 - 16) {
            let ip = range.free_candidate(&used).unwrap();
            assert!(range.offset_of(ip).unwrap() >= 16, "{ip} is in the static band");
            assert!(used.insert(ip));
        }
        let next = range.free_candidate(&used).unwrap();
        assert!(range.offset_of(next).unwrap() < 16);
        for offset in 1..16 {
            used.insert(range.address(offset));
        }
        assert!(range.free_candidate(&used).is_none(), "all 254 addresses are taken");
    }

    #[test]
    fn static_band_follows_upstream() {
        assert_eq!(static_band(8), 0);
        assert_eq!(static_band(254), 16);
        assert_eq!(static_band(4094), 255);
        assert_eq!(static_band(65534), 256);
    }
}
