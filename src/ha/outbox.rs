//! pfsync-style coalescing queue of dirty entries.
//!
//! # Contract
//! * Tables call `mark(kind, id, Op::…, now)` from their *local* mutators
//!   (never from [`super::table::ReplicatedTable::merge`]). An id holds one
//!   slot however often it changes; the record is encoded only when the
//!   datagram is built, so it always carries the latest copy.
//! * Coalescing (pending op, new mark) -> pending op:
//!
//!   | pending \ new | insert | update | delete       | request |
//!   |---------------|--------|--------|--------------|---------|
//!   | (none)        | insert | update | delete       | request |
//!   | insert        | insert | insert | *(cancelled: never sent)* | insert |
//!   | update        | insert | update | delete       | update  |
//!   | delete        | insert | update | delete       | delete  |
//!   | request       | insert | update | delete       | request |
//!
//! * [`Outbox::flush_due`] is true once `max_updates` slots are pending or
//!   the oldest has waited `max_delay`; [`Outbox::poll_timeout`] reports the
//!   latter deadline. [`Outbox::fill`] moves slots, oldest first, into a
//!   [`BodyWriter`] until the datagram is full; a slot that does not fit
//!   stays for the next datagram.

use std::collections::{HashMap, VecDeque};

use crate::time::{Duration, Instant};

use super::table::ReplicatedTable;
use super::wire::{BodyWriter, Op, PushError};

/// Counters of what the outbox did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounters {
    pub marked: u64,
    /// Marks that found the id already queued.
    pub coalesced: u64,
    /// Insert then delete before sending: both dropped.
    pub cancelled: u64,
    pub records_out: u64,
    /// Queued insert/update whose entry was gone at send time.
    pub gone: u64,
    /// Record bigger than a datagram: dropped (a table bug).
    pub too_large: u64,
    /// Slot for a table kind nobody registered: dropped.
    pub no_table: u64,
}

/// The coalescing queue.
#[derive(Debug)]
pub struct Outbox {
    slots: HashMap<(u16, u64), Op>,
    order: VecDeque<(u16, u64)>,
    max_updates: usize,
    max_delay: Duration,
    oldest: Option<Instant>,
    counters: OutboxCounters,
}

/// Coalesce a new mark onto a pending op; `None` = drop the slot.
pub fn coalesce(pending: Option<Op>, new: Op) -> Option<Op> {
    use Op::*;
    match (pending, new) {
        (None, op) => Some(op),
        (Some(Insert), Delete) => None,
        (Some(Insert), _) => Some(Insert),
        (Some(Update), Request) => Some(Update),
        (Some(Delete), Request) => Some(Delete),
        (Some(_), op) => Some(op),
    }
}

impl Outbox {
    /// `max_updates`: pending slots that force a flush (pfsync's
    /// `sc_maxupdates` idea); `max_delay`: the longest a change waits.
    pub fn new(max_updates: usize, max_delay: Duration) -> Self {
        Outbox {
            slots: HashMap::new(),
            order: VecDeque::new(),
            max_updates: max_updates.max(1),
            max_delay,
            oldest: None,
            counters: OutboxCounters::default(),
        }
    }

    pub fn counters(&self) -> &OutboxCounters {
        &self.counters
    }
    /// Pending slots (= records a failover now could lose, plus unacked).
    pub fn len(&self) -> usize {
        self.slots.len()
    }
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
    pub fn pending(&self, kind: u16, id: u64) -> Option<Op> {
        self.slots.get(&(kind, id)).copied()
    }

