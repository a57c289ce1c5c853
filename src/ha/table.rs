//! The plug-in contract for a replicated table, the pure merge guards, and
//! the receive-side dispatcher that applies a delta body.
//!
//! # Contract for a table (conntrack, NAT, ARP, SA, ...)
//! * A stable [`ReplicatedTable::kind`] (one `u16` per table, never reused)
//!   and a global id per entry (`(unit << 63) | local` or similar: ids are
//!   never reused while the entry might still exist on the peer).
//! * A `version: u32` per entry, bumped on each replicated change
//!   (serial arithmetic: [`version_is_newer`]).
//! * [`ReplicatedTable::encode`] appends the record bytes of one entry;
//!   times are sent *relative* (remaining lifetime), as pfsync does, and
//!   re-based on import, because the two units' clocks are unrelated.
//! * [`ReplicatedTable::merge`] applies a peer record using [`classify`] and
//!   the field guards below, and must **not** mark the outbox: applying a
//!   peer's change never echoes it back. Later *local* changes to the same
//!   entry go through the table's normal mutators, which do mark it.
//! * Record bytes must tolerate growth: decode what you know, ignore a longer
//!   tail (a newer peer), and accept a shorter one if you can default it.

use std::collections::HashMap;

use crate::time::Instant;

use super::wire::{Op, Sections, WireError};

/// Result of merging one peer record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Merge {
    /// Our copy changed (created, replaced, removed).
    Applied,
    /// Ours is as new or newer, or the change would move state backwards;
    /// nothing changed. (pfsync sends its newer copy back: the caller may
    /// mark the id dirty.)
    StaleIgnored,
    /// An update for an id we do not hold: ask the peer for it.
    Unknown,
    /// Record bytes did not decode.
    Malformed,
}

/// A table whose entries replicate to the peer.
pub trait ReplicatedTable {
    /// The section `table_kind` this table owns.
    fn kind(&self) -> u16;
    /// Append the record bytes of entry `id` to `out` and return its
    /// version, or return `None` (appending nothing) if it no longer exists.
    fn encode(&self, id: u64, out: &mut Vec<u8>) -> Option<u32>;
    /// Apply a peer's record (`op` is insert, update or delete). `now` is for
    /// re-basing relative times. Must not mark the outbox.
    fn merge(&mut self, op: Op, id: u64, version: u32, bytes: &[u8], now: Instant) -> Merge;
    /// Append what a delete record of `id` carries (default: nothing); the
    /// entry itself may already be gone.
    fn encode_delete(&self, _id: u64, _out: &mut Vec<u8>) -> Option<u32> {
        Some(0)
    }
    /// Append every live id (for a bulk sync).
    fn ids(&self, out: &mut Vec<u64>);
}

// ---------------------------------------------------------------------------
// Merge guards: small pure functions, each with its own tests.

/// `a` before `b` in 32-bit serial arithmetic (RFC 1982; TCP sequence
/// numbers): correct across wraparound as long as they are less than 2^31
/// apart.
pub fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
pub fn seq_le(a: u32, b: u32) -> bool {
    a == b || seq_lt(a, b)
}
pub fn seq_gt(a: u32, b: u32) -> bool {
    seq_lt(b, a)
}
pub fn seq_ge(a: u32, b: u32) -> bool {
    seq_le(b, a)
}
/// The later of two sequence numbers.
pub fn seq_max(a: u32, b: u32) -> u32 {
    if seq_lt(a, b) {
        b
    } else {
        a
    }
}

/// Versions never go backwards: is `theirs` strictly newer than `ours`?
/// Serial arithmetic, so a long-lived entry's counter may wrap.
pub fn version_is_newer(ours: u32, theirs: u32) -> bool {
    seq_gt(theirs, ours)
}

/// What to do with one record, from its op and the versions alone
/// (pfsync's order of checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Not held here: create it.
    Create,
    /// Held and theirs is newer: replace fields (subject to field guards).
    Replace,
    /// Held: delete it.
    Remove,
    /// Nothing to do (ours is as new, or a delete of what we lack).
    Stale,
    /// Update for an id we lack: request it.
    Unknown,
}

