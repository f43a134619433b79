//! Pod addresses from a range of local addresses (`--pod-address-range`):
//! on a cluster that lives on one machine, each pod of a node gets an
//! address of its own from a 127.0.0.0/8 range, so that pods of one node
//! can serve the same port, until pods get network namespaces.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, PoisonError};

/// A range of IPv4 addresses handed out to pods by uid.
#[derive(Debug)]
pub struct AddressPool {
    first: u32,
    size: u32,
    assigned: Mutex<HashMap<String, u32>>,
}

/// A range that is not `a.b.c.d/n` with 16 ≤ n ≤ 30.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid pod address range {0:?}: expected an IPv4 CIDR such as 127.1.0.0/24 (prefix 16 to 30)"
)]
pub struct InvalidRange(pub String);

impl AddressPool {
    /// The usable addresses of `cidr` (network and broadcast addresses
    /// left out).
    pub fn parse(cidr: &str) -> Result<Self, InvalidRange> {
        let invalid = || InvalidRange(cidr.to_owned());
        let (address, prefix) = cidr.split_once('/').ok_or_else(invalid)?;
        let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
        let prefix: u32 = prefix.parse().map_err(|_| invalid())?;
        if !(16..=30).contains(&prefix) {
            return Err(invalid());
        }
        let mask = u32::MAX << (32 - prefix);
        let network = u32::from(address) & mask;
        Ok(Self {
            first: network + 1,
            size: (1 << (32 - prefix)) - 2,
            assigned: Mutex::default(),
        })
    }

    /// The address of pod `uid`: the one it has, or the lowest free one;
    /// `None` when every address is taken.
    pub fn assign(&self, uid: &str) -> Option<IpAddr> {
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(offset) = assigned.get(uid) {
            return Some(self.address(*offset));
        }
        let taken: std::collections::HashSet<u32> = assigned.values().copied().collect();
        let offset = (0..self.size).find(|o| !taken.contains(o))?;
        assigned.insert(uid.to_owned(), offset);
        Some(self.address(offset))
    }

    /// Gives pod `uid` the address `ip` it already had (before an agent
    /// restart), if it is in the range and free; whether it now has it.
    pub fn claim(&self, uid: &str, ip: IpAddr) -> bool {
        let IpAddr::V4(ip) = ip else {
            return false;
        };
        let Some(offset) = u32::from(ip)
            .checked_sub(self.first)
            .filter(|o| *o < self.size)
        else {
            return false;
        };
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        if assigned
            .iter()
            .any(|(other, o)| *o == offset && other != uid)
        {
            return false;
        }
        assigned.insert(uid.to_owned(), offset);
        true
    }

    /// Returns pod `uid`'s address to the pool.
    pub fn release(&self, uid: &str) {
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        assigned.remove(uid);
    }

    fn address(&self, offset: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self.first + offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_stable_per_pod_and_reused_after_release() {
        let pool = AddressPool::parse("127.1.0.0/30").unwrap();
        let a = pool.assign("a").unwrap();
        assert_eq!(a.to_string(), "127.1.0.1");
        assert_eq!(pool.assign("a"), Some(a));
        assert_eq!(pool.assign("b").unwrap().to_string(), "127.1.0.2");
        assert_eq!(pool.assign("c"), None);
        pool.release("a");
        assert_eq!(pool.assign("c"), Some(a));
        assert!(!pool.claim("d", a));
        pool.release("c");
        assert!(pool.claim("d", a));
        assert!(!pool.claim("e", "127.2.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in [
            "127.1.0.0",
            "127.1.0.0/8",
            "127.1.0.0/31",
            "::1/120",
            "x/24",
        ] {
            assert!(AddressPool::parse(bad).is_err(), "{bad}");
        }
    }
}
