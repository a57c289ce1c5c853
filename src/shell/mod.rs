//! The shell: the only code that touches file descriptors, signals and the
//! clock. It drives the sans-IO [`Appliance`] the way mio's `udp_server`
//! example drives a socket:
//!
//! 1. arm a timerfd with the earliest of `poll_timeout()` and the control
//!    connections' deadlines (absolute, to the microsecond: mio's own timeout
//!    is whole milliseconds, see `timer.rs`); `poll` without a timeout, or
//!    with zero when a TAP or failover socket still has input we left for
//!    fairness;
//! 2. `poll`, retrying on `EINTR`, then read the monotonic clock;
//! 3. **failover first** (issue 6): drain both failover sockets into
//!    `handle_sync`, run `handle_timeout(now)` if due, drain `poll_output()`;
//! 4. handle signals, the control listener and connections;
//! 5. for each TAP with input, read at most [`READS_PER_WAKEUP`] frames into
//!    `handle_frame` and drain the output; then read the clock again and
//!    repeat step 3, so a unit forwarding at full rate still hears its peer's
//!    hellos and sends its own on time;
//! 6. `handle_timeout(now)` when due, and drain `poll_output()` a last time.
//!
//! Output: frames go to their TAP (queued, bounded, with `WRITABLE` interest
//! while a queue is non-empty), sync datagrams to the failover link (dropped
//! and counted if the socket is full), events to the log. Every frame buffer
//! goes back to the appliance through `recycle`.
//!
//! The clock is read once after `poll`, and while TAPs are read, every
//! [`FRAMES_PER_CLOCK_READ`] frames (a batch is cut short once a core deadline
//! has passed) and after each TAP's batch; never per frame. Every `handle_*`
//! call gets the latest reading.

pub mod cli;
mod control_sock;
mod failover_sock;
mod heartbeat;
mod key_file;
mod signals;
mod tap;
mod timer;
mod uring;
mod vnet;
pub mod wire_mode;

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use twinwall::appliance::SyncDst;
use twinwall::config::{self, ConfigError};
use twinwall::control::{self, Request};
use twinwall::entropy::SystemEntropy;
use twinwall::frame::FrameBuf;
use twinwall::ha::role::State;
use twinwall::time::{self, Duration, Instant};
use twinwall::{Appliance, Command, Config, Event, IfIndex, Output};

use control_sock::{Conn, ControlError, Listener, ReadOutcome};
use uring::{Frames, Uring};
use failover_sock::{FailoverLink, LinkError};
use heartbeat::Heartbeat;
use key_file::KeyFileError;
use signals::{Signal, Signals};
use tap::{Tap, TapError};
use timer::{Lateness, Timer};

