//! The reliable delta stream (conntrackd FTFW style), sans-IO.
//!
//! One [`Stream`] per unit holds both halves: the *sender* (used while
//! active) and the *receiver* (used while standby). It carries opaque bodies
//! of the sequenced kinds (delta, bulk-start, bulk-end, resync) and produces
//! the control kinds (ack, nack, bulk-request); sealing is the caller's job,
//! so a retransmission is sealed again with a fresh nonce counter.
//!
//! # Sender
//! * [`Stream::send`] assigns the next `seq` (u32, serial arithmetic) and
//!   keeps the body in a bounded resend queue until it is acknowledged.
//! * Retransmits on NACK (the named range) and on the retransmit timer
//!   (oldest `burst` unacked datagrams, exponential backoff up to `max_rto`).
//! * A *resync* empties the queue and sends a [`Kind::Resync`] datagram that
//!   makes the receiver jump to it; the caller then sends a bulk (bulk-start,
//!   every record, bulk-end). It happens when the caller starts one (on
//!   becoming active), when the peer asks (bulk-request), or when the queue
//!   overflows; each raises [`StreamEvent::BulkNeeded`]. Keep within
//!   [`Stream::queue_space`] (leave records in the outbox) to avoid the last.
//!
//! # Receiver
//! * Until it has seen a resync, the receiver is *unsynced* and drops
//!   sequenced datagrams (a standby first calls [`Stream::request_bulk`]).
//! * Each datagram is *in sync* (`seq == expected`: delivered, then any
//!   buffered successors), *after* (a gap: buffered if within `reorder`,
//!   and the missing range NACKed, again every `rto` while it stays open),
//!   or *before* (duplicate: dropped, and an ACK sent at once because the
//!   sender evidently missed one).
//! * A gap wider than `max_gap` means the receiver is too far behind: it
//!   drops its buffer, becomes unsynced and sends bulk-requests (retried
//!   every `bulk_retry`) until a resync arrives.
//! * ACKs are cumulative ("everything before `ack` delivered") and windowed:
//!   after `ack_every` deliveries or `ack_delay` after the first unacked one,
//!   and at once for resync, bulk-end and duplicates.
//!
//! # Call order (quinn style)
//! Feed `handle_datagram(kind, seq, ack, body, now)` for every opened
//! datagram of the delta channel; once `now >= poll_timeout()`, call
//! `handle_timeout(now)`; then drain `poll_transmit()` (seal and send each),
//! `poll_delivery()` (apply in order) and `poll_event()`.
//!
//! A delayed duplicate bulk-request that reaches the sender after its resync
//! was acknowledged causes one extra bulk: harmless (merges are idempotent),
//! merely wasteful; requests carry an id, so retries of one request do not.

use std::collections::VecDeque;

use crate::time::{Duration, Instant};

use super::table::seq_lt;
use super::wire::{flags, Kind};

/// Tunables. Defaults suit `poll_ms` 1..50 on a dedicated link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Resend queue bound, in datagrams.
    pub max_queue: usize,
    /// Initial retransmit timeout.
    pub rto: Duration,
    /// Backoff cap.
    pub max_rto: Duration,
    /// Datagrams retransmitted per timer expiry.
    pub burst: usize,
    /// Ack after this many delivered datagrams...
    pub ack_every: u32,
    /// ...or this long after the first unacknowledged one.
    pub ack_delay: Duration,
    /// Out-of-order datagrams the receiver holds.
    pub reorder: usize,
    /// A gap wider than this asks for a resync instead of a NACK.
    pub max_gap: u32,
    /// Bulk-request retry interval.
    pub bulk_retry: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_queue: 4096,
            rto: Duration::from_millis(20),
            max_rto: Duration::from_millis(500),
            burst: 32,
            ack_every: 16,
            ack_delay: Duration::from_millis(2),
            reorder: 1024,
            max_gap: 4096,
            bulk_retry: Duration::from_millis(100),
        }
    }
}

/// Why the sender restarted the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResyncCause {
    /// The caller asked (e.g. on becoming active).
    Local,
    /// The peer sent a bulk-request.
    PeerRequest,
    /// The resend queue overflowed: the peer is too far behind.
    QueueOverflow,
}

/// Something the caller must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    /// Sender: send a bulk now (bulk-start, all records, bulk-end).
    BulkNeeded(ResyncCause),
    /// Receiver: lost continuity and asked for a bulk (role: resync-started).
    FellBehind,
}

/// A datagram to seal and send. `body` borrows the resend queue.
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    pub kind: Kind,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub body: &'a [u8],
}

/// A sequenced datagram delivered in order, exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub kind: Kind,
    pub seq: u32,
    pub body: Vec<u8>,
}

