//! Flow keys. A connection has two: the tuple its first packet had on the
//! wire (`Dir::Orig`) and the tuple a reply has on the wire (`Dir::Reply`),
//! which differ after NAT (pf's wire/stack keys). Either finds the entry.
//!
//! IPv6 gets its own key type and table instance: keeping the IPv4 key at 16
//! bytes is what keeps an entry small.

use std::fmt;
use std::hash::Hash;
use std::net::Ipv4Addr;

/// A flow key for the generic table.
pub trait FlowKey: Copy + Eq + Hash + fmt::Debug {
    /// The key of a packet going the other way.
    fn reversed(&self) -> Self;
    fn proto(&self) -> u8;
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct KeyV4 {
    pub src: u32,
    pub dst: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

impl KeyV4 {
    pub fn src_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src)
    }
    pub fn dst_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst)
    }
}

impl FlowKey for KeyV4 {
    fn reversed(&self) -> Self {
        KeyV4 { src: self.dst, dst: self.src, sport: self.dport, dport: self.sport, proto: self.proto }
    }
    fn proto(&self) -> u8 {
        self.proto
    }
}

impl fmt::Debug for KeyV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} > {}:{} p{}", self.src_ip(), self.sport, self.dst_ip(), self.dport, self.proto)
    }
}

/// Which way a packet travels relative to the connection's first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    Orig = 0,
    Reply = 1,
}

impl Dir {
    pub fn other(self) -> Dir {
        match self {
            Dir::Orig => Dir::Reply,
            Dir::Reply => Dir::Orig,
        }
    }
    pub fn idx(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_small_and_reverses() {
        assert_eq!(std::mem::size_of::<KeyV4>(), 16);
        let k = KeyV4 { src: 1, dst: 2, sport: 3, dport: 4, proto: 6 };
        assert_eq!(k.reversed().reversed(), k);
        assert_eq!(k.reversed().src, 2);
        assert_eq!(Dir::Orig.other(), Dir::Reply);
    }
}
