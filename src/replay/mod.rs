//! Offline replay: captures in, the appliance's frames and counters out.
//!
//! [`run`] is a driver like the shell, with pcap time for a clock:
//!
//! 1. Every input is read ([`pcap_in`]) and belongs to one interface. Inside
//!    one input, packets keep their file order; a timestamp earlier than the
//!    one before it in the same input is clamped up to it, so the clock never
//!    goes back (some public captures are not monotonic). The inputs are then
//!    merged by (clamped) time; ties go to the earlier input in `inputs`, then
//!    to the earlier packet.
//! 2. The appliance is created at the first timestamp with
//!    `SeededRng::new(opts.seed)`, so a run depends on its inputs only.
//! 3. Before each frame, every timer due by the frame's time runs, in
//!    deadline order, each at its own deadline (`handle_timeout(deadline)`).
//!    The frame is then fed to its interface and `poll_output()` drained.
//!    Outputs are stamped with the time of the call that produced them.
//! 4. After the last frame, timers run up to its time + `opts.linger`.
//!
//! Results: `out_dir/IFACE.pcap` for each interface that sent frames (a stale
//! file from an earlier run for an interface that sent nothing is removed),
//! and `out_dir/counters.json` with sorted keys. The same inputs, config and
//! seed give the same files byte for byte.

mod error;
pub mod pcap_in;
pub mod pcap_out;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use error::ReplayError;
pub use summary::summarize;

use crate::appliance::{Appliance, Event, Output};
use crate::config::{Config, IfIndex};
use crate::entropy::SeededRng;
use crate::stats::Counters;
use crate::time::{Duration, Instant};

/// One capture, replayed as received on interface `iface` (a config name).
#[derive(Clone, Debug)]
pub struct ReplayInput {
    pub iface: String,
    pub path: PathBuf,
}

#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Seed of the appliance's `SeededRng`.
    pub seed: u64,
    /// Rewrite the destination MAC of unicast frames to the receiving
    /// interface's MAC (tcprewrite `--enet-dmac`), so that captures taken on
    /// other networks are routed rather than dropped as not for us.
    pub retarget_mac: bool,
    /// How long timers keep running after the last input.
    pub linger: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { seed: 1, retarget_mac: false, linger: Duration::ZERO }
    }
}

/// A frame the appliance sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFrame {
    pub time: Instant,
    pub port: IfIndex,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// Interface names by `IfIndex`.
    pub ifaces: Vec<String>,
    /// Time of the first input frame (the appliance's creation time).
    pub start: Instant,
    /// Time the run ended: last input + linger.
    pub end: Instant,
    /// Frames fed, per input (same order as `inputs`).
    pub fed: Vec<usize>,
    /// Every frame sent, in emission order.
    pub frames: Vec<OutFrame>,
    /// Operator events, in emission order.
    pub events: Vec<(Instant, Event)>,
    pub counters: Counters,
}

impl ReplayReport {
    /// Frames sent out of interface `name`.
    pub fn frames_on<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a OutFrame> + 'a {
        self.frames.iter().filter(move |f| self.ifaces[f.port.idx()] == name)
    }

    pub fn fed_total(&self) -> usize {
        self.fed.iter().sum()
    }

    /// The `counters.json` text: drops by name, events, and per-interface
    /// counters, keys sorted.
    pub fn counters_json(&self) -> Result<String, ReplayError> {
        counters_json(&self.counters, &self.ifaces)
    }
}

/// Replay `inputs` through an appliance built from `cfg`; see the module doc.
pub fn run(
    cfg: Config,
    inputs: &[ReplayInput],
    out_dir: &Path,
    opts: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let ifaces: Vec<String> = cfg.interfaces.iter().map(|i| i.name.clone()).collect();

    let mut captures = Vec::with_capacity(inputs.len());
    for input in inputs {
        let port = cfg
            .interface_by_name(&input.iface)
            .ok_or_else(|| ReplayError::NoSuchInterface { path: input.path.clone(), iface: input.iface.clone() })?;
        let mac = cfg.iface(port).mac;
        let mut cap = pcap_in::read_file(&input.path, mac)?;
        if opts.retarget_mac {
            for p in &mut cap.packets {
                if p.frame.len() >= 6 && p.frame[0] & 1 == 0 {
                    p.frame[..6].copy_from_slice(&mac.0);
                }
            }
        }
        captures.push((port, cap.packets));
    }
    let fed: Vec<usize> = captures.iter().map(|(_, p)| p.len()).collect();
    let times: Vec<Vec<Instant>> = captures.iter().map(|(_, p)| p.iter().map(|p| p.time).collect()).collect();
    let queue = merge_order(&times);

    let start = queue.first().map(|q| q.0).unwrap_or_default();
    let mut d = Driver {
        app: Appliance::new(cfg, start, Box::new(SeededRng::new(opts.seed))),
        now: start,
        frames: Vec::new(),
        events: Vec::new(),
    };
    d.drain();
    for (t, n, k) in queue {
        let (port, packets) = &captures[n];
        d.run_timers(t)?;
        d.now = t;
        let mut buf = d.app.alloc_frame();
        buf.set(&packets[k].frame);
        d.app.handle_frame(*port, buf, t);
        d.drain();
    }
    let end = d.now + opts.linger;
    d.run_timers(end)?;

    let report = ReplayReport {
        ifaces,
        start,
        end,
        fed,
        frames: d.frames,
        events: d.events,
        counters: d.app.counters().clone(),
    };
    write_outputs(&report, out_dir)?;
    Ok(report)
}

