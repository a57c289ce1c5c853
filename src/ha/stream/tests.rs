//! Stream tests: unit cases per rule, then a seeded lossy, duplicating,
//! reordering link between two streams.

use super::*;
use crate::entropy::{Entropy, SeededRng};

const MS: Duration = Duration::from_millis(1);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn drain_tx(s: &mut Stream) -> Vec<(Kind, u8, u32, u32, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some(x) = s.poll_transmit() {
        v.push((x.kind, x.flags, x.seq, x.ack, x.body.to_vec()));
    }
    v
}

fn drain_rx(s: &mut Stream) -> Vec<(Kind, u32, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some(d) = s.poll_delivery() {
        v.push((d.kind, d.seq, d.body));
    }
    v
}

fn synced_receiver(cfg: StreamConfig, at: u32) -> Stream {
    let mut r = Stream::new(cfg, 0, 0);
    r.handle_datagram(Kind::Resync, at, 0, &[], t(0));
    drain_rx(&mut r);
    drain_tx(&mut r);
    r
}

#[test]
fn receiver_in_sync_after_before() {
    let mut r = Stream::new(StreamConfig::default(), 0, 0);
    // Unsynced: data is dropped until a resync.
    r.handle_datagram(Kind::Delta, 99, 0, b"early", t(0));
    assert!(drain_rx(&mut r).is_empty());
    assert_eq!(r.counters().unsynced_drops, 1);
    r.handle_datagram(Kind::Resync, 100, 0, &[], t(0));
    assert_eq!(drain_rx(&mut r), vec![(Kind::Resync, 100, vec![])]);
    assert_eq!(drain_tx(&mut r), vec![(Kind::Ack, 0, 0, 101, vec![])], "resync is acked at once");
    r.handle_datagram(Kind::Delta, 101, 0, b"a", t(1));
    r.handle_datagram(Kind::Delta, 103, 0, b"c", t(1));
    assert_eq!(drain_rx(&mut r), vec![(Kind::Delta, 101, b"a".to_vec())]);
    assert_eq!(drain_tx(&mut r), vec![(Kind::Nack, 0, 102, 103, vec![])]);
    // A further gap NACKs only what is new.
    r.handle_datagram(Kind::Delta, 105, 0, b"e", t(1));
    assert_eq!(drain_tx(&mut r), vec![(Kind::Nack, 0, 104, 105, vec![])]);
    r.handle_datagram(Kind::Delta, 102, 0, b"b", t(1));
    r.handle_datagram(Kind::Delta, 104, 0, b"d", t(1));
    let got: Vec<u32> = drain_rx(&mut r).iter().map(|d| d.1).collect();
    assert_eq!(got, vec![102, 103, 104, 105]);
    // Before: duplicate, dropped, acked at once.
    r.handle_datagram(Kind::Delta, 101, 0, b"a", t(2));
    assert!(drain_rx(&mut r).is_empty());
    assert_eq!(drain_tx(&mut r), vec![(Kind::Ack, 0, 0, 106, vec![])]);
    assert_eq!(r.counters().duplicates, 1);
}

#[test]
fn acks_are_windowed() {
    let cfg = StreamConfig { ack_every: 4, ack_delay: Duration::from_millis(2), ..StreamConfig::default() };
    let mut r = synced_receiver(cfg, 0);
    for s in 1..4 {
        r.handle_datagram(Kind::Delta, s, 0, b"x", t(10));
    }
    assert!(drain_tx(&mut r).is_empty());
    assert_eq!(r.poll_timeout(), Some(t(12)));
    r.handle_datagram(Kind::Delta, 4, 0, b"x", t(11));
    assert_eq!(drain_tx(&mut r), vec![(Kind::Ack, 0, 0, 5, vec![])]);
    assert_eq!(r.poll_timeout(), None);
    r.handle_datagram(Kind::Delta, 5, 0, b"x", t(20));
    r.handle_timeout(t(21));
    assert!(drain_tx(&mut r).is_empty(), "not yet");
    r.handle_timeout(t(22));
    assert_eq!(drain_tx(&mut r), vec![(Kind::Ack, 0, 0, 6, vec![])]);
    // Bulk-end is acked at once.
    r.handle_datagram(Kind::BulkEnd, 6, 0, &[], t(30));
    assert_eq!(drain_tx(&mut r), vec![(Kind::Ack, 0, 0, 7, vec![])]);
}

