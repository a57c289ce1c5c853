//! The connection table as a replicated table (kind 1).
//!
//! A record names the connection by its keys, not by the sender's id: ids
//! are the sender's slot and generation (unique there, meaningless here),
//! used only to ask the sender for its copy. NAT bindings travel inside:
//! a connection's reply key *is* its binding.
//!
//! Record v1 (longer records from newer units are accepted, the rest
//! ignored):
//!
//! | bytes  | field                                            |
//! |--------|--------------------------------------------------|
//! | 0..13  | orig key: src, dst, sport, dport, proto          |
//! | 13..26 | reply key                                        |
//! | 26, 27 | ingress interface per direction                  |
//! | 28, 29 | state, flags (NAT kind)                          |
//! | 30..54 | TCP peers: seqlo, seqhi, max_win, wscale, state  |
//! | 54..62 | bytes                                            |
//! | 62..66 | remaining lifetime, ms (relative: clocks differ) |
//!
//! A delete record is the orig key alone.
//!
//! Merge rules (pfsync): TCP state, windows, UDP assurance and byte counts
//! never move backwards. Copies are marked `SYNCED` (no expiry while
//! standby; refreshed on takeover) and `LOOSE_*` (windows re-anchored by the
//! first segment after takeover).

use std::collections::HashMap;

use crate::config::{IfIndex, Timeouts};
use crate::conntrack::table::flags;
use crate::conntrack::tcp::{PeerState, TcpPeer};
use crate::conntrack::{Conn, ConnState, KeyV4, Table};
use crate::ha::table::{seq_max, Merge, ReplicatedTable};
use crate::ha::wire::Op;
use crate::time::{Duration, Instant};

pub const KIND: u16 = 1;
pub const RECORD_LEN: usize = 66;
const KEY_LEN: usize = 13;

/// Flags that describe the translation and travel with the record.
const NAT_FLAGS: u8 = flags::PAT | flags::SNAT | flags::DNAT;

pub struct ConnSync<'a> {
    pub ct: &'a mut Table<KeyV4>,
    /// Keys of connections removed here whose delete has not gone out yet.
    pub tombstones: &'a HashMap<u64, KeyV4>,
    pub timeouts: &'a Timeouts,
    pub now: Instant,
}

fn put_key(out: &mut Vec<u8>, k: &KeyV4) {
    out.extend_from_slice(&k.src.to_be_bytes());
    out.extend_from_slice(&k.dst.to_be_bytes());
    out.extend_from_slice(&k.sport.to_be_bytes());
    out.extend_from_slice(&k.dport.to_be_bytes());
    out.push(k.proto);
}

fn get_key(b: &[u8]) -> KeyV4 {
    KeyV4 {
        src: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        dst: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        sport: u16::from_be_bytes([b[8], b[9]]),
        dport: u16::from_be_bytes([b[10], b[11]]),
        proto: b[12],
    }
}

fn put_peer(out: &mut Vec<u8>, p: &TcpPeer) {
    out.extend_from_slice(&p.seqlo.to_be_bytes());
    out.extend_from_slice(&p.seqhi.to_be_bytes());
    out.extend_from_slice(&p.max_win.to_be_bytes());
    out.push(p.wscale);
    out.push(p.state as u8);
}

fn get_peer(b: &[u8]) -> TcpPeer {
    TcpPeer {
        seqlo: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        seqhi: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        max_win: u16::from_be_bytes([b[8], b[9]]),
        wscale: b[10],
        state: PeerState::from_u8(b[11]),
    }
}

fn state_from_u8(v: u8) -> Option<ConnState> {
    match v {
        1 => Some(ConnState::Unreplied),
        2 => Some(ConnState::Assured),
        3 => Some(ConnState::Tcp),
        _ => None,
    }
}

/// Encode `c` as a v1 record.
pub fn encode_conn(c: &Conn<KeyV4>, now: Instant, out: &mut Vec<u8>) {
    put_key(out, &c.key[0]);
    put_key(out, &c.key[1]);
    out.push(c.iface[0].0);
    out.push(c.iface[1].0);
    out.push(c.state as u8);
    out.push(c.flags & NAT_FLAGS);
    put_peer(out, &c.tcp[0]);
    put_peer(out, &c.tcp[1]);
    out.extend_from_slice(&c.bytes.to_be_bytes());
    let left = c.expires.saturating_since(now).as_millis().min(u32::MAX as u64) as u32;
    out.extend_from_slice(&left.to_be_bytes());
}

