//! Transparent mode: the appliance as bridges with a firewall in them
//! (ASA's transparent firewall mode).
//!
//! Each bridge group is a bridge of its member ports; nothing passes
//! between groups. A frame's source MAC is learned on its port
//! ([`MacTable`](crate::bridge::MacTable)); ARP passes by destination MAC
//! alone, flooded within the group when broadcast or unknown, as on ASA;
//! other non-IP frames pass the same way if the group's ethertype and BPDU
//! policy lets them, else they are dropped and counted. IPv4 goes through
//! the routed mode's pipeline (conntrack, ACLs and security levels) with
//! the egress port taken from the MAC table instead of a route, and leaves
//! unchanged: no NAT, no TTL decrement, no MAC rewrite. The group's
//! management address answers ARP and ping like a routed interface's.
//!
//! A new IPv4 flow to a MAC the table does not hold is dropped and its
//! destination probed with ARP, so that the sender's retransmission passes,
//! as ASA does: flooding it instead would send one connection's first
//! packet to several sides, each with its own policy, before we know which
//! side it belongs to. ARP and permitted non-IP frames to unknown MACs are
//! flooded within the group.
//!
//! Failover: only the active unit passes frames (two bridges side by side
//! would be a loop; a standby answers only for its own management address).
//! The MAC table replicates (kind 3), connections carry their endpoints'
//! MACs, and a new active sends the switch refresh ([`Appliance::mac_refresh`]).

use std::collections::BTreeMap;

use super::*;
use crate::bridge::{L2Verdict, Learn};
use crate::failover::conn_sync::{endpoints_of, set_endpoints};
use crate::failover::mac_sync;
use crate::ha::wire::Op;

/// How often the MAC table is aged: its lifetimes have this resolution.
pub(super) const MAC_AGE_EVERY: Duration = Duration::from_secs(1);

fn mac_at(f: &[u8], r: core::ops::Range<usize>) -> Mac {
    let mut m = Mac::ZERO;
    m.0.copy_from_slice(&f[r]);
    m
}

impl Appliance {
    pub(super) fn bridged(&self) -> bool {
        self.cfg.mode == crate::config::Mode::Transparent
    }

