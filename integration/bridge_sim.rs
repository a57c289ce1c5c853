//! Transparent-mode failover simulation: two `Appliance` cores in
//! transparent mode (integration/lab/transparent/*.toml, MAC aging cut to
//! 2 s) between two learning switches, one virtual clock, an inside host
//! and an outside server on one subnet with a TCP connection through the
//! pair.
//!
//! The connection goes quiet for longer than the MAC aging time, so the
//! active forgets both stations (and tells the standby), while the
//! switches, which age after 300 s, still reach each station through the
//! active's ports. Then the active freezes (a hung unit: its ports stay up,
//! the switches keep sending to it). Checked:
//! * the standby takes over within the hold time, and at that moment both
//!   switches already reach the host and the server through its ports: the
//!   switch refresh came from the connection's endpoints, as the MAC table
//!   had nothing;
//! * the connection goes on without being re-created;
//! * no storm: the frames on the segments around the takeover stay a small
//!   multiple of the traffic and hellos;
//! * never two actives.

use std::collections::{HashMap, VecDeque};

use twinwall::config;
use twinwall::config::IfIndex;
use twinwall::entropy::SeededRng;
use twinwall::frame::FrameBuf;
use twinwall::ha::role::State;
use twinwall::show::{Report, ShowWhat};
use twinwall::testkit::{arp, tcp, HOST_MAC, SERVER_MAC};
use twinwall::wire::arp as arpw;
use twinwall::{Appliance, Duration, Instant, Output};

const STEP: Duration = Duration::from_millis(1);
const HOST: &str = "192.168.10.10";
const SERVER: &str = "192.168.10.80";
/// Stations on each segment: the two units' ports, then the end host.
const END: usize = 2;