/// `CLOCK_MONOTONIC` (what `std::time::Instant` reads on Linux), as the
/// core's microsecond [`Instant`] since start. The only place the shell reads
/// time. Read directly so that a core deadline converts exactly to the
/// absolute time the timerfd wants.
#[derive(Clone, Copy)]
struct Clock {
    base_ns: u64,
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Clock {
    fn start() -> Clock {
        Clock { base_ns: monotonic_ns() }
    }
    fn now(&self) -> Instant {
        Instant::from_micros((monotonic_ns() - self.base_ns) / 1000)
    }
    /// `t` as absolute `CLOCK_MONOTONIC` nanoseconds. A timer at this time
    /// fires when `now() >= t` already holds (`now` rounds down).
    fn monotonic_ns_at(&self, t: Instant) -> u64 {
        self.base_ns.saturating_add(t.as_micros().saturating_mul(1000))
    }
}

const SIGNALS: Token = Token(0);
const LISTENER: Token = Token(1);
const FO_DELTA: Token = Token(2);
const FO_HELLO: Token = Token(3);
const TIMER: Token = Token(4);
/// TAP `i` is `Token(TAP_BASE + i)`; an `IfIndex` is a `u8`.
const TAP_BASE: usize = 16;
/// Control connection slot `s` is `Token(CONN_BASE + s)`.
const CONN_BASE: usize = TAP_BASE + 256;

/// Frames read from one TAP before the loop turns to the others.
pub(crate) const READS_PER_WAKEUP: usize = 256;
/// Within a TAP's batch, the clock is read every this many frames and the
/// batch cut short once a core deadline has passed, so that however hard the
/// TAPs are pushed a hello is late by at most this many frames' work, not a
/// whole batch's (256 frames take about 1 ms in a debug build). A vDSO clock
/// read costs tens of nanoseconds, a frame a microsecond or more.
const FRAMES_PER_CLOCK_READ: usize = 32;
/// Frames waiting for one TAP to become writable; more are dropped.
const TX_QUEUE_MAX: usize = 1024;
/// Concurrent control connections; more are turned away.
const MAX_CONNS: usize = 32;
/// A control client must finish its exchange within this time.
const CONN_TIMEOUT: Duration = Duration::from_secs(5);
/// Minimum gap between two log lines about the same kind of drop on a port.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why `twinwall run` could not start or had to stop.
#[derive(Debug)]
pub enum ShellError {
    /// {0}: cannot read: {1}
    ReadConfig(PathBuf, io::Error),
    /// the configuration has errors (one per line)
    Config(Vec<ConfigError>),
    Tap(TapError),
    Control(ControlError),
    KeyFile(KeyFileError),
    Failover(LinkError),
    /// {0}: {1}
    Io(&'static str, io::Error),
}

impl fmt::Display for ShellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellError::ReadConfig(p, e) => write!(f, "{}: cannot read: {e}", p.display()),
            ShellError::Config(errs) => {
                for (i, e) in errs.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            ShellError::Tap(e) => write!(f, "{e}"),
            ShellError::Control(e) => write!(f, "{e}"),
            ShellError::KeyFile(e) => write!(f, "{e}"),
            ShellError::Failover(e) => write!(f, "{e}"),
            ShellError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

/// Read and parse a config file.
pub fn load_config(path: &Path) -> Result<Config, ShellError> {
    let text = fs::read_to_string(path).map_err(|e| ShellError::ReadConfig(path.to_owned(), e))?;
    config::parse(&text, &path.display().to_string()).map_err(ShellError::Config)
}

/// Read and parse a config file, then read its failover key file (if any)
/// into the config: what the appliance is built from. The second value is a
/// warning to show loudly (the key file is readable by others).
pub fn load_config_and_key(path: &Path) -> Result<(Config, Option<String>), ShellError> {
    let mut cfg = load_config(path)?;
    let warning = key_file::resolve_key(&mut cfg, path).map_err(ShellError::KeyFile)?;
    Ok((cfg, warning))
}

/// A count of one kind of drop on one port, logged at most every
/// [`DROP_LOG_INTERVAL`].
struct DropLog {
    what: &'static str,
    total: u64,
    unreported: u64,
    next_report: Instant,
}

impl DropLog {
    fn new(what: &'static str) -> DropLog {
        DropLog { what, total: 0, unreported: 0, next_report: Instant::ZERO }
    }

    fn note(&mut self, tap: &str, now: Instant, detail: &dyn fmt::Display) {
        self.total += 1;
        self.unreported += 1;
        if now >= self.next_report {
            log::warn!("TAP {tap}: {} frame(s) {} ({detail}); {} in all", self.unreported, self.what, self.total);
            self.unreported = 0;
            self.next_report = now + DROP_LOG_INTERVAL;
        }
    }
}

struct Port {
    tap: Tap,
    token: Token,
    /// Frames may be waiting: readiness was reported, or the last drain
    /// stopped at [`READS_PER_WAKEUP`]. Cleared by `WouldBlock`.
    rx_pending: bool,
    /// Set after a read error; the TAP is deregistered and left alone.
    failed: bool,
    txq: VecDeque<FrameBuf>,
    /// `WRITABLE` interest is registered (only while `txq` is non-empty).
    want_write: bool,
    queue_drops: DropLog,
    tx_errors: DropLog,
}

struct Shell {
    poll: Poll,
    app: Appliance,
    cfg_path: PathBuf,
    ports: Vec<Port>,
    /// TAP reads and writes batched through io_uring; `None`: read(2)/write(2).
    uring: Option<Uring>,
    /// The failover link's sockets, when the config has `[failover]`.
    fo: Option<FailoverLink>,
    /// Sends the hellos sealed ahead while this loop is late.
    heartbeat: Option<Heartbeat>,
    clock: Clock,
    /// Wakes `poll` at the next deadline, to the microsecond.
    timer: Timer,
    /// The timerfd failed once; fall back to mio's millisecond timeout.
    timer_broken: bool,
    lateness: Lateness,
    /// Sync outputs with no failover link to send them on.
    sync_unsendable: u64,
    signals: Signals,
    listener: Listener,
    conns: Vec<Option<Conn>>,
    /// Set by SIGTERM/SIGINT: the signal's name.
    exit: Option<&'static str>,
}

/// `twinwall run`: open everything, then loop until SIGTERM or SIGINT.
pub fn run(cfg_path: &Path) -> Result<(), ShellError> {
    // First, so that no signal arriving during start-up kills us uncleanly
    // once the socket file exists.
    let signals = Signals::new().map_err(|e| ShellError::Io("cannot set up signal handling", e))?;
    let (cfg, key_warning) = load_config_and_key(cfg_path)?;
    if let Some(w) = key_warning {
        log::warn!("{w}");
    }
    // Before the TAPs: a second instance is told so plainly, instead of
    // failing on a busy TAP.
    let listener = Listener::bind(Path::new(&cfg.control_socket)).map_err(ShellError::Control)?;

    let poll = Poll::new().map_err(|e| ShellError::Io("cannot create the event loop", e))?;
    let reg = poll.registry();
    let mut fo = match &cfg.failover {
        Some(f) => Some(FailoverLink::open(f).map_err(ShellError::Failover)?),
        None => None,
    };
    if let Some(fo) = &mut fo {
        fo.register(reg, FO_DELTA, FO_HELLO).map_err(|e| ShellError::Io("cannot register the failover sockets", e))?;
    }
    timer::reduce_timer_slack();
    let timer = Timer::new().map_err(|e| ShellError::Io("cannot create a timerfd", e))?;
    reg.register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)
        .map_err(|e| ShellError::Io("cannot register the timerfd", e))?;
    let mut ports = Vec::with_capacity(cfg.interfaces.len());
    for (i, ifc) in cfg.interfaces.iter().enumerate() {
        let tap = Tap::open(&ifc.tap, ifc.mtu).map_err(ShellError::Tap)?;
        let token = Token(TAP_BASE + i);
        reg.register(&mut SourceFd(&tap.as_raw_fd()), token, Interest::READABLE)
            .map_err(|e| ShellError::Io("cannot register a TAP", e))?;
        let offload = if tap.offload { "checksum/TSO offload" } else { "no offload" };
        log::info!("interface {} on TAP {} (MTU {}, {offload})", ifc.name, tap.name(), ifc.mtu);
        ports.push(Port {
            tap,
            token,
            rx_pending: true,
            failed: false,
            txq: VecDeque::new(),
            want_write: false,
            queue_drops: DropLog::new("dropped, transmit queue full"),
            tx_errors: DropLog::new("not sent"),
        });
    }
    let uring = open_uring(&ports);
    reg.register(&mut SourceFd(&signals.as_raw_fd()), SIGNALS, Interest::READABLE)
        .map_err(|e| ShellError::Io("cannot register the signalfd", e))?;
    let mut listener = listener;
    reg.register(&mut listener.sock, LISTENER, Interest::READABLE)
        .map_err(|e| ShellError::Io("cannot register the control socket", e))?;

    let clock = Clock::start();
    let mut app = Appliance::new(cfg, clock.now(), Box::new(SystemEntropy::new()));
    // Every TAP has a vnet header, so every one takes super-frames and
    // partial checksums on write whatever its own offload setting.
    for i in 0..ports.len() {
        app.set_tx_offload(IfIndex(i as u8), true);
    }
    let heartbeat = match &fo {
        Some(link) => {
            let (fd, group) = link.hello_target();
            let hb = Heartbeat::start(fd, group).map_err(|e| ShellError::Io("cannot start the heartbeat thread", e))?;
            app.set_hellos_ahead(true);
            log::info!(
                "heartbeat thread at {}: covers the loop for {} hello interval(s)",
                hb.priority,
                app.hellos_ahead()
            );
            Some(hb)
        }
        None => None,
    };
    log::info!("twinwall running; control socket {}", listener.path().display());
    let mut shell = Shell {
        poll,
        app,
        cfg_path: cfg_path.to_owned(),
        ports,
        uring,
        fo,
        heartbeat,
        clock,
        timer,
        timer_broken: false,
        lateness: Lateness::new(),
        sync_unsendable: 0,
        signals,
        listener,
        conns: (0..MAX_CONNS).map(|_| None).collect(),
        exit: None,
    };
    shell.run_loop(&clock)?;
    for p in &shell.ports {
        for d in [&p.queue_drops, &p.tx_errors].into_iter().filter(|d| d.total > 0) {
            log::info!("TAP {}: {} frame(s) {} in all", p.tap.name(), d.total, d.what);
        }
    }
    if let Some(fo) = &shell.fo {
        log::info!("failover link: {:?}", fo.stats);
    }
    if let Some((sent, failed)) = shell.heartbeat.as_ref().map(Heartbeat::counts) {
        log::info!("heartbeat thread: {sent} hello(s) sent while the loop was late, {failed} refused by the kernel");
    }
    log::info!("{}: exiting", shell.exit.unwrap_or("stopped"));
    Ok(())
    // `shell` drops here: the listener removes the socket file, TAPs close.
}

impl Shell {
    fn run_loop(&mut self, clock: &Clock) -> Result<(), ShellError> {
        let mut events = Events::with_capacity(256);
        let mut now = clock.now();
        while self.exit.is_none() {
            let timeout = self.poll_delay(now, clock);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ShellError::Io("poll failed", e));
            }
            now = clock.now();

