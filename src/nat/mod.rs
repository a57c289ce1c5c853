//! NAT: which rule applies to a new flow, and which PAT port it gets.
//!
//! A flow is translated once, when its connection is created: the
//! connection's reply key then *is* the binding, one for both directions,
//! and packets are rewritten from the connection's two keys. So PAT needs no
//! table of its own (which keeps a connection near 100 bytes): a port is
//! free for a flow exactly when no live connection already has the reply
//! key the flow would get, as in Linux's `nf_nat_used_tuple`. Ports return
//! to use as soon as the connection holding them ends. Ports that port
//! forwards publish are never handed out.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::config::{IfIndex, NatRule};
use crate::conntrack::KeyV4;

/// PAT ports come from the ephemeral range (RFC 6056).
pub const FIRST_PORT: u16 = 1024;
/// Random probes before a PAT allocation gives up.
pub const MAX_PROBES: u32 = 512;

/// How a new flow is to be translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mapping {
    /// New source (address, port) from static NAT or a port forward's reverse.
    pub src_static: Option<(u32, u16)>,
    /// PAT address for the source.
    pub pat: Option<u32>,
}

pub struct Nat {
    rules: Vec<NatRule>,
    /// Interface addresses, for rules whose mapped address is the interface's.
    if_addr: Vec<u32>,
    /// (address, proto, port) published by port forwards.
    reserved: HashSet<(u32, u8, u16)>,
}

impl Nat {
    pub fn new(rules: &[NatRule], if_addr: Vec<u32>) -> Self {
        let mut nat = Nat { rules: Vec::new(), if_addr: Vec::new(), reserved: HashSet::new() };
        nat.set_rules(rules, if_addr);
        nat
    }

    /// Install new rules (reload). Live connections keep their translation.
    pub fn set_rules(&mut self, rules: &[NatRule], if_addr: Vec<u32>) {
        self.rules = rules.to_vec();
        self.if_addr = if_addr;
        self.reserved.clear();
        for r in &self.rules {
            if let NatRule::PortForward { outside, proto, mapped, mapped_port, .. } = *r {
                let addr = mapped.map(u32::from).unwrap_or(self.if_addr[outside.idx()]);
                self.reserved.insert((addr, proto, mapped_port));
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

    /// Pick a PAT port on `mapped` for the flow `post` (already translated
    /// but for its source port). `in_use(reply_key)` says whether a live
    /// connection holds that reply key. `start` randomises the search
    /// (RFC 6056 algorithm 1: a random start, then the next ports) so ports cannot be predicted.
    pub fn pat_port(&self, post: &KeyV4, mapped: u32, start: u32, in_use: impl Fn(&KeyV4) -> bool) -> Option<u16> {
        let span = 65536 - FIRST_PORT as u32;
        for i in 0..MAX_PROBES {
            let port = (FIRST_PORT as u32 + start.wrapping_add(i) % span) as u16;
            if self.reserved.contains(&(mapped, post.proto, port)) {
                continue;
            }
            let reply = KeyV4 { src: post.dst, dst: mapped, sport: post.dport, dport: port, proto: post.proto };
            if !in_use(&reply) {
                return Some(port);
            }
        }
        None
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
        Nat::new(&rules, vec![ip("192.168.10.1"), ip("203.0.113.1"), ip("172.16.20.1")])
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
    fn pat_ports_avoid_live_reply_keys_and_reserved_ports() {
        let n = nat();
        let post = key("203.0.113.1", 0, "8.8.8.8", 53, 17);
        let mapped = ip("203.0.113.1");
        let p = n.pat_port(&post, mapped, 5000, |_| false).unwrap();
        assert_eq!(p, FIRST_PORT + 5000);
        // The first candidate's reply key is taken: the next port is used.
        let taken = KeyV4 { src: post.dst, dst: mapped, sport: 53, dport: p, proto: 17 };
        assert_eq!(n.pat_port(&post, mapped, 5000, |k| *k == taken), Some(p + 1));
        // Exhausted toward this destination.
        assert_eq!(n.pat_port(&post, mapped, 5000, |_| true), None);
        // A port forward's published port is skipped (TCP 8080 on .1).
        let post = key("203.0.113.1", 0, "8.8.8.8", 80, 6);
        assert_eq!(n.pat_port(&post, mapped, 8080 - FIRST_PORT as u32, |_| false), Some(8081));
    }
}