    /// Record a local change of entry `id` of table `kind`.
    pub fn mark(&mut self, kind: u16, id: u64, op: Op, now: Instant) {
        self.counters.marked += 1;
        let key = (kind, id);
        let pending = self.slots.get(&key).copied();
        match coalesce(pending, op) {
            None => {
                self.slots.remove(&key);
                self.counters.cancelled += 1;
            }
            Some(new) => {
                if pending.is_some() {
                    self.counters.coalesced += 1;
                } else {
                    self.order.push_back(key);
                }
                self.slots.insert(key, new);
            }
        }
        if self.slots.is_empty() {
            self.oldest = None;
        } else if self.oldest.is_none() {
            self.oldest = Some(now);
        }
        // Cancelled keys leave stale entries in `order`; keep it bounded.
        if self.order.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            let mut seen = std::collections::HashSet::new();
            self.order.retain(|k| slots.contains_key(k) && seen.insert(*k));
        }
    }

    /// Queue every live id of `table` as an insert (bulk sync). The records
    /// go out through [`Outbox::fill`] in bounded datagrams.
    pub fn mark_all(&mut self, table: &dyn ReplicatedTable, now: Instant) {
        let mut ids = Vec::new();
        table.ids(&mut ids);
        for id in ids {
            self.mark(table.kind(), id, Op::Insert, now);
        }
    }

    /// Should a datagram be built now?
    pub fn flush_due(&self, now: Instant) -> bool {
        !self.slots.is_empty()
            && (self.slots.len() >= self.max_updates || self.poll_timeout().is_some_and(|t| now >= t))
    }

    /// When the oldest pending change was made.
    pub fn oldest(&self) -> Option<Instant> {
        self.oldest
    }

    /// When the oldest pending change must go out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.max_delay)
    }

    /// Move pending slots, oldest first, into `w` until it is full or the
    /// outbox is empty. `table_for(kind)` finds a table. Returns records
    /// written.
    pub fn fill<'t>(
        &mut self,
        w: &mut BodyWriter<'_>,
        table_for: impl Fn(u16) -> Option<&'t dyn ReplicatedTable>,
    ) -> usize {
        let mut written = 0;
        while let Some(&key) = self.order.front() {
            let Some(&op) = self.slots.get(&key) else {
                self.order.pop_front(); // cancelled earlier
                continue;
            };
            let (kind, id) = key;
            let result = match op {
                Op::Request => w.push(kind, op, id, 0, &[]).map(|_| true),
                // A delete carries what the table still knows of the entry
                // (its key), so the peer can find it without our ids.
                Op::Delete => match table_for(kind) {
                    Some(t) => w.push_versioned(kind, op, id, |b| t.encode_delete(id, b)),
                    None => w.push(kind, op, id, 0, &[]).map(|_| true),
                },
                Op::Insert | Op::Update => match table_for(kind) {
                    Some(t) => w.push_versioned(kind, op, id, |b| t.encode(id, b)),
                    None => {
                        self.counters.no_table += 1;
                        Ok(false)
                    }
                },
            };
            match result {
                Err(PushError::Full) => break,
                Err(PushError::TooLarge) => {
                    log::warn!("ha outbox: record {kind}/{id} larger than a datagram, dropped");
                    self.counters.too_large += 1;
                }
                Ok(true) => {
                    written += 1;
                    self.counters.records_out += 1;
                }
                Ok(false) => self.counters.gone += 1,
            }
            self.order.pop_front();
            self.slots.remove(&key);
        }
        if self.slots.is_empty() {
            self.oldest = None;
            self.order.clear();
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::table::test_table::{Conn, ConnTable};
    use crate::ha::table::{apply_body, ApplyReport, SeqWindow};
    use crate::ha::wire::{max_body, Sections, DEFAULT_MAX_DATAGRAM};

    const K: u16 = 7;

    fn conn(version: u32) -> Conn {
        Conn { version, tcp: 1, win: SeqWindow::default(), bytes: 0, expires: Instant::from_millis(1000) }
    }

    fn records(buf: &[u8]) -> Vec<(u8, u64, u32)> {
        Sections::new(buf)
            .flat_map(|s| {
                s.unwrap().records().map(|r| r.unwrap()).map(|r| (r.op_raw, r.id, r.version)).collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn coalescing_table() {
        use Op::*;
        assert_eq!(coalesce(None, Update), Some(Update));
        assert_eq!(coalesce(Some(Insert), Update), Some(Insert));
        assert_eq!(coalesce(Some(Insert), Delete), None);
        assert_eq!(coalesce(Some(Update), Delete), Some(Delete));
        assert_eq!(coalesce(Some(Delete), Insert), Some(Insert));
        assert_eq!(coalesce(Some(Update), Request), Some(Update));
        assert_eq!(coalesce(Some(Request), Update), Some(Update));
        assert_eq!(coalesce(Some(Delete), Request), Some(Delete));
    }

    #[test]
    fn hot_entry_takes_one_slot_and_sends_latest() {
        let mut t = ConnTable::new(K);
        let mut ob = Outbox::new(100, Duration::from_millis(10));
        t.map.insert(1, conn(1));
        ob.mark(K, 1, Op::Insert, Instant::ZERO);
        for v in 2..50 {
            t.map.insert(1, conn(v));
            ob.mark(K, 1, Op::Update, Instant::ZERO);
        }
        assert_eq!(ob.len(), 1);
        assert_eq!(ob.counters().coalesced, 48);
        let mut buf = Vec::new();
        let mut w = BodyWriter::new(&mut buf, 1000);
        assert_eq!(ob.fill(&mut w, |k| (k == K).then_some(&t as &dyn ReplicatedTable)), 1);
        assert_eq!(records(&buf), vec![(Op::Insert as u8, 1, 49)]);
        assert!(ob.is_empty() && ob.poll_timeout().is_none());
    }

    #[test]
    fn delete_supersedes_and_cancels() {
        let t = ConnTable::new(K);
        let mut ob = Outbox::new(100, Duration::from_millis(10));
        ob.mark(K, 1, Op::Update, Instant::ZERO);
        ob.mark(K, 1, Op::Delete, Instant::ZERO);
        ob.mark(K, 2, Op::Insert, Instant::ZERO);
        ob.mark(K, 2, Op::Delete, Instant::ZERO);
        assert_eq!(ob.len(), 1);
        assert_eq!(ob.pending(K, 1), Some(Op::Delete));
        assert_eq!(ob.counters().cancelled, 1);
        let mut buf = Vec::new();
        let mut w = BodyWriter::new(&mut buf, 1000);
        ob.fill(&mut w, |_| Some(&t as &dyn ReplicatedTable));
        assert_eq!(records(&buf), vec![(Op::Delete as u8, 1, 0)]);
    }

    #[test]
    fn max_updates_and_delay_force_a_flush() {
        let mut ob = Outbox::new(3, Duration::from_millis(10));
        let t0 = Instant::from_millis(100);
        assert!(!ob.flush_due(t0));
        ob.mark(K, 1, Op::Update, t0);
        ob.mark(K, 2, Op::Update, t0 + Duration::from_millis(5));
        assert_eq!(ob.poll_timeout(), Some(Instant::from_millis(110)));
        assert!(!ob.flush_due(Instant::from_millis(109)));
        assert!(ob.flush_due(Instant::from_millis(110)));
        ob.mark(K, 3, Op::Update, t0);
        assert!(ob.flush_due(t0), "max_updates reached");
    }

    #[test]
    fn fills_bounded_datagrams_in_order_and_skips_gone() {
        let mut t = ConnTable::new(K);
        let mut ob = Outbox::new(10_000, Duration::from_millis(10));
        for id in 0..500u64 {
            t.map.insert(id, conn(1));
            ob.mark(K, id, Op::Insert, Instant::ZERO);
        }
        t.map.remove(&3); // gone without a delete mark
        let mut peer = ConnTable::new(K);
        let mut datagrams = 0;
        let mut last_id = None;
        while !ob.is_empty() {
            let mut buf = Vec::new();
            let limit = max_body(DEFAULT_MAX_DATAGRAM);
            let mut w = BodyWriter::new(&mut buf, limit);
            let n = ob.fill(&mut w, |_| Some(&t as &dyn ReplicatedTable));
            assert!(n > 0 && buf.len() <= limit);
            for (_, id, _) in records(&buf) {
                assert!(last_id.is_none_or(|l| id > l), "oldest first");
                last_id = Some(id);
            }
            apply_body(&buf, &mut [&mut peer], Instant::ZERO, &mut ApplyReport::default()).unwrap();
            datagrams += 1;
        }
        assert_eq!(peer.map.len(), 499);
        assert_eq!(ob.counters().gone, 1);
        // 40-byte records (15 header + 25 bytes): 33 per 1344-byte body.
        assert_eq!(datagrams, 499usize.div_ceil(33));
    }

    #[test]
    fn bulk_marks_everything_and_churn_stays_bounded() {
        let mut t = ConnTable::new(K);
        for id in 0..10 {
            t.map.insert(id, conn(1));
        }
        let mut ob = Outbox::new(10_000, Duration::from_millis(10));
        ob.mark_all(&t, Instant::ZERO);
        assert_eq!(ob.len(), 10);
        for _ in 0..10_000 {
            ob.mark(K, 99, Op::Insert, Instant::ZERO);
            ob.mark(K, 99, Op::Delete, Instant::ZERO);
        }
        assert!(ob.order.len() <= 2 * ob.len() + 65);
        let mut buf = Vec::new();
        let mut w = BodyWriter::new(&mut buf, 10_000);
        assert_eq!(ob.fill(&mut w, |_| Some(&t as &dyn ReplicatedTable)), 10);
    }
}
