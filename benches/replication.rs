//! Replicated new flows per second, and bytes on the failover link per
//! replicated flow.
//!
//!     cargo bench --bench replication
//!
//! Two `Appliance`s in this process, built from
//! `integration/lab/failover/primary.toml` and `secondary.toml` (parsed with
//! `twinwall::config::parse`), joined by an in-memory, lossless, zero-delay
//! failover link: every `Output::Sync` of one unit (deltas, acks, hellos) is
//! handed at once to the other's `handle_sync(bytes, true, now)`. The
//! data-interface hello frames (ethertype 0x88b5) are ferried to the other
//! unit's same port too, as a shared segment would, so interface monitoring
//! sees a healthy peer; they are not failover-link traffic and are not
//! counted. Other frames the units send (the forwarded traffic, ARP) are
//! dropped on the floor.
//!
//! A virtual clock advances 1 µs per frame fed; each unit's
//! `handle_timeout` runs whenever its `poll_timeout` is due. After the
//! secondary is `standby-hot` and the active has its next hops in ARP, N
//! flows are opened on the active as fast as it takes them, then the clock
//! keeps running (100 µs steps, no more frames) until the standby holds as
//! many connections as the active and `show failover`'s `at_risk` is 0. The
//! standby must then hold every key the active holds (`conn_keys()`).
//!
//! Measured from the first frame to convergence:
//! * wall-clock replicated flows per second. One core runs both units, so
//!   this is the active's forwarding plus its replication plus the standby's
//!   apply work, in series; the split is printed.
//! * bytes on the failover link per flow: every sync datagram in either
//!   direction (deltas, acks, hellos) plus 28 bytes of IPv4/UDP header each,
//!   divided by the flows.
//!
//! Cases:
//! * `udp`: one UDP datagram per flow (distinct source port / destination):
//!   one insert record each. (A bare TCP SYN is not replicated: embryonic
//!   connections stay on the active, see `Appliance::new_flow`.)
//! * `syn → established`: SYN, then the server's SYN/ACK 1 ms later, then
//!   the client's ACK 0.1 ms after that, pipelined over many flows (an insert
//!   and then the state change(s) to established).

use std::collections::VecDeque;
use std::time::{Duration as WallDuration, Instant as Wall};

use twinwall::appliance::Output;
use twinwall::config::{self, Config};
use twinwall::entropy::SeededRng;
use twinwall::ha::role::State;
use twinwall::show::{FailoverReport, Report, ShowWhat};
use twinwall::testkit::{self, HOST_MAC, INSIDE, OUTSIDE, ROUTER_MAC};
use twinwall::wire::checksum::update16;
use twinwall::{Appliance, Duration, IfIndex, Instant};

/// IPv4 + UDP header per datagram on the failover link.
const IP_UDP: u64 = 28;
const HELLO_ETHERTYPE: [u8; 2] = 0x88b5u16.to_be_bytes();
const FRAME_TICK: Duration = Duration::from_micros(1);
const SETTLE_TICK: Duration = Duration::from_micros(100);
/// The active unit's (virtual) MACs, from primary.toml.
const VMAC_IN: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 1];
const VMAC_OUT: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 2];
const FLOWS: usize = 200_000;
/// Handshake pipelining: the SYN/ACK comes this many flows (3 frames each,
/// 1 µs per frame) after its SYN, ~1 ms; the ACK ~0.1 ms after that.
const SYNACK_LAG: usize = 333;
const ACK_LAG: usize = 33;
/// TCP header offsets in an Ethernet + IPv4 (no options) frame.
const TCP_SPORT: usize = 34;
const TCP_DPORT: usize = 36;
const TCP_SEQ: usize = 38;
const TCP_SUM: usize = 50;

