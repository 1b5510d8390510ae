//! Open connections per client address, so that one address cannot take
//! every connection slot (`server.max_connections_per_ip`).
//!
//! An IPv6 client usually holds a whole /64 network, so IPv6 addresses are
//! counted by their /64; an IPv4-mapped IPv6 address counts as its IPv4
//! address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

/// The open connections of each client address with any open; memory is
/// bounded by the open connections.
#[derive(Debug, Default)]
pub(crate) struct ClientAddresses {
    open: HashMap<IpAddr, ClientAddress>,
}

#[derive(Debug, Default)]
struct ClientAddress {
    open: u64,
    /// Whether a refusal at the limit was logged since its last close: the
    /// log says once that an address is at its limit, not once per
    /// connection it tries.
    refusal_logged: bool,
}

impl ClientAddresses {
    /// Whether `ip` may open one more connection under `limit`; logs the
    /// first refusal.
    pub(crate) fn admits(&mut self, ip: IpAddr, limit: u64) -> bool {
        let Some(address) = self.open.get_mut(&counted_as(ip)) else {
            return limit > 0;
        };
        if address.open < limit {
            return true;
        }
        if !address.refusal_logged {
            address.refusal_logged = true;
            tracing::warn!(
                address = %counted_as(ip),
                limit,
                "connections refused: max_connections_per_ip reached for this address"
            );
        }
        false
    }

    /// Counts a connection `ip` opened.
    pub(crate) fn opened(&mut self, ip: IpAddr) {
        self.open.entry(counted_as(ip)).or_default().open += 1;
    }

    /// Counts a connection of `ip` closed.
    pub(crate) fn closed(&mut self, ip: IpAddr) {
        let key = counted_as(ip);
        let Some(address) = self.open.get_mut(&key) else {
            return;
        };
        address.open = address.open.saturating_sub(1);
        address.refusal_logged = false;
        if address.open == 0 {
            self.open.remove(&key);
        }
    }

    /// Connections open from `ip`'s address (or /64).
    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> u64 {
        self.open.get(&counted_as(ip)).map_or(0, |a| a.open)
    }
}

/// What `ip` is counted as: itself for IPv4, the IPv4 address of an
/// IPv4-mapped IPv6 address, else its /64 network.
fn counted_as(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_at_its_limit_is_refused_until_one_closes() {
        let mut addresses = ClientAddresses::default();
        for _ in 0..3 {
            assert!(addresses.admits(ip("10.0.0.1"), 3));
            addresses.opened(ip("10.0.0.1"));
        }
        assert!(!addresses.admits(ip("10.0.0.1"), 3));
        assert!(!addresses.admits(ip("10.0.0.1"), 3));
        // Another address is not affected.
        assert!(addresses.admits(ip("10.0.0.2"), 3));
        addresses.closed(ip("10.0.0.1"));
        assert!(addresses.admits(ip("10.0.0.1"), 3));
        for _ in 0..2 {
            addresses.closed(ip("10.0.0.1"));
        }
        // Forgotten once none is open.
        assert!(addresses.open.is_empty());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let mut addresses = ClientAddresses::default();
        addresses.opened(ip("2001:db8:1:2::1"));
        addresses.opened(ip("2001:db8:1:2:ffff::9"));
        assert_eq!(addresses.open_from(ip("2001:db8:1:2::77")), 2);
        assert_eq!(addresses.open_from(ip("2001:db8:1:3::1")), 0);
        addresses.opened(ip("::ffff:192.0.2.7"));
        assert_eq!(addresses.open_from(ip("192.0.2.7")), 1);
    }

    #[test]
    fn a_close_without_an_open_changes_nothing() {
        let mut addresses = ClientAddresses::default();
        addresses.closed(ip("10.0.0.1"));
        assert!(addresses.open.is_empty());
        assert!(addresses.admits(ip("10.0.0.1"), 1));
    }
}