/// The feeding order of several inputs, given each input's timestamps in
/// file order: `(time, input, packet index)`. Within an input, a time earlier
/// than the one before is clamped up to it; across inputs, the order is by
/// time, then input, then packet.
pub fn merge_order(times: &[Vec<Instant>]) -> Vec<(Instant, usize, usize)> {
    let mut queue = Vec::with_capacity(times.iter().map(Vec::len).sum());
    for (n, ts) in times.iter().enumerate() {
        let mut last = Instant::ZERO;
        for (k, &t) in ts.iter().enumerate() {
            last = last.max(t);
            queue.push((last, n, k));
        }
    }
    // Stable, and the clamped times are non-decreasing within an input, so
    // sorting by (time, input) keeps packet order inside an input.
    queue.sort_by_key(|&(t, n, _)| (t, n));
    queue
}

struct Driver {
    app: Appliance,
    now: Instant,
    frames: Vec<OutFrame>,
    events: Vec<(Instant, Event)>,
}

impl Driver {
    /// A core that keeps re-arming a timer for the instant it just handled
    /// would spin forever; after this many rounds at one instant, stop.
    const MAX_ROUNDS_AT_ONE_INSTANT: u32 = 10_000;

    fn drain(&mut self) {
        while let Some(out) = self.app.poll_output() {
            match out {
                Output::Frame { port, buf } => {
                    self.frames.push(OutFrame { time: self.now, port, data: buf.as_ref().to_vec() });
                    self.app.recycle(buf);
                }
                Output::Event(e) => self.events.push((self.now, e)),
                // Replay runs one unit: there is no failover link to send on.
                Output::Sync { .. } | Output::HelloAhead { .. } => {}
            }
        }
    }

    /// Run every timer due at or before `until`, each at its own deadline
    /// (or at the current time, if a deadline lies in the past).
    fn run_timers(&mut self, until: Instant) -> Result<(), ReplayError> {
        let mut rounds = 0;
        while let Some(deadline) = self.app.poll_timeout() {
            if deadline > until {
                break;
            }
            let at = deadline.max(self.now);
            rounds = if at == self.now { rounds + 1 } else { 1 };
            if rounds > Self::MAX_ROUNDS_AT_ONE_INSTANT {
                return Err(ReplayError::TimerStuck { at });
            }
            self.now = at;
            self.app.handle_timeout(at);
            self.drain();
        }
        Ok(())
    }
}

fn counters_json(c: &Counters, ifaces: &[String]) -> Result<String, ReplayError> {
    let path = PathBuf::from("counters.json");
    let json = |source| ReplayError::Json { path: path.clone(), source };
    // Re-collected into BTreeMaps so the key order is sorted whatever
    // serde_json's features (preserve_order would keep struct order).
    let sorted = |v: serde_json::Value| -> BTreeMap<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    let mut per_iface = BTreeMap::new();
    for (name, ic) in ifaces.iter().zip(&c.ifaces) {
        per_iface.insert(name.clone(), sorted(serde_json::to_value(ic).map_err(json)?));
    }
    let mut top: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    top.insert("drops", serde_json::to_value(c.drop_map()).map_err(json)?);
    top.insert("events", serde_json::to_value(sorted(serde_json::to_value(&c.events).map_err(json)?)).map_err(json)?);
    top.insert("interfaces", serde_json::to_value(per_iface).map_err(json)?);
    let mut text = serde_json::to_string_pretty(&top).map_err(json)?;
    text.push('\n');
    Ok(text)
}

fn write_outputs(r: &ReplayReport, out_dir: &Path) -> Result<(), ReplayError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ReplayError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    for (i, name) in r.ifaces.iter().enumerate() {
        let path = out_dir.join(format!("{name}.pcap"));
        let mut frames = r.frames.iter().filter(|f| f.port.idx() == i).peekable();
        if frames.peek().is_some() {
            pcap_out::write_file(&path, frames.map(|f| (f.time, &f.data[..])))?;
        } else if path.exists() {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    let path = out_dir.join("counters.json");
    let text = counters_json(&r.counters, &r.ifaces)?;
    std::fs::write(&path, text).map_err(io(&path))
}

#[cfg(test)]
mod tests;

impl std::fmt::Display for ReplayReport {
    /// One paragraph for the operator: what went in, what came out, drops.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.end.saturating_since(self.start).as_micros() as f64 / 1e6;
        writeln!(f, "replayed {} frames over {secs:.3} s", self.fed_total())?;
        for (i, name) in self.ifaces.iter().enumerate() {
            let sent = self.frames.iter().filter(|o| o.port.idx() == i).count();
            let c = &self.counters.ifaces[i];
            writeln!(f, "  {name}: received {}, sent {sent}, dropped {}", c.rx_frames, c.drops)?;
        }
        for (name, n) in self.counters.drop_map() {
            writeln!(f, "  drop {name}: {n}")?;
        }
        Ok(())
    }
}