fn unit_config(file: &str) -> Config {
    let path = format!("{}/integration/lab/failover/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    config::parse(&text, &path)
        .unwrap_or_else(|errs| panic!("{path}: {}", errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))
}

#[derive(Default, Clone, Copy)]
struct LinkStats {
    datagrams: [u64; 2],
    bytes: [u64; 2],
}

struct Pair {
    units: [Appliance; 2],
    now: Instant,
    link: LinkStats,
    /// Datagrams and hello frames in flight: (to unit, port or None for the
    /// failover link, bytes).
    queue: VecDeque<(usize, Option<IfIndex>, Vec<u8>)>,
    /// PAT port the active chose per flow (by the SYN's sequence number).
    pat: Vec<u16>,
    standby_time: WallDuration,
}

impl Pair {
    fn new() -> Pair {
        let now = Instant::from_millis(1_000);
        let a = Appliance::new(unit_config("primary.toml"), now, Box::new(SeededRng::new(1)));
        let b = Appliance::new(unit_config("secondary.toml"), now, Box::new(SeededRng::new(2)));
        Pair {
            units: [a, b],
            now,
            link: LinkStats::default(),
            queue: VecDeque::new(),
            pat: vec![0; FLOWS],
            standby_time: WallDuration::ZERO,
        }
    }

    /// Everything unit `u` wants done: syncs and hellos queued for the
    /// other, SYN translations noted, frames recycled.
    fn drain(&mut self, u: usize) {
        let app = &mut self.units[u];
        while let Some(o) = app.poll_output() {
            match o {
                Output::Sync { bytes, .. } => {
                    self.link.datagrams[u] += 1;
                    self.link.bytes[u] += bytes.len() as u64 + IP_UDP;
                    self.queue.push_back((1 - u, None, bytes));
                }
                Output::Frame { port, buf } => {
                    let f = buf.as_ref();
                    if f.len() >= 14 && f[12..14] == HELLO_ETHERTYPE {
                        self.queue.push_back((1 - u, Some(port), f.to_vec()));
                    } else if port == OUTSIDE && f.len() >= 54 && f[23] == 6 && f[47] & 0x12 == 0x02 {
                        // A SYN leaving through PAT: its seq is the flow number.
                        let seq = u32::from_be_bytes(f[TCP_SEQ..TCP_SEQ + 4].try_into().unwrap()) as usize;
                        if let Some(p) = self.pat.get_mut(seq) {
                            *p = u16::from_be_bytes([f[TCP_SPORT], f[TCP_SPORT + 1]]);
                        }
                    }
                    app.recycle(buf);
                }
                Output::Event(_) | Output::HelloAhead { .. } => {}
            }
        }
    }

    /// Deliver everything in flight, until both units are quiet.
    fn ferry(&mut self) {
        self.drain(0);
        self.drain(1);
        while let Some((to, port, bytes)) = self.queue.pop_front() {
            let t = (to == 1).then(Wall::now);
            match port {
                None => self.units[to].handle_sync(&bytes, true, self.now),
                Some(p) => {
                    let mut buf = self.units[to].alloc_frame();
                    buf.set(&bytes);
                    self.units[to].handle_frame(p, buf, self.now);
                }
            }
            self.drain(to);
            if let Some(t) = t {
                self.standby_time += t.elapsed();
            }
        }
    }

    fn timers(&mut self) {
        for u in 0..2 {
            if self.units[u].poll_timeout().is_some_and(|t| t <= self.now) {
                let t = (u == 1).then(Wall::now);
                self.units[u].handle_timeout(self.now);
                if let Some(t) = t {
                    self.standby_time += t.elapsed();
                }
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.timers();
        self.ferry();
    }

    /// One frame into the active unit's `port`.
    #[inline(always)]
    fn feed(&mut self, port: IfIndex, frame: &[u8]) {
        self.now = self.now + FRAME_TICK;
        self.timers();
        let mut buf = self.units[0].alloc_frame();
        buf.set(frame);
        self.units[0].handle_frame(port, buf, self.now);
        self.ferry();
    }

    fn failover(&self, u: usize) -> FailoverReport {
        match self.units[u].show(ShowWhat::Failover, self.now) {
            Report::Failover(r) => r,
            _ => unreachable!(),
        }
    }

    /// Until the primary is active and the secondary standby-hot, then the
    /// active's next hops resolved (router outside, host inside).
    fn warm_up(&mut self) {
        let deadline = self.now + Duration::from_secs(30);
        while !(self.units[0].role() == Some(State::Active) && self.units[1].role() == Some(State::StandbyHot)) {
            assert!(
                self.now < deadline,
                "no active/standby-hot pair after 30 s: {:?} {:?}",
                self.units[0].role(),
                self.units[1].role()
            );
            self.advance(Duration::from_millis(1));
        }
        let router = testkit::arp(2, VMAC_OUT, ROUTER_MAC, "203.0.113.254", VMAC_OUT, "203.0.113.1");
        self.feed(OUTSIDE, router.as_ref());
        let host = testkit::arp(2, VMAC_IN, HOST_MAC, "192.168.10.10", VMAC_IN, "192.168.10.1");
        self.feed(INSIDE, host.as_ref());
        // Let the ARP records replicate and the pair go quiet.
        self.advance(Duration::from_millis(50));
        self.link = LinkStats::default();
    }

    fn converged(&self) -> bool {
        self.units[0].conn_count() == self.units[1].conn_count() && self.failover(0).at_risk == 0
    }
}

fn flow_dst(i: usize) -> String {
    std::net::Ipv4Addr::from(u32::from(testkit::ip("198.18.0.0")) + (i % 4096) as u32).to_string()
}

fn flow_sport(i: usize) -> u16 {
    1024 + (i / 4096) as u16
}

/// Frames of flow `i`: the client's SYN (seq = i), the server's SYN/ACK
/// (destination port patched once the PAT port is known) and the client's
/// ACK.
fn handshake(i: usize) -> [Vec<u8>; 3] {
    let (dst, sport, seq) = (flow_dst(i), flow_sport(i), i as u32);
    let syn = testkit::tcp(HOST_MAC, VMAC_IN, "192.168.10.10", sport, &dst, 443, seq, 0, "S", &[]);
    let synack = testkit::tcp(ROUTER_MAC, VMAC_OUT, &dst, 443, "203.0.113.1", 0, 9_000, seq + 1, "SA", &[]);
    let ack = testkit::tcp(HOST_MAC, VMAC_IN, "192.168.10.10", sport, &dst, 443, seq + 1, 9_001, "A", &[]);
    [syn.as_ref().to_vec(), synack.as_ref().to_vec(), ack.as_ref().to_vec()]
}

fn set_dport(f: &mut [u8], port: u16) {
    let old = u16::from_be_bytes([f[TCP_DPORT], f[TCP_DPORT + 1]]);
    let sum = update16(u16::from_be_bytes([f[TCP_SUM], f[TCP_SUM + 1]]), old, port);
    f[TCP_DPORT..TCP_DPORT + 2].copy_from_slice(&port.to_be_bytes());
    f[TCP_SUM..TCP_SUM + 2].copy_from_slice(&sum.to_be_bytes());
}

struct Row {
    case: &'static str,
    flows: usize,
    wall: WallDuration,
    standby: WallDuration,
    link: LinkStats,
    settle: Duration,
    active: FailoverReport,
}

fn run(case: &'static str, established: bool) -> Row {
    let mut frames: Vec<[Vec<u8>; 3]> = (0..FLOWS).map(handshake).collect();
    let mut p = Pair::new();
    p.warm_up();
    let created0 = p.units[0].counters().events.conns_created;
    let t = Wall::now();
    if established {
        // Iteration j: SYN of flow j, SYN/ACK of flow j - SYNACK_LAG, ACK of
        // flow j - SYNACK_LAG - ACK_LAG.
        for j in 0..FLOWS + SYNACK_LAG + ACK_LAG {
            if j < FLOWS {
                p.feed(INSIDE, &frames[j][0]);
            }
            if let Some(k) = j.checked_sub(SYNACK_LAG).filter(|k| *k < FLOWS) {
                let port = p.pat[k];
                set_dport(&mut frames[k][1], port);
                p.feed(OUTSIDE, &frames[k][1]);
            }
            if let Some(k) = j.checked_sub(SYNACK_LAG + ACK_LAG).filter(|k| *k < FLOWS) {
                p.feed(INSIDE, &frames[k][2]);
            }
        }
    } else {
        for i in 0..FLOWS {
            let f = testkit::udp(HOST_MAC, VMAC_IN, "192.168.10.10", flow_sport(i), &flow_dst(i), 443, b"x");
            p.feed(INSIDE, f.as_ref());
        }
    }
    let flood_end = p.now;
    let deadline = p.now + Duration::from_secs(60);
    while !p.converged() {
        assert!(p.now < deadline, "{case}: no convergence after 60 s virtual: {:?}", p.failover(0));
        p.advance(SETTLE_TICK);
    }
    let wall = t.elapsed();
    let (settle, link, standby) = (p.now.saturating_since(flood_end), p.link, p.standby_time);

    // Nothing lost: every flow created, forwarded, and on the standby.
    let c = p.units[0].counters();
    assert_eq!(c.events.conns_created - created0, FLOWS as u64, "{case}: flows created on the active");
    assert_eq!(c.drops.iter().sum::<u64>(), 0, "{case}: drops on the active {:?}", c.drop_map());
    assert_eq!(p.units[0].conn_count() as usize, FLOWS, "{case}: active's table");
    let (ka, kb) = (p.units[0].conn_keys(), p.units[1].conn_keys());
    assert_eq!(ka.len(), kb.len(), "{case}: tables differ in size");
    assert!(ka == kb, "{case}: the standby's keys differ from the active's");
    // State replicated too: `show conn` (its first 100 k lines) on both units.
    let want = if established { "UIO" } else { "U" };
    for u in 0..2 {
        if let Report::Conn(r) = p.units[u].show(ShowWhat::Conn, p.now) {
            let bad = r.conns.iter().filter(|l| l.state != want).count();
            assert_eq!(bad, 0, "{case}: unit {u}: {bad} of {} connections not in state {want}", r.conns.len());
        }
    }
    assert_eq!(p.units[1].role(), Some(State::StandbyHot), "{case}: standby left standby-hot");
    let active = p.failover(0);
    Row { case, flows: FLOWS, wall, standby, link, settle, active }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` (or
    // `--all-targets`) does not, and gets a quick exit instead of a
    // minute-long measurement.
    if !std::env::args().any(|a| a == "--bench") {
        println!("measurements run under `cargo bench --bench {}`", env!("CARGO_CRATE_NAME"));
        return;
    }
    let rows = [run("udp (1 insert per flow)", false), run("syn → established (3 frames per flow)", true)];
    println!(
        "\n| case | flows | wall ms | replicated flows/s | active side ms | standby side ms | settle ms (virtual) | datagrams a→s / s→a | link bytes a→s / s→a | **bytes per flow** |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let ms = |d: WallDuration| d.as_secs_f64() * 1e3;
        let bytes = r.link.bytes[0] + r.link.bytes[1];
        println!(
            "| {} | {} | {:.0} | {:.0} k | {:.0} | {:.0} | {:.1} | {} / {} | {} / {} | **{:.1}** |",
            r.case,
            r.flows,
            ms(r.wall),
            r.flows as f64 / r.wall.as_secs_f64() / 1e3,
            ms(r.wall - r.standby),
            ms(r.standby),
            r.settle.as_micros() as f64 / 1e3,
            r.link.datagrams[0],
            r.link.datagrams[1],
            r.link.bytes[0],
            r.link.bytes[1],
            bytes as f64 / r.flows as f64,
        );
    }
    for r in &rows {
        println!("\n{}: active's failover counters {:?}", r.case, r.active.counters);
    }
}
