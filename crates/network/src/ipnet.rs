//! An IP address with a prefix length: a subnet (`10.88.0.0/16`) or an interface address (`10.88.0.2/16`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// An IPv4 or IPv6 address with a prefix length, as CNI results and network subnets write them.
///
/// Parsing keeps the address as written (`10.88.0.2/16` stays `.2`); [`network`](Self::network) gives the
/// subnet's first address. Serialized as its string form.
///
/// # Examples
/// ```
/// use wharf_network::IpNet;
/// let subnet: IpNet = "10.88.0.0/16".parse().unwrap();
/// let addr: IpNet = "10.88.3.7/16".parse().unwrap();
/// assert!(subnet.contains(addr.addr()));
/// assert_eq!(addr.network(), subnet);
/// assert!(subnet.overlaps(&"10.88.128.0/17".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// An address and prefix length; `None` if the prefix is longer than the address (32 or 128 bits).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        (prefix <= max_prefix(addr)).then_some(IpNet { addr, prefix })
    }

    /// The address as written.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The subnet: the address with its host bits cleared.
    pub fn network(&self) -> IpNet {
        let bits = max_prefix(self.addr);
        let masked = to_u128(self.addr) & mask(bits, self.prefix);
        IpNet {
            addr: from_u128(masked, self.addr),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` lies in this subnet (same family, same network bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let m = mask(max_prefix(ip), self.prefix);
        to_u128(ip) & m == to_u128(self.addr) & m
    }

    /// Whether the two subnets share any address.
    pub fn overlaps(&self, other: &IpNet) -> bool {
        self.contains(other.network().addr) || other.contains(self.network().addr)
    }

    /// The `n`th address of the subnet (0 is the network address), if the subnet has that many.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let host_bits = u32::from(max_prefix(self.addr) - self.prefix);
        if host_bits < 128 && n >> host_bits != 0 {
            return None;
        }
        Some(from_u128(to_u128(self.network().addr) + n, self.addr))
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn mask(bits: u8, prefix: u8) -> u128 {
    let host = u32::from(bits - prefix);
    let all = if bits == 32 { u128::from(u32::MAX) } else { u128::MAX };
    if host >= 128 { 0 } else { all & !((1u128 << host) - 1) }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(n: u128, family: IpAddr) -> IpAddr {
    match family {
        IpAddr::V4(_) => IpAddr::V4((n as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(n.into()),
    }
}

impl FromStr for IpNet {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<IpNet, ParseError> {
        let bad = |reason: &str| ParseError::IpNet {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("no /prefix length"))?;
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("prefix length is not a number"))?;
        IpNet::new(addr, prefix).ok_or_else(|| bad("prefix length longer than the address"))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().expect("test subnet")
    }

    #[test]
    fn overlap_cases() {
        let cases = [
            ("10.88.0.0/16", "10.88.5.0/24", true),
            ("10.88.5.0/24", "10.88.0.0/16", true),
            ("10.88.0.0/16", "10.89.0.0/16", false),
            ("10.0.0.0/8", "10.255.255.0/24", true),
            ("192.168.1.0/25", "192.168.1.128/25", false),
            ("0.0.0.0/0", "1.2.3.0/24", true),
            ("fd00::/64", "fd00::/48", true),
            ("fd00::/64", "10.0.0.0/8", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(n(a).overlaps(&n(b)), want, "{a} vs {b}");
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert!(
            matches!("10.0.0.0".parse::<IpNet>(), Err(ParseError::IpNet { reason, .. }) if reason.contains("prefix"))
        );
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("ten/8".parse::<IpNet>().is_err());
        assert_eq!(n("fd00::1/64").network(), n("fd00::/64"));
    }

    #[test]
    fn nth_stays_inside() {
        assert_eq!(n("10.88.0.0/16").nth(1), Some("10.88.0.1".parse().expect("ip")));
        assert_eq!(n("10.88.0.0/30").nth(4), None);
        assert_eq!(n("0.0.0.0/0").nth(1), Some("0.0.0.1".parse().expect("ip")));
    }
}