#[test]
fn sender_retransmits_on_timer_with_backoff_and_on_nack() {
    let cfg =
        StreamConfig { rto: Duration::from_millis(10), max_rto: Duration::from_millis(25), ..StreamConfig::default() };
    let mut s = Stream::new(cfg, u32::MAX - 1, 0); // seqs wrap
    for b in [b"a", b"b", b"c"] {
        s.send(Kind::Delta, b.to_vec(), t(0));
    }
    let first = drain_tx(&mut s);
    assert_eq!(first.iter().map(|x| x.2).collect::<Vec<_>>(), vec![u32::MAX - 1, u32::MAX, 0]);
    assert_eq!(s.poll_timeout(), Some(t(10)));
    s.handle_timeout(t(10));
    let again = drain_tx(&mut s);
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|x| x.1 == flags::RETRANSMIT));
    assert_eq!(s.poll_timeout(), Some(t(30)), "doubled");
    s.handle_timeout(t(30));
    drain_tx(&mut s);
    assert_eq!(s.poll_timeout(), Some(t(55)), "capped at max_rto");
    // NACK one; a NACK for what was never sent is stale.
    s.handle_datagram(Kind::Nack, u32::MAX, 0, &[], t(31));
    assert_eq!(
        drain_tx(&mut s).iter().map(|x| (x.2, x.4.clone())).collect::<Vec<_>>(),
        vec![(u32::MAX, b"b".to_vec())]
    );
    s.handle_datagram(Kind::Nack, 5, 6, &[], t(31));
    assert_eq!(s.counters().stale_nacks, 1);
    // Cumulative ack.
    s.handle_datagram(Kind::Ack, 0, 0, &[], t(32));
    assert_eq!((s.unacked(), s.seq_acked(), s.seq_sent()), (1, 0, 0));
    assert_eq!(s.poll_timeout(), Some(t(42)), "rto reset after progress");
    s.handle_datagram(Kind::Ack, 0, 77, &[], t(33));
    assert_eq!(s.counters().bogus_acks, 1);
    s.handle_datagram(Kind::Ack, 0, 1, &[], t(33));
    assert_eq!((s.unacked(), s.poll_timeout()), (0, None));
}

#[test]
fn bulk_request_resyncs_once_per_request() {
    let cfg = StreamConfig::default();
    let mut standby = Stream::new(cfg, 0, 41);
    standby.request_bulk(t(0));
    let req = drain_tx(&mut standby);
    assert_eq!(req.len(), 1);
    assert_eq!((req[0].0, req[0].2), (Kind::BulkRequest, 42));
    standby.handle_timeout(t(100));
    assert_eq!(drain_tx(&mut standby)[0].2, 42, "retried with the same id");

    let mut active = Stream::new(cfg, 500, 0);
    active.send(Kind::Delta, b"old".to_vec(), t(0));
    drain_tx(&mut active);
    active.handle_datagram(Kind::BulkRequest, 42, 0, &[], t(1));
    assert_eq!(active.poll_event(), Some(StreamEvent::BulkNeeded(ResyncCause::PeerRequest)));
    let tx = drain_tx(&mut active);
    assert_eq!((tx[0].0, tx[0].2), (Kind::Resync, 501));
    assert_eq!(active.unacked(), 1, "old datagram dropped from the queue");
    active.handle_datagram(Kind::BulkRequest, 42, 0, &[], t(2));
    assert_eq!(active.poll_event(), None, "a retry is not a new request");
    // The resync reaches the standby, which stops asking.
    standby.handle_datagram(Kind::Resync, 501, 0, &[], t(3));
    assert!(standby.is_synced());
    drain_tx(&mut standby);
    standby.handle_timeout(t(300));
    assert!(drain_tx(&mut standby).iter().all(|x| x.0 != Kind::BulkRequest));
}

#[test]
fn receiver_too_far_behind_asks_for_resync() {
    let cfg = StreamConfig { max_gap: 100, ..StreamConfig::default() };
    let mut r = synced_receiver(cfg, 0);
    r.handle_datagram(Kind::Delta, 50, 0, b"x", t(1));
    assert_eq!(r.poll_event(), None);
    drain_tx(&mut r);
    r.handle_datagram(Kind::Delta, 1 + 101, 0, b"x", t(1));
    assert_eq!(r.poll_event(), Some(StreamEvent::FellBehind));
    assert!(!r.is_synced());
    assert_eq!(drain_tx(&mut r)[0].0, Kind::BulkRequest);
}

