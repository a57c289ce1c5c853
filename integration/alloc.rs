//! "No allocation per frame": a counting global allocator proves that an
//! established flow's frames go through the core without touching the heap
//! once the buffer pool and queues are warm.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use twinwall::entropy::SeededRng;
use twinwall::testkit::*;
use twinwall::wire::arp as arpw;
use twinwall::{Appliance, Instant, Output};

struct Counting;
thread_local! {
    /// Per thread: the test harness's own threads allocate meanwhile.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Drain the core's output, recycling frames; how many frames it sent.
fn drain(app: &mut Appliance) -> usize {
    let mut n = 0;
    while let Some(o) = app.poll_output() {
        if let Output::Frame { buf, .. } = o {
            app.recycle(buf);
            n += 1;
        }
    }
    n
}

#[test]
fn established_flow_allocates_nothing() {
    let now = Instant::from_millis(1000);
    let mut app = Appliance::new(lab_config(), now, Box::new(SeededRng::new(3)));
    drain(&mut app);
    let arp_router = arp(arpw::REQUEST, [0xff; 6], ROUTER_MAC, "203.0.113.254", [0; 6], "203.0.113.1");
    app.handle_frame(OUTSIDE, arp_router, now);
    drain(&mut app);
    let template = udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40000, "198.51.100.53", 53, &[7; 100]);
    // Warm up: create the connection and fill the pool.
    for _ in 0..100 {
        let mut b = app.alloc_frame();
        b.set(template.as_ref());
        app.handle_frame(INSIDE, b, now);
        drain(&mut app);
    }
    let before = allocs();
    let mut sent = 0;
    for _ in 0..10_000 {
        let mut b = app.alloc_frame();
        b.set(template.as_ref());
        app.handle_frame(INSIDE, b, now);
        sent += drain(&mut app);
    }
    let after = allocs();
    assert_eq!(sent, 10_000);
    assert_eq!(after - before, 0, "{} allocations for 10000 forwarded frames", after - before);
}

/// The same for frames read with vnet_hdr offload: TCP super-frames with a
/// partial checksum, cut into segments in software for a port without
/// offload (the most work the offload path does), and, on a port with
/// offload, forwarded whole.
#[test]
fn offloaded_super_frames_allocate_nothing() {
    use twinwall::wire::{checksum, put16, put32};
    for tx_offload in [false, true] {
        let now = Instant::from_millis(1000);
        let mut app = Appliance::new(lab_config(), now, Box::new(SeededRng::new(3)));
        app.set_tx_offload(INSIDE, tx_offload);
        app.set_tx_offload(OUTSIDE, tx_offload);
        drain(&mut app);
        app.handle_frame(
            OUTSIDE,
            arp(arpw::REQUEST, [0xff; 6], ROUTER_MAC, "203.0.113.254", [0; 6], "203.0.113.1"),
            now,
        );
        app.handle_frame(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, "192.168.10.10", [0; 6], "192.168.10.1"), now);
        drain(&mut app);
        let (cli, srv) = ("192.168.10.10", "198.51.100.80");
        app.handle_frame(INSIDE, tcp(HOST_MAC, FW_IN_MAC, cli, 40000, srv, 80, 100, 0, "S", &[]), now);
        drain(&mut app);
        let pat_port = app.conn_keys()[0][1].dport;
        app.handle_frame(
            OUTSIDE,
            tcp(ROUTER_MAC, FW_OUT_MAC, srv, 80, "203.0.113.1", pat_port, 5000, 101, "SA", &[]),
            now,
        );
        app.handle_frame(INSIDE, tcp(HOST_MAC, FW_IN_MAC, cli, 40000, srv, 80, 101, 5001, "A", &[]), now);
        assert_eq!(drain(&mut app), 2, "handshake forwarded");
        const LEN: usize = 8000;
        // Templates built before counting; each round patches seq and ack.
        let mut sup = tcp(HOST_MAC, FW_IN_MAC, cli, 40000, srv, 80, 0, 5001, "AP", &[0x5a; LEN]);
        // As a TAP with TSO hands it over: the field holds the pseudo-header
        // sum, which the sequence number is not part of.
        let p = !checksum::finish(checksum::pseudo_v4([192, 168, 10, 10], [198, 51, 100, 80], 6, (20 + LEN) as u16));
        put16(sup.as_mut(), 34 + 16, p);
        let ack_t = tcp(ROUTER_MAC, FW_OUT_MAC, srv, 80, "203.0.113.1", pat_port, 5001, 0, "A", &[]);
        let ack_pseudo = checksum::pseudo_v4([198, 51, 100, 80], [203, 0, 113, 1], 6, 20);
        let mut seq = 101u32;
        let round = |app: &mut Appliance, seq: &mut u32| {
            let mut b = app.alloc_frame();
            b.set(sup.as_ref());
            put32(b.as_mut(), 34 + 4, *seq);
            b.offload = tso_v4(1448);
            app.handle_frame(INSIDE, b, now);
            *seq = seq.wrapping_add(LEN as u32);
            let mut ack = app.alloc_frame();
            ack.set(ack_t.as_ref());
            let f = ack.as_mut();
            put32(f, 34 + 8, *seq);
            put16(f, 34 + 16, 0);
            let c = checksum::finish(checksum::sum(&f[34..54], ack_pseudo));
            put16(f, 34 + 16, c);
            app.handle_frame(OUTSIDE, ack, now);
            drain(app)
        };
        let per_round = if tx_offload { 2 } else { LEN.div_ceil(1448) + 1 };
        for _ in 0..100 {
            assert_eq!(round(&mut app, &mut seq), per_round, "warm-up round forwarded");
        }
        let before = allocs();
        let mut sent = 0;
        for _ in 0..1000 {
            sent += round(&mut app, &mut seq);
        }
        let after = allocs();
        assert_eq!(sent, 1000 * per_round);
        assert_eq!(after - before, 0, "{} allocations for {sent} frames (tx offload {tx_offload})", after - before);
    }
}
