//! The connection table as a replicated table (kind 1).
//!
//! A record names the connection by its keys, not by the sender's id: ids
//! are the sender's slot and generation (unique there, meaningless here),
//! used only to ask the sender for its copy. NAT bindings travel inside:
//! a connection's reply key *is* its binding.
//!
//! Record v1, compact because every new flow costs one (longer records
//! from newer units are accepted, the rest ignored):
//!
//! | bytes    | field                                                        |
//! |----------|--------------------------------------------------------------|
//! | 13       | orig key: src, dst, sport, dport, proto                      |
//! | 1        | shape: which translations and TCP peers follow, NAT kind     |
//! | 0 or 6   | source as the responder sees it (address, port), if translated |
//! | 0 or 6   | destination as the initiator addressed it... real (address, port), if translated |
//! | 1        | state                                                        |
//! | 0, 8, 16 | TCP peers present: seqlo, max_win, wscale, state             |
//! | 1-10     | bytes, LEB128                                                |
//! | 1-5      | remaining lifetime in ms, LEB128 (relative: clocks differ)   |
//! | any      | typed tail: `{type, len, value}` items; unknown types skipped |
//!
//! The reply key follows from the orig key and the translations; the
//! interfaces follow from the routing table both units share; `seqhi` is
//! rebuilt from `seqlo` and the window. A PAT'd UDP flow takes about 30
//! bytes, an established PAT'd TCP flow about 50.
//!
//! Tail item [`TAIL_PATH`]: the ingress and egress interface (2 bytes),
//! then, in transparent mode, the two endpoints' MACs (initiator's, then
//! responder's: 12 bytes). It goes where routing cannot give the
//! interfaces (transparent mode has no routes; a routed flow that arrived
//! against its route) and wherever endpoint MACs are known, so that a new
//! active can refresh the switches for every endpoint of every connection
//! even after its MAC table entry aged out. Units from before the tail
//! ignore it (a longer record), and a truncated tail is ignored too.
//!
//! A delete record is the orig key alone.
//!
//! Merge rules (pfsync): TCP state, windows, UDP assurance and byte counts
//! never move backwards. Copies are marked `SYNCED` (no expiry while
//! standby; refreshed on takeover) and `LOOSE_*` (windows re-anchored by the
//! first segment after takeover).

use std::collections::HashMap;

use crate::config::{IfIndex, Mac, Timeouts};
use crate::conntrack::table::flags;
use crate::conntrack::tcp::{PeerState, TcpPeer};
use crate::conntrack::{Conn, ConnState, KeyV4, Table};
use crate::ha::table::{seq_max, Merge, ReplicatedTable};
use crate::ha::wire::Op;
use crate::route::RouteTable;
use crate::time::{Duration, Instant};

pub const KIND: u16 = 1;
/// Tail item: interfaces, and endpoint MACs in transparent mode.
pub const TAIL_PATH: u8 = 1;

/// Each endpoint's MAC, by slot (transparent mode; empty in routed mode):
/// `[initiator, responder]` as the connection's first frame carried them.
pub type Endpoints = Vec<[Mac; 2]>;

/// The endpoints of the connection in `slot`, if known.
pub fn endpoints_of(e: &Endpoints, slot: u32) -> Option<[Mac; 2]> {
    e.get(slot as usize).copied().filter(|m| m[0] != Mac::ZERO)
}

pub fn set_endpoints(e: &mut Endpoints, slot: u32, macs: [Mac; 2]) {
    let i = slot as usize;
    if e.len() <= i {
        e.resize(i + 1, [Mac::ZERO; 2]);
    }
    e[i] = macs;
}
const KEY_LEN: usize = 13;

/// Flags that describe the translation and travel with the record.
const NAT_FLAGS: u8 = flags::PAT | flags::SNAT | flags::DNAT;

