//! Transparent mode: the appliance as a bridge with a firewall in it (ASA's
//! transparent firewall mode).
//!
//! Every port is in one bridge. A frame's source MAC is learned on its
//! port ([`MacTable`](crate::bridge::MacTable)); ARP passes by destination
//! MAC alone, flooded when broadcast or unknown, as on ASA; IPv4 goes
//! through the same pipeline as in routed mode (conntrack, ACLs and
//! security levels, with the egress port taken from the MAC table instead
//! of a route) and leaves unchanged: no NAT, no TTL decrement, no MAC
//! rewrite. Other ethertypes are dropped and counted. A new flow to a MAC
//! the table does not hold is dropped and its destination probed with ARP
//! (RFC 5227 style, sender 0.0.0.0: the bridge has no address), so that the
//! sender's retransmission passes; ASA does the same rather than flood a
//! flow it could not police per side.
//!
//! Failover: only the active unit passes frames (two bridges side by side
//! would be a loop). The MAC table replicates (kind 3) like the connection
//! table, and a new active sends the switch refresh ([`Appliance::mac_refresh`]).

use super::*;
use crate::bridge::Learn;
use crate::failover::mac_sync;
use crate::ha::wire::Op;

/// How often the MAC table is aged: its lifetimes have this resolution.
pub(super) const MAC_AGE_EVERY: Duration = Duration::from_secs(1);

impl Appliance {
    pub(super) fn bridged(&self) -> bool {
        self.cfg.mode == crate::config::Mode::Transparent
    }

    /// A frame on a port in transparent mode (failover hellos were taken
    /// out before).
    pub(super) fn bridge_input(&mut self, port: IfIndex, buf: FrameBuf, now: Instant) {
        if !self.forwarding() {
            // Both units hear every frame; only the active may pass one on.
            return self.drop_frame(port, buf, DropReason::Standby);
        }
        let f = buf.as_ref();
        let (mut src, mut dst) = (Mac::ZERO, Mac::ZERO);
        src.0.copy_from_slice(&f[ether::SRC]);
        dst.0.copy_from_slice(&f[ether::DST]);
        if !src.is_multicast() && src != Mac::ZERO {
            self.mac_learn(src, port, now);
        }
        let ours = dst == self.ports[port.idx()].mac;
        match be16(f, ether::TYPE) {
            // The answer to one of our probes: its sender is learned.
            ether::TYPE_ARP if ours => self.pool.put(buf),
            ether::TYPE_ARP => self.bridge_by_mac(port, buf, dst),
            ether::TYPE_IPV4 if ours => self.drop_frame(port, buf, DropReason::ToSelf),
            ether::TYPE_IPV4 if dst.is_multicast() => self.drop_frame(port, buf, DropReason::L3Broadcast),
            ether::TYPE_IPV4 => self.ip_input(port, buf, now),
            ether::TYPE_VLAN | ether::TYPE_QINQ => self.drop_frame(port, buf, DropReason::Vlan),
            ether::TYPE_IPV6 => self.drop_frame(port, buf, DropReason::Ipv6),
            _ => self.drop_frame(port, buf, DropReason::UnknownEthertype),
        }
    }

    /// Learn where `mac` is; a new station or a move replicates.
    fn mac_learn(&mut self, mac: Mac, port: IfIndex, now: Instant) {
        let op = match self.macs.learn(mac, port, now) {
            Learn::Refreshed => return,
            Learn::New => {
                self.counters.events.macs_learned += 1;
                Op::Insert
            }
            Learn::Moved { .. } => {
                self.counters.events.mac_moves += 1;
                Op::Update
            }
            Learn::Full => {
                self.counters.events.mac_table_full += 1;
                return;
            }
        };
        self.ha_mark(mac_sync::KIND, mac_sync::id_of(mac), op, now);
    }