/// Counters for `show failover`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamCounters {
    pub sent: u64,
    pub retransmitted: u64,
    pub resyncs_sent: u64,
    pub acks_received: u64,
    /// Acks older than one already received (reordered): ignored.
    pub old_acks: u64,
    /// Acks for what was never sent: ignored.
    pub bogus_acks: u64,
    pub nacks_received: u64,
    pub stale_nacks: u64,
    pub bulk_requests_received: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub reorder_overflow: u64,
    pub unsynced_drops: u64,
    pub nacks_sent: u64,
    pub acks_sent: u64,
    pub bulk_requests_sent: u64,
    pub fell_behind: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Retransmit = 0,
    Ack = 1,
    BulkRequest = 2,
}
const TIMERS: usize = 3;

#[derive(Debug)]
struct Sent {
    kind: Kind,
    body: Vec<u8>,
    retransmits: u32,
    in_tx: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Ack(u32),
    Nack(u32, u32),
    BulkRequest(u32),
}

/// Both halves of the delta stream of one unit.
#[derive(Debug)]
pub struct Stream {
    cfg: StreamConfig,
    timers: [Option<Instant>; TIMERS],
    events: VecDeque<StreamEvent>,
    counters: StreamCounters,
    // sender
    next_seq: u32,
    /// `queue[i]` has seq `queue_base + i`; everything before is acked.
    queue: VecDeque<Sent>,
    queue_base: u32,
    tx: VecDeque<u32>,
    rto: Duration,
    served_request: Option<u32>,
    // receiver
    synced: bool,
    expected: u32,
    /// `buffer[i]` holds seq `expected + 1 + i` if received.
    buffer: VecDeque<Option<(Kind, Vec<u8>)>>,
    deliveries: VecDeque<Delivery>,
    controls: VecDeque<Control>,
    unacked: u32,
    nacked_upto: u32,
    request_id: u32,
    requesting: bool,
}

impl Stream {
    /// `first_seq`: where this unit's sender starts (random is fine);
    /// `request_id`: first bulk-request id (random, so a restarted receiver
    /// is not mistaken for a retry).
    pub fn new(cfg: StreamConfig, first_seq: u32, request_id: u32) -> Self {
        Stream {
            cfg,
            timers: [None; TIMERS],
            events: VecDeque::new(),
            counters: StreamCounters::default(),
            next_seq: first_seq,
            queue: VecDeque::new(),
            queue_base: first_seq,
            tx: VecDeque::new(),
            rto: cfg.rto,
            served_request: None,
            synced: false,
            expected: 0,
            buffer: VecDeque::new(),
            deliveries: VecDeque::new(),
            controls: VecDeque::new(),
            unacked: 0,
            nacked_upto: 0,
            request_id,
            requesting: false,
        }
    }

    pub fn counters(&self) -> &StreamCounters {
        &self.counters
    }

    // ----- sender -------------------------------------------------------

