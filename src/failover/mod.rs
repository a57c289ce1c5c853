//! Failover state of one unit: keys, role machine, delta stream, outbox and
//! what it knows of its peer. The appliance's tables plug in through
//! [`conn_sync`], [`arp_sync`] and [`mac_sync`]; the wiring lives in
//! `appliance_ha.rs`.

pub mod arp_sync;
pub mod conn_sync;
pub mod mac_sync;

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::config::{Config, FailoverCfg, KeySource, Mac};
use crate::conntrack::KeyV4;
use crate::entropy::Entropy;
use crate::ha::crypto::{Channel, KeyMaterial, Opener, Sealer};
use crate::ha::hello::{BulkStatus, HelloRepr};
use crate::ha::outbox::Outbox;
use crate::ha::role::RoleFsm;
use crate::ha::stream::{Stream, StreamConfig};
use crate::ha::Unit;
use crate::show::TakeoverBreakdown;
use crate::time::{Duration, Instant};

/// Ethertype of hellos on data interfaces (IEEE 802 local experimental).
pub const HELLO_ETHERTYPE: u16 = 0x88b5;
/// Destination of data-interface hellos: locally administered multicast,
/// so bridges flood it to the peer and hosts ignore it.
pub const HELLO_MAC: Mac = Mac([0x03, 0x74, 0x77, 0x00, 0x00, 0x01]);
/// Records coalesced before a delta datagram goes out regardless of time.
const MAX_UPDATES: usize = 16;
/// Longest a local change waits before it is sent.
const MAX_DELAY: Duration = Duration::from_millis(1);
/// Gratuitous ARP rounds on takeover, and their spacing.
pub const GARP_ROUNDS: u8 = 3;
pub const GARP_SPACING: Duration = Duration::from_millis(50);
/// Shortest time a starting unit listens for its peer before it claims
/// the active role alone.
pub const NEGOTIATE_MIN: Duration = Duration::from_millis(500);
/// Shortest silence that fails a monitored interface: below this, a busy
/// host's scheduling alone fails interfaces (seen at hold_ms = 8).
pub const INTERFACE_HOLD_MIN: Duration = Duration::from_millis(100);
/// Role-change lines kept for `show failover`.
const HISTORY: usize = 16;

/// The MAC a standby unit uses on an interface: the virtual MAC with the
/// top bit of its last octet flipped. The virtual MAC moves with the active role.
pub fn standby_mac(m: Mac) -> Mac {
    let mut b = m.0;
    b[5] ^= 0x80;
    Mac(b)
}

/// Where a hello came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Link,
    Data(u8),
}

/// A failover setup problem, shown at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaError {
    /// The failover key is unusable: {0}
    Key(String),
    /// `key_file` must be read by the shell before the core starts.
    KeyFileUnresolved,
}

impl std::fmt::Display for HaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HaError::Key(e) => write!(f, "[failover] key: {e}"),
            HaError::KeyFileUnresolved => write!(f, "[failover] key_file was not read before start"),
        }
    }
}

pub struct Ha {
    pub cfg: FailoverCfg,
    pub unit: Unit,
    pub key_id: u32,
    pub hello_sealer: Sealer,
    pub delta_sealer: Sealer,
    pub hello_opener: Opener,
    pub delta_opener: Opener,
    pub hello_epoch: u32,
    pub delta_epoch: u32,
    pub fsm: RoleFsm,
    pub stream: Stream,
    pub outbox: Outbox,
    pub config_hash: u64,
    /// Keys of removed connections whose delete is still queued.
    pub tombstones: HashMap<u64, KeyV4>,
    pub peer: Option<HelloRepr>,
    pub peer_hello_epoch: Option<u32>,
    /// Hello epoch of the peer when we last heard it active: a negotiating
    /// hello under another epoch means it restarted.
    pub peer_active_epoch: Option<u32>,
    pub last_link: Option<Instant>,
    pub last_data: Vec<Option<Instant>>,
    pub last_any: Option<Instant>,
    /// The last hello sealed when it was sent (not [`hello_flags::AHEAD`]).
    pub last_fresh: Option<Instant>,
    /// PeerDead was raised and no hello has been heard since.
    pub peer_dead: bool,
    /// Last datagram sealed with another key (a misconfigured peer).
    pub last_key_mismatch: Option<Instant>,
    /// The peer's connection, ARP and MAC table sizes, from its hellos.
    pub peer_tables: [u64; 3],
    /// Any frame received per data interface (interface health).
    pub last_rx: Vec<Option<Instant>>,
    pub local_failed: bool,
    pub next_hello: Instant,
    /// Seal link hellos ahead of time for the shell's heartbeat thread.
    pub hellos_ahead: bool,
    /// The last call into the core for this unit's failover (timer or
    /// hello): a gap longer than the hold time means this unit stalled.
    pub last_call: Option<Instant>,
    /// No interface check before then: the loop was held up and its TAPs
    /// have a backlog to read first.
    pub iface_check_from: Option<Instant>,
    /// Counter of the newest hello read from the peer (this epoch).
    pub peer_hello_counter: Option<u64>,
    /// Active and just back from a stall past the hold time: until then,
    /// a peer heard active took over meanwhile and keeps the role.
    pub stalled_until: Option<Instant>,
    pub bulk_rx: BulkStatus,
    pub bulk_end_pending: bool,
    pub counters: BTreeMap<&'static str, u64>,
    pub history: VecDeque<String>,
    pub last_takeover: Option<TakeoverBreakdown>,
    /// Takeover in progress: when it began, for the breakdown.
    pub takeover_started: Option<Instant>,
    /// Connections adopted on takeover whose expiry is still the peer's.
    pub adopt_cursor: Option<usize>,
    pub garp_left: u8,
    pub garp_next: Option<Instant>,
    pub preempt_at: Option<Instant>,
    pub started: Instant,
    /// The first hello has gone out (negotiation counts from then).
    pub hellos_started: bool,
    pub warned_at: Option<Instant>,
    pub active: bool,
}