mod shape {
    pub const SRC_XLAT: u8 = 0x01;
    pub const DST_XLAT: u8 = 0x02;
    pub const TCP0: u8 = 0x04;
    pub const TCP1: u8 = 0x08;
    /// Bits 4..6 carry the connection's NAT flags (PAT, SNAT, DNAT).
    pub const NAT_SHIFT: u8 = 4;
}

pub struct ConnSync<'a> {
    pub ct: &'a mut Table<KeyV4>,
    /// Keys of connections removed here whose delete has not gone out yet.
    pub tombstones: &'a HashMap<u64, KeyV4>,
    /// Both units route alike: a record's interfaces are looked up here
    /// unless it carries them.
    pub routes: &'a RouteTable,
    /// Interfaces this unit has: a record naming another is malformed.
    pub ports: usize,
    pub endpoints: &'a mut Endpoints,
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

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A reader over a record that fails softly (None) on truncation.
struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn endpoint(&mut self) -> Option<(u32, u16)> {
        let b = self.take(6)?;
        Some((u32::from_be_bytes([b[0], b[1], b[2], b[3]]), u16::from_be_bytes([b[4], b[5]])))
    }
    fn peer(&mut self) -> Option<TcpPeer> {
        let b = self.take(8)?;
        let seqlo = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let max_win = u16::from_be_bytes([b[4], b[5]]);
        let wscale = b[6];
        let scaled = (max_win as u32) << (wscale & 0x0f).min(14);
        Some(TcpPeer {
            seqlo,
            seqhi: seqlo.wrapping_add(scaled.max(1)),
            max_win,
            wscale,
            state: PeerState::from_u8(b[7]),
        })
    }
}

fn put_peer(out: &mut Vec<u8>, p: &TcpPeer) {
    out.extend_from_slice(&p.seqlo.to_be_bytes());
    out.extend_from_slice(&p.max_win.to_be_bytes());
    out.push(p.wscale);
    out.push(p.state as u8);
}

fn state_from_u8(v: u8) -> Option<ConnState> {
    match v {
        1 => Some(ConnState::Unreplied),
        2 => Some(ConnState::Assured),
        3 => Some(ConnState::Tcp),
        _ => None,
    }
}

/// Encode `c` as a record; its interfaces go along unless `routes` gives
/// them, with the endpoints' MACs if known.
pub fn encode_conn(c: &Conn<KeyV4>, now: Instant, routes: &RouteTable, macs: Option<[Mac; 2]>, out: &mut Vec<u8>) {
    let (o, r) = (c.key[0], c.key[1]);
    let routed = routes.lookup(o.src).map(|h| h.iface) == Some(c.iface[0])
        && routes.lookup(r.src).map(|h| h.iface) == Some(c.iface[1]);
    put_key(out, &o);
    // The reply key as the untranslated flow would have it.
    let src_x = (r.dst, r.dport) != (o.src, o.sport);
    let dst_x = (r.src, r.sport) != (o.dst, o.dport);
    let tcp = c.state == ConnState::Tcp;
    let mut sh = ((c.flags & NAT_FLAGS) << shape::NAT_SHIFT) | src_x as u8 | (dst_x as u8) << 1;
    if tcp {
        sh |= shape::TCP0;
        if c.tcp[1].state != PeerState::Closed {
            sh |= shape::TCP1;
        }
    }
    out.push(sh);
    if src_x {
        out.extend_from_slice(&r.dst.to_be_bytes());
        out.extend_from_slice(&r.dport.to_be_bytes());
    }
    if dst_x {
        out.extend_from_slice(&r.src.to_be_bytes());
        out.extend_from_slice(&r.sport.to_be_bytes());
    }
    out.push(c.state as u8);
    if tcp {
        put_peer(out, &c.tcp[0]);
        if sh & shape::TCP1 != 0 {
            put_peer(out, &c.tcp[1]);
        }
    }
    put_varint(out, c.bytes);
    put_varint(out, c.expires.saturating_since(now).as_millis());
    if !routed || macs.is_some() {
        out.push(TAIL_PATH);
        out.push(if macs.is_some() { 14 } else { 2 });
        out.extend_from_slice(&[c.iface[0].0, c.iface[1].0]);
        for m in macs.iter().flatten() {
            out.extend_from_slice(&m.0);
        }
    }
}