    /// Datagrams the resend queue still takes before a send overflows it.
    pub fn queue_space(&self) -> usize {
        self.cfg.max_queue.saturating_sub(self.queue.len())
    }
    /// Datagrams sent but not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.queue.len()
    }
    /// Last seq sent (for hellos).
    pub fn seq_sent(&self) -> u32 {
        self.next_seq.wrapping_sub(1)
    }
    /// Everything before this seq is acknowledged (for hellos).
    pub fn seq_acked(&self) -> u32 {
        self.queue_base
    }

    /// Queue a sequenced datagram; returns its seq.
    pub fn send(&mut self, kind: Kind, body: Vec<u8>, now: Instant) -> u32 {
        debug_assert!(kind.is_sequenced() && kind != Kind::Resync);
        if self.queue.len() >= self.cfg.max_queue {
            self.start_resync(ResyncCause::QueueOverflow, now);
        }
        self.push(kind, body, now)
    }

    fn push(&mut self, kind: Kind, body: Vec<u8>, now: Instant) -> u32 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        if self.queue.is_empty() {
            self.queue_base = seq;
            self.rto = self.cfg.rto;
            self.timers[Timer::Retransmit as usize] = Some(now + self.rto);
        }
        self.queue.push_back(Sent { kind, body, retransmits: 0, in_tx: true });
        self.tx.push_back(seq);
        self.counters.sent += 1;
        seq
    }

    /// Restart the stream: drop unacknowledged datagrams and send a resync;
    /// raises [`StreamEvent::BulkNeeded`].
    pub fn start_resync(&mut self, cause: ResyncCause, now: Instant) {
        self.queue.clear();
        self.tx.clear();
        self.counters.resyncs_sent += 1;
        self.push(Kind::Resync, Vec::new(), now);
        self.events.push_back(StreamEvent::BulkNeeded(cause));
    }

    fn resync_in_flight(&self) -> bool {
        self.queue.iter().any(|s| s.kind == Kind::Resync)
    }

    fn handle_ack(&mut self, ack: u32, now: Instant) {
        self.counters.acks_received += 1;
        if seq_lt(ack, self.queue_base) {
            self.counters.old_acks += 1; // overtaken by a later ack
            return;
        }
        let n = ack.wrapping_sub(self.queue_base);
        if n as usize > self.queue.len() {
            self.counters.bogus_acks += 1;
            return;
        }
        if n == 0 {
            return;
        }
        self.queue.drain(..n as usize);
        self.queue_base = ack;
        let base = self.queue_base;
        self.tx.retain(|s| !seq_lt(*s, base));
        self.rto = self.cfg.rto;
        self.timers[Timer::Retransmit as usize] = (!self.queue.is_empty()).then(|| now + self.rto);
    }

    fn queue_for_tx(&mut self, seq: u32) -> bool {
        let i = seq.wrapping_sub(self.queue_base) as usize;
        match self.queue.get_mut(i) {
            Some(s) if !s.in_tx => {
                s.in_tx = true;
                s.retransmits += 1;
                self.tx.push_back(seq);
                self.counters.retransmitted += 1;
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    fn handle_nack(&mut self, from: u32, to: u32) {
        self.counters.nacks_received += 1;
        let width = to.wrapping_sub(from);
        if width as usize > self.cfg.max_queue {
            self.counters.stale_nacks += 1;
            return;
        }
        let mut seq = from;
        while seq != to {
            if !self.queue_for_tx(seq) {
                self.counters.stale_nacks += 1;
            }
            seq = seq.wrapping_add(1);
        }
    }

    fn handle_bulk_request(&mut self, id: u32, now: Instant) {
        self.counters.bulk_requests_received += 1;
        if self.served_request == Some(id) || self.resync_in_flight() {
            return;
        }
        self.served_request = Some(id);
        self.start_resync(ResyncCause::PeerRequest, now);
    }

    // ----- receiver -----------------------------------------------------

    /// Has the receiver seen a resync (and not fallen behind since)?
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Receiver: ask the sender for a resync and bulk; retried every
    /// `bulk_retry` until a resync arrives.
    pub fn request_bulk(&mut self, now: Instant) {
        self.synced = false;
        self.buffer.clear();
        self.request_id = self.request_id.wrapping_add(1);
        self.requesting = true;
        self.controls.push_back(Control::BulkRequest(self.request_id));
        self.counters.bulk_requests_sent += 1;
        self.timers[Timer::BulkRequest as usize] = Some(now + self.cfg.bulk_retry);
        self.timers[Timer::Ack as usize] = None;
        self.unacked = 0;
    }

    fn deliver(&mut self, kind: Kind, seq: u32, body: Vec<u8>) {
        self.deliveries.push_back(Delivery { kind, seq, body });
        self.counters.delivered += 1;
        self.unacked += 1;
    }

    fn ack_now(&mut self) {
        self.controls.retain(|c| !matches!(c, Control::Ack(_)));
        self.controls.push_back(Control::Ack(self.expected));
        self.counters.acks_sent += 1;
        self.unacked = 0;
        self.timers[Timer::Ack as usize] = None;
    }

    fn handle_sequenced(&mut self, kind: Kind, seq: u32, body: &[u8], now: Instant) {
        if !self.synced {
            if kind != Kind::Resync {
                self.counters.unsynced_drops += 1;
                return;
            }
            self.synced = true;
            self.expected = seq;
            self.nacked_upto = seq;
            self.buffer.clear();
        }
        let off = seq.wrapping_sub(self.expected) as i32;
        if off < 0 {
            self.counters.duplicates += 1;
            self.ack_now();
            return;
        }
        let mut urgent = false;
        if off > 0 && kind == Kind::Resync {
            // The sender restarted: forget the gap, jump to the resync.
            let skip = (off as usize).min(self.buffer.len());
            self.buffer.drain(..skip);
            self.expected = seq;
            self.nacked_upto = seq;
        } else if off > 0 {
            if off as u32 > self.cfg.max_gap {
                self.counters.fell_behind += 1;
                self.events.push_back(StreamEvent::FellBehind);
                self.request_bulk(now);
                return;
            }
            let i = off as usize - 1;
            if i >= self.cfg.reorder {
                self.counters.reorder_overflow += 1;
            } else {
                if self.buffer.len() <= i {
                    self.buffer.resize(i + 1, None);
                }
                if self.buffer[i].is_some() {
                    self.counters.duplicates += 1;
                } else {
                    self.buffer[i] = Some((kind, body.to_vec()));
                    self.counters.reordered += 1;
                }
                if self.timers[Timer::Ack as usize].is_none() {
                    self.timers[Timer::Ack as usize] = Some(now + self.cfg.rto);
                }
            }
            let from = if seq_lt(self.nacked_upto, self.expected) { self.expected } else { self.nacked_upto };
            if seq_lt(from, seq) {
                self.controls.push_back(Control::Nack(from, seq));
                self.counters.nacks_sent += 1;
                self.nacked_upto = seq.wrapping_add(1);
            } else if seq_lt(self.nacked_upto, seq.wrapping_add(1)) {
                self.nacked_upto = seq.wrapping_add(1);
            }
            return;
        }
        // In sync.
        urgent |= matches!(kind, Kind::Resync | Kind::BulkEnd);
        self.deliver(kind, seq, body.to_vec());
        self.expected = seq.wrapping_add(1);
        while let Some(front) = self.buffer.pop_front() {
            match front {
                Some((k, b)) => {
                    urgent |= matches!(k, Kind::Resync | Kind::BulkEnd);
                    let s = self.expected;
                    self.deliver(k, s, b);
                    self.expected = s.wrapping_add(1);
                }
                // A hole: it stands for the new `expected` itself, so it
                // leaves the buffer and `buffer[0]` is `expected + 1` again.
                None => break,
            }
        }
        if kind == Kind::Resync {
            self.requesting = false;
            self.timers[Timer::BulkRequest as usize] = None;
        }
        if urgent || self.unacked >= self.cfg.ack_every {
            self.ack_now();
        } else if self.timers[Timer::Ack as usize].is_none() {
            self.timers[Timer::Ack as usize] = Some(now + self.cfg.ack_delay);
        }
    }

    /// While the first datagram after `expected` is missing but later ones
    /// wait in the buffer, NACK the hole again every `rto` (the first NACK
    /// or its retransmission may have been lost).
    fn renack_front_hole(&mut self, now: Instant) {
        let Some(first) = self.buffer.iter().position(|b| b.is_some()) else { return };
        let to = self.expected.wrapping_add(1 + first as u32);
        self.controls.push_back(Control::Nack(self.expected, to));
        self.counters.nacks_sent += 1;
        self.timers[Timer::Ack as usize] = Some(now + self.cfg.rto);
    }

    // ----- both ---------------------------------------------------------

    /// Feed one opened datagram of the delta channel (`seq`/`ack` from its
    /// header). Hellos do not belong here.
    pub fn handle_datagram(&mut self, kind: Kind, seq: u32, ack: u32, body: &[u8], now: Instant) {
        match kind {
            Kind::Delta | Kind::BulkStart | Kind::BulkEnd | Kind::Resync => self.handle_sequenced(kind, seq, body, now),
            Kind::Ack => self.handle_ack(ack, now),
            Kind::Nack => self.handle_nack(seq, ack),
            Kind::BulkRequest => self.handle_bulk_request(seq, now),
            Kind::Hello => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        if due(self.timers[Timer::Retransmit as usize]) {
            let base = self.queue_base;
            let n = self.queue.len().min(self.cfg.burst);
            for i in 0..n {
                self.queue_for_tx(base.wrapping_add(i as u32));
            }
            self.rto = Duration((self.rto.0 * 2).min(self.cfg.max_rto.0));
            self.timers[Timer::Retransmit as usize] = (!self.queue.is_empty()).then(|| now + self.rto);
        }
        if due(self.timers[Timer::Ack as usize]) {
            self.ack_now();
            self.renack_front_hole(now);
        }
        if due(self.timers[Timer::BulkRequest as usize]) {
            if self.requesting {
                self.controls.push_back(Control::BulkRequest(self.request_id));
                self.counters.bulk_requests_sent += 1;
                self.timers[Timer::BulkRequest as usize] = Some(now + self.cfg.bulk_retry);
            } else {
                self.timers[Timer::BulkRequest as usize] = None;
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    /// Next datagram to seal and send: controls first, then data.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        if let Some(c) = self.controls.pop_front() {
            let (kind, seq, ack) = match c {
                Control::Ack(a) => (Kind::Ack, 0, a),
                Control::Nack(from, to) => (Kind::Nack, from, to),
                Control::BulkRequest(id) => (Kind::BulkRequest, id, self.expected),
            };
            return Some(Transmit { kind, flags: 0, seq, ack, body: &[] });
        }
        while let Some(seq) = self.tx.pop_front() {
            let i = seq.wrapping_sub(self.queue_base) as usize;
            if i >= self.queue.len() {
                continue; // acknowledged meanwhile
            }
            let s = &mut self.queue[i];
            s.in_tx = false;
            let fl = if s.retransmits > 0 { flags::RETRANSMIT } else { 0 };
            return Some(Transmit { kind: s.kind, flags: fl, seq, ack: 0, body: &s.body });
        }
        None
    }

    pub fn poll_delivery(&mut self) -> Option<Delivery> {
        self.deliveries.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