/// Decode a v1 record (extra trailing bytes ignored).
pub fn decode_conn(b: &[u8], now: Instant) -> Option<Conn<KeyV4>> {
    if b.len() < RECORD_LEN {
        return None;
    }
    let state = state_from_u8(b[28])?;
    let left = u32::from_be_bytes([b[62], b[63], b[64], b[65]]);
    Some(Conn {
        key: [get_key(&b[0..13]), get_key(&b[13..26])],
        iface: [IfIndex(b[26]), IfIndex(b[27])],
        state,
        flags: b[29] & NAT_FLAGS,
        tcp: [get_peer(&b[30..42]), get_peer(&b[42..54])],
        bytes: u64::from_be_bytes(b[54..62].try_into().ok()?),
        expires: now + Duration::from_millis(left as u64),
        gen: 0,
    })
}

/// Fold `theirs` into `ours` without moving anything backwards. Returns
/// whether anything changed.
pub fn merge_conn(ours: &mut Conn<KeyV4>, theirs: &Conn<KeyV4>) -> bool {
    let before = (ours.state, ours.tcp, ours.bytes);
    if ours.state == ConnState::Unreplied && theirs.state == ConnState::Assured {
        ours.state = ConnState::Assured;
    }
    if ours.state == ConnState::Tcp {
        for i in 0..2 {
            let (o, t) = (&mut ours.tcp[i], &theirs.tcp[i]);
            o.state = o.state.max(t.state);
            if t.state != PeerState::Closed {
                o.seqlo = seq_max(o.seqlo, t.seqlo);
                o.seqhi = seq_max(o.seqhi, t.seqhi);
            }
            o.max_win = o.max_win.max(t.max_win);
            if o.wscale == 0 {
                o.wscale = t.wscale;
            }
        }
    }
    ours.bytes = ours.bytes.max(theirs.bytes);
    ours.expires = ours.expires.max(theirs.expires);
    (ours.state, ours.tcp, ours.bytes) != before
}

impl ReplicatedTable for ConnSync<'_> {
    fn kind(&self) -> u16 {
        KIND
    }

    fn encode(&self, id: u64, out: &mut Vec<u8>) -> Option<u32> {
        let slot = self.ct.slot_of_id(id)?;
        encode_conn(self.ct.get(slot), self.now, out);
        Some(0)
    }

    fn encode_delete(&self, id: u64, out: &mut Vec<u8>) -> Option<u32> {
        put_key(out, self.tombstones.get(&id)?);
        Some(0)
    }

    fn merge(&mut self, op: Op, _id: u64, _version: u32, bytes: &[u8], now: Instant) -> Merge {
        match op {
            Op::Delete => {
                if bytes.len() < KEY_LEN {
                    return Merge::Malformed;
                }
                match self.ct.lookup(&get_key(bytes)) {
                    Some((slot, crate::conntrack::Dir::Orig)) => {
                        self.ct.remove(slot);
                        Merge::Applied
                    }
                    _ => Merge::StaleIgnored,
                }
            }
            Op::Insert | Op::Update => {
                let Some(mut theirs) = decode_conn(bytes, now) else { return Merge::Malformed };
                theirs.flags |= flags::SYNCED | flags::LOOSE_ORIG | flags::LOOSE_REPLY;
                match self.ct.lookup(&theirs.key[0]) {
                    Some((slot, crate::conntrack::Dir::Orig)) if self.ct.get(slot).key[1] == theirs.key[1] => {
                        let ours = self.ct.get_mut(slot);
                        ours.flags |= flags::SYNCED | flags::LOOSE_ORIG | flags::LOOSE_REPLY;
                        if merge_conn(ours, &theirs) {
                            Merge::Applied
                        } else {
                            Merge::StaleIgnored
                        }
                    }
                    found => {
                        // A different connection holds one of the keys: the
                        // peer's view wins (it is the active one).
                        if let Some((slot, _)) = found {
                            self.ct.remove(slot);
                        }
                        if let Some((slot, _)) = self.ct.lookup(&theirs.key[1]) {
                            self.ct.remove(slot);
                        }
                        match self.ct.insert(theirs) {
                            Ok(_) => Merge::Applied,
                            Err(_) => Merge::StaleIgnored,
                        }
                    }
                }
            }
            Op::Request => Merge::StaleIgnored,
        }
    }

    fn ids(&self, out: &mut Vec<u64>) {
        out.extend(self.ct.iter().map(|(slot, _)| self.ct.id_of(slot)));
    }
}

