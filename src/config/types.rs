//! Small value types used by the configuration and the tables.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!("`{s}` is not a MAC address; write six hex pairs such as 02:00:5e:10:00:01"));
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            m[i] = u8::from_str_radix(p, 16)
                .ok()
                .filter(|_| p.len() == 2)
                .ok_or_else(|| format!("`{s}` is not a MAC address: `{p}` is not a hex pair"))?;
        }
        let mac = Mac(m);
        if mac.is_multicast() {
            return Err(format!("`{s}` is a multicast MAC; an interface needs a unicast one (first octet even)"));
        }
        Ok(mac)
    }
}

/// An IPv4 prefix such as `192.168.10.0/24`. The address keeps its host bits,
/// so an interface's `address = "192.168.10.1/24"` is one value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Net {
    pub const ANY: Ipv4Net = Ipv4Net { addr: Ipv4Addr::UNSPECIFIED, len: 0 };

    pub fn new(addr: Ipv4Addr, len: u8) -> Self {
        Ipv4Net { addr, len }
    }
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len as u32)
        }
    }
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let m = self.mask() & other.mask();
        (u32::from(self.addr) ^ u32::from(other.addr)) & m == 0
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    /// Accepts `any`, `A.B.C.D` (a /32) and `A.B.C.D/N`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "any" {
            return Ok(Ipv4Net::ANY);
        }
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv4Addr =
            a.parse().map_err(|_| format!("`{s}` is not an IPv4 address or prefix; write e.g. 192.168.10.0/24"))?;
        let len = match l {
            None => 32,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= 32)
                .ok_or_else(|| format!("`{s}` has a bad prefix length; use 0 to 32"))?,
        };
        Ok(Ipv4Net { addr, len })
    }
}

/// An inclusive port range; a single port is `lo == hi`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a port or range; write 22 or \"1024-65535\"");
        let (lo, hi) = match s.split_once('-') {
            Some((a, b)) => (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?),
            None => {
                let p = s.trim().parse().map_err(|_| bad())?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(format!("`{s}`: the range's low end is above its high end"));
        }
        Ok(PortRange { lo, hi })
    }
}

/// IP protocol numbers the appliance names.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_rejects() {
        assert_eq!("02:00:5e:10:00:01".parse::<Mac>().unwrap().0, [2, 0, 0x5e, 0x10, 0, 1]);
        assert!("02:00:5e:10:00".parse::<Mac>().is_err());
        assert!("01:00:5e:10:00:01".parse::<Mac>().is_err());
        assert!("02:00:5e:10:00:zz".parse::<Mac>().is_err());
    }

    #[test]
    fn prefix_math() {
        let n: Ipv4Net = "192.168.10.1/24".parse().unwrap();
        assert_eq!(n.network(), Ipv4Addr::new(192, 168, 10, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(192, 168, 10, 255));
        assert!(n.contains(Ipv4Addr::new(192, 168, 10, 77)));
        assert!(!n.contains(Ipv4Addr::new(192, 168, 11, 1)));
        assert!(n.overlaps(&"192.168.0.0/16".parse().unwrap()));
        assert!(!n.overlaps(&"192.168.11.0/24".parse().unwrap()));
        assert!(Ipv4Net::ANY.contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert_eq!("10.1.2.3".parse::<Ipv4Net>().unwrap().len, 32);
    }

    #[test]
    fn port_ranges() {
        assert_eq!("1000-2000".parse::<PortRange>().unwrap(), PortRange { lo: 1000, hi: 2000 });
        assert!("2000-1000".parse::<PortRange>().is_err());
        assert!("x".parse::<PortRange>().is_err());
    }
}