#[test]
fn resync_jumps_over_a_gap_and_keeps_successors() {
    let mut r = synced_receiver(StreamConfig::default(), 0);
    r.handle_datagram(Kind::Delta, 3, 0, b"lost-era", t(1));
    r.handle_datagram(Kind::Delta, 6, 0, b"after", t(1));
    r.handle_datagram(Kind::Resync, 5, 0, &[], t(1));
    let got = drain_rx(&mut r);
    assert_eq!(got, vec![(Kind::Resync, 5, vec![]), (Kind::Delta, 6, b"after".to_vec())]);
}

// ---------------------------------------------------------------------------
// Simulated link.

struct Link {
    rng: SeededRng,
    loss_pm: u64,
    dup_pm: u64,
    delay_us: u64,
    jitter_us: u64,
    partitioned: bool,
    /// (arrival, to_receiver, kind, seq, ack, body)
    inflight: Vec<(Instant, bool, Kind, u32, u32, Vec<u8>)>,
}

impl Link {
    fn new(seed: u64, loss_pm: u64, dup_pm: u64) -> Self {
        Link {
            rng: SeededRng::new(seed),
            loss_pm,
            dup_pm,
            delay_us: 300,
            jitter_us: 700,
            partitioned: false,
            inflight: Vec::new(),
        }
    }

    fn chance(&mut self, pm: u64) -> bool {
        self.rng.next_u64() % 1000 < pm
    }

    fn carry(&mut self, from: &mut Stream, to_receiver: bool, now: Instant) {
        let mut out = Vec::new();
        while let Some(x) = from.poll_transmit() {
            out.push((x.kind, x.seq, x.ack, x.body.to_vec()));
        }
        for (kind, seq, ack, body) in out {
            if self.partitioned || self.chance(self.loss_pm) {
                continue;
            }
            let copies = if self.chance(self.dup_pm) { 2 } else { 1 };
            for _ in 0..copies {
                let at = now + Duration(self.delay_us + self.rng.next_u64() % self.jitter_us);
                self.inflight.push((at, to_receiver, kind, seq, ack, body.clone()));
            }
        }
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.inflight.iter().map(|x| x.0).min()
    }

