//! "No allocation per frame": a counting global allocator proves that an
//! established flow's frames go through the core without touching the heap
//! once the buffer pool and queues are warm.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use twinwall::entropy::SeededRng;
use twinwall::testkit::*;
use twinwall::wire::arp as arpw;
use twinwall::{Appliance, Instant, Output};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
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

#[test]
fn established_flow_allocates_nothing() {
    let now = Instant::from_millis(1000);
    let mut app = Appliance::new(lab_config(), now, Box::new(SeededRng::new(3)));
    let drain = |app: &mut Appliance| {
        let mut n = 0;
        while let Some(o) = app.poll_output() {
            if let Output::Frame { buf, .. } = o {
                app.recycle(buf);
                n += 1;
            }
        }
        n
    };
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
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut sent = 0;
    for _ in 0..10_000 {
        let mut b = app.alloc_frame();
        b.set(template.as_ref());
        app.handle_frame(INSIDE, b, now);
        sent += drain(&mut app);
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(sent, 10_000);
    assert_eq!(after - before, 0, "{} allocations for 10000 forwarded frames", after - before);
}
