//! Per-frame CPU cost of the pipeline, and memory per connection.
//!
//!     cargo bench --bench pipeline
//!
//! One `Appliance` (the lab config of `twinwall::testkit`: inside, outside,
//! dmz; PAT from inside to outside) on one core, driven as the shell drives
//! it: a pooled buffer is filled with the frame (`alloc_frame` + `set`, the
//! stand-in for the TAP read), handed to `handle_frame`, and `poll_output`
//! is drained, every frame buffer going back through `recycle`. A virtual
//! clock advances 1 µs per frame and `handle_timeout` runs whenever
//! `poll_timeout` is due, so the conntrack sweep is in the figures. Both
//! next hops are resolved before timing starts (an ARP reply from the
//! router, one from the inside host).
//!
//! Cases:
//! * `tcp established`: a PAT'd TCP connection after its handshake; the
//!   inside host sends 1400-byte segments, the server acknowledges each one
//!   (so sequence-window tracking passes), 1:1; frames alternate direction.
//!   The frames are one template per direction whose seq/ack are patched
//!   per frame with an RFC 1624 checksum update (see `driver only`).
//! * `tcp 60000 B TSO super-frame`: the same connection fed as a TAP with
//!   offload feeds it: 60000-byte super-frames with a partial checksum,
//!   each acknowledged; out of a port with offload (forwarded whole), or
//!   without (segmented into 1448-byte segments with full checksums here).
//! * `udp established`: a PAT'd UDP flow, 64-byte payloads, alternating
//!   directions.
//! * `udp new flow` / `tcp syn new flow`: every frame opens a connection
//!   (fresh source port; 4096 destinations so no remote endpoint runs out of
//!   PAT ports): route, ACL/security level, PAT port choice, conntrack
//!   insert. Frames are built beforehand. The UDP run fills the table to
//!   `limits.max_conns` = 1 M, and `show conn` then gives the bytes per
//!   connection at 1 M entries.
//! * `driver only`: the per-frame work of this harness without the core
//!   (buffer fill, seq/ack patch, clock), to subtract by eye.
//!
//! Every case asserts that all its frames were forwarded and none dropped.

use std::hint::black_box;
use std::time::Instant as Wall;

use twinwall::entropy::SeededRng;
use twinwall::frame::Offload;
use twinwall::show::{Report, ShowWhat};
use twinwall::testkit::{self, lab_config, FW_IN_MAC, FW_OUT_MAC, HOST_MAC, INSIDE, OUTSIDE, ROUTER_MAC};
use twinwall::wire::checksum::{finish, pseudo_v4, update32};
use twinwall::{Appliance, Duration, IfIndex, Instant, Output};

const TICK: Duration = Duration::from_micros(1);
/// Ethernet + IPv4 (no options): where TCP's seq, ack and checksum sit.
const TCP_SEQ: usize = 14 + 20 + 4;
const TCP_ACK: usize = 14 + 20 + 8;
const TCP_SUM: usize = 14 + 20 + 16;
const ROUNDS: usize = 5;

struct Rig {
    app: Appliance,
    now: Instant,
    out: u64,
}

impl Rig {
    fn new() -> Rig {
        let now = Instant::from_millis(1_000_000);
        let mut rig = Rig { app: Appliance::new(lab_config(), now, Box::new(SeededRng::new(1))), now, out: 0 };
        rig.drain();
        // Both next hops resolved up front.
        let router = testkit::arp(2, FW_OUT_MAC, ROUTER_MAC, "203.0.113.254", FW_OUT_MAC, "203.0.113.1");
        rig.feed(OUTSIDE, router.as_ref());
        let host = testkit::arp(2, FW_IN_MAC, HOST_MAC, "192.168.10.10", FW_IN_MAC, "192.168.10.1");
        rig.feed(INSIDE, host.as_ref());
        rig.out = 0;
        rig
    }

    fn drain(&mut self) -> Option<Vec<u8>> {
        let mut last = None;
        while let Some(o) = self.app.poll_output() {
            if let Output::Frame { buf, .. } = o {
                self.out += 1;
                if last.is_none() {
                    last = Some(buf.as_ref().to_vec());
                }
                self.app.recycle(buf);
            }
        }
        last
    }

