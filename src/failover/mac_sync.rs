//! The MAC table as a replicated table (kind 3), so that a new active in
//! transparent mode knows on which side every station is, forwards its
//! first frame without flooding or probing, and can tell the switches
//! (see `Appliance::mac_refresh`).
//!
//! Record: MAC (6), port (1). The id is the MAC as a number. Only new
//! stations, moves and agings replicate, never a refresh: a standby's copy
//! does not age (the active's delete ends it) and takeover restarts every
//! lifetime, so last-heard times need not travel.

use crate::bridge::MacTable;
use crate::config::{IfIndex, Mac};
use crate::ha::table::{Merge, ReplicatedTable};
use crate::ha::wire::Op;
use crate::time::Instant;

pub const KIND: u16 = 3;
pub const RECORD_LEN: usize = 7;

/// A MAC as a replication id (the low 48 bits).
pub fn id_of(mac: Mac) -> u64 {
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&mac.0);
    u64::from_be_bytes(b)
}

pub fn mac_of(id: u64) -> Mac {
    let mut m = Mac::ZERO;
    m.0.copy_from_slice(&id.to_be_bytes()[2..]);
    m
}

pub struct MacSync<'a> {
    pub macs: &'a mut MacTable,
    /// Ports this unit has: a record naming another is malformed.
    pub ports: usize,
}

impl ReplicatedTable for MacSync<'_> {
    fn kind(&self) -> u16 {
        KIND
    }

    fn encode(&self, id: u64, out: &mut Vec<u8>) -> Option<u32> {
        let mac = mac_of(id);
        let e = self.macs.get(&mac)?;
        out.extend_from_slice(&mac.0);
        out.push(e.port.0);
        Some(0)
    }

    fn merge(&mut self, op: Op, id: u64, _version: u32, bytes: &[u8], now: Instant) -> Merge {
        match op {
            Op::Delete => {
                if self.macs.forget(&mac_of(id)) {
                    Merge::Applied
                } else {
                    Merge::StaleIgnored
                }
            }
            Op::Insert | Op::Update => {
                if bytes.len() < RECORD_LEN || bytes[6] as usize >= self.ports {
                    return Merge::Malformed;
                }
                let mut mac = Mac::ZERO;
                mac.0.copy_from_slice(&bytes[..6]);
                if mac.is_multicast() || id_of(mac) != id {
                    return Merge::Malformed;
                }
                if self.macs.set(mac, IfIndex(bytes[6]), now) {
                    Merge::Applied
                } else {
                    Merge::StaleIgnored
                }
            }
            Op::Request => Merge::StaleIgnored,
        }
    }

    fn ids(&self, out: &mut Vec<u64>) {
        out.extend(self.macs.entries().into_iter().map(|(m, _)| id_of(m)));
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

    #[test]
    fn ids_round_trip() {
        let m = Mac([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(id_of(m), 0x0211_2233_4455);
        assert_eq!(mac_of(id_of(m)), m);
    }

    #[test]
    fn insert_move_delete_through_a_body() {
        let now = Instant::from_millis(5_000);
        let (h1, h2) = (Mac([2, 0, 0, 0, 1, 10]), Mac([2, 0, 0, 0, 2, 10]));
        let mut active = table();
        active.learn(h1, IfIndex(0), now);
        active.learn(h2, IfIndex(1), now);
        let body = |t: &mut MacTable, ops: &[(Op, Mac)]| {
            let s = MacSync { macs: t, ports: 2 };
            let mut buf = vec![];
            let mut w = BodyWriter::new(&mut buf, 1300);
            for &(op, m) in ops {
                match op {
                    Op::Delete => w.push(KIND, op, id_of(m), 0, &[]).unwrap(),
                    _ => assert!(w.push_versioned(KIND, op, id_of(m), |b| s.encode(id_of(m), b)).unwrap()),
                }
            }
            buf
        };
        let mut standby = table();
        let apply = |standby: &mut MacTable, b: &[u8]| {
            let mut rep = ApplyReport::default();
            apply_body(b, &mut [&mut MacSync { macs: standby, ports: 2 }], now, &mut rep).unwrap();
            rep
        };
        let b = body(&mut active, &[(Op::Insert, h1), (Op::Insert, h2)]);
        assert_eq!(apply(&mut standby, &b).applied, 2);
        assert_eq!(standby.entries(), active.entries());
        // h1 moves to the other side; then h2 ages out.
        active.learn(h1, IfIndex(1), now);
        active.forget(&h2);
        let b = body(&mut active, &[(Op::Update, h1), (Op::Delete, h2)]);
        let rep = apply(&mut standby, &b);
        assert_eq!((rep.applied, rep.stale), (2, 0));
        assert_eq!((standby.lookup(&h1), standby.lookup(&h2)), (Some(IfIndex(1)), None));
        // The same again changes nothing.
        let rep = apply(&mut standby, &b);
        assert_eq!((rep.applied, rep.stale), (0, 2));
    }

    #[test]
    fn bad_records_are_malformed() {
        let mut t = table();
        let mut s = MacSync { macs: &mut t, ports: 2 };
        let m = Mac([2, 0, 0, 0, 1, 10]);
        let now = Instant::ZERO;
        assert_eq!(s.merge(Op::Insert, id_of(m), 0, &m.0, now), Merge::Malformed, "no port");
        let mut rec = m.0.to_vec();
        rec.push(2);
        assert_eq!(s.merge(Op::Insert, id_of(m), 0, &rec, now), Merge::Malformed, "no such port");
        rec[6] = 1;
        assert_eq!(s.merge(Op::Insert, id_of(m) + 1, 0, &rec, now), Merge::Malformed, "id and MAC differ");
        let bcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0];
        assert_eq!(s.merge(Op::Insert, id_of(Mac::BROADCAST), 0, &bcast, now), Merge::Malformed);
        assert_eq!(s.merge(Op::Insert, id_of(m), 0, &rec, now), Merge::Applied);
        assert_eq!(t.lookup(&m), Some(IfIndex(1)));
    }
}
