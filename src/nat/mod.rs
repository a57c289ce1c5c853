//! NAT: which rule applies to a new flow, and the dynamic PAT bindings.
//!
//! A flow is translated once, when its connection is created: the
//! connection's reply key then *is* the translation, and both directions
//! are rewritten from the two keys. This module only decides the mapping and
//! owns the PAT ports. Bindings are endpoint-independent (RFC 4787 REQ-1):
//! one inside address and port keep one outside port whatever they talk to.

pub mod pool;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::config::{IfIndex, NatRule};
use crate::conntrack::KeyV4;
pub use pool::PortPool;

/// An inside endpoint, as the inside network sees it (Firezone's `Inside`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inside {
    pub proto: u8,
    pub addr: u32,
    pub port: u16,
    /// PAT address the binding uses.
    pub mapped: u32,
}

/// A dynamic PAT binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub port: u16,
    /// Connections using it; it is freed when the last one goes.
    pub refs: u32,
    pub inside_if: IfIndex,
    pub outside_if: IfIndex,
}

/// How a new flow is to be translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mapping {
    /// New destination (address, port), for static NAT and port forwards.
    pub dst: Option<(u32, u16)>,
    /// New source (address, port) from static NAT or a port forward's reverse.
    pub src_static: Option<(u32, u16)>,
    /// PAT address for the source.
    pub pat: Option<u32>,
}

pub struct Nat {
    rules: Vec<NatRule>,
    /// Interface addresses, for rules whose mapped address is the interface's.
    if_addr: Vec<u32>,
    bindings: HashMap<Inside, Binding, ahash::RandomState>,
    pools: HashMap<(u32, u8), PortPool, ahash::RandomState>,
}

impl Nat {
    pub fn new(rules: &[NatRule], if_addr: Vec<u32>, seed: [u64; 4]) -> Self {
        let hasher = || ahash::RandomState::with_seeds(seed[0], seed[1], seed[2], seed[3]);
        let mut nat = Nat {
            rules: Vec::new(),
            if_addr: Vec::new(),
            bindings: HashMap::with_hasher(hasher()),
            pools: HashMap::with_hasher(hasher()),
        };
        nat.set_rules(rules, if_addr);
        nat
    }

    /// Install new rules (reload). Live bindings stay; port forwards'
    /// mapped ports are kept out of PAT pools.
    pub fn set_rules(&mut self, rules: &[NatRule], if_addr: Vec<u32>) {
        self.rules = rules.to_vec();
        self.if_addr = if_addr;
        for r in &self.rules {
            if let NatRule::PortForward { outside, proto, mapped, mapped_port, .. } = *r {
                let addr = mapped.map(u32::from).unwrap_or(self.if_addr[outside.idx()]);
                self.pools.entry((addr, proto)).or_default().take(mapped_port);
            }
        }
    }

    fn pf_addr(&self, outside: IfIndex, mapped: Option<Ipv4Addr>) -> u32 {
        mapped.map(u32::from).unwrap_or(self.if_addr[outside.idx()])
    }

    /// Destination translation for a flow arriving on `ingress`.
    pub fn dnat(&self, ingress: IfIndex, k: &KeyV4) -> Option<(u32, u16)> {
        for r in &self.rules {
            match *r {
                NatRule::Static { outside, real, mapped, .. } if outside == ingress && u32::from(mapped) == k.dst => {
                    return Some((real.into(), k.dport));
                }
                NatRule::PortForward { outside, proto, mapped, mapped_port, real, real_port, .. }
                    if outside == ingress
                        && proto == k.proto
                        && mapped_port == k.dport
                        && self.pf_addr(outside, mapped) == k.dst =>
                {
                    return Some((real.into(), real_port));
                }
                _ => {}
            }
        }
        None
    }

    /// Source translation for a new flow from `ingress` to `egress`.
    pub fn snat(&self, ingress: IfIndex, egress: IfIndex, k: &KeyV4) -> Mapping {
        let mut m = Mapping::default();
        for r in &self.rules {
            match *r {
                NatRule::Static { inside, outside, real, mapped }
                    if inside == ingress && outside == egress && u32::from(real) == k.src =>
                {
                    m.src_static = Some((mapped.into(), k.sport));
                    return m;
                }
                NatRule::PortForward { inside, outside, proto, mapped, mapped_port, real, real_port }
                    if inside == ingress
                        && outside == egress
                        && proto == k.proto
                        && u32::from(real) == k.src
                        && real_port == k.sport =>
                {
                    m.src_static = Some((self.pf_addr(outside, mapped), mapped_port));
                    return m;
                }
                _ => {}
            }
        }
        for r in &self.rules {
            if let NatRule::DynamicPat { inside, outside, address } = *r {
                if inside == ingress && outside == egress {
                    m.pat = Some(address.map(u32::from).unwrap_or(self.if_addr[outside.idx()]));
                    return m;
                }
            }
        }
        m
    }

    /// Take (or share) the PAT binding for `who`; `start` randomises the
    /// port search. `None` when the address has no free port.
    pub fn bind(&mut self, who: Inside, inside_if: IfIndex, outside_if: IfIndex, start: u16) -> Option<u16> {
        if let Some(b) = self.bindings.get_mut(&who) {
            b.refs += 1;
            return Some(b.port);
        }
        let port = self.pools.entry((who.mapped, who.proto)).or_default().allocate(start)?;
        self.bindings.insert(who, Binding { port, refs: 1, inside_if, outside_if });
        Some(port)
    }