    /// One frame through the core, as the shell does it.
    #[inline(always)]
    fn step(&mut self, port: IfIndex, frame: &[u8]) {
        self.now = self.now + TICK;
        if self.app.poll_timeout().is_some_and(|t| t <= self.now) {
            self.app.handle_timeout(self.now);
        }
        let mut buf = self.app.alloc_frame();
        buf.set(frame);
        self.app.handle_frame(port, buf, self.now);
        while let Some(o) = self.app.poll_output() {
            if let Output::Frame { buf, .. } = o {
                self.out += 1;
                self.app.recycle(buf);
            }
        }
    }

    /// [`step`](Self::step) for a frame read with vnet_hdr offload.
    #[inline(always)]
    fn step_offload(&mut self, port: IfIndex, frame: &[u8], offload: Offload) {
        self.now = self.now + TICK;
        if self.app.poll_timeout().is_some_and(|t| t <= self.now) {
            self.app.handle_timeout(self.now);
        }
        let mut buf = self.app.alloc_frame();
        buf.set(frame);
        buf.offload = offload;
        self.app.handle_frame(port, buf, self.now);
        while let Some(o) = self.app.poll_output() {
            if let Output::Frame { buf, .. } = o {
                self.out += 1;
                self.app.recycle(buf);
            }
        }
    }

    /// A setup frame: fed, and the first frame it caused returned.
    fn feed(&mut self, port: IfIndex, frame: &[u8]) -> Option<Vec<u8>> {
        self.now = self.now + TICK;
        let mut buf = self.app.alloc_frame();
        buf.set(frame);
        self.app.handle_frame(port, buf, self.now);
        self.drain()
    }

    fn forwarded(&self) -> u64 {
        self.app.counters().events.frames_forwarded
    }

    fn drops(&self) -> u64 {
        self.app.counters().drops.iter().sum()
    }
}

fn set_seq_ack(f: &mut [u8], seq: u32, ack: u32) {
    let old_seq = u32::from_be_bytes(f[TCP_SEQ..TCP_SEQ + 4].try_into().unwrap());
    let old_ack = u32::from_be_bytes(f[TCP_ACK..TCP_ACK + 4].try_into().unwrap());
    let mut sum = u16::from_be_bytes([f[TCP_SUM], f[TCP_SUM + 1]]);
    sum = update32(sum, old_seq, seq);
    sum = update32(sum, old_ack, ack);
    f[TCP_SEQ..TCP_SEQ + 4].copy_from_slice(&seq.to_be_bytes());
    f[TCP_ACK..TCP_ACK + 4].copy_from_slice(&ack.to_be_bytes());
    f[TCP_SUM..TCP_SUM + 2].copy_from_slice(&sum.to_be_bytes());
}

fn pat_port(out: &[u8]) -> u16 {
    u16::from_be_bytes([out[34], out[35]])
}

struct Row {
    case: &'static str,
    frames: u64,
    ns: f64,
}

/// Median over `ROUNDS` of `frames` frames each (`f` runs one round).
fn measure(case: &'static str, frames: u64, mut f: impl FnMut()) -> Row {
    f(); // warm-up
    let mut ns: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Wall::now();
            f();
            t.elapsed().as_nanos() as f64 / frames as f64
        })
        .collect();
    ns.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Row { case, frames, ns: ns[ROUNDS / 2] }
}

/// SYN, SYN/ACK and ACK of 192.168.10.10:40000 -> 198.51.100.80:80 through
/// PAT; returns the PAT port.
fn handshake(rig: &mut Rig, cseq: u32, sseq: u32) -> u16 {
    let syn = testkit::tcp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40000, "198.51.100.80", 80, cseq, 0, "S", &[]);
    let port = pat_port(&rig.feed(INSIDE, syn.as_ref()).expect("SYN forwarded"));
    let synack =
        testkit::tcp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.80", 80, "203.0.113.1", port, sseq, cseq + 1, "SA", &[]);
    rig.feed(OUTSIDE, synack.as_ref()).expect("SYN/ACK forwarded");
    let ack =
        testkit::tcp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40000, "198.51.100.80", 80, cseq + 1, sseq + 1, "A", &[]);
    rig.feed(INSIDE, ack.as_ref()).expect("ACK forwarded");
    port
}