    fn deliver_due(&mut self, now: Instant, sender: &mut Stream, receiver: &mut Stream) {
        let mut due: Vec<_> = Vec::new();
        let mut i = 0;
        while i < self.inflight.len() {
            if self.inflight[i].0 <= now {
                due.push(self.inflight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|x| x.0);
        for (_, to_rx, kind, seq, ack, body) in due {
            let dst = if to_rx { &mut *receiver } else { &mut *sender };
            dst.handle_datagram(kind, seq, ack, &body, now);
        }
    }
}

struct Run {
    delivered: Vec<(Kind, Vec<u8>)>,
    events: Vec<StreamEvent>,
    sender: Stream,
    receiver: Stream,
    iterations: u64,
    end: Instant,
}

/// Drive a sender and a receiver over `link`; the sender application
/// queues payloads 0..n (one per 100 µs while the queue has room) after a
/// local resync. `partition` = (from, to) in ms of simulated time.
fn run(
    link: &mut Link,
    cfg: StreamConfig,
    n: u32,
    partition: Option<(u64, u64)>,
    limit_ms: u64,
    respect_space: bool,
) -> Run {
    let mut sender = Stream::new(cfg, link.rng.next_u64() as u32, 0);
    let mut receiver = Stream::new(cfg, 0, link.rng.next_u64() as u32);
    let mut now = Instant::ZERO;
    sender.start_resync(ResyncCause::Local, now);
    let mut next_payload = 0u32;
    let mut next_send = now;
    let mut out = Run {
        delivered: Vec::new(),
        events: Vec::new(),
        sender: Stream::new(cfg, 0, 0),
        receiver: Stream::new(cfg, 0, 0),
        iterations: 0,
        end: Instant::ZERO,
    };
    let mut iterations = 0u64;
    while now < t(limit_ms) {
        iterations += 1;
        if let Some((a, b)) = partition {
            link.partitioned = now >= t(a) && now < t(b);
        }
        link.deliver_due(now, &mut sender, &mut receiver);
        for s in [&mut sender, &mut receiver] {
            if s.poll_timeout().is_some_and(|d| now >= d) {
                s.handle_timeout(now);
            }
        }
        if next_payload < n && now >= next_send && (!respect_space || sender.queue_space() > 0) {
            sender.send(Kind::Delta, next_payload.to_be_bytes().to_vec(), now);
            next_payload += 1;
            next_send = now + Duration(100);
        }
        link.carry(&mut sender, true, now);
        link.carry(&mut receiver, false, now);
        while let Some(d) = receiver.poll_delivery() {
            out.delivered.push((d.kind, d.body));
        }
        for s in [&mut sender, &mut receiver] {
            while let Some(e) = s.poll_event() {
                out.events.push(e);
            }
        }
        let done = next_payload == n && sender.unacked() == 0 && link.inflight.is_empty();
        if done {
            break;
        }
        let mut wake = [link.next_arrival(), sender.poll_timeout(), receiver.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + MS);
        if next_payload < n && (!respect_space || sender.queue_space() > 0) {
            wake = wake.min(next_send.max(now + Duration(1)));
        }
        now = wake.max(now + Duration(1));
    }
    out.sender = sender;
    out.receiver = receiver;
    out.iterations = iterations;
    out.end = now;
    out
}

/// Seeds to run: 40 by default; more with e.g.
/// `TWINWALL_HA_SEEDS=5000 cargo test --lib ha::stream`.
fn seeds() -> u64 {
    std::env::var("TWINWALL_HA_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40)
}

#[test]
fn lossy_link_delivers_everything_once_in_order() {
    let cfg = StreamConfig { max_queue: 512, ..StreamConfig::default() };
    for seed in 0..seeds() {
        let mut link = Link::new(seed, 100 + seed % 5 * 50, 50);
        let r = run(&mut link, cfg, 2000, None, 60_000, true);
        assert_eq!(r.events, vec![StreamEvent::BulkNeeded(ResyncCause::Local)], "seed {seed}");
        assert_eq!(r.delivered.first(), Some(&(Kind::Resync, vec![])), "seed {seed}");
        let payloads: Vec<u32> = r.delivered[1..]
            .iter()
            .map(|(k, b)| {
                assert_eq!(*k, Kind::Delta);
                u32::from_be_bytes(b[..4].try_into().unwrap())
            })
            .collect();
        assert_eq!(payloads, (0..2000).collect::<Vec<_>>(), "seed {seed}");
        assert_eq!(r.sender.unacked(), 0, "seed {seed}: everything acknowledged");
        let c = r.receiver.counters();
        assert!(c.nacks_sent > 0 && c.reordered > 0 && c.duplicates > 0, "seed {seed}: link exercised {c:?}");
    }
}

#[test]
fn partition_longer_than_the_queue_forces_a_resync() {
    let cfg = StreamConfig { max_queue: 64, ..StreamConfig::default() };
    for seed in 0..10 {
        let mut link = Link::new(seed, 50, 20);
        // 100 µs per payload: 64 queued datagrams last 6.4 ms, the partition 30 ms.
        let r = run(&mut link, cfg, 1000, Some((20, 50)), 60_000, false);
        assert!(r.events.contains(&StreamEvent::BulkNeeded(ResyncCause::QueueOverflow)), "seed {seed}: {:?}", r.events);
        // After the last resync the receiver got every later payload once, in order.
        let last = r.delivered.iter().rposition(|d| d.0 == Kind::Resync).unwrap();
        let tail: Vec<u32> =
            r.delivered[last + 1..].iter().map(|(_, b)| u32::from_be_bytes(b[..4].try_into().unwrap())).collect();
        assert!(!tail.is_empty(), "seed {seed}");
        let first = tail[0];
        assert_eq!(tail, (first..1000).collect::<Vec<_>>(), "seed {seed}");
        assert_eq!(r.sender.unacked(), 0, "seed {seed}");
    }
}

/// Diagnostic: `cargo test --lib print_counters_for_one_seed -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_counters_for_one_seed() {
    let cfg = StreamConfig { max_queue: 512, ..StreamConfig::default() };
    let mut link = Link::new(3, 200, 50);
    let r = run(&mut link, cfg, 2000, None, 60_000, true);
    eprintln!(
        "iter {} end {:?}\nsender {:?}\nreceiver {:?}\ndelivered {}",
        r.iterations,
        r.end,
        r.sender.counters(),
        r.receiver.counters(),
        r.delivered.len()
    );
}