    /// Drop one reference to `who`'s binding; the port is free again when
    /// no connection uses it.
    pub fn unbind(&mut self, who: &Inside) {
        if let Some(b) = self.bindings.get_mut(who) {
            b.refs -= 1;
            if b.refs == 0 {
                let port = b.port;
                self.bindings.remove(who);
                if let Some(p) = self.pools.get_mut(&(who.mapped, who.proto)) {
                    p.release(port);
                }
            }
        }
    }

    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// Bindings sorted, for `show xlate`.
    pub fn bindings(&self) -> Vec<(Inside, Binding)> {
        let mut v: Vec<_> = self.bindings.iter().map(|(k, b)| (*k, *b)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    pub fn rules(&self) -> &[NatRule] {
        &self.rules
    }

    /// Outside addresses this appliance must answer ARP for on `iface`,
    /// beside the interface's own.
    pub fn proxy_arp_addrs(&self, iface: IfIndex) -> Vec<u32> {
        let own = self.if_addr[iface.idx()];
        let mut v = Vec::new();
        for r in &self.rules {
            let a = match *r {
                NatRule::Static { outside, mapped, .. } if outside == iface => Some(mapped.into()),
                NatRule::PortForward { outside, mapped: Some(m), .. } if outside == iface => Some(m.into()),
                NatRule::DynamicPat { outside, address: Some(a), .. } if outside == iface => Some(a.into()),
                _ => None,
            };
            if let Some(a) = a {
                if a != own && !v.contains(&a) {
                    v.push(a);
                }
            }
        }
        v
    }

    /// Bytes held by bindings and port maps.
    pub fn memory_bytes(&self) -> usize {
        self.bindings.capacity() * (std::mem::size_of::<(Inside, Binding)>() + 1)
            + self.pools.len() * std::mem::size_of::<[u64; 1024]>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u32 {
        s.parse::<Ipv4Addr>().unwrap().into()
    }

    fn nat() -> Nat {
        let rules = vec![
            NatRule::DynamicPat { inside: IfIndex(0), outside: IfIndex(1), address: None },
            NatRule::Static {
                inside: IfIndex(0),
                outside: IfIndex(1),
                real: "192.168.10.20".parse().unwrap(),
                mapped: "203.0.113.20".parse().unwrap(),
            },
            NatRule::PortForward {
                inside: IfIndex(2),
                outside: IfIndex(1),
                proto: 6,
                mapped: None,
                mapped_port: 8080,
                real: "172.16.20.10".parse().unwrap(),
                real_port: 80,
            },
        ];
        Nat::new(&rules, vec![ip("192.168.10.1"), ip("203.0.113.1"), ip("172.16.20.1")], [1; 4])
    }

    fn key(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> KeyV4 {
        KeyV4 { src: ip(src), dst: ip(dst), sport, dport, proto }
    }

    #[test]
    fn rules_choose_the_mapping() {
        let n = nat();
        let k = key("192.168.10.10", 5000, "8.8.8.8", 53, 17);
        assert_eq!(n.snat(IfIndex(0), IfIndex(1), &k).pat, Some(ip("203.0.113.1")));
        let k = key("192.168.10.20", 5000, "8.8.8.8", 53, 17);
        assert_eq!(n.snat(IfIndex(0), IfIndex(1), &k).src_static, Some((ip("203.0.113.20"), 5000)));
        let k = key("8.8.8.8", 5000, "203.0.113.1", 8080, 6);
        assert_eq!(n.dnat(IfIndex(1), &k), Some((ip("172.16.20.10"), 80)));
        let k = key("8.8.8.8", 5000, "203.0.113.1", 8080, 17);
        assert_eq!(n.dnat(IfIndex(1), &k), None);
        let k = key("8.8.8.8", 5000, "203.0.113.20", 22, 6);
        assert_eq!(n.dnat(IfIndex(1), &k), Some((ip("192.168.10.20"), 22)));
        // A port forward's server talking out from its service port keeps it.
        let k = key("172.16.20.10", 80, "8.8.8.8", 5000, 6);
        assert_eq!(n.snat(IfIndex(2), IfIndex(1), &k).src_static, Some((ip("203.0.113.1"), 8080)));
        assert_eq!(n.proxy_arp_addrs(IfIndex(1)), vec![ip("203.0.113.20")]);
    }

    #[test]
    fn bindings_are_shared_and_freed() {
        let mut n = nat();
        let who = Inside { proto: 6, addr: ip("192.168.10.10"), port: 5000, mapped: ip("203.0.113.1") };
        let p1 = n.bind(who, IfIndex(0), IfIndex(1), 7064).unwrap();
        assert_ne!(p1, 8080, "port-forward port is reserved");
        let p2 = n.bind(who, IfIndex(0), IfIndex(1), 999).unwrap();
        assert_eq!(p1, p2, "endpoint-independent mapping");
        n.unbind(&who);
        assert_eq!(n.binding_count(), 1);
        n.unbind(&who);
        assert_eq!(n.binding_count(), 0);
        let other = Inside { port: 5001, ..who };
        assert_eq!(n.bind(other, IfIndex(0), IfIndex(1), 7064), Some(p1), "port reused once free");
    }

    #[test]
    fn reserved_port_forward_port_is_never_allocated() {
        let mut n = nat();
        let start = 8080 - pool::FIRST_PORT;
        let who = Inside { proto: 6, addr: 1, port: 1, mapped: ip("203.0.113.1") };
        assert_ne!(n.bind(who, IfIndex(0), IfIndex(1), start), Some(8080));
    }
}