pub fn classify(op: Op, ours: Option<u32>, theirs: u32) -> Plan {
    match (op, ours) {
        (Op::Insert, None) => Plan::Create,
        (Op::Insert | Op::Update, Some(v)) if version_is_newer(v, theirs) => Plan::Replace,
        (Op::Insert | Op::Update, Some(_)) => Plan::Stale,
        (Op::Update, None) => Plan::Unknown,
        (Op::Delete, Some(_)) => Plan::Remove,
        (Op::Delete, None) => Plan::Stale,
        // Requests are handled by the dispatcher, never by a table.
        (Op::Request, _) => Plan::Stale,
    }
}

/// TCP state never goes backwards. States are given as ranks (the table's
/// enum order as `u8`, e.g. SYN_SENT < ESTABLISHED < FIN_WAIT < CLOSED).
/// Returns the state to keep and whether theirs was refused.
pub fn merge_tcp_state(ours: u8, theirs: u8) -> (u8, bool) {
    if theirs < ours {
        (ours, true)
    } else {
        (theirs, false)
    }
}

/// One direction's tracked sequence window (pf's `pf_state_peer`):
/// `lo` = highest seq acknowledged/seen, `hi` = highest seq the peer may
/// send (lo + window), `max_win` = largest window advertised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqWindow {
    pub lo: u32,
    pub hi: u32,
    pub max_win: u32,
}

/// Sequence windows only grow: each edge takes the later value (wraparound
/// safe), `max_win` the larger. Returns the merged window and whether
/// theirs would have moved an edge backwards (pfsync then sends ours back).
pub fn merge_window(ours: SeqWindow, theirs: SeqWindow) -> (SeqWindow, bool) {
    let regressed = seq_lt(theirs.lo, ours.lo) || seq_lt(theirs.hi, ours.hi);
    let merged = SeqWindow {
        lo: seq_max(ours.lo, theirs.lo),
        hi: seq_max(ours.hi, theirs.hi),
        max_win: ours.max_win.max(theirs.max_win),
    };
    (merged, regressed)
}

/// Counters (bytes, packets, ESP replay/sequence) never decrease.
pub fn merge_counter(ours: u64, theirs: u64) -> u64 {
    ours.max(theirs)
}

// ---------------------------------------------------------------------------
// Receive side.

/// What applying one delta body did, for counters and follow-up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: u64,
    pub stale: u64,
    pub malformed: u64,
    /// Sections of a table this unit does not know (newer peer): skipped.
    pub unknown_tables: u64,
    /// Records with an op this unit does not know: skipped.
    pub unknown_ops: u64,
    /// Updates for ids we lack: send the peer an `Op::Request` for each.
    pub missing: Vec<(u16, u64)>,
    /// The peer asked for these: mark them dirty so our copy goes out
    /// (`(0, 0)` = everything: start a bulk).
    pub requested: Vec<(u16, u64)>,
    /// Ids whose peer copy was refused as stale, so ours may be sent back.
    pub stale_ids: Vec<(u16, u64)>,
}

/// Apply a decrypted delta body to the tables. Records are applied in
/// order; a structural error stops at that point (records before it stay
/// applied, as with any partially received state) and is returned.
pub fn apply_body(
    body: &[u8],
    tables: &mut [&mut dyn ReplicatedTable],
    now: Instant,
    report: &mut ApplyReport,
) -> Result<(), WireError> {
    let index: HashMap<u16, usize> = tables.iter().enumerate().map(|(i, t)| (t.kind(), i)).collect();
    for section in Sections::new(body) {
        let section = section?;
        let table = index.get(&section.table_kind).copied();
        for record in section.records() {
            let r = record?;
            let Some(op) = r.op() else {
                report.unknown_ops += 1;
                continue;
            };
            if op == Op::Request {
                report.requested.push((section.table_kind, r.id));
                continue;
            }
            let Some(ti) = table else {
                report.unknown_tables += 1;
                break; // skip the rest of this section
            };
            match tables[ti].merge(op, r.id, r.version, r.bytes, now) {
                Merge::Applied => report.applied += 1,
                Merge::StaleIgnored => {
                    report.stale += 1;
                    report.stale_ids.push((section.table_kind, r.id));
                }
                Merge::Unknown => report.missing.push((section.table_kind, r.id)),
                Merge::Malformed => report.malformed += 1,
            }
        }
    }
    Ok(())
}