            // Hellos and deltas ahead of everything else (issue 6).
            self.service_failover(now);

            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.on_signals(now),
                    LISTENER => self.accept(now),
                    // Drained above whether or not they are reported.
                    FO_DELTA | FO_HELLO => {}
                    TIMER => self.timer.fired(),
                    Token(t) if (TAP_BASE..TAP_BASE + self.ports.len()).contains(&t) => {
                        let i = t - TAP_BASE;
                        if event.is_readable() || event.is_error() || event.is_read_closed() {
                            self.ports[i].rx_pending = true;
                        }
                        if event.is_writable() {
                            self.flush_port(i, now);
                        }
                    }
                    Token(t) if (CONN_BASE..CONN_BASE + MAX_CONNS).contains(&t) => self.on_conn(t - CONN_BASE, now),
                    Token(_) => {}
                }
            }

            now = self.read_taps(now, clock);
            self.run_timeout(now);
            self.expire_conns(now);
            self.drain_output(now);
        }
        Ok(())
    }

    /// Feed the failover link's datagrams to the core, run its timers if due,
    /// and send what it has to say.
    fn service_failover(&mut self, now: Instant) {
        let Shell { fo, app, .. } = self;
        if let Some(fo) = fo {
            fo.drain(now, |bytes, ttl_ok| app.handle_sync(bytes, ttl_ok, now));
        }
        self.run_timeout(now);
        self.drain_output(now);
    }

    /// `handle_timeout(now)` if the core's deadline has passed, recording how
    /// late we are.
    fn run_timeout(&mut self, now: Instant) {
        let Some(due) = self.app.poll_timeout().filter(|t| *t <= now) else { return };
        if let Some(s) = self.lateness.record(now.saturating_since(due).as_micros()) {
            log::debug!(
                "timer lateness over {} handle_timeout calls: p50 {} us, p99 {} us, max {} us",
                s.n,
                s.p50,
                s.p99,
                s.max
            );
        }
        let was_active = self.app.role() == Some(State::Active);
        self.app.handle_timeout(now);
        if !was_active && self.app.role() == Some(State::Active) {
            // A takeover: time the core's step and the claim's way out,
            // which the core cannot do itself.
            let stepped = self.clock.now();
            self.drain_output(stepped);
            let written = self.clock.now();
            self.app.note_takeover_timing(
                stepped.saturating_since(now).as_micros(),
                written.saturating_since(now).as_micros(),
            );
        }
    }

    /// How long `poll` may sleep: zero if a TAP or failover socket has input
    /// left, else forever with the timerfd armed for the earliest deadline
    /// (mio's timeout is whole milliseconds: see `timer.rs`). Should the
    /// timerfd fail, the deadline is rounded up to whole milliseconds
    /// instead (waking late is harmless, early would spin).
    fn poll_delay(&mut self, now: Instant, clock: &Clock) -> Option<std::time::Duration> {
        if self.ports.iter().any(|p| p.rx_pending && !p.failed) || self.fo.as_ref().is_some_and(|f| f.rx_pending) {
            return Some(std::time::Duration::ZERO);
        }
        let conn_deadline = self.conns.iter().flatten().map(|c| Instant::from_micros(c.deadline_us)).min();
        let Some(deadline) = time::earliest(self.app.poll_timeout(), conn_deadline) else {
            if !self.timer_broken {
                let _ = self.timer.set(None);
            }
            return None;
        };
        if deadline <= now {
            return Some(std::time::Duration::ZERO);
        }
        if !self.timer_broken {
            match self.timer.set(Some(clock.monotonic_ns_at(deadline))) {
                Ok(()) => return None,
                Err(e) => {
                    log::error!("timerfd: {e}; falling back to millisecond timers");
                    self.timer_broken = true;
                }
            }
        }
        let us = deadline.saturating_since(now).as_micros();
        Some(std::time::Duration::from_millis(us.div_ceil(1000)))
    }

    fn on_signals(&mut self, now: Instant) {
        loop {
            match self.signals.next() {
                Ok(Some(Signal::Terminate(name))) => self.exit = Some(name),
                Ok(Some(Signal::Reload)) => match self.reload(now) {
                    Ok(msg) => log::info!("SIGHUP: {msg}"),
                    Err(msg) => log::error!("SIGHUP: reload failed, keeping the running configuration:\n{msg}"),
                },
                Ok(None) => return,
                Err(e) => {
                    log::error!("reading signals: {e}");
                    return;
                }
            }
        }
    }

    /// Re-read and parse the config file and hand it to the appliance.
    fn reload(&mut self, now: Instant) -> Result<String, String> {
        let (cfg, key_warning) = load_config_and_key(&self.cfg_path).map_err(|e| e.to_string())?;
        if let Some(w) = key_warning {
            log::warn!("{w}");
        }
        let old = self.app.config();
        // The shell owns the TAPs: it cannot swap them under a running loop.
        let taps = |c: &Config| c.interfaces.iter().map(|i| i.tap.clone()).collect::<Vec<_>>();
        if taps(&cfg) != taps(old) {
            return Err("the new configuration changes the TAP devices; restart to apply it".into());
        }
        // Nor the failover sockets.
        let link = |c: &Config| c.failover.as_ref().map(failover_sock::link_params);
        if link(&cfg) != link(old) {
            return Err("the new configuration adds, removes or changes the failover link ([failover] interface, \
                        local, peer, port, hello_group or hello_port); restart to apply it"
                .into());
        }
        let mut notes = String::new();
        if cfg.control_socket != old.control_socket {
            notes.push_str(&format!(
                "\nnote: control_socket changed; still listening on {} until restart",
                self.listener.path().display()
            ));
        }
        if cfg.interfaces.iter().zip(&old.interfaces).any(|(n, o)| n.mtu != o.mtu) {
            notes.push_str("\nnote: an interface MTU changed; TAP read sizes change on restart");
        }
        self.app.handle_command(Command::Reload(Box::new(cfg)), now).map_err(|e| e.to_string())?;
        Ok(format!("reloaded {}{notes}", self.cfg_path.display()))
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let mut stream = match self.listener.sock.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // E.g. EMFILE. Pending clients wait for the next wakeup.
                    log::warn!("control socket: accept failed: {e}");
                    return;
                }
            };
            let Some(slot) = self.conns.iter().position(Option::is_none) else {
                log::warn!("control socket: more than {MAX_CONNS} clients at once; turning one away");
                let _ = io::Write::write(&mut stream, b"error\ntoo many control connections; try again\n");
                continue;
            };
            let token = Token(CONN_BASE + slot);
            if let Err(e) = self.poll.registry().register(&mut stream, token, Interest::READABLE) {
                log::warn!("control socket: cannot register a client: {e}");
                continue;
            }
            self.conns[slot] = Some(Conn::new(stream, (now + CONN_TIMEOUT).as_micros()));
        }
    }

    fn on_conn(&mut self, slot: usize, now: Instant) {
        let Some(mut conn) = self.conns[slot].take() else { return };
        if !conn.replying() {
            let reply = match conn.read_request() {
                Ok(ReadOutcome::Pending) => {
                    self.conns[slot] = Some(conn);
                    return;
                }
                Ok(ReadOutcome::Closed) => return self.close(conn),
                Err(e) => {
                    log::debug!("control client: {e}");
                    return self.close(conn);
                }
                Ok(ReadOutcome::Request(Err(e))) => Err(e),
                Ok(ReadOutcome::Request(Ok(line))) => self.answer(&line, now),
            };
            conn.set_reply(reply);
        }
        match conn.write_reply() {
            Ok(true) => self.close(conn),
            Ok(false) => {
                let token = Token(CONN_BASE + slot);
                if let Err(e) = self.poll.registry().reregister(&mut conn.stream, token, Interest::WRITABLE) {
                    log::debug!("control client: {e}");
                    return self.close(conn);
                }
                self.conns[slot] = Some(conn);
            }
            Err(e) => {
                log::debug!("control client: {e}");
                self.close(conn)
            }
        }
    }

    fn answer(&mut self, line: &str, now: Instant) -> Result<String, String> {
        log::debug!("control request: {line}");
        match Request::parse(line)? {
            Request::Show { what, json } => Ok(control::answer_show(&self.app, what, json, now)),
            Request::Reload => {
                let r = self.reload(now);
                match &r {
                    Ok(msg) => log::info!("control socket: {msg}"),
                    Err(msg) => log::error!("control socket: reload failed, keeping the running configuration:\n{msg}"),
                }
                r
            }
            Request::Failover(role) => {
                let r = self.app.handle_command(twinwall::Command::Failover(role), now).map_err(|e| e.to_string());
                let word = match role {
                    twinwall::appliance::ForceRole::Active => "active",
                    twinwall::appliance::ForceRole::Standby => "standby",
                };
                r.map(|()| format!("failover {word} requested\n"))
            }
        }
    }

    fn close(&mut self, mut conn: Conn) {
        let _ = self.poll.registry().deregister(&mut conn.stream);
        // Dropping the stream closes it; the client reads EOF after the reply.
    }

    fn expire_conns(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            if self.conns[slot].as_ref().is_some_and(|c| c.deadline_us <= now.as_micros()) {
                log::debug!("control client timed out");
                let conn = self.conns[slot].take().expect("checked above");
                self.close(conn);
            }
        }
    }

    /// Drain every TAP with pending frames, at most [`READS_PER_WAKEUP`]
    /// each; after each TAP's batch, send its output, read the clock and
    /// serve the failover link and the timers. Returns the last clock reading.
    fn read_taps(&mut self, mut now: Instant, clock: &Clock) -> Instant {
        for i in 0..self.ports.len() {
            let port = &self.ports[i];
            if !port.rx_pending || port.failed {
                continue;
            }
            now = self.read_tap(i, now, clock);
            self.drain_output(now);
            now = clock.now();
            self.service_failover(now);
        }
        now
    }

    /// Read at most [`READS_PER_WAKEUP`] frames from TAP `i`, fewer if a
    /// core deadline passes meanwhile (checked every
    /// [`FRAMES_PER_CLOCK_READ`] frames). Returns the last clock reading.
    fn read_tap(&mut self, i: usize, mut now: Instant, clock: &Clock) -> Instant {
        if self.uring.is_some() {
            return self.read_tap_uring(i, now, clock);
        }
        let port = &mut self.ports[i];
        for n in 0..READS_PER_WAKEUP {
            if n > 0 && n % FRAMES_PER_CLOCK_READ == 0 {
                now = clock.now();
                if self.app.poll_timeout().is_some_and(|t| t <= now) {
                    // `rx_pending` stays set: the loop comes back at once.
                    break;
                }
            }
            let mut buf = self.app.alloc_frame();
            match port.tap.recv(&mut buf) {
                Ok(0) => self.app.recycle(buf),
                Ok(n) => {
                    buf.truncate(n);
                    self.app.handle_frame(IfIndex(i as u8), buf, now);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.app.recycle(buf),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.app.recycle(buf);
                    port.rx_pending = false;
                    break;
                }
                Err(e) => {
                    // EBADFD and the like: the device is gone. Stop
                    // polling it rather than spin on its error.
                    self.app.recycle(buf);
                    log::error!("TAP {}: read failed: {e}; no longer reading from it", port.tap.name());
                    let _ = self.poll.registry().deregister(&mut SourceFd(&port.tap.as_raw_fd()));
                    port.failed = true;
                    port.rx_pending = false;
                    break;
                }
            }
        }
        now
    }

    /// [`read_tap`](Self::read_tap) through io_uring: batches of reads
    /// (sized by what the last batch found, at most
    /// [`FRAMES_PER_CLOCK_READ`]) in one submission each, the clock read
    /// between batches; at most [`READS_PER_WAKEUP`] frames. Should the ring
    /// fail, it is dropped and the TAPs are read with read(2) from then on.
    fn read_tap_uring(&mut self, i: usize, mut now: Instant, clock: &Clock) -> Instant {
        let mut read = 0;
        while read < READS_PER_WAKEUP {
            if read > 0 {
                now = clock.now();
                if self.app.poll_timeout().is_some_and(|t| t <= now) {
                    // `rx_pending` stays set: the loop comes back at once.
                    break;
                }
            }
            let u = self.uring.as_mut().expect("called with a ring");
            let max = FRAMES_PER_CLOCK_READ.min(READS_PER_WAKEUP - read);
            let batch = match u.read(i, max, &mut CoreFrames { app: &mut self.app, port: IfIndex(i as u8), now }) {
                Ok(b) => b,
                Err(e) => {
                    log::error!("io_uring: a TAP read batch failed: {e}; reading and writing with read(2)/write(2) from now on");
                    self.uring = None;
                    return self.read_tap(i, now, clock);
                }
            };
            read += batch.reads;
            let p = &mut self.ports[i];
            if let Some(e) = batch.error {
                // EBADFD and the like: the device is gone. Stop polling it
                // rather than spin on its error.
                log::error!("TAP {}: read failed: {e}; no longer reading from it", p.tap.name());
                let _ = self.poll.registry().deregister(&mut SourceFd(&p.tap.as_raw_fd()));
                p.failed = true;
            }
            if batch.empty || p.failed {
                p.rx_pending = false;
                break;
            }
        }
        now
    }

    fn drain_output(&mut self, now: Instant) {
        self.drain_core_output(now);
        let Shell { uring, app, ports, .. } = self;
        if let Some(u) = uring.as_mut().filter(|u| u.writes_pending()) {
            let r = u.flush_writes(&mut |buf, port, res| uring_write_done(app, ports, buf, port, res, now));
            if let Err(e) = r {
                log::error!("io_uring: cannot submit TAP writes: {e}");
            }
        }
    }

    fn drain_core_output(&mut self, now: Instant) {
        while let Some(out) = self.app.poll_output() {
            match out {
                Output::Frame { port, buf } => self.send_frame(port, buf, now),
                Output::Event(ev) => log_event(&ev),
                Output::HelloAhead { due, bytes } => {
                    if let Some(hb) = &self.heartbeat {
                        hb.push(self.clock.monotonic_ns_at(due), bytes);
                    }
                }
                Output::Sync { to, bytes } => match &mut self.fo {
                    Some(fo) => {
                        if to == SyncDst::HelloGroup {
                            if let Some(hb) = &self.heartbeat {
                                hb.supersede();
                            }
                        }
                        fo.send(to, &bytes, now)
                    }
                    None => {
                        self.sync_unsendable += 1;
                        if self.sync_unsendable == 1 {
                            log::error!(
                                "the appliance sent a failover datagram but there is no [failover] link; dropped"
                            );
                        }
                    }
                },
            }
        }
    }

    fn send_frame(&mut self, port: IfIndex, mut buf: FrameBuf, now: Instant) {
        if port.idx() >= self.ports.len() {
            log::error!("the appliance sent a frame to port {} of {}; dropped", port.idx(), self.ports.len());
            return self.app.recycle(buf);
        }
        let Shell { uring, app, ports, .. } = self;
        if let Some(u) = uring {
            let r = u.queue_write(port.idx(), buf, &mut |b, i, res| uring_write_done(app, ports, b, i, res, now));
            if let Err(e) = r {
                log::error!("io_uring: cannot submit TAP writes: {e}");
            }
            return;
        }
        let p = &mut self.ports[port.idx()];
        if !p.txq.is_empty() {
            // Keep order: nothing overtakes the queue.
            if p.txq.len() >= TX_QUEUE_MAX {
                p.queue_drops.note(p.tap.name(), now, &format_args!("{TX_QUEUE_MAX} queued"));
                self.app.recycle(buf);
            } else {
                p.txq.push_back(buf);
            }
            return;
        }
        match send(&p.tap, &mut buf) {
            Ok(()) => self.app.recycle(buf),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                p.txq.push_back(buf);
                if !p.want_write {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    match self.poll.registry().reregister(&mut SourceFd(&p.tap.as_raw_fd()), p.token, interest) {
                        Ok(()) => p.want_write = true,
                        Err(e) => log::error!("TAP {}: cannot wait for writability: {e}", p.tap.name()),
                    }
                }
            }
            Err(e) => {
                p.tx_errors.note(p.tap.name(), now, &e);
                self.app.recycle(buf);
            }
        }
    }

    /// The TAP became writable: send what is queued, in order.
    fn flush_port(&mut self, i: usize, now: Instant) {
        let p = &mut self.ports[i];
        while let Some(buf) = p.txq.front_mut() {
            match send(&p.tap, buf) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => p.tx_errors.note(p.tap.name(), now, &e),
            }
            let buf = p.txq.pop_front().expect("front exists");
            self.app.recycle(buf);
        }
        if p.want_write {
            let reg = self.poll.registry();
            match reg.reregister(&mut SourceFd(&p.tap.as_raw_fd()), p.token, Interest::READABLE) {
                Ok(()) => p.want_write = false,
                Err(e) => log::error!("TAP {}: cannot drop write interest: {e}", p.tap.name()),
            }
        }
    }
}