/// A decoded record: the connection, and its endpoints' MACs if it carried them.
pub struct Decoded {
    pub conn: Conn<KeyV4>,
    pub macs: Option<[Mac; 2]>,
}

/// Decode a record; the interfaces come from the record or from `routes`.
pub fn decode_conn(b: &[u8], now: Instant, routes: &RouteTable, ports: usize) -> Option<Decoded> {
    let mut rd = Rd(b);
    let o = get_key(rd.take(KEY_LEN)?);
    let sh = rd.u8()?;
    let (mapped_a, mapped_p) = if sh & shape::SRC_XLAT != 0 { rd.endpoint()? } else { (o.src, o.sport) };
    let (real_a, real_p) = if sh & shape::DST_XLAT != 0 { rd.endpoint()? } else { (o.dst, o.dport) };
    let r = KeyV4 { src: real_a, dst: mapped_a, sport: real_p, dport: mapped_p, proto: o.proto };
    let state = state_from_u8(rd.u8()?)?;
    let mut tcp = [TcpPeer::default(); 2];
    if sh & shape::TCP0 != 0 {
        tcp[0] = rd.peer()?;
        tcp[1] =
            if sh & shape::TCP1 != 0 { rd.peer()? } else { TcpPeer { seqhi: 1, max_win: 1, ..Default::default() } };
    }
    let bytes = rd.varint()?;
    let left = rd.varint()?;
    let (mut ifaces, mut macs) = (None, None);
    // The tail: items we know, skipping the others; a cut item ends it.
    while let (Some(ty), Some(len)) = (rd.u8(), rd.u8()) {
        let Some(v) = rd.take(len as usize) else { break };
        if ty == TAIL_PATH && v.len() >= 2 {
            if v[0] as usize >= ports || v[1] as usize >= ports {
                return None;
            }
            ifaces = Some((IfIndex(v[0]), IfIndex(v[1])));
            if let Some(m) = v.get(2..14) {
                let (mut a, mut b) = (Mac::ZERO, Mac::ZERO);
                a.0.copy_from_slice(&m[..6]);
                b.0.copy_from_slice(&m[6..]);
                macs = Some([a, b]);
            }
        }
    }
    let (in_if, out_if) = match ifaces {
        Some(i) => i,
        None => (routes.lookup(o.src)?.iface, routes.lookup(r.src)?.iface),
    };
    let conn = Conn {
        key: [o, r],
        iface: [in_if, out_if],
        state,
        flags: (sh >> shape::NAT_SHIFT) & NAT_FLAGS,
        tcp,
        bytes,
        expires: now + Duration::from_millis(left.min(u32::MAX as u64)),
        gen: 0,
    };
    Some(Decoded { conn, macs })
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
        encode_conn(self.ct.get(slot), self.now, self.routes, endpoints_of(self.endpoints, slot), out);
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
                let Some(Decoded { conn: mut theirs, macs }) = decode_conn(bytes, now, self.routes, self.ports) else {
                    return Merge::Malformed;
                };
                theirs.flags |= flags::SYNCED | flags::LOOSE_ORIG | flags::LOOSE_REPLY | flags::REPLICATED;
                match self.ct.lookup(&theirs.key[0]) {
                    Some((slot, crate::conntrack::Dir::Orig)) if self.ct.get(slot).key[1] == theirs.key[1] => {
                        if let Some(m) = macs {
                            set_endpoints(self.endpoints, slot, m);
                        }
                        let ours = self.ct.get_mut(slot);
                        ours.flags |= flags::SYNCED | flags::LOOSE_ORIG | flags::LOOSE_REPLY | flags::REPLICATED;
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
                            Ok(slot) => {
                                // A reused slot must not keep its last tenant's MACs.
                                set_endpoints(self.endpoints, slot, macs.unwrap_or([Mac::ZERO; 2]));
                                Merge::Applied
                            }
                            Err(_) => Merge::StaleIgnored,
                        }
                    }
                }
            }
            Op::Request => Merge::StaleIgnored,
        }
    }

    /// What a bulk sync sends: what the live stream would have sent, so
    /// that every delete the peer will see has a matching insert.
    fn ids(&self, out: &mut Vec<u64>) {
        out.extend(
            self.ct.iter().filter(|(_, c)| c.flags & flags::REPLICATED != 0).map(|(slot, _)| self.ct.id_of(slot)),
        );
    }
}