/// Expiry for a connection just adopted on takeover.
pub fn adopted_expiry(c: &Conn<KeyV4>, timeouts: &Timeouts, now: Instant) -> Instant {
    now + crate::conntrack::timeout_for(c, timeouts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::tcp;
    use crate::ha::table::apply_body;
    use crate::ha::wire::BodyWriter;
    use crate::pdesc::TcpInfo;

    fn tcp_conn(seq: u32) -> Conn<KeyV4> {
        let k = KeyV4 { src: 0xc0a80a0a, dst: 0xc6336450, sport: 40000, dport: 80, proto: 6 };
        let r = KeyV4 { src: 0xc6336450, dst: 0xcb007101, sport: 80, dport: 5555, proto: 6 };
        let syn = TcpInfo { seq, ack: 0, win: 64240, flags: crate::wire::tcp::SYN, payload: 0, wscale: Some(7) };
        Conn {
            key: [k, r],
            tcp: tcp::init_orig(&syn),
            state: ConnState::Tcp,
            flags: flags::PAT,
            iface: [IfIndex(0), IfIndex(1)],
            expires: Instant::from_millis(30_000),
            bytes: 60,
            gen: 0,
        }
    }

    #[test]
    fn record_round_trip() {
        let c = tcp_conn(1000);
        let mut b = vec![];
        encode_conn(&c, Instant::from_millis(10_000), &mut b);
        assert_eq!(b.len(), RECORD_LEN);
        b.extend_from_slice(&[9, 9, 9]); // a newer unit's extra field
        let d = decode_conn(&b, Instant::from_millis(50_000)).unwrap();
        assert_eq!(d.key, c.key);
        assert_eq!(d.tcp, c.tcp);
        assert_eq!(d.flags, flags::PAT);
        assert_eq!(d.expires, Instant::from_millis(70_000), "relative expiry re-based");
        assert!(decode_conn(&b[..20], Instant(0)).is_none());
    }

    #[test]
    fn merge_never_goes_backwards() {
        let mut ours = tcp_conn(1000);
        ours.tcp[0].state = PeerState::Established;
        ours.tcp[0].seqlo = 5000;
        ours.bytes = 900;
        let mut theirs = tcp_conn(1000);
        theirs.tcp[0].state = PeerState::SynSent;
        theirs.tcp[0].seqlo = 2000;
        theirs.bytes = 100;
        assert!(!merge_conn(&mut ours, &theirs));
        assert_eq!((ours.tcp[0].state, ours.tcp[0].seqlo, ours.bytes), (PeerState::Established, 5000, 900));
        theirs.tcp[0].state = PeerState::Closing;
        assert!(merge_conn(&mut ours, &theirs));
        assert_eq!(ours.tcp[0].state, PeerState::Closing);
    }

    #[test]
    fn apply_insert_update_delete_through_a_body() {
        let now = Instant::from_millis(1000);
        let tomb = HashMap::new();
        let t = Timeouts::default();
        let mut src = Table::new(100, [1; 4]);
        let slot = src.insert(tcp_conn(7)).unwrap();
        let id = src.id_of(slot);
        let mut body = vec![];
        {
            let s = ConnSync { ct: &mut src, tombstones: &tomb, timeouts: &t, now };
            let mut w = BodyWriter::new(&mut body, 1300);
            w.push_versioned(KIND, Op::Insert, id, |b| s.encode(id, b)).unwrap();
        }
        let mut dst = Table::new(100, [2; 4]);
        let mut rep = Default::default();
        {
            let mut s = ConnSync { ct: &mut dst, tombstones: &tomb, timeouts: &t, now };
            apply_body(&body, &mut [&mut s], now, &mut rep).unwrap();
        }
        assert_eq!(dst.len(), 1);
        let (s2, _) = dst.lookup(&tcp_conn(7).key[1]).unwrap();
        assert_ne!(dst.get(s2).flags & flags::SYNCED, 0);
        // Delete by key, from a tombstone after the entry is gone at the source.
        let key = src.remove(slot).key[0];
        let mut tomb2 = HashMap::new();
        tomb2.insert(id, key);
        let mut body = vec![];
        {
            let s = ConnSync { ct: &mut src, tombstones: &tomb2, timeouts: &t, now };
            let mut w = BodyWriter::new(&mut body, 1300);
            assert!(w.push_versioned(KIND, Op::Delete, id, |b| s.encode_delete(id, b)).unwrap());
        }
        {
            let mut s = ConnSync { ct: &mut dst, tombstones: &tomb, timeouts: &t, now };
            apply_body(&body, &mut [&mut s], now, &mut rep).unwrap();
        }
        assert!(dst.is_empty());
    }
}
