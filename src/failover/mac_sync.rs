//! The MAC table as a replicated table (kind 3), so that a new active in
//! transparent mode knows on which side every station is, forwards its
//! first frame without flooding or probing, and can tell the switches
//! (see `Appliance::mac_refresh`).
//!
//! Record: MAC (6), port (1). The id is the bridge group (bits 48..56) and
//! the MAC (bits 0..48). Only new stations, moves and agings replicate,
//! never a refresh: a standby's copy does not age (the active's delete ends
//! it) and takeover restarts every lifetime, so last-heard times need not
//! travel. Static entries are configuration, on both units already.

use crate::bridge::mac_table::{Group, MacTable};
use crate::config::{IfIndex, Mac};
use crate::ha::table::{Merge, ReplicatedTable};
use crate::ha::wire::Op;
use crate::time::Instant;

pub const KIND: u16 = 3;
pub const RECORD_LEN: usize = 7;

/// A station's replication id.
pub fn id_of(g: Group, mac: Mac) -> u64 {
    let mut b = [0u8; 8];
    b[1] = g;
    b[2..].copy_from_slice(&mac.0);
    u64::from_be_bytes(b)
}

pub fn key_of(id: u64) -> (Group, Mac) {
    let b = id.to_be_bytes();
    let mut m = Mac::ZERO;
    m.0.copy_from_slice(&b[2..]);
    (b[1], m)
}

pub struct MacSync<'a> {
    pub macs: &'a mut MacTable,
    /// Each port's bridge group: a record naming a port this unit lacks, or
    /// one outside the id's group, is malformed.
    pub groups: &'a [Group],
}

impl ReplicatedTable for MacSync<'_> {
    fn kind(&self) -> u16 {
        KIND
    }

    fn encode(&self, id: u64, out: &mut Vec<u8>) -> Option<u32> {
        let (g, mac) = key_of(id);
        let e = self.macs.get(g, &mac).filter(|e| !e.fixed)?;
        out.extend_from_slice(&mac.0);
        out.push(e.port.0);
        Some(0)
    }

    fn merge(&mut self, op: Op, id: u64, _version: u32, bytes: &[u8], now: Instant) -> Merge {
        match op {
            Op::Delete => {
                let (g, mac) = key_of(id);
                if self.macs.forget(g, &mac) {
                    Merge::Applied
                } else {
                    Merge::StaleIgnored
                }
            }
            Op::Insert | Op::Update => {
                let (g, mac) = key_of(id);
                let port = IfIndex(*bytes.get(6).unwrap_or(&u8::MAX));
                if bytes.len() < RECORD_LEN || self.groups.get(port.idx()) != Some(&g) {
                    return Merge::Malformed;
                }
                if mac.is_multicast() || bytes[..6] != mac.0 {
                    return Merge::Malformed;
                }
                if self.macs.set(g, mac, port, now) {
                    Merge::Applied
                } else {
                    Merge::StaleIgnored
                }
            }
            Op::Request => Merge::StaleIgnored,
        }
    }

    fn ids(&self, out: &mut Vec<u64>) {
        out.extend(self.macs.entries().into_iter().filter(|(_, e)| !e.fixed).map(|((g, m), _)| id_of(g, m)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::table::{apply_body, ApplyReport};
    use crate::ha::wire::BodyWriter;
    use crate::time::Duration;

    fn table() -> MacTable {
        MacTable::new(16, Duration::from_secs(300), [3; 4])
    }

    const GROUPS: [Group; 3] = [0, 0, 1];

    #[test]
    fn ids_round_trip() {
        let m = Mac([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(id_of(3, m), 0x0003_0211_2233_4455);
        assert_eq!(key_of(id_of(3, m)), (3, m));
    }

    #[test]
    fn insert_move_delete_through_a_body() {
        let now = Instant::from_millis(5_000);
        let (h1, h2) = (Mac([2, 0, 0, 0, 1, 10]), Mac([2, 0, 0, 0, 2, 10]));
        let mut active = table();
        active.learn(0, h1, IfIndex(0), now);
        active.learn(0, h2, IfIndex(1), now);
        let body = |t: &mut MacTable, ops: &[(Op, Mac)]| {
            let s = MacSync { macs: t, groups: &GROUPS };
            let mut buf = vec![];
            let mut w = BodyWriter::new(&mut buf, 1300);
            for &(op, m) in ops {
                let id = id_of(0, m);
                match op {
                    Op::Delete => w.push(KIND, op, id, 0, &[]).unwrap(),
                    _ => assert!(w.push_versioned(KIND, op, id, |b| s.encode(id, b)).unwrap()),
                }
            }
            buf
        };
        let mut standby = table();
        let apply = |standby: &mut MacTable, b: &[u8]| {
            let mut rep = ApplyReport::default();
            apply_body(b, &mut [&mut MacSync { macs: standby, groups: &GROUPS }], now, &mut rep).unwrap();
            rep
        };
        let b = body(&mut active, &[(Op::Insert, h1), (Op::Insert, h2)]);
        assert_eq!(apply(&mut standby, &b).applied, 2);
        assert_eq!(standby.entries(), active.entries());
        // h1 moves to the other side; then h2 ages out.
        active.learn(0, h1, IfIndex(1), now);
        active.forget(0, &h2);
        let b = body(&mut active, &[(Op::Update, h1), (Op::Delete, h2)]);
        let rep = apply(&mut standby, &b);
        assert_eq!((rep.applied, rep.stale), (2, 0));
        assert_eq!((standby.lookup(0, &h1), standby.lookup(0, &h2)), (Some(IfIndex(1)), None));
        // The same again changes nothing.
        let rep = apply(&mut standby, &b);
        assert_eq!((rep.applied, rep.stale), (0, 2));
    }

    #[test]
    fn bad_records_are_malformed() {
        let mut t = table();
        let mut s = MacSync { macs: &mut t, groups: &GROUPS };
        let m = Mac([2, 0, 0, 0, 1, 10]);
        let now = Instant::ZERO;
        assert_eq!(s.merge(Op::Insert, id_of(0, m), 0, &m.0, now), Merge::Malformed, "no port");
        let mut rec = m.0.to_vec();
        rec.push(3);
        assert_eq!(s.merge(Op::Insert, id_of(0, m), 0, &rec, now), Merge::Malformed, "no such port");
        rec[6] = 2;
        assert_eq!(s.merge(Op::Insert, id_of(0, m), 0, &rec, now), Merge::Malformed, "port 2 is in group 1");
        rec[6] = 1;
        assert_eq!(s.merge(Op::Insert, id_of(0, m) + 1, 0, &rec, now), Merge::Malformed, "id and MAC differ");
        let bcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0];
        assert_eq!(s.merge(Op::Insert, id_of(0, Mac::BROADCAST), 0, &bcast, now), Merge::Malformed);
        assert_eq!(s.merge(Op::Insert, id_of(0, m), 0, &rec, now), Merge::Applied);
        assert_eq!(t.lookup(0, &m), Some(IfIndex(1)));
    }
}