/// TAP I/O through io_uring, unless unwanted or unavailable (then
/// read(2)/write(2), with a line in the log saying why).
fn open_uring(ports: &[Port]) -> Option<Uring> {
    if !Uring::wanted() {
        log::info!("TAP I/O: read(2)/write(2) per frame (TWINWALL_IO_URING=0)");
        return None;
    }
    let fds: Vec<_> = ports.iter().map(|p| p.tap.as_raw_fd()).collect();
    match Uring::new(&fds, ports.iter().map(|p| p.tap.read_len).collect()) {
        Ok(u) => {
            log::info!("TAP I/O: io_uring, up to {} reads per submission, writes batched", uring::MAX_READ_BATCH);
            Some(u)
        }
        Err(e) => {
            log::warn!("TAP I/O: io_uring unavailable ({e}); read(2)/write(2) per frame");
            None
        }
    }
}

/// A batch of TAP reads through io_uring feeds the core: buffers from its
/// pool, frames into `handle_frame`.
struct CoreFrames<'a> {
    app: &'a mut Appliance,
    port: IfIndex,
    now: Instant,
}

impl Frames for CoreFrames<'_> {
    fn alloc(&mut self) -> FrameBuf {
        self.app.alloc_frame()
    }
    fn frame(&mut self, buf: FrameBuf) {
        self.app.handle_frame(self.port, buf, self.now);
    }
    fn spare(&mut self, buf: FrameBuf) {
        self.app.recycle(buf);
    }
}