/// Expiry for a connection just adopted on takeover.
pub fn adopted_expiry(c: &Conn<KeyV4>, timeouts: &Timeouts, now: Instant) -> Instant {
    now + crate::conntrack::timeout_for(c, timeouts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IfIndex;
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
            iface: [crate::config::IfIndex(0), crate::config::IfIndex(1)],
            expires: Instant::from_millis(30_000),
            bytes: 60,
            gen: 0,
        }
    }

    fn routes() -> RouteTable {
        RouteTable::from_config(&crate::testkit::lab_config())
    }

    #[test]
    fn record_round_trip() {
        let mut c = tcp_conn(1000);
        c.tcp[1] = TcpPeer { seqlo: 5000, seqhi: 5000 + 65535, max_win: 65535, wscale: 0, state: PeerState::SynSent };
        let mut b = vec![];
        encode_conn(&c, Instant::from_millis(10_000), &routes(), None, &mut b);
        assert!(b.len() <= 13 + 1 + 6 + 1 + 16 + 2 + 3, "{} bytes", b.len());
        b.extend_from_slice(&[9, 9, 9]); // a newer unit's extra field
        let d = decode_conn(&b, Instant::from_millis(50_000), &routes(), 3).unwrap().conn;
        assert_eq!(d.key, c.key);
        assert_eq!(
            (d.tcp[0].seqlo, d.tcp[0].state, d.tcp[0].wscale),
            (c.tcp[0].seqlo, c.tcp[0].state, c.tcp[0].wscale)
        );
        assert_eq!(d.tcp[1].state, PeerState::SynSent);
        assert_eq!(d.flags, flags::PAT);
        assert_eq!(d.iface, [IfIndex(0), IfIndex(1)], "interfaces from the routing table");
        assert_eq!(d.expires, Instant::from_millis(70_000), "relative expiry re-based");
        for cut in 0..b.len() - 3 {
            assert!(decode_conn(&b[..cut], Instant(0), &routes(), 3).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn udp_pat_record_is_small_and_dnat_round_trips() {
        let k = KeyV4 { src: 0xc0a80a0a, dst: 0xc6336450, sport: 40000, dport: 53, proto: 17 };
        let r = KeyV4 { src: 0xc6336450, dst: 0xcb007101, sport: 53, dport: 5555, proto: 17 };
        let c = Conn {
            key: [k, r],
            state: ConnState::Assured,
            flags: flags::PAT,
            iface: [IfIndex(0), IfIndex(1)],
            ..Default::default()
        };
        let mut b = vec![];
        encode_conn(&c, Instant(0), &routes(), None, &mut b);
        assert!(b.len() <= 24, "{} bytes", b.len());
        assert_eq!(decode_conn(&b, Instant(0), &routes(), 3).unwrap().conn.key, c.key);
        // Port forward: the destination is translated, the source is not.
        let k = KeyV4 { src: 0x08080808, dst: 0xcb007101, sport: 3333, dport: 8080, proto: 6 };
        let r = KeyV4 { src: 0xac10140a, dst: 0x08080808, sport: 80, dport: 3333, proto: 6 };
        let mut c = tcp_conn(1);
        c.key = [k, r];
        c.flags = flags::DNAT;
        c.iface = [IfIndex(1), IfIndex(2)];
        let mut b = vec![];
        encode_conn(&c, Instant(0), &routes(), None, &mut b);
        let d = decode_conn(&b, Instant(0), &routes(), 3).unwrap().conn;
        assert_eq!((d.key, d.flags, d.iface), (c.key, flags::DNAT, [IfIndex(1), IfIndex(2)]));
    }

    #[test]
    fn interfaces_travel_when_routing_cannot_give_them() {
        let c = tcp_conn(1000);
        let mut routed = vec![];
        encode_conn(&c, Instant(0), &routes(), None, &mut routed);
        // Transparent mode: no routes at all, and endpoint MACs.
        let none = RouteTable::default();
        let macs = [Mac([2, 0, 0, 0, 1, 10]), Mac([2, 0, 0, 0, 2, 254])];
        let mut b = vec![];
        encode_conn(&c, Instant(0), &none, Some(macs), &mut b);
        assert_eq!(b.len(), routed.len() + 2 + 14);
        let d = decode_conn(&b, Instant(0), &none, 2).unwrap();
        assert_eq!((d.conn.iface, d.macs), (c.iface, Some(macs)));
        assert!(decode_conn(&b, Instant(0), &none, 1).is_none(), "interface 1 does not exist here");
        assert!(decode_conn(&routed, Instant(0), &none, 2).is_none(), "no route, no interfaces");
        // An older unit reads the same record up to the tail and stops there;
        // a newer unit's unknown item, and a cut one, are skipped.
        let mut newer = b.clone();
        newer.splice(routed.len()..routed.len(), [7, 3, 1, 2, 3]);
        newer.extend_from_slice(&[1, 14, 0]);
        let d = decode_conn(&newer, Instant(0), &none, 2).unwrap();
        assert_eq!((d.conn.key, d.macs), (c.key, Some(macs)));
        // A routed flow that arrived against its route keeps its interfaces.
        let mut odd = c;
        odd.iface = [IfIndex(2), IfIndex(1)];
        let mut b = vec![];
        encode_conn(&odd, Instant(0), &routes(), None, &mut b);
        assert_eq!(decode_conn(&b, Instant(0), &routes(), 3).unwrap().conn.iface, odd.iface);
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
        let t = routes();
        let mut src = Table::new(100, [1; 4]);
        let slot = src.insert(tcp_conn(7)).unwrap();
        let id = src.id_of(slot);
        let mut body = vec![];
        {
            let s = ConnSync { ct: &mut src, tombstones: &tomb, routes: &t, ports: 3, endpoints: &mut Vec::new(), now };
            let mut w = BodyWriter::new(&mut body, 1300);
            w.push_versioned(KIND, Op::Insert, id, |b| s.encode(id, b)).unwrap();
        }
        let mut dst = Table::new(100, [2; 4]);
        let mut rep = Default::default();
        {
            let mut s =
                ConnSync { ct: &mut dst, tombstones: &tomb, routes: &t, ports: 3, endpoints: &mut Vec::new(), now };
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
            let s =
                ConnSync { ct: &mut src, tombstones: &tomb2, routes: &t, ports: 3, endpoints: &mut Vec::new(), now };
            let mut w = BodyWriter::new(&mut body, 1300);
            assert!(w.push_versioned(KIND, Op::Delete, id, |b| s.encode_delete(id, b)).unwrap());
        }
        {
            let mut s =
                ConnSync { ct: &mut dst, tombstones: &tomb, routes: &t, ports: 3, endpoints: &mut Vec::new(), now };
            apply_body(&body, &mut [&mut s], now, &mut rep).unwrap();
        }
        assert!(dst.is_empty());
    }
}
