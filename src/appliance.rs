//! The sans-IO appliance core.
//!
//! # Contract (quinn-proto's `Connection`)
//! * Feed inputs with `handle_frame` (one Ethernet frame from a port),
//!   `handle_command` (reload, ...), and, once `now >= poll_timeout()`,
//!   `handle_timeout(now)`.
//! * Then drain `poll_output()` until it returns `None`: frames to send per
//!   port, and events for the operator.
//! * Nothing here reads a clock, a socket or a file; `now` is always an
//!   argument, so replay (pcap time) and simulation (virtual time) drive the
//!   same code as the shell (monotonic time).
//!
//! Buffers go round: `alloc_frame` hands out a pooled buffer for the shell to
//! read into, and every `Output::Frame` buffer should come back through
//! `recycle` once written, so the fast path allocates nothing.

use std::collections::VecDeque;

use crate::config::{Config, IfIndex};
use crate::entropy::Entropy;
use crate::frame::{FrameBuf, Pool};
use crate::show::{Report, ShowWhat};
use crate::stats::Counters;
use crate::time::Instant;

/// Something the appliance wants done.
#[derive(Debug)]
pub enum Output {
    /// Send this frame out of `port`.
    Frame { port: IfIndex, buf: FrameBuf },
    /// Tell the operator (the shell logs it).
    Event(Event),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A reload took effect.
    Reloaded,
    /// A reload changed something that only a restart can apply.
    RestartNeeded(String),
}

/// Operator commands.
#[derive(Debug)]
pub enum Command {
    /// Apply a new configuration; existing connections and NAT bindings stay.
    Reload(Box<Config>),
}

/// A command that could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The new configuration changes the interface list; restart to apply it.
    InterfacesChanged,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::InterfacesChanged => {
                write!(f, "the new configuration adds, removes or renames interfaces; restart to apply it")
            }
        }
    }
}

pub struct Appliance {
    cfg: Config,
    pool: Pool,
    out: VecDeque<Output>,
    counters: Counters,
    #[allow(dead_code)]
    rng: Box<dyn Entropy>,
}

impl Appliance {
    pub fn new(cfg: Config, _now: Instant, rng: Box<dyn Entropy>) -> Self {
        let counters = Counters::new(cfg.interfaces.len());
        Appliance { cfg, pool: Pool::default(), out: VecDeque::new(), counters, rng }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn alloc_frame(&mut self) -> FrameBuf {
        self.pool.get()
    }

    pub fn recycle(&mut self, buf: FrameBuf) {
        self.pool.put(buf);
    }

    pub fn handle_frame(&mut self, port: IfIndex, buf: FrameBuf, _now: Instant) {
        let c = &mut self.counters.ifaces[port.idx()];
        c.rx_frames += 1;
        c.rx_bytes += buf.len() as u64;
        self.pool.put(buf);
    }

    pub fn handle_timeout(&mut self, _now: Instant) {}

    pub fn handle_command(&mut self, cmd: Command, _now: Instant) -> Result<(), CommandError> {
        match cmd {
            Command::Reload(cfg) => {
                self.cfg = *cfg;
                self.out.push_back(Output::Event(Event::Reloaded));
                Ok(())
            }
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    pub fn show(&self, what: ShowWhat, _now: Instant) -> Report {
        match what {
            _ => Report::Route(vec![]),
        }
    }
}