    /// The ports of `port`'s bridge group other than `port`.
    fn group_peers(&self, port: IfIndex) -> impl Iterator<Item = IfIndex> + '_ {
        let g = self.port_group[port.idx()];
        (0..self.ports.len() as u8).map(IfIndex).filter(move |&q| q != port && self.port_group[q.idx()] == g)
    }

    /// A frame on a port in transparent mode (failover hellos were taken
    /// out before).
    pub(super) fn bridge_input(&mut self, port: IfIndex, buf: FrameBuf, now: Instant) {
        let f = buf.as_ref();
        let (src, dst) = (mac_at(f, ether::SRC), mac_at(f, ether::DST));
        let et = be16(f, ether::TYPE);
        let p = &self.ports[port.idx()];
        let ours = dst == p.mac;
        let arp_for_us = et == ether::TYPE_ARP
            && p.addr != 0
            && f.get(ether::HEADER_LEN..).is_some_and(|a| a.len() >= arpw::LEN && be32(a, arpw::TPA) == p.addr);
        if !self.forwarding() {
            // Both units hear every frame; only the active may pass one on.
            return match et {
                ether::TYPE_ARP if ours || arp_for_us => self.arp_input(port, buf, now),
                ether::TYPE_IPV4 if ours => self.bridge_local(port, buf),
                _ => self.drop_frame(port, buf, DropReason::Standby),
            };
        }
        if !src.is_multicast() && src != Mac::ZERO {
            if let Some(r) = self.mac_learn(port, src, now) {
                return self.drop_frame(port, buf, r);
            }
        }
        match et {
            // For the management address, or the answer to one of our probes.
            ether::TYPE_ARP if ours || arp_for_us => self.arp_input(port, buf, now),
            ether::TYPE_ARP => self.bridge_by_mac(port, buf, dst),
            ether::TYPE_IPV4 if ours => self.bridge_local(port, buf),
            ether::TYPE_IPV4 if dst.is_multicast() => self.bridge_ip_flood(port, buf),
            ether::TYPE_IPV4 => self.ip_input(port, buf, now),
            _ => {
                let g = &self.cfg.bridge_groups[self.port_group[port.idx()] as usize];
                let reason = match crate::bridge::l2_policy(g, &dst, et) {
                    L2Verdict::Pass => return self.bridge_by_mac(port, buf, dst),
                    L2Verdict::DropBpdu => DropReason::Bpdu,
                    L2Verdict::DropEthertype => match et {
                        ether::TYPE_VLAN | ether::TYPE_QINQ => DropReason::Vlan,
                        ether::TYPE_IPV6 => DropReason::Ipv6,
                        _ => DropReason::UnknownEthertype,
                    },
                };
                self.drop_frame(port, buf, reason)
            }
        }
    }

    /// IPv4 to our own MAC: the management address answers ping; the
    /// rest has no service here.
    fn bridge_local(&mut self, port: IfIndex, buf: FrameBuf) {
        match pdesc::parse(buf.as_ref(), ether::HEADER_LEN) {
            Ok(d) if self.is_ours(d.key.dst) && !d.is_fragment() => self.local_input(port, buf, d),
            Ok(_) => self.drop_frame(port, buf, DropReason::ToSelf),
            Err(r) => self.drop_frame(port, buf, r),
        }
    }

    /// Learn where `mac` is; a new station or a move replicates. Returns
    /// why the frame must be dropped, if it must.
    fn mac_learn(&mut self, port: IfIndex, mac: Mac, now: Instant) -> Option<DropReason> {
        let g = self.port_group[port.idx()];
        let op = match self.macs.learn(g, mac, port, now) {
            Learn::Refreshed => return None,
            Learn::New => {
                self.counters.events.macs_learned += 1;
                Op::Insert
            }
            Learn::Moved { .. } => {
                self.counters.events.mac_moves += 1;
                Op::Update
            }
            Learn::Full => return Some(DropReason::MacTableFull),
            Learn::StaticElsewhere => return Some(DropReason::MacStaticConflict),
        };
        self.ha_mark(mac_sync::KIND, mac_sync::id_of(g, mac), op, now);
        None
    }

    /// Pass a frame on by its destination MAC alone.
    fn bridge_by_mac(&mut self, port: IfIndex, buf: FrameBuf, dst: Mac) {
        let g = self.port_group[port.idx()];
        let out = if dst.is_multicast() { None } else { self.macs.lookup(g, &dst) };
        match out {
            Some(out) if out == port => self.drop_frame(port, buf, DropReason::SameInterface),
            Some(out) => {
                self.counters.events.frames_forwarded += 1;
                self.emit(out, buf);
            }
            None => self.flood(port, buf),
        }
    }

    /// IPv4 broadcast or multicast (DHCP, VRRP, OSPF, mDNS): no connection,
    /// but each copy needs the ingress policy's permit towards its egress
    /// port (an ACL, else the security levels), as ASA's transparent mode
    /// needs an access rule for DHCP from the outside.
    fn bridge_ip_flood(&mut self, port: IfIndex, buf: FrameBuf) {
        let d = match pdesc::parse(buf.as_ref(), ether::HEADER_LEN) {
            Ok(d) => d,
            Err(r) => return self.drop_frame(port, buf, r),
        };
        let group = self.port_group[port.idx()];
        let mut refused = DropReason::SecurityLevel;
        let mut sent = 0;
        for q in (0..self.ports.len()).map(|q| IfIndex(q as u8)) {
            if q == port || self.port_group[q.idx()] != group {
                continue;
            }
            match crate::acl::decide(&self.cfg, &mut self.acl_hits, port, q, &d.key, d.icmp_type) {
                crate::acl::Decision::Permit => {
                    let mut copy = self.pool.get();
                    copy.set(buf.as_ref());
                    self.emit(q, copy);
                    sent += 1;
                }
                crate::acl::Decision::SecurityLevel => {}
                _ => refused = DropReason::AclDeny,
            }
        }
        if sent == 0 {
            return self.drop_frame(port, buf, refused);
        }
        self.counters.events.frames_flooded += 1;
        self.pool.put(buf);
    }

    /// A copy out of every other port of `port`'s bridge group.
    fn flood(&mut self, port: IfIndex, buf: FrameBuf) {
        self.counters.events.frames_flooded += 1;
        let Some(last) = self.group_peers(port).last() else {
            return self.pool.put(buf);
        };
        for q in 0..last.0 {
            let q = IfIndex(q);
            if q != port && self.port_group[q.idx()] == self.port_group[port.idx()] {
                let mut copy = self.pool.get();
                copy.set(buf.as_ref());
                self.emit(q, copy);
            }
        }
        self.emit(last, buf);
    }

    /// The port an IPv4 frame leaves by: where its destination MAC was
    /// heard in the ingress port's group, else (aged out while its
    /// connection lives) the side its connection came from.
    pub(super) fn bridge_egress(&self, port: IfIndex, buf: &FrameBuf, d: &PacketDesc) -> Option<IfIndex> {
        let dst = mac_at(buf.as_ref(), ether::DST);
        self.macs.lookup(self.port_group[port.idx()], &dst).or_else(|| {
            let (slot, dir) = self.ct.lookup(&d.key)?;
            Some(self.ct.get(slot).iface[dir.other().idx()])
        })
    }

    /// Remember a new connection's endpoints: the switch refresh needs them
    /// after their MAC table entries are gone.
    pub(super) fn note_endpoints(&mut self, slot: u32, frame: &FrameBuf) {
        let f = frame.as_ref();
        set_endpoints(&mut self.endpoints, slot, [mac_at(f, ether::SRC), mac_at(f, ether::DST)]);
    }

    /// A new flow's destination MAC is unknown: ask the group's other sides
    /// who has its address (from the management address, else from
    /// 0.0.0.0 as an RFC 5227 probe, which hosts answer too). The answer
    /// comes to our port MAC and teaches the table. Probes share the ICMP
    /// error budget (`limits.icmp_rate`).
    pub(super) fn mac_probe(&mut self, port: IfIndex, ip: u32) {
        if !self.icmp_allowed(None) {
            return;
        }
        let others: Vec<IfIndex> = self.group_peers(port).collect();
        for q in others {
            let (mac, addr) = (self.ports[q.idx()].mac, self.ports[q.idx()].addr);
            let mut b = self.pool.get();
            emit::arp_packet(&mut b, arpw::REQUEST, Mac::BROADCAST, mac, addr, Mac::ZERO, ip);
            self.counters.events.arp_requests_sent += 1;
            self.emit(q, b);
        }
    }

    /// The switch refresh, for every station we know of: those in the MAC
    /// table and both endpoints of every live connection (whose table entry
    /// may have aged out while the connection lives on; a switch beside
    /// the pair still holds it behind the old active). Each gets one RARP
    /// broadcast with its MAC as the source out of every other port of its
    /// group, which is what QEMU's announce-self and VMware's "notify
    /// switches" send for a moved VM: every switch on those segments then
    /// reaches the station through us, at once rather than when its entry
    /// ages out (300 s by default). Hosts ignore RARP. Only a forwarding
    /// unit may send it: a standby's would pull stations away from the
    /// active. Returns the frames sent.
    pub(super) fn mac_refresh(&mut self) -> u64 {
        if !self.forwarding() {
            return 0;
        }
        let mut at: BTreeMap<(Group, Mac), IfIndex> = BTreeMap::new();
        for (slot, c) in self.ct.iter() {
            if let Some(m) = endpoints_of(&self.endpoints, slot) {
                for (mac, port) in m.into_iter().zip(c.iface) {
                    at.insert((self.port_group[port.idx()], mac), port);
                }
            }
        }
        // The table's entries are as fresh as the connections' or fresher.
        for (key, e) in self.macs.entries() {
            at.insert(key, e.port);
        }
        let mut sent = 0;
        for ((_, mac), port) in at {
            if mac.is_multicast() || mac == Mac::ZERO {
                continue;
            }
            let others: Vec<IfIndex> = self.group_peers(port).collect();
            for q in others {
                let mut b = self.pool.get();
                emit::rarp_announce(&mut b, mac);
                self.emit(q, b);
                sent += 1;
            }
        }
        self.counters.events.mac_refresh_sent += sent;
        sent
    }

    /// Age the MAC table (forwarding units only: a standby's copy lives
    /// until the active deletes it); agings replicate.
    pub(super) fn mac_age(&mut self, now: Instant) {
        self.next_mac_age = now + MAC_AGE_EVERY;
        let mut aged = std::mem::take(&mut self.aged_macs);
        self.macs.age(now, &mut aged);
        for (g, mac) in aged.drain(..) {
            self.counters.events.macs_aged += 1;
            self.ha_mark(mac_sync::KIND, mac_sync::id_of(g, mac), Op::Delete, now);
        }
        self.aged_macs = aged;
    }
}