fn unit_config(file: &str) -> config::Config {
    let path = format!("{}/integration/lab/transparent/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut c = config::parse(&text, &path).unwrap_or_else(|e| panic!("{e:?}"));
    c.timeouts.mac = Duration::from_secs(2);
    c
}

/// A learning switch: MAC to station, no aging within a run.
#[derive(Default)]
struct Switch {
    fdb: HashMap<[u8; 6], usize>,
}

struct Sim {
    now: Instant,
    units: [Appliance; 2],
    frozen: [bool; 2],
    /// Failover link datagrams: delivery time, to unit, bytes.
    link: Vec<(Instant, usize, Vec<u8>)>,
    switches: [Switch; 2],
    /// (segment, from station, frame)
    wire: VecDeque<(usize, usize, Vec<u8>)>,
    frames_on_segments: u64,
    host_knows_server: bool,
    server_knows_host: bool,
    /// The host's TCP state: next seq to send, next expected, data rounds
    /// answered, last answer.
    snd: u32,
    rcv: u32,
    established: bool,
    talking: bool,
    rounds: u32,
    last_round: Instant,
    outstanding: Option<Instant>,
    server_rcv: u32,
    server_snd: u32,
    dual_active: u32,
}

impl Sim {
    fn new() -> Sim {
        let now = Instant::from_millis(1_000);
        let a = Appliance::new(unit_config("primary.toml"), now, Box::new(SeededRng::new(11)));
        let b = Appliance::new(unit_config("secondary.toml"), now, Box::new(SeededRng::new(12)));
        Sim {
            now,
            units: [a, b],
            frozen: [false; 2],
            link: vec![],
            switches: [Switch::default(), Switch::default()],
            wire: VecDeque::new(),
            frames_on_segments: 0,
            host_knows_server: false,
            server_knows_host: false,
            snd: 1000,
            rcv: 0,
            established: false,
            talking: true,
            rounds: 0,
            last_round: Instant::ZERO,
            outstanding: None,
            server_rcv: 0,
            server_snd: 7_000_000,
            dual_active: 0,
        }
    }

    fn role(&self, u: usize) -> Option<State> {
        self.units[u].role()
    }

    fn drain(&mut self, u: usize) {
        let app = &mut self.units[u];
        while let Some(o) = app.poll_output() {
            match o {
                Output::Frame { port, buf } => {
                    if !self.frozen[u] {
                        self.wire.push_back((port.idx(), u, buf.as_ref().to_vec()));
                    }
                    app.recycle(buf);
                }
                Output::Sync { bytes, .. } if !self.frozen[u] => {
                    self.link.push((self.now + Duration::from_micros(200), 1 - u, bytes));
                }
                _ => {}
            }
        }
    }

    /// A switch on each segment: learn the source, send to the known port
    /// or flood.
    fn deliver(&mut self) {
        let mut budget = 100_000;
        while let Some((seg, from, f)) = self.wire.pop_front() {
            budget -= 1;
            assert!(budget > 0, "frame storm");
            self.frames_on_segments += 1;
            let src: [u8; 6] = f[6..12].try_into().unwrap();
            let dst: [u8; 6] = f[0..6].try_into().unwrap();
            let sw = &mut self.switches[seg];
            if src[0] & 1 == 0 {
                sw.fdb.insert(src, from);
            }
            let to: Vec<usize> = match sw.fdb.get(&dst) {
                Some(&s) if dst[0] & 1 == 0 => vec![s],
                _ => (0..=END).collect(),
            };
            for s in to.into_iter().filter(|&s| s != from) {
                if s == END {
                    self.end_rx(seg, &f);
                } else if !self.frozen[s] {
                    let buf = FrameBuf::from_slice(&f);
                    self.units[s].handle_frame(IfIndex(seg as u8), buf, self.now);
                    self.drain(s);
                }
            }
        }
    }

    fn send(&mut self, seg: usize, f: FrameBuf) {
        self.wire.push_back((seg, END, f.as_ref().to_vec()));
    }

    /// The host (segment 0) or the server (segment 1) receives a frame.
    fn end_rx(&mut self, seg: usize, f: &[u8]) {
        let me = if seg == 0 { HOST_MAC } else { SERVER_MAC };
        let (my_ip, peer_ip) = if seg == 0 { (HOST, SERVER) } else { (SERVER, HOST) };
        if f[12..14] == [8, 6] {
            let a = &f[14..];
            let tpa = std::net::Ipv4Addr::new(a[24], a[25], a[26], a[27]);
            let spa = std::net::Ipv4Addr::new(a[14], a[15], a[16], a[17]);
            let sha: [u8; 6] = a[8..14].try_into().unwrap();
            if a[6..8] == [0, 1] && tpa.to_string() == my_ip {
                self.send(seg, arp(arpw::REPLY, sha, me, my_ip, sha, &spa.to_string()));
            } else if a[6..8] == [0, 2] && f[0..6] == me && spa.to_string() == peer_ip {
                if seg == 0 {
                    self.host_knows_server = true;
                } else {
                    self.server_knows_host = true;
                }
            }
            return;
        }
        if f[12..14] != [8, 0] || f[0..6] != me || f[23] != 6 {
            return;
        }
        let t = &f[34..];
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let flags = t[13];
        let total = u16::from_be_bytes([f[16], f[17]]) as u32;
        let plen = total - 20 - ((t[12] >> 4) as u32) * 4;
        if seg == 1 {
            // The server: answer a SYN, acknowledge data with data.
            if flags & 0x02 != 0 {
                self.server_rcv = seq.wrapping_add(1);
                let sa =
                    tcp(SERVER_MAC, HOST_MAC, SERVER, 80, HOST, 40000, self.server_snd, self.server_rcv, "SA", b"");
                self.server_snd += 1;
                self.send(1, sa);
            } else if plen > 0 && seq == self.server_rcv {
                self.server_rcv = seq.wrapping_add(plen);
                let r = tcp(
                    SERVER_MAC,
                    HOST_MAC,
                    SERVER,
                    80,
                    HOST,
                    40000,
                    self.server_snd,
                    self.server_rcv,
                    "AP",
                    &[7; 50],
                );
                self.server_snd += 50;
                self.send(1, r);
            }
            return;
        }
        if flags & 0x12 == 0x12 && !self.established {
            self.established = true;
            self.rcv = seq.wrapping_add(1);
            self.snd += 1;
            self.outstanding = None;
            self.send(0, tcp(HOST_MAC, SERVER_MAC, HOST, 40000, SERVER, 80, self.snd, self.rcv, "A", b""));
        } else if plen > 0 && seq == self.rcv {
            self.rcv = seq.wrapping_add(plen);
            self.rounds += 1;
            self.last_round = self.now;
            self.outstanding = None;
        }
    }

    /// The end hosts' timers: resolve each other, open the connection,
    /// send a segment every 20 ms while talking, retransmit after 200 ms.
    fn end_tick(&mut self) {
        let every_100ms = self.now.as_micros().is_multiple_of(100_000);
        if !self.host_knows_server && every_100ms {
            self.send(0, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, HOST, [0; 6], SERVER));
        }
        if !self.server_knows_host && every_100ms {
            self.send(1, arp(arpw::REQUEST, [0xff; 6], SERVER_MAC, SERVER, [0; 6], HOST));
        }
        if !self.host_knows_server || !self.talking {
            return;
        }
        let now = self.now;
        let due = match self.outstanding {
            Some(t) => now.saturating_since(t) >= Duration::from_millis(200),
            None => now.saturating_since(self.last_round) >= Duration::from_millis(20),
        };
        if !due {
            return;
        }
        let f = if self.established {
            tcp(HOST_MAC, SERVER_MAC, HOST, 40000, SERVER, 80, self.snd, self.rcv, "AP", &[1; 100])
        } else {
            tcp(HOST_MAC, SERVER_MAC, HOST, 40000, SERVER, 80, self.snd, 0, "S", b"")
        };
        if self.established && self.outstanding.is_none() {
            self.snd = self.snd.wrapping_add(100);
        }
        self.outstanding = Some(now);
        self.send(0, f);
    }

    fn step(&mut self) {
        self.now = self.now + STEP;
        let now = self.now;
        let due: Vec<_> = self.link.iter().filter(|(t, _, _)| *t <= now).cloned().collect();
        self.link.retain(|(t, _, _)| *t > now);
        for (_, to, b) in due {
            if !self.frozen[to] {
                self.units[to].handle_sync(&b, true, now);
                self.drain(to);
            }
        }
        for u in 0..2 {
            if self.frozen[u] {
                continue;
            }
            let mut rounds = 0;
            while self.units[u].poll_timeout().is_some_and(|t| t <= now) {
                self.units[u].handle_timeout(now);
                rounds += 1;
                assert!(rounds < 1000, "unit {u}: a timer stays due");
            }
            self.drain(u);
        }
        self.deliver();
        self.end_tick();
        self.deliver();
        if !self.frozen.contains(&true) && self.role(0) == Some(State::Active) && self.role(1) == Some(State::Active) {
            self.dual_active += 1;
        }
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    fn learned_macs(&self, u: usize) -> usize {
        match self.units[u].show(ShowWhat::Mac, self.now) {
            Report::Mac(lines) => lines.len(),
            _ => unreachable!(),
        }
    }
}

#[test]
fn takeover_refreshes_switches_for_connections_whose_macs_aged_out() {
    let mut sim = Sim::new();
    sim.run(Duration::from_millis(1500));
    assert_eq!((sim.role(0), sim.role(1)), (Some(State::Active), Some(State::StandbyHot)));
    sim.run(Duration::from_millis(1000));
    assert!(sim.established && sim.rounds > 10, "traffic through the active: {} rounds", sim.rounds);
    assert_eq!(sim.units[0].conn_keys(), sim.units[1].conn_keys(), "the connection replicated");
    // Quiet for longer than the MAC aging: the active forgets both
    // stations and tells the standby; the switches still hold them.
    sim.talking = false;
    sim.run(Duration::from_millis(3500));
    assert_eq!((sim.learned_macs(0), sim.learned_macs(1)), (0, 0), "aged out on both units");
    assert_eq!(sim.switches[0].fdb.get(&SERVER_MAC), Some(&0), "the inside switch reaches the server via A");
    assert_eq!(sim.switches[1].fdb.get(&HOST_MAC), Some(&0), "the outside switch reaches the host via A");
    let created_before = sim.units[1].counters().events.conns_created;
    let frames_before = sim.frames_on_segments;

    // The active hangs: its ports stay up, it processes and sends nothing.
    sim.frozen[0] = true;
    let kill = sim.now;
    let mut took_over = None;
    for _ in 0..1000 {
        sim.step();
        if sim.role(1) == Some(State::Active) {
            took_over = Some(sim.now);
            break;
        }
    }
    let took_over = took_over.expect("the standby took over");
    let detect = took_over.saturating_since(kill).as_millis();
    assert!(detect <= 250 + 2, "takeover {detect} ms after the hang");
    // At takeover, before either end host spoke: both switches moved.
    assert_eq!(sim.switches[0].fdb.get(&SERVER_MAC), Some(&1), "inside switch refreshed to B");
    assert_eq!(sim.switches[1].fdb.get(&HOST_MAC), Some(&1), "outside switch refreshed to B");
    let refresh = sim.units[1].counters().events.mac_refresh_sent;
    assert_eq!(refresh, 2, "one frame per endpoint, out of the side opposite it");
    let Report::Failover(r) = sim.units[1].show(ShowWhat::Failover, sim.now) else { unreachable!() };
    assert_eq!(r.last_takeover.and_then(|t| t.switch_refresh_frames), Some(2), "show failover tells");
    assert!(r.tables.iter().any(|t| t.name == "mac"), "show failover lists the MAC table");

    // The connection goes on through B, as it was.
    sim.talking = true;
    let rounds = sim.rounds;
    sim.run(Duration::from_millis(1000));
    assert!(sim.rounds > rounds + 10, "the connection stalled after takeover");
    assert_eq!(sim.units[1].counters().events.conns_created, created_before, "re-created, not adopted");
    // The refresh repeats (three rounds): 2 frames each. Everything else
    // is traffic, ARP and hellos: no storm.
    assert_eq!(sim.units[1].counters().events.mac_refresh_sent, 6);
    let frames = sim.frames_on_segments - frames_before;
    // Per round: the host's segment and the server's answer, each on both
    // segments; B's hellos on its two data ports every 50 ms; the refresh.
    let expected = 4 * (sim.rounds - rounds + 2) as u64 + 2 * 1250 / 50 + 6 + 20;
    eprintln!(
        "takeover {detect} ms after the hang; {frames} frames on the segments in {} ms (bound {expected}); refresh {refresh} frames",
        sim.now.saturating_since(kill).as_millis()
    );
    assert!(frames <= expected, "{frames} frames on the segments: a storm?");
    assert_eq!(sim.dual_active, 0);
}
