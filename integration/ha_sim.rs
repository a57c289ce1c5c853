//! Two-unit failover simulation: two `Appliance` cores, one virtual clock, a
//! failover link that drops, duplicates, reorders, delays and partitions
//! (seeded), and simulated hosts with TCP and UDP flows through PAT.
//!
//! Invariants checked on every seed:
//! * never two actives while any hello path between them works;
//! * no takeover while the active lives (the standby only becomes active
//!   after the active is killed);
//! * every flow established and acknowledged before the kill continues on
//!   the new active, with the same PAT port, without being re-evaluated
//!   (the new active creates no connection for it);
//! * after the old active returns it becomes standby, and the tables
//!   converge;
//! * with hellos sealed ahead (the shell's heartbeat thread), a loop that
//!   stalls for less than `ahead x poll` plus the hold time causes no
//!   failover, and one that stalls for longer is taken over.
//!
//! CI runs a fixed set of seeds. More: `TWINWALL_SIM_SEEDS=2000 cargo test
//! --release --test ha_sim` (seeds 0..N), or `TWINWALL_SIM_SEED=1234` for one.

use std::collections::{BTreeMap, VecDeque};

use twinwall::appliance::SyncDst;
use twinwall::config::{self, IfIndex};
use twinwall::entropy::{Entropy, SeededRng};
use twinwall::frame::FrameBuf;
use twinwall::ha::role::State;
use twinwall::show::{Report, ShowWhat};
use twinwall::testkit::{arp, ip, seen, tcp, udp, HOST_MAC, ROUTER_MAC};
use twinwall::wire::arp as arpw;
use twinwall::{Appliance, Duration, Instant, Output};

const VMAC_OUT: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 2];
const STEP: Duration = Duration::from_millis(1);