fn tcp_established() -> Row {
    const PAIRS: u64 = 500_000;
    const MSS: usize = 1400;
    let mut rig = Rig::new();
    let (cseq, sseq) = (1000u32, 5000u32);
    let port = handshake(&mut rig, cseq, sseq);
    let payload = vec![0x5a; MSS];
    let mut data = testkit::tcp(
        HOST_MAC,
        FW_IN_MAC,
        "192.168.10.10",
        40000,
        "198.51.100.80",
        80,
        cseq + 1,
        sseq + 1,
        "AP",
        &payload,
    )
    .as_ref()
    .to_vec();
    let mut back =
        testkit::tcp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.80", 80, "203.0.113.1", port, sseq + 1, cseq + 1, "A", &[])
            .as_ref()
            .to_vec();
    let mut next = cseq + 1;
    let (fwd0, drop0) = (rig.forwarded(), rig.drops());
    let mut total = 0u64;
    let row = measure("tcp established (1400 B data + ACK)", 2 * PAIRS, || {
        for _ in 0..PAIRS {
            set_seq_ack(&mut data, next, sseq + 1);
            rig.step(INSIDE, &data);
            next = next.wrapping_add(MSS as u32);
            set_seq_ack(&mut back, sseq + 1, next);
            rig.step(OUTSIDE, &back);
        }
        total += 2 * PAIRS;
    });
    assert_eq!(rig.drops() - drop0, 0, "tcp: drops {:?}", rig.app.counters().drop_map());
    assert_eq!(rig.forwarded() - fwd0, total, "tcp: not every segment forwarded");
    row
}

/// TSO super-frames of `LEN` bytes of TCP with a partial checksum, as a TAP
/// with offload hands them over, each acknowledged; out of a port that
/// takes offload (forwarded whole) or not (cut into 1448-byte segments
/// here). One "frame" is a super-frame or an ACK.
fn tcp_super_frames(case: &'static str, tx_offload: bool) -> Row {
    const PAIRS: u64 = 20_000;
    const LEN: usize = 60_000;
    let mut rig = Rig::new();
    rig.app.set_tx_offload(INSIDE, tx_offload);
    rig.app.set_tx_offload(OUTSIDE, tx_offload);
    let (cseq, sseq) = (1000u32, 5000u32);
    let port = handshake(&mut rig, cseq, sseq);
    let mut data =
        testkit::tcp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40000, "198.51.100.80", 80, 0, sseq + 1, "AP", &[0x5a; LEN])
            .as_ref()
            .to_vec();
    // The checksum field holds the pseudo-header sum only, so patching the
    // sequence number below leaves it alone.
    let p = !finish(pseudo_v4([192, 168, 10, 10], [198, 51, 100, 80], 6, (20 + LEN) as u16));
    data[TCP_SUM..TCP_SUM + 2].copy_from_slice(&p.to_be_bytes());
    let offload = testkit::tso_v4(1448);
    let mut back =
        testkit::tcp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.80", 80, "203.0.113.1", port, sseq + 1, cseq + 1, "A", &[])
            .as_ref()
            .to_vec();
    let mut next = cseq + 1;
    let drop0 = rig.drops();
    let row = measure(case, 2 * PAIRS, || {
        for _ in 0..PAIRS {
            data[TCP_SEQ..TCP_SEQ + 4].copy_from_slice(&next.to_be_bytes());
            rig.step_offload(INSIDE, &data, offload);
            next = next.wrapping_add(LEN as u32);
            set_seq_ack(&mut back, sseq + 1, next);
            rig.step(OUTSIDE, &back);
        }
    });
    assert_eq!(rig.drops() - drop0, 0, "tcp super-frames: drops {:?}", rig.app.counters().drop_map());
    row
}

fn udp_established() -> Row {
    const PAIRS: u64 = 500_000;
    let mut rig = Rig::new();
    let payload = [0x11u8; 64];
    let first = testkit::udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40001, "198.51.100.53", 53, &payload);
    let port = pat_port(&rig.feed(INSIDE, first.as_ref()).expect("UDP forwarded"));
    let out = first.as_ref().to_vec();
    let back =
        testkit::udp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.53", 53, "203.0.113.1", port, &payload).as_ref().to_vec();
    let (fwd0, drop0) = (rig.forwarded(), rig.drops());
    let mut total = 0u64;
    let row = measure("udp established (64 B payload)", 2 * PAIRS, || {
        for _ in 0..PAIRS {
            rig.step(INSIDE, &out);
            rig.step(OUTSIDE, &back);
        }
        total += 2 * PAIRS;
    });
    assert_eq!(rig.drops() - drop0, 0, "udp: drops {:?}", rig.app.counters().drop_map());
    assert_eq!(rig.forwarded() - fwd0, total, "udp: not every datagram forwarded");
    row
}