    /// Pass a frame on by its destination MAC alone.
    fn bridge_by_mac(&mut self, port: IfIndex, buf: FrameBuf, dst: Mac) {
        let out = if dst.is_multicast() { None } else { self.macs.lookup(&dst) };
        match out {
            Some(out) if out == port => self.drop_frame(port, buf, DropReason::SameInterface),
            Some(out) => {
                self.counters.events.frames_forwarded += 1;
                self.emit(out, buf);
            }
            None => self.flood(port, buf),
        }
    }

    /// A copy out of every port but `port`.
    fn flood(&mut self, port: IfIndex, buf: FrameBuf) {
        self.counters.events.frames_flooded += 1;
        let mut others = (0..self.ports.len() as u8).map(IfIndex).filter(|&q| q != port).peekable();
        while let Some(q) = others.next() {
            if others.peek().is_none() {
                return self.emit(q, buf);
            }
            let mut copy = self.pool.get();
            copy.set(buf.as_ref());
            self.emit(q, copy);
        }
        self.pool.put(buf); // a bridge of one port
    }

    /// The port an IPv4 frame leaves by: where its destination MAC was
    /// heard, else (aged out while its connection lives) the side its
    /// connection came from.
    pub(super) fn bridge_egress(&self, buf: &FrameBuf, d: &PacketDesc) -> Option<IfIndex> {
        let mut dst = Mac::ZERO;
        dst.0.copy_from_slice(&buf.as_ref()[ether::DST]);
        self.macs.lookup(&dst).or_else(|| {
            let (slot, dir) = self.ct.lookup(&d.key)?;
            Some(self.ct.get(slot).iface[dir.other().idx()])
        })
    }

    /// A new flow's destination MAC is unknown: ask every other side who
    /// has its address (sender 0.0.0.0, as an RFC 5227 probe, which hosts
    /// answer). The answer comes to our port MAC and teaches the table.
    /// Probes share the ICMP error budget (`limits.icmp_rate`).
    pub(super) fn mac_probe(&mut self, port: IfIndex, ip: u32) {
        if !self.icmp_allowed(None) {
            return;
        }
        for q in 0..self.ports.len() {
            if q != port.idx() {
                let mac = self.ports[q].mac;
                let mut b = self.pool.get();
                emit::arp_packet(&mut b, arpw::REQUEST, Mac::BROADCAST, mac, 0, Mac::ZERO, ip);
                self.counters.events.arp_requests_sent += 1;
                self.emit(IfIndex(q as u8), b);
            }
        }
    }

    /// The switch refresh: for every station in the MAC table, a RARP
    /// broadcast with the station's MAC as its source out of every other
    /// port (what QEMU's announce-self and VMware's "notify switches" send
    /// for a moved VM). A switch beside the pair learned each station
    /// behind the old active's port and would keep sending there until its
    /// entry aged out (300 s by default), long after the unit died; the
    /// refresh moves every entry to the new active at once. Hosts ignore
    /// RARP. Only a forwarding unit may send it: a standby's copy would pull
    /// stations away from the active.
    pub(super) fn mac_refresh(&mut self) {
        if !self.forwarding() {
            return;
        }
        for (mac, e) in self.macs.entries() {
            for q in 0..self.ports.len() {
                if q != e.port.idx() {
                    let mut b = self.pool.get();
                    emit::rarp_announce(&mut b, mac);
                    self.counters.events.mac_refresh_sent += 1;
                    self.emit(IfIndex(q as u8), b);
                }
            }
        }
    }

    /// Age the MAC table (forwarding units only: a standby's copy lives
    /// until the active deletes it); agings replicate.
    pub(super) fn mac_age(&mut self, now: Instant) {
        self.next_mac_age = now + MAC_AGE_EVERY;
        let mut aged = std::mem::take(&mut self.aged_macs);
        self.macs.age(now, &mut aged);
        for mac in aged.drain(..) {
            self.counters.events.macs_aged += 1;
            self.ha_mark(mac_sync::KIND, mac_sync::id_of(mac), Op::Delete, now);
        }
        self.aged_macs = aged;
    }
}