fn unit_config(file: &str) -> config::Config {
    let path = format!("{}/integration/lab/failover/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    config::parse(&text, &path).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The failover link: datagrams with a delivery time.
struct Link {
    rng: SeededRng,
    loss: u64,
    dup: u64,
    jitter_us: u64,
    partitioned: bool,
    queue: Vec<(Instant, usize, Vec<u8>)>,
}

impl Link {
    fn chance(&mut self, percent: u64) -> bool {
        self.rng.next_u64() % 100 < percent
    }
    fn send(&mut self, now: Instant, to: usize, bytes: Vec<u8>) {
        if self.partitioned || self.chance(self.loss) {
            return;
        }
        let copies = if self.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = 100 + self.rng.next_u64() % self.jitter_us.max(1);
            self.queue.push((now + Duration::from_micros(delay), to, bytes.clone()));
        }
    }
    fn due(&mut self, now: Instant) -> Vec<(usize, Vec<u8>)> {
        let mut out = vec![];
        self.queue.sort_by_key(|(t, _, _)| *t);
        while self.queue.first().is_some_and(|(t, _, _)| *t <= now) {
            let (_, to, b) = self.queue.remove(0);
            out.push((to, b));
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Flow {
    tcp: bool,
    sport: u16,
    server: &'static str,
    dport: u16,
    snd_nxt: u32,
    rcv_nxt: u32,
    established_at: Option<Instant>,
    /// Round trips completed, and the time of the last one.
    rounds: u32,
    last_round: Instant,
    outstanding: Option<(Instant, u32)>,
}

/// The server side of a flow, keyed by what the server sees.
#[derive(Debug, Clone, Default)]
struct ServerFlow {
    snd_nxt: u32,
    rcv_nxt: u32,
    last_reply: Vec<u8>,
}

struct Sim {
    now: Instant,
    units: [Option<Appliance>; 2],
    link: Link,
    /// Frames in flight on the inside (0) and outside (1) segments, from a
    /// station: 0 and 1 are the units, 2 the host or router.
    segs: VecDeque<(usize, usize, Vec<u8>)>,
    host_gw_mac: Option<[u8; 6]>,
    router_fw_mac: Option<[u8; 6]>,
    flows: Vec<Flow>,
    server: BTreeMap<(u16, u16, bool), ServerFlow>,
    /// Mapped (outside) source port the server saw per flow index.
    mapped: BTreeMap<usize, Vec<u16>>,
    dual_active_while_linked: u32,
    killed: Option<Instant>,
    rng: SeededRng,
    /// Hellos sealed ahead per unit, as the shell's heartbeat thread holds
    /// them: sent at their due time even while the unit's loop is stalled.
    ahead: [Vec<(Instant, Vec<u8>)>; 2],
    /// A unit whose loop is stalled sits here (no input, no timers); its
    /// heartbeat thread still runs, and what is sent to it queues up in
    /// `held` as in the kernel's socket and TAP queues.
    stalled: [Option<Appliance>; 2],
    held: [Held; 2],
}

/// Input that reached a stalled unit: failover datagrams, (segment, frame).
#[derive(Default)]
struct Held {
    link: Vec<Vec<u8>>,
    frames: Vec<(usize, Vec<u8>)>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let now = Instant::from_millis(1_000);
        let a = Appliance::new(unit_config("primary.toml"), now, Box::new(SeededRng::new(seed * 2 + 1)));
        let b = Appliance::new(unit_config("secondary.toml"), now, Box::new(SeededRng::new(seed * 2 + 2)));
        let mut rng = SeededRng::new(seed ^ 0x5eed);
        let link = Link {
            rng: SeededRng::new(rng.next_u64()),
            loss: 0,
            dup: 0,
            jitter_us: 200,
            partitioned: false,
            queue: vec![],
        };
        Sim {
            now,
            units: [Some(a), Some(b)],
            link,
            segs: VecDeque::new(),
            host_gw_mac: None,
            router_fw_mac: None,
            flows: vec![],
            server: BTreeMap::new(),
            mapped: BTreeMap::new(),
            dual_active_while_linked: 0,
            killed: None,
            rng,
            ahead: [vec![], vec![]],
            stalled: [None, None],
            held: [Held::default(), Held::default()],
        }
    }

    fn role(&self, u: usize) -> Option<State> {
        self.units[u].as_ref().and_then(|a| a.role())
    }

    fn drain(&mut self, u: usize) {
        let Some(app) = self.units[u].as_mut() else { return };
        let mut frames = vec![];
        let mut syncs = vec![];
        while let Some(o) = app.poll_output() {
            match o {
                Output::Frame { port, buf } => {
                    frames.push((port.idx(), buf.as_ref().to_vec()));
                    app.recycle(buf);
                }
                Output::Sync { to, bytes } => {
                    if to == SyncDst::HelloGroup {
                        self.ahead[u].clear();
                    }
                    syncs.push((to, bytes))
                }
                Output::HelloAhead { due, bytes } => self.ahead[u].push((due, bytes)),
                Output::Event(_) => {}
            }
        }
        for (seg, f) in frames {
            self.segs.push_back((seg, u, f));
        }
        for (to, b) in syncs {
            let _ = to == SyncDst::Peer; // both kinds go to the other unit
            self.link.send(self.now, 1 - u, b);
        }
    }

    /// Deliver every frame on the segments (a hub: everyone hears it).
    fn deliver_frames(&mut self) {
        let mut budget = 100_000;
        while let Some((seg, from, f)) = self.segs.pop_front() {
            budget -= 1;
            assert!(budget > 0, "frame storm");
            for u in 0..2 {
                if u != from {
                    if let Some(app) = self.units[u].as_mut() {
                        app.handle_frame(IfIndex(seg as u8), FrameBuf::from_slice(&f), self.now);
                    } else if self.stalled[u].is_some() {
                        self.held[u].frames.push((seg, f.clone()));
                    }
                    self.drain(u);
                }
            }
            if from != 2 {
                if seg == 0 {
                    self.host_rx(&f);
                } else {
                    self.router_rx(&f);
                }
            }
        }
    }

    fn host_send(&mut self, f: FrameBuf) {
        self.segs.push_back((0, 2, f.as_ref().to_vec()));
    }

    fn router_send(&mut self, f: FrameBuf) {
        self.segs.push_back((1, 2, f.as_ref().to_vec()));
    }

    fn host_rx(&mut self, f: &[u8]) {
        if f[12..14] == [8, 6] {
            let a = &f[14..];
            let spa = [a[14], a[15], a[16], a[17]];
            if spa == [192, 168, 10, 1] {
                self.host_gw_mac = Some(a[8..14].try_into().unwrap());
            }
            if a[6..8] == [0, 1] && a[24..28] == [192, 168, 10, 10] {
                let sha: [u8; 6] = a[8..14].try_into().unwrap();
                let spa = std::net::Ipv4Addr::from(spa).to_string();
                self.host_send(arp(arpw::REPLY, sha, HOST_MAC, "192.168.10.10", sha, &spa));
            }
            return;
        }
        if f[12..14] != [8, 0] || f[0..6] != HOST_MAC {
            return;
        }
        let s = seen(f);
        let Some(i) = self.flows.iter().position(|fl| fl.sport == s.dport && fl.tcp == (s.proto == 6)) else {
            return;
        };
        let (seq, ack, flags, plen) = if s.proto == 6 { tcp_fields(f) } else { (0, 0, 0, 0) };
        let now = self.now;
        let fl = &mut self.flows[i];
        if fl.tcp {
            if flags & 0x12 == 0x12 && fl.established_at.is_none() {
                fl.rcv_nxt = seq.wrapping_add(1);
                fl.snd_nxt = ack;
                fl.established_at = Some(now);
                fl.outstanding = None;
                let (sport, server, dport, snd, rcv) = (fl.sport, fl.server, fl.dport, fl.snd_nxt, fl.rcv_nxt);
                let gw = self.host_gw_mac.unwrap();
                self.host_send(tcp(HOST_MAC, gw, "192.168.10.10", sport, server, dport, snd, rcv, "A", b""));
            } else if plen > 0 && seq == fl.rcv_nxt {
                fl.rcv_nxt = seq.wrapping_add(plen);
                fl.rounds += 1;
                fl.last_round = now;
                fl.outstanding = None;
            }
        } else {
            fl.rounds += 1;
            fl.last_round = now;
            fl.outstanding = None;
            fl.established_at.get_or_insert(now);
        }
    }

    fn router_rx(&mut self, f: &[u8]) {
        if f[12..14] == [8, 6] {
            let a = &f[14..];
            let spa = [a[14], a[15], a[16], a[17]];
            if spa == [203, 0, 113, 1] {
                self.router_fw_mac = Some(a[8..14].try_into().unwrap());
            }
            if a[6..8] == [0, 1] && a[24..28] == [203, 0, 113, 254] {
                let sha: [u8; 6] = a[8..14].try_into().unwrap();
                let spa = std::net::Ipv4Addr::from(spa).to_string();
                self.router_send(arp(arpw::REPLY, sha, ROUTER_MAC, "203.0.113.254", sha, &spa));
            }
            return;
        }
        if f[12..14] != [8, 0] || f[0..6] != ROUTER_MAC {
            return;
        }
        let s = seen(f);
        assert_eq!(s.src, ip("203.0.113.1"), "everything leaves through PAT");
        let is_tcp = s.proto == 6;
        let Some(i) =
            self.flows.iter().position(|fl| fl.dport == s.dport && fl.tcp == is_tcp && ip(fl.server) == s.dst)
        else {
            return;
        };
        self.mapped.entry(i).or_default().push(s.sport);
        let fw = self.router_fw_mac.unwrap_or(VMAC_OUT);
        let (server, dport) = (self.flows[i].server, self.flows[i].dport);
        if !is_tcp {
            let payload = &f[14 + 28..];
            self.router_send(udp(ROUTER_MAC, fw, server, dport, "203.0.113.1", s.sport, payload));
            return;
        }
        let (seq, _ack, flags, plen) = tcp_fields(f);
        let key = (s.sport, dport, true);
        let sf = self.server.entry(key).or_default();
        if flags & 0x02 != 0 {
            sf.rcv_nxt = seq.wrapping_add(1);
            sf.snd_nxt = 7_000_000;
            let r = tcp(ROUTER_MAC, fw, server, dport, "203.0.113.1", s.sport, sf.snd_nxt, sf.rcv_nxt, "SA", b"");
            sf.snd_nxt += 1;
            sf.last_reply = r.as_ref().to_vec();
            self.router_send(r);
        } else if plen > 0 {
            if seq == sf.rcv_nxt {
                sf.rcv_nxt = seq.wrapping_add(plen);
                let r = tcp(
                    ROUTER_MAC,
                    fw,
                    server,
                    dport,
                    "203.0.113.1",
                    s.sport,
                    sf.snd_nxt,
                    sf.rcv_nxt,
                    "AP",
                    &[0x42; 100],
                );
                sf.snd_nxt = sf.snd_nxt.wrapping_add(100);
                sf.last_reply = r.as_ref().to_vec();
                self.router_send(r);
            } else if !sf.last_reply.is_empty() {
                // A retransmission: answer again.
                let r = FrameBuf::from_slice(&sf.last_reply);
                self.router_send(r);
            }
        }
    }

    /// Hosts' own timers: open flows, send data, retransmit.
    fn host_tick(&mut self) {
        let Some(gw) = self.host_gw_mac else {
            if self.now.as_micros().is_multiple_of(100_000) {
                self.host_send(arp(arpw::REQUEST, [0xff; 6], HOST_MAC, "192.168.10.10", [0; 6], "192.168.10.1"));
            }
            return;
        };
        let now = self.now;
        let mut sends = vec![];
        for fl in self.flows.iter_mut() {
            let seq = match fl.outstanding {
                Some((t, seq)) if now.saturating_since(t) >= Duration::from_millis(200) => seq, // retransmit
                Some(_) => continue,
                None if now.saturating_since(fl.last_round) >= Duration::from_millis(20) => {
                    let seq = fl.snd_nxt;
                    if fl.tcp && fl.established_at.is_some() {
                        fl.snd_nxt = fl.snd_nxt.wrapping_add(100);
                    }
                    seq
                }
                None => continue,
            };
            fl.outstanding = Some((now, seq));
            sends.push(match (fl.tcp, fl.established_at) {
                (true, None) => tcp(HOST_MAC, gw, "192.168.10.10", fl.sport, fl.server, fl.dport, seq, 0, "S", b""),
                (true, Some(_)) => tcp(
                    HOST_MAC,
                    gw,
                    "192.168.10.10",
                    fl.sport,
                    fl.server,
                    fl.dport,
                    seq,
                    fl.rcv_nxt,
                    "AP",
                    &[0x17; 100],
                ),
                (false, _) => udp(HOST_MAC, gw, "192.168.10.10", fl.sport, fl.server, fl.dport, &seq.to_be_bytes()),
            });
        }
        for f in sends {
            self.host_send(f);
        }
    }

    fn open_flows(&mut self, n: usize) {
        for i in 0..n {
            let server = ["198.51.100.80", "198.51.100.81", "198.51.100.82"][i % 3];
            self.flows.push(Flow {
                tcp: i % 2 == 0,
                sport: 20_000 + i as u16,
                server,
                dport: 1000 + i as u16,
                snd_nxt: 1_000_000 * (i as u32 + 1),
                rcv_nxt: 0,
                established_at: None,
                rounds: 0,
                last_round: Instant::ZERO,
                outstanding: None,
            });
        }
    }

    fn step(&mut self) {
        self.now = self.now + STEP;
        for u in 0..2 {
            // The heartbeat thread: it lives as long as the unit's process.
            if self.units[u].is_none() && self.stalled[u].is_none() {
                self.ahead[u].clear();
            }
            while let Some(i) = self.ahead[u].iter().position(|(t, _)| *t <= self.now) {
                let (_, b) = self.ahead[u].remove(i);
                self.link.send(self.now, 1 - u, b);
            }
        }
        for (to, b) in self.link.due(self.now) {
            if let Some(app) = self.units[to].as_mut() {
                app.handle_sync(&b, true, self.now);
            } else if self.stalled[to].is_some() {
                self.held[to].link.push(b);
            }
            self.drain(to);
        }
        for u in 0..2 {
            if let Some(app) = self.units[u].as_mut() {
                let mut rounds = 0;
                while app.poll_timeout().is_some_and(|t| t <= self.now) {
                    app.handle_timeout(self.now);
                    rounds += 1;
                    assert!(rounds < 1000, "unit {u}: a timer stays due at {:?}", self.now);
                }
            }
            self.drain(u);
        }
        self.deliver_frames();
        self.host_tick();
        self.deliver_frames();
        let both = self.role(0) == Some(State::Active) && self.role(1) == Some(State::Active);
        if both && self.units[0].is_some() && self.units[1].is_some() {
            // The data segments always carry hellos here, so any dual
            // active is a violation, link partitioned or not.
            if self.dual_active_while_linked == 0 {
                for u in 0..2 {
                    if let Some(Report::Failover(r)) =
                        self.units[u].as_ref().map(|a| a.show(ShowWhat::Failover, self.now))
                    {
                        eprintln!("dual active at {:?}: unit {u}: {:?} {:?}", self.now, r.history, r.counters);
                    }
                }
            }
            self.dual_active_while_linked += 1;
        }
    }

    /// Stop unit `u`'s loop (its heartbeat thread runs on).
    fn stall(&mut self, u: usize) {
        self.stalled[u] = self.units[u].take();
    }

    /// Resume unit `u`'s loop in the shell's order: failover datagrams and
    /// timers first, then the frames that queued on its TAPs.
    fn resume(&mut self, u: usize) {
        self.units[u] = self.stalled[u].take();
        let held = std::mem::take(&mut self.held[u]);
        let Some(app) = self.units[u].as_mut() else { return };
        for b in held.link {
            app.handle_sync(&b, true, self.now);
        }
        if app.poll_timeout().is_some_and(|t| t <= self.now) {
            app.handle_timeout(self.now);
        }
        self.drain(u);
        for (seg, f) in held.frames {
            if let Some(app) = self.units[u].as_mut() {
                app.handle_frame(IfIndex(seg as u8), FrameBuf::from_slice(&f), self.now);
            }
            self.drain(u);
        }
        self.deliver_frames();
    }

    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    fn at_risk(&self, u: usize) -> u64 {
        match self.units[u].as_ref().map(|a| a.show(ShowWhat::Failover, self.now)) {
            Some(Report::Failover(r)) => r.at_risk,
            _ => u64::MAX,
        }
    }
}

fn tcp_fields(f: &[u8]) -> (u32, u32, u8, u32) {
    let ihl = ((f[14] & 0xf) as usize) * 4;
    let t = &f[14 + ihl..];
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    let off = ((t[12] >> 4) as usize) * 4;
    let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
    (seq, ack, t[13], (total - ihl - off) as u32)
}

/// One seeded scenario; returns a one-line summary.
fn scenario(seed: u64) -> String {
    let mut sim = Sim::new(seed);
    sim.link.loss = 5 + sim.rng.next_u64() % 15;
    sim.link.dup = sim.rng.next_u64() % 10;
    sim.link.jitter_us = 200 + sim.rng.next_u64() % 5_000;
    sim.run(Duration::from_millis(1500));
    assert_eq!(sim.role(0), Some(State::Active), "seed {seed}: primary active after start");
    assert_eq!(sim.role(1), Some(State::StandbyHot), "seed {seed}: secondary hot after bulk sync");

    sim.open_flows(24);
    sim.run(Duration::from_millis(800));
    // Partition the failover link for a while: data hellos keep both
    // units informed, so nobody takes over.
    sim.link.partitioned = true;
    let d = Duration::from_millis(200 + sim.rng.next_u64() % 400);
    sim.run(d);
    assert_eq!(sim.role(1), Some(State::StandbyHot), "seed {seed}: no takeover while the active lives");
    sim.link.partitioned = false;
    sim.run(Duration::from_millis(500));
    for fl in &sim.flows {
        assert!(fl.established_at.is_some() && fl.rounds > 3, "seed {seed}: flow did not get going: {fl:?}");
    }
    // Everything acknowledged: wait (bounded) for the stream to drain.
    let mut waited = 0;
    while sim.at_risk(0) > 0 {
        sim.step();
        waited += 1;
        assert!(waited < 5_000, "seed {seed}: replication never caught up");
    }
    let acked: Vec<usize> = (0..sim.flows.len()).collect();
    let rounds_before: Vec<u32> = sim.flows.iter().map(|f| f.rounds).collect();
    let b_created_before = sim.units[1].as_ref().unwrap().counters().events.conns_created;
    // Keep the traffic going a little and kill the active at a random moment.
    let d = Duration::from_micros(sim.rng.next_u64() % 30_000);
    sim.run(d);
    sim.units[0] = None;
    sim.killed = Some(sim.now);
    let kill = sim.now;
    let mut took_over = None;
    for _ in 0..2000 {
        sim.step();
        if took_over.is_none() && sim.role(1) == Some(State::Active) {
            took_over = Some(sim.now);
        }
    }
    let took_over = took_over.unwrap_or_else(|| panic!("seed {seed}: the standby never took over"));
    let detect = took_over.saturating_since(kill).as_millis();
    if detect > 300 {
        if let Some(Report::Failover(r)) = sim.units[1].as_ref().map(|a| a.show(ShowWhat::Failover, sim.now)) {
            eprintln!("seed {seed}: kill at {kill:?}: {:#?}", r.history);
            eprintln!("{:?}", r.counters);
        }
    }
    assert!(detect <= 250 + 50 + 2, "seed {seed}: takeover {detect} ms after the kill");
    for &i in &acked {
        let fl = &sim.flows[i];
        assert!(fl.rounds > rounds_before[i] + 5, "seed {seed}: flow {i} stalled after takeover: {fl:?}");
        let ports = &sim.mapped[&i];
        assert!(ports.windows(2).all(|w| w[0] == w[1]), "seed {seed}: flow {i} changed PAT port: {ports:?}");
    }
    let b = sim.units[1].as_ref().unwrap();
    assert_eq!(
        b.counters().events.conns_created,
        b_created_before,
        "seed {seed}: the new active re-created (re-evaluated) connections"
    );
    // The old active returns and joins as standby; tables converge.
    let a = Appliance::new(unit_config("primary.toml"), sim.now, Box::new(SeededRng::new(seed * 7 + 5)));
    sim.units[0] = Some(a);
    let mut converged = false;
    for _ in 0..5000 {
        sim.step();
        if sim.role(0) == Some(State::StandbyHot)
            && sim.at_risk(1) == 0
            && sim.units[0].as_ref().unwrap().conn_keys() == sim.units[1].as_ref().unwrap().conn_keys()
        {
            converged = true;
            break;
        }
    }
    assert_eq!(sim.role(1), Some(State::Active), "seed {seed}: the survivor stays active (no preempt)");
    assert!(converged, "seed {seed}: returning unit did not converge: role {:?}", sim.role(0));
    // Each side's `show failover` knows the other's table sizes.
    sim.run(Duration::from_millis(200));
    if let Some(Report::Failover(r)) = sim.units[0].as_ref().map(|a| a.show(ShowWhat::Failover, sim.now)) {
        let active_conns = sim.units[1].as_ref().unwrap().conn_count() as u64;
        assert_eq!(r.tables[0].peer, active_conns, "seed {seed}: peer table size in show failover");
    }
    assert_eq!(sim.dual_active_while_linked, 0, "seed {seed}: two actives while hellos flowed");
    format!(
        "seed {seed}: loss {}% dup {}% jitter {} us: takeover {} ms after kill, {} flows kept",
        sim.link.loss,
        sim.link.dup,
        sim.link.jitter_us,
        detect,
        acked.len()
    )
}

#[test]
fn failover_simulation_fixed_seeds() {
    let seeds: Vec<u64> = match (std::env::var("TWINWALL_SIM_SEED"), std::env::var("TWINWALL_SIM_SEEDS")) {
        (Ok(s), _) => vec![s.parse().expect("TWINWALL_SIM_SEED is a number")],
        (_, Ok(n)) => (0..n.parse().expect("TWINWALL_SIM_SEEDS is a number")).collect(),
        _ => (0..6).collect(),
    };
    for seed in seeds {
        eprintln!("{}", scenario(seed));
    }
}

/// A unit started with the wrong key hears the pair but cannot read it: it
/// must say so, accept no state and not become a second active.
#[test]
fn wrong_key_unit_stays_out() {
    let mut sim = Sim::new(99);
    let mut bad = unit_config("secondary.toml");
    if let Some(f) = bad.failover.as_mut() {
        f.key = config::KeySource::Inline("a-different-failover-key-000".into());
    }
    // The pair's active runs alone first; the misconfigured unit joins later.
    sim.units[1] = None;
    sim.run(Duration::from_millis(500));
    sim.units[1] = Some(Appliance::new(bad, sim.now, Box::new(SeededRng::new(7))));
    sim.run(Duration::from_millis(200));
    sim.open_flows(4);
    sim.run(Duration::from_millis(1500));
    assert_eq!(sim.role(0), Some(State::Active));
    assert_ne!(sim.role(1), Some(State::Active), "the wrong-key unit went active");
    assert_eq!(sim.units[1].as_ref().unwrap().conn_count(), 0, "the wrong-key unit accepted state");
    for u in 0..2 {
        let Some(Report::Failover(r)) = sim.units[u].as_ref().map(|a| a.show(ShowWhat::Failover, sim.now)) else {
            panic!()
        };
        assert!(
            r.counters.get("ha-key-mismatch").copied().unwrap_or(0) > 0,
            "unit {u} did not notice: {:?}",
            r.counters
        );
    }
    assert_eq!(sim.dual_active_while_linked, 0);
}

/// Stall unit `u`'s loop (no input, no timers) for `stall`, with or
/// without hellos sealed ahead. Returns the role changes seen from the
/// start of the stall to a second after it, as (unit, time since the start
/// of the stall, new role).
fn stall_unit(seed: u64, u: usize, ahead: bool, stall: Duration) -> Vec<(usize, Duration, State)> {
    let mut sim = Sim::new(seed);
    for a in sim.units.iter_mut().flatten() {
        a.set_hellos_ahead(ahead);
        assert_eq!(a.hellos_ahead(), if ahead { 4 } else { 0 }, "50/250 ms: 4 hellos ahead");
    }
    sim.run(Duration::from_millis(1500));
    assert_eq!(sim.role(0), Some(State::Active), "seed {seed}: primary active after start");
    assert_eq!(sim.role(1), Some(State::StandbyHot), "seed {seed}: secondary hot after bulk sync");
    sim.open_flows(4);
    let settle = Duration::from_millis(300 + sim.rng.next_u64() % 50);
    sim.run(settle);
    let start = sim.now;
    let role_of = |sim: &Sim, v: usize| {
        sim.units[v].as_ref().or(sim.stalled[v].as_ref()).and_then(|a| a.role()).expect("a unit with failover")
    };
    let mut roles = [role_of(&sim, 0), role_of(&sim, 1)];
    let mut changes = vec![];
    sim.stall(u);
    let mut resumed = false;
    while sim.now < start + stall + Duration::from_millis(1000) {
        if !resumed && sim.now >= start + stall {
            sim.resume(u);
            resumed = true;
        }
        sim.step();
        for (v, seen) in roles.iter_mut().enumerate() {
            let r = role_of(&sim, v);
            if r != *seen {
                changes.push((v, sim.now.saturating_since(start), r));
                *seen = r;
            }
        }
    }
    if std::env::var("SIMDEBUG").is_ok() {
        for v in 0..2 {
            if let Some(Report::Failover(r)) = sim.units[v].as_ref().map(|a| a.show(ShowWhat::Failover, sim.now)) {
                eprintln!("unit {v}: {:?}\n{:?}", r.history, r.counters);
            }
        }
    }
    assert!(
        !(sim.role(0) == Some(State::Active) && sim.role(1) == Some(State::Active)),
        "seed {seed}: two actives a second after the stall"
    );
    changes
}

/// When the standby took over, counted from the start of the stall.
fn takeover_time(changes: &[(usize, Duration, State)]) -> Option<Duration> {
    changes.iter().find(|(v, _, r)| *v == 1 && *r == State::Active).map(|(_, t, _)| *t)
}

/// The lab's timers are 50/250 ms; 4 hellos ahead cover 200 ms.
#[test]
fn stalled_loop_is_covered_by_hellos_ahead() {
    for seed in 0..3 {
        // 380 ms without the loop: past the hold time, so without hellos
        // sealed ahead the standby takes over (a false failover) ...
        let without = stall_unit(seed, 0, false, Duration::from_millis(380));
        assert!(takeover_time(&without).is_some(), "seed {seed}: a 380 ms stall went unnoticed without hellos ahead");
        // ... and with them nothing changes role.
        let with = stall_unit(seed, 0, true, Duration::from_millis(380));
        assert_eq!(with, vec![], "seed {seed}: role changes during a 380 ms stall despite hellos ahead");
    }
}

/// A loop that is stuck for good is still taken over: the hellos sealed
/// ahead run out after `ahead x poll`, then the hold time runs.
#[test]
fn hung_loop_is_taken_over_after_the_hellos_ahead_run_out() {
    for seed in 0..3 {
        let changes = stall_unit(seed, 0, true, Duration::from_millis(900));
        let t = takeover_time(&changes).unwrap_or_else(|| panic!("seed {seed}: a 900 ms hang was never taken over"));
        // When the hung unit comes back it finds the peer active with the
        // newer state, and yields to it, primary or not.
        let last = |v: usize| changes.iter().rev().find(|c| c.0 == v).map(|c| c.2);
        assert_eq!(last(1), Some(State::Active), "seed {seed}: the unit that took over keeps the role: {changes:?}");
        assert!(
            matches!(last(0), Some(State::StandbyCold | State::StandbyHot)),
            "seed {seed}: the unit that hung yields: {changes:?}"
        );
        // Last hello sealed at most one poll before the stall, 4.5 x 50 ms
        // ahead, 250 ms hold, link jitter and one step.
        assert!(t <= Duration::from_millis(50 + 225 + 250 + 10), "seed {seed}: takeover {t:?} after the hang");
        assert!(t >= Duration::from_millis(250), "seed {seed}: takeover {t:?} before the hold time ran out");
    }
}

/// A standby whose own loop was held up reads a backlog of hellos from
/// the failover link before its TAPs: it must not take the TAPs' silence
/// for failed interfaces (nor the peer for dead).
#[test]
fn stalled_standby_neither_fails_nor_takes_over() {
    for seed in 0..3 {
        let changes = stall_unit(seed, 1, true, Duration::from_millis(400));
        assert_eq!(changes, vec![], "seed {seed}: role changes after the standby's loop stalled");
    }
}