/// A write through io_uring is done: the buffer goes back to the pool, a
/// failure is counted on its port.
fn uring_write_done(app: &mut Appliance, ports: &mut [Port], buf: FrameBuf, port: usize, res: io::Result<()>, now: Instant) {
    app.recycle(buf);
    if let Err(e) = res {
        let p = &mut ports[port];
        p.tx_errors.note(p.tap.name(), now, &e);
    }
}

/// One write(2) of a whole frame, retried on `EINTR`.
fn send(tap: &Tap, buf: &mut FrameBuf) -> io::Result<()> {
    loop {
        match tap.send(buf) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Every event the core emits goes to the log; events without a line of
/// their own yet are logged with their Debug form, so new variants compile
/// and are seen before the shell learns to word them.
fn log_event(ev: &Event) {
    match ev {
        Event::Reloaded => log::info!("configuration reloaded"),
        Event::AddressConflict { iface, ip, mac } => {
            log::warn!("address conflict on {iface}: {mac} also claims {ip}; check for a duplicate address")
        }
        Event::RoleChanged { from, to, cause, detail } => {
            log::warn!("failover: role {from} -> {to}: {cause}{}{detail}", if detail.is_empty() { "" } else { "; " })
        }
        Event::FailoverWarning(msg) => log::error!("failover: {msg}"),
        Event::TakeoverDone(line) => log::warn!("failover: takeover done: {line}"),
    }
}