impl Ha {
    pub fn new(cfg: &Config, fo: &FailoverCfg, rng: &mut dyn Entropy, now: Instant) -> Result<Ha, HaError> {
        let key = match &fo.key {
            KeySource::Inline(k) => KeyMaterial::from_key_text(k).map_err(|e| HaError::Key(e.to_string()))?,
            KeySource::File(_) => return Err(HaError::KeyFileUnresolved),
        };
        let unit = fo.unit;
        let hello_epoch = rng.next_u64() as u32;
        let delta_epoch = rng.next_u64() as u32;
        let n = cfg.interfaces.len();
        let mut fsm = RoleFsm::new(unit, fo.preempt.is_some());
        fsm.handle(crate::ha::role::Event::Start, now);
        Ok(Ha {
            cfg: fo.clone(),
            unit,
            key_id: key.key_id(),
            hello_sealer: key.sealer(unit, Channel::Hello, hello_epoch),
            delta_sealer: key.sealer(unit, Channel::Delta, delta_epoch),
            hello_opener: key.opener(unit, Channel::Hello),
            delta_opener: key.opener(unit, Channel::Delta),
            hello_epoch,
            delta_epoch,
            fsm,
            stream: Stream::new(StreamConfig::default(), rng.next_u64() as u32, rng.next_u64() as u32),
            outbox: Outbox::new(MAX_UPDATES, MAX_DELAY),
            config_hash: config_hash(cfg),
            tombstones: HashMap::new(),
            peer: None,
            peer_hello_epoch: None,
            peer_active_epoch: None,
            last_link: None,
            last_data: vec![None; n],
            last_any: None,
            last_fresh: None,
            peer_dead: false,
            last_key_mismatch: None,
            peer_tables: [0; 3],
            last_rx: vec![None; n],
            local_failed: false,
            next_hello: now,
            hellos_ahead: false,
            last_call: None,
            iface_check_from: None,
            peer_hello_counter: None,
            stalled_until: None,
            bulk_rx: BulkStatus::Idle,
            bulk_end_pending: false,
            counters: BTreeMap::new(),
            history: VecDeque::new(),
            last_takeover: None,
            takeover_started: None,
            adopt_cursor: None,
            garp_left: 0,
            garp_next: None,
            preempt_at: None,
            started: now,
            hellos_started: false,
            warned_at: None,
            active: false,
        })
    }

    pub fn count(&mut self, name: &'static str) {
        *self.counters.entry(name).or_insert(0) += 1;
    }

    pub fn note(&mut self, line: String) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(line);
    }

    /// At most one operator warning per second of the same storm.
    pub fn may_warn(&mut self, now: Instant) -> bool {
        if self.warned_at.is_some_and(|t| now.saturating_since(t) < Duration::from_secs(1)) {
            return false;
        }
        self.warned_at = Some(now);
        true
    }

    /// When the peer is declared dead if nothing more is heard. A unit
    /// that has never heard its peer negotiates for longer than one hold
    /// time: the hello round trip at start (echo of our epoch) takes a few
    /// intervals, and claiming the role too early next to a live active
    /// would make two actives with one of them empty.
    pub fn hold_deadline(&self) -> Instant {
        match self.last_any {
            Some(t) => t + self.cfg.hold,
            None => self.started + self.cfg.hold.max(NEGOTIATE_MIN),
        }
    }

    /// Silence on a data interface that counts as that interface failing:
    /// the configured hold, but never below [`INTERFACE_HOLD_MIN`].
    /// Back from a stall past the hold time, as an active unit (see
    /// [`Ha::stalled_until`]).
    pub fn stalled(&self, now: Instant) -> bool {
        self.stalled_until.is_some_and(|t| now < t)
    }

    pub fn interface_hold(&self) -> Duration {
        self.cfg.interface_hold.max(INTERFACE_HOLD_MIN)
    }

    /// Link hellos sealed ahead with each hello: enough to cover all but one
    /// interval of the hold time, so a loop that hangs still falls silent
    /// within two hold times.
    pub fn ahead(&self) -> u8 {
        if !self.hellos_ahead {
            return 0;
        }
        let (poll, hold) = (self.cfg.poll.as_micros().max(1), self.cfg.hold.as_micros());
        (hold / poll).saturating_sub(1).clamp(1, 8) as u8
    }

    /// A reload: new timers and a new configuration hash. What needs a
    /// restart (link, unit, key, preempt on or off) the caller has refused.
    pub fn reconfigure(&mut self, cfg: &Config, fo: &FailoverCfg) {
        self.cfg = fo.clone();
        self.config_hash = config_hash(cfg);
    }
}

/// What both units must agree on, hashed (see `config::failover_config_hash`).
pub fn config_hash(cfg: &Config) -> u64 {
    crate::config::failover_config_hash(cfg)
}