/// A small replicated table used by the tests here and in
/// [`super::outbox`]: it shows how a real table uses the guards.
#[cfg(test)]
pub(crate) mod test_table {
    use super::*;

    /// A toy "connection": TCP state rank, one sequence window, a byte
    /// counter, and a remaining lifetime sent relative.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Conn {
        pub version: u32,
        pub tcp: u8,
        pub win: SeqWindow,
        pub bytes: u64,
        pub expires: Instant,
    }

    pub const CONN_LEN: usize = 1 + 12 + 8 + 4;

    #[derive(Default)]
    pub struct ConnTable {
        pub kind: u16,
        pub map: HashMap<u64, Conn>,
    }

    impl ConnTable {
        pub fn new(kind: u16) -> Self {
            ConnTable { kind, map: HashMap::new() }
        }
        /// Encode with expiry relative to `now` (frozen at encode time in
        /// these tests by storing it as remaining millis).
        fn remaining_ms(c: &Conn) -> u32 {
            (c.expires.as_micros() / 1000) as u32
        }
    }

    impl ReplicatedTable for ConnTable {
        fn kind(&self) -> u16 {
            self.kind
        }
        fn encode(&self, id: u64, out: &mut Vec<u8>) -> Option<u32> {
            let c = self.map.get(&id)?;
            out.push(c.tcp);
            out.extend_from_slice(&c.win.lo.to_be_bytes());
            out.extend_from_slice(&c.win.hi.to_be_bytes());
            out.extend_from_slice(&c.win.max_win.to_be_bytes());
            out.extend_from_slice(&c.bytes.to_be_bytes());
            out.extend_from_slice(&Self::remaining_ms(c).to_be_bytes());
            Some(c.version)
        }
        fn merge(&mut self, op: Op, id: u64, version: u32, b: &[u8], now: Instant) -> Merge {
            let ours = self.map.get(&id).map(|c| c.version);
            let plan = classify(op, ours, version);
            let decode = || -> Option<Conn> {
                if b.len() < CONN_LEN {
                    return None;
                }
                let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&b[13..21]);
                Some(Conn {
                    version,
                    tcp: b[0],
                    win: SeqWindow { lo: u32_at(1), hi: u32_at(5), max_win: u32_at(9) },
                    bytes: u64::from_be_bytes(bytes),
                    expires: now + crate::time::Duration::from_millis(u64::from(u32_at(21))),
                })
            };
            match plan {
                Plan::Create => match decode() {
                    Some(c) => {
                        self.map.insert(id, c);
                        Merge::Applied
                    }
                    None => Merge::Malformed,
                },
                Plan::Replace => {
                    let Some(theirs) = decode() else { return Merge::Malformed };
                    let Some(ours) = self.map.get_mut(&id) else { return Merge::Unknown };
                    let (tcp, tcp_back) = merge_tcp_state(ours.tcp, theirs.tcp);
                    let (win, win_back) = merge_window(ours.win, theirs.win);
                    if tcp_back || win_back {
                        // pfsync: refuse the whole update, keep ours.
                        return Merge::StaleIgnored;
                    }
                    *ours = Conn {
                        version,
                        tcp,
                        win,
                        bytes: merge_counter(ours.bytes, theirs.bytes),
                        expires: theirs.expires,
                    };
                    Merge::Applied
                }
                Plan::Remove => {
                    self.map.remove(&id);
                    Merge::Applied
                }
                Plan::Stale => Merge::StaleIgnored,
                Plan::Unknown => Merge::Unknown,
            }
        }
        fn ids(&self, out: &mut Vec<u64>) {
            out.extend(self.map.keys().copied());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_table::{Conn, ConnTable};
    use super::*;
    use crate::ha::wire::BodyWriter;

    #[test]
    fn seq_comparisons_wrap() {
        assert!(seq_lt(1, 2) && !seq_lt(2, 1) && !seq_lt(5, 5));
        assert!(seq_lt(u32::MAX, 0), "0 comes after 0xffffffff");
        assert!(seq_lt(u32::MAX - 10, 5));
        assert!(seq_gt(3, u32::MAX - 3));
        assert!(seq_le(7, 7) && seq_ge(7, 7));
        assert_eq!(seq_max(u32::MAX, 2), 2);
        assert_eq!(seq_max(2, u32::MAX), 2);
        assert_eq!(seq_max(100, 50), 100);
    }

    #[test]
    fn versions_never_go_backwards() {
        assert!(version_is_newer(1, 2));
        assert!(!version_is_newer(2, 2));
        assert!(!version_is_newer(3, 2));
        assert!(version_is_newer(u32::MAX, 0), "wraps");
    }

    #[test]
    fn classify_follows_pfsync() {
        assert_eq!(classify(Op::Insert, None, 1), Plan::Create);
        assert_eq!(classify(Op::Insert, Some(1), 2), Plan::Replace);
        assert_eq!(classify(Op::Insert, Some(2), 2), Plan::Stale);
        assert_eq!(classify(Op::Update, Some(3), 2), Plan::Stale);
        assert_eq!(classify(Op::Update, None, 2), Plan::Unknown);
        assert_eq!(classify(Op::Delete, Some(9), 0), Plan::Remove);
        assert_eq!(classify(Op::Delete, None, 0), Plan::Stale);
    }

    #[test]
    fn tcp_state_never_goes_backwards() {
        assert_eq!(merge_tcp_state(2, 3), (3, false));
        assert_eq!(merge_tcp_state(3, 3), (3, false));
        assert_eq!(merge_tcp_state(4, 1), (4, true));
    }

    #[test]
    fn windows_only_grow() {
        let ours = SeqWindow { lo: 1000, hi: 5000, max_win: 4000 };
        let (m, back) = merge_window(ours, SeqWindow { lo: 1500, hi: 6000, max_win: 3000 });
        assert_eq!((m, back), (SeqWindow { lo: 1500, hi: 6000, max_win: 4000 }, false));
        let (m, back) = merge_window(ours, SeqWindow { lo: 900, hi: 6000, max_win: 100 });
        assert!(back);
        assert_eq!(m.lo, 1000);
        // Across the wrap.
        let ours = SeqWindow { lo: u32::MAX - 100, hi: u32::MAX - 10, max_win: 90 };
        let (m, back) = merge_window(ours, SeqWindow { lo: 20, hi: 200, max_win: 180 });
        assert_eq!((m.lo, m.hi, back), (20, 200, false));
        let (_, back) = merge_window(SeqWindow { lo: 20, hi: 200, max_win: 0 }, ours);
        assert!(back);
    }

    #[test]
    fn counters_never_decrease() {
        assert_eq!(merge_counter(10, 5), 10);
        assert_eq!(merge_counter(10, 50), 50);
    }

    fn conn(version: u32, tcp: u8, lo: u32, bytes: u64) -> Conn {
        Conn {
            version,
            tcp,
            win: SeqWindow { lo, hi: lo.wrapping_add(1000), max_win: 1000 },
            bytes,
            expires: Instant::from_millis(30_000),
        }
    }

    fn body_of(t: &ConnTable, ops: &[(Op, u64)]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = BodyWriter::new(&mut buf, 1344);
        for &(op, id) in ops {
            match op {
                Op::Delete | Op::Request => w.push(t.kind(), op, id, 0, &[]).unwrap(),
                _ => assert!(w.push_versioned(t.kind(), op, id, |b| t.encode(id, b)).unwrap()),
            }
        }
        buf
    }

    #[test]
    fn apply_body_merges_with_guards_and_reports() {
        let mut active = ConnTable::new(7);
        let mut standby = ConnTable::new(7);
        active.map.insert(1, conn(1, 2, 100, 10));
        active.map.insert(2, conn(1, 2, 100, 10));
        let now = Instant::from_millis(1_000);
        let mut rep = ApplyReport::default();
        apply_body(&body_of(&active, &[(Op::Insert, 1), (Op::Update, 2)]), &mut [&mut standby], now, &mut rep).unwrap();
        assert_eq!(rep.applied, 1);
        assert_eq!(rep.missing, vec![(7, 2)]);
        // Relative expiry re-based on import.
        assert_eq!(standby.map[&1].expires, Instant::from_millis(31_000));

        // Newer version advances; an update that moves TCP state back is refused.
        active.map.insert(1, conn(2, 3, 200, 20));
        let mut rep = ApplyReport::default();
        apply_body(&body_of(&active, &[(Op::Update, 1)]), &mut [&mut standby], now, &mut rep).unwrap();
        assert_eq!((standby.map[&1].tcp, standby.map[&1].bytes, standby.map[&1].version), (3, 20, 2));
        active.map.insert(1, conn(3, 1, 300, 30));
        let mut rep = ApplyReport::default();
        apply_body(&body_of(&active, &[(Op::Update, 1)]), &mut [&mut standby], now, &mut rep).unwrap();
        assert_eq!((rep.stale, rep.stale_ids.clone()), (1, vec![(7, 1)]));
        assert_eq!(standby.map[&1].tcp, 3);
        // Same version again: stale (a duplicate).
        active.map.insert(1, conn(2, 3, 200, 20));
        let mut rep = ApplyReport::default();
        apply_body(&body_of(&active, &[(Op::Update, 1)]), &mut [&mut standby], now, &mut rep).unwrap();
        assert_eq!(rep.stale, 1);
        // Delete and request.
        let mut rep = ApplyReport::default();
        apply_body(&body_of(&active, &[(Op::Delete, 1), (Op::Request, 9)]), &mut [&mut standby], now, &mut rep)
            .unwrap();
        assert!(standby.map.is_empty());
        assert_eq!(rep.requested, vec![(7, 9)]);
    }

    #[test]
    fn unknown_tables_and_ops_are_skipped() {
        let mut newer = ConnTable::new(99);
        newer.map.insert(5, conn(1, 1, 1, 1));
        let mut body = body_of(&newer, &[(Op::Insert, 5)]);
        let mut known = ConnTable::new(7);
        known.map.insert(6, conn(1, 1, 1, 1));
        body.extend(body_of(&known, &[(Op::Insert, 6)]));
        // An op from the future inside a known table.
        let mut w_buf = Vec::new();
        BodyWriter::new(&mut w_buf, 100).push(7, Op::Insert, 8, 1, &[]).unwrap();
        w_buf[SECTION_OP_AT] = 42;
        body.extend(w_buf);
        let mut mine = ConnTable::new(7);
        let mut rep = ApplyReport::default();
        apply_body(&body, &mut [&mut mine], Instant::ZERO, &mut rep).unwrap();
        assert_eq!((rep.unknown_tables, rep.unknown_ops, rep.applied), (1, 1, 1));
        assert!(mine.map.contains_key(&6));
        // Truncated body: error, earlier records stay applied.
        let mut mine = ConnTable::new(7);
        let body = body_of(&known, &[(Op::Insert, 6)]);
        let mut twice = body.clone();
        twice.extend_from_slice(&body[..body.len() - 1]);
        let mut rep = ApplyReport::default();
        assert_eq!(apply_body(&twice, &mut [&mut mine], Instant::ZERO, &mut rep), Err(WireError::SectionTruncated));
        assert_eq!(rep.applied, 1);
    }

    /// Offset of the first record's op byte in a body.
    const SECTION_OP_AT: usize = crate::ha::wire::SECTION_HEADER_LEN;
}
