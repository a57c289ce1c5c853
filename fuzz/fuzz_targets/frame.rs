//! Arbitrary frames through the whole appliance pipeline: the lab config
//! (inside, outside, dmz; PAT, static NAT, a port forward, an outside ACL),
//! a seeded RNG, a virtual clock with timers run as they fall due, and every
//! output drained. Nothing may panic. Checksums are not verified under
//! `cfg(fuzzing)` (src/pdesc.rs), so the fuzzer reaches conntrack and NAT.
//!
//! The first input byte's bit `0x10` picks the transparent-mode lab
//! (`testkit::bridge_config`: the same ports bridged, no NAT) instead.
//!
//! Input: records of `[ctrl, step, len_hi, len_lo, frame bytes...]`.
//! * `ctrl & 3`: port (0 inside, 1 outside, 2 dmz, 3: no frame, timers only);
//! * `ctrl & 4`: overwrite the destination MAC with the port's own MAC (as
//!   replay's `--retarget-mac`), so the fuzzer need not guess it;
//! * `ctrl & 8`: overwrite the source MAC with a fixed neighbour's MAC;
//! * `step`: the clock advances `step^3` microseconds (0 .. 16.6 s) first;
//! * the frame is the next `len` bytes (fewer when the input ends).
//!
//! At the end every `show` report is rendered, text and JSON.
//!
//! Run: `cd fuzz && cargo +nightly fuzz run frame -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinwall::entropy::SeededRng;
use twinwall::show::ShowWhat;
use twinwall::testkit::{self, bridge_config, lab_config};
use twinwall::{Appliance, IfIndex, Instant, Output};

/// Timer rounds at one instant before giving up (as replay's driver).
const MAX_ROUNDS: u32 = 10_000;

fn drain(app: &mut Appliance) {
    while let Some(o) = app.poll_output() {
        if let Output::Frame { buf, .. } = o {
            app.recycle(buf);
        }
    }
}

/// Every timer due by `now`, each at its own deadline.
fn run_timers(app: &mut Appliance, now: Instant) {
    let mut rounds = 0;
    while let Some(t) = app.poll_timeout().filter(|t| *t <= now) {
        app.handle_timeout(t);
        drain(app);
        rounds += 1;
        if rounds > MAX_ROUNDS {
            panic!("a timer at {t:?} keeps re-arming itself");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let cfg = if data.first().is_some_and(|c| c & 0x10 != 0) { bridge_config() } else { lab_config() };
    let macs: Vec<[u8; 6]> = cfg.interfaces.iter().map(|i| i.mac.0).collect();
    let mut now = Instant::from_millis(1_000_000);
    let mut app = Appliance::new(cfg, now, Box::new(SeededRng::new(7)));
    drain(&mut app);
    let mut rest = data;
    while rest.len() >= 4 {
        let (ctrl, step) = (rest[0], u64::from(rest[1]));
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let frame = &rest[4..4 + len];
        rest = &rest[4 + len..];
        now = now + twinwall::Duration::from_micros(step * step * step);
        run_timers(&mut app, now);
        let port = ctrl & 3;
        if port == 3 {
            continue;
        }
        let mut buf = app.alloc_frame();
        buf.set(frame);
        if buf.len() >= 12 {
            if ctrl & 4 != 0 {
                buf.as_mut()[..6].copy_from_slice(&macs[usize::from(port)]);
            }
            if ctrl & 8 != 0 {
                buf.as_mut()[6..12].copy_from_slice(&testkit::ROUTER_MAC);
            }
        }
        app.handle_frame(IfIndex(port), buf, now);
        drain(&mut app);
    }
    for what in [
        ShowWhat::Conn,
        ShowWhat::Xlate,
        ShowWhat::Arp,
        ShowWhat::Route,
        ShowWhat::Interface,
        ShowWhat::Counters,
        ShowWhat::Failover,
        ShowWhat::Mac,
    ] {
        let r = app.show(what, now);
        std::hint::black_box((r.text(), r.json()));
    }
});
