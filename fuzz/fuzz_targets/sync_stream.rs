//! Arbitrary sequences of (kind, seq, ack, time step, body length) into the
//! delta stream, with the sender and receiver halves both exercised and all
//! outputs drained. Must not panic, and deliveries must stay in order.
//!
//! Run: `cd fuzz && cargo +nightly fuzz run sync_stream -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinwall::ha::stream::{ResyncCause, Stream, StreamConfig};
use twinwall::ha::wire::Kind;
use twinwall::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let cfg = StreamConfig { max_queue: 16, reorder: 8, max_gap: 64, burst: 4, ..StreamConfig::default() };
    let mut s = Stream::new(cfg, 0xffff_fff0, 7);
    let mut now = Instant::ZERO;
    let mut last: Option<u32> = None;
    for op in data.chunks(10) {
        if op.len() < 10 {
            break;
        }
        let kind = Kind::from_u8(op[0] % 9);
        let seq = u32::from_be_bytes([op[1], op[2], op[3], op[4]]);
        let ack = u32::from_be_bytes([op[5], op[6], op[7], op[8]]);
        now = now + Duration::from_micros(u64::from(op[9]) * 100);
        match (op[0] >> 4, kind) {
            (0, _) => {
                s.send(Kind::Delta, vec![op[1]; usize::from(op[2] % 32)], now);
            }
            (1, _) => s.start_resync(ResyncCause::Local, now),
            (2, _) => s.request_bulk(now),
            (_, Some(k)) => s.handle_datagram(k, seq, ack, &op[..usize::from(op[3] % 10)], now),
            (_, None) => {}
        }
        if s.poll_timeout().is_some_and(|t| now >= t) {
            s.handle_timeout(now);
        }
        while s.poll_transmit().is_some() {}
        while let Some(d) = s.poll_delivery() {
            if let Some(prev) = last {
                // In order: each delivery follows the previous one, unless a
                // resync or a fresh sync started a new run.
                assert!(d.seq == prev.wrapping_add(1) || d.kind == Kind::Resync, "out of order");
            }
            last = Some(d.seq);
        }
        while s.poll_event().is_some() {}
    }
});