/// `n` first packets of distinct flows, each `len` bytes, in one buffer.
fn new_flow_frames(n: usize, tcp: bool) -> (Vec<u8>, usize) {
    let mut flat = Vec::new();
    let mut len = 0;
    for i in 0..n {
        let dst = std::net::Ipv4Addr::from(u32::from(testkit::ip("198.18.0.0")) + (i % 4096) as u32).to_string();
        let sport = 1024 + (i / 4096) as u16;
        let f = if tcp {
            testkit::tcp(HOST_MAC, FW_IN_MAC, "192.168.10.10", sport, &dst, 443, 7, 0, "S", &[])
        } else {
            testkit::udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", sport, &dst, 4500, &[0x22; 32])
        };
        len = f.len();
        flat.extend_from_slice(f.as_ref());
    }
    (flat, len)
}

/// One pass of `n` new flows on a fresh appliance (no median: the table's
/// fill level is part of the cost). Returns the row and the rig.
fn new_flows(case: &'static str, n: usize, tcp: bool) -> (Row, Rig) {
    let (flat, len) = new_flow_frames(n, tcp);
    // Warm-up on a throwaway appliance, so page faults of the frames are out.
    {
        let mut rig = Rig::new();
        for f in flat.chunks_exact(len).take(n / 10) {
            rig.step(INSIDE, f);
        }
    }
    let mut rig = Rig::new();
    let (fwd0, drop0) = (rig.forwarded(), rig.drops());
    let t = Wall::now();
    for f in flat.chunks_exact(len) {
        rig.step(INSIDE, f);
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(rig.drops() - drop0, 0, "{case}: drops {:?}", rig.app.counters().drop_map());
    assert_eq!(rig.forwarded() - fwd0, n as u64, "{case}: not every first packet forwarded");
    assert_eq!(rig.app.conn_count() as usize, n, "{case}: connections");
    (Row { case, frames: n as u64, ns }, rig)
}

fn driver_only() -> Row {
    const PAIRS: u64 = 500_000;
    let mut rig = Rig::new();
    let mut data = testkit::tcp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 1, "198.51.100.80", 80, 1, 1, "AP", &[0; 1400])
        .as_ref()
        .to_vec();
    let mut next = 1u32;
    measure("driver only (fill buffer, patch seq/ack, clock)", 2 * PAIRS, || {
        for _ in 0..2 * PAIRS {
            set_seq_ack(&mut data, next, next);
            next = next.wrapping_add(1400);
            rig.now = rig.now + TICK;
            black_box(rig.app.poll_timeout());
            let mut buf = rig.app.alloc_frame();
            buf.set(black_box(&data));
            black_box(&mut buf);
            rig.app.recycle(buf);
        }
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` (or
    // `--all-targets`) does not, and gets a quick exit instead of a
    // minute-long measurement.
    if !std::env::args().any(|a| a == "--bench") {
        println!("measurements run under `cargo bench --bench {}`", env!("CARGO_CRATE_NAME"));
        return;
    }
    let mut rows = vec![
        tcp_established(),
        tcp_super_frames("tcp 60000 B TSO super-frame + ACK, egress with offload", true),
        tcp_super_frames("tcp 60000 B TSO super-frame + ACK, segmented here (42 segments)", false),
        udp_established(),
    ];
    let (udp_row, full) = new_flows("udp new flow (fills the table to 1 M)", 1_000_000, false);
    rows.push(udp_row);
    let (tcp_row, _) = new_flows("tcp syn new flow (500 k)", 500_000, true);
    rows.push(tcp_row);
    rows.push(driver_only());

    println!("\n| case | frames | ns/frame | frames/s (one core) |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        println!("| {} | {} | {:.0} | {:.2} M |", r.case, r.frames, r.ns, 1e3 / r.ns);
    }
    let Report::Conn(c) = full.app.show(ShowWhat::Conn, full.now) else { unreachable!() };
    println!(
        "\n`show conn` at {} connections: table memory {} bytes, **{} bytes per connection**",
        c.in_use, c.memory_bytes, c.bytes_per_conn
    );
}
