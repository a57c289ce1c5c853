//! The role state machine: one explicit `match (state, event)` (pfsync's
//! bulk-update FSM style), name tables, and a counter of refused events.
//!
//! # States
//! | state        | meaning                                                        |
//! |--------------|----------------------------------------------------------------|
//! | init         | booted, not yet sending hellos                                 |
//! | negotiating  | sending hellos, waiting one hold time to hear the peer         |
//! | standby-cold | standby, bulk sync pending: not eligible while the active lives |
//! | standby-hot  | standby with the complete state: ready to take over            |
//! | active       | owns the addresses and virtual MACs, forwards, sends deltas    |
//! | failed       | a monitored interface is down and the peer is healthier        |
//!
//! # Rules (each has a unit test below)
//! 1. Both starting together: the primary becomes active, the secondary
//!    standby (`negotiating` + peer negotiating).
//! 2. A cold standby never claims the active role while the active lives:
//!    `ManualActive` and `PreemptTimer` are refused until `BulkDone`.
//! 3. If the peer is gone entirely (`PeerDead`: no hello on *any* path for
//!    the hold time) a standby takes over with what it has; the transition
//!    says so ([`Takeover::Partial`] for a cold standby).
//! 4. Hellos lost on the failover link while the peer still answers on a
//!    data interface (`FailoverLinkDown`) never cause a takeover; the flag is
//!    raised (and sent in hellos) for the operator.
//! 5. Two actives hearing each other: the secondary yields, unless the other
//!    side claimed the role (command or preemption: `CLAIM` hello flag), in
//!    which case the non-claimant yields, or one of them is back from a stall
//!    past the hold time (`STALLED` flag, `YieldAfterStall`): the other took
//!    over meanwhile with the newer state, and the stalled one yields. A unit that yields goes
//!    `standby-cold`: its state diverged and needs a bulk sync.
//! 6. `ManualStandby` on the active is refused unless the peer is hot; it
//!    moves to `standby-hot` sending `YIELD`, and the hot peer takes over.
//! 7. A monitored interface failure (`LocalInterfaceFailed`, sent by the
//!    caller only when the peer's health is better) moves to `failed`; the
//!    peer takes over when it hears `failed`. Recovery leads to
//!    `standby-cold`.
//! 8. With `preempt`, a primary that becomes hot while the secondary is
//!    active gets [`Transition::start_preempt_timer`]; on `PreemptTimer` it
//!    claims the role back (rule 5 makes the secondary yield).
//!
//! # Contract
//! [`RoleFsm::handle`] takes an event and `now`, returns an [`Outcome`]; it
//! never reads a clock. The caller turns hellos into `PeerHello*` events,
//! the hold timer into `PeerDead`/`FailoverLinkDown`, the stream into
//! `BulkDone`/`ResyncStarted`, operator commands into `Manual*`, and acts on
//! [`Transition`]: `takeover` = commit pending deltas, then claim addresses
//! and send gratuitous ARP; leaving `active` = release them; entering
//! `standby-cold` = request a bulk sync.

use crate::time::Instant;

use super::hello::hello_flags;
use super::Unit;

/// Role of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    Init = 0,
    Negotiating = 1,
    StandbyCold = 2,
    StandbyHot = 3,
    Active = 4,
    Failed = 5,
}

impl State {
    pub const ALL: [State; 6] =
        [State::Init, State::Negotiating, State::StandbyCold, State::StandbyHot, State::Active, State::Failed];
    pub const NAMES: [&'static str; 6] = ["init", "negotiating", "standby-cold", "standby-hot", "active", "failed"];

    pub fn from_u8(v: u8) -> Option<State> {
        State::ALL.get(usize::from(v)).copied()
    }
    pub fn name(self) -> &'static str {
        State::NAMES[self as usize]
    }
}

/// Inputs to the role machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Begin sending hellos.
    Start,
    /// Peer's hello says init or negotiating (it just booted).
    PeerHelloNegotiating,
    /// Peer's hello says active; `claim` = its `CLAIM` flag.
    PeerHelloActive { claim: bool },
    /// Peer's hello says standby; `hot` = bulk done, `yielding` = its
    /// `YIELD` flag.
    PeerHelloStandby { hot: bool, yielding: bool },
    /// Peer's hello says failed.
    PeerHelloFailed,
    /// No hello from the peer on any path for the hold time.
    PeerDead,
    /// No hello on the failover link for the hold time, but the peer still
    /// answers on a data interface.
    FailoverLinkDown,
    /// Hellos on the failover link again.
    FailoverLinkUp,
    /// A monitored interface failed and the peer's health is better.
    LocalInterfaceFailed,
    /// All monitored interfaces up again.
    LocalInterfaceRecovered,
    /// Bulk sync received and acknowledged.
    BulkDone,
    /// The delta stream lost continuity (resync): state is incomplete.
    ResyncStarted,
    /// Operator: `twinwall failover active`.
    ManualActive,
    /// Operator: `twinwall failover standby`; `peer_hot` from its hello.
    ManualStandby { peer_hot: bool },
    /// The preempt delay after becoming hot has passed.
    PreemptTimer,
    /// The peer, last heard active, now speaks under a new epoch: it
    /// restarted. (A negotiating hello alone is no proof: one still in
    /// flight from a start both units just settled looks the same.)
    PeerRestarted,
    /// This unit, active, was held up for longer than the hold time (a
    /// paused VM, a stopped process) and now hears the peer active: the
    /// peer took over meanwhile and holds the newer state.
    YieldAfterStall,
}

impl Event {
    pub const NAMES: [&'static str; 17] = [
        "start",
        "peer-hello-negotiating",
        "peer-hello-active",
        "peer-hello-standby",
        "peer-hello-failed",
        "peer-dead",
        "failover-link-down",
        "failover-link-up",
        "local-interface-failed",
        "local-interface-recovered",
        "bulk-done",
        "resync-started",
        "manual-active",
        "manual-standby",
        "preempt-timer",
        "peer-restarted",
        "yield-after-stall",
    ];

    fn index(self) -> usize {
        match self {
            Event::Start => 0,
            Event::PeerHelloNegotiating => 1,
            Event::PeerHelloActive { .. } => 2,
            Event::PeerHelloStandby { .. } => 3,
            Event::PeerHelloFailed => 4,
            Event::PeerDead => 5,
            Event::FailoverLinkDown => 6,
            Event::FailoverLinkUp => 7,
            Event::LocalInterfaceFailed => 8,
            Event::LocalInterfaceRecovered => 9,
            Event::BulkDone => 10,
            Event::ResyncStarted => 11,
            Event::ManualActive => 12,
            Event::ManualStandby { .. } => 13,
            Event::PreemptTimer => 14,
            Event::PeerRestarted => 15,
            Event::YieldAfterStall => 16,
        }
    }

    pub fn name(self) -> &'static str {
        Event::NAMES[self.index()]
    }
}

/// How much state a takeover starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takeover {
    /// From standby-hot: every acknowledged change is here.
    Complete,
    /// From standby-cold or failed: bulk sync unfinished, some flows lost.
    Partial,
    /// Without ever having synced (fresh start, no peer).
    Alone,
}

/// A role change, to be logged with its cause and acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub event: Event,
    pub cause: &'static str,
    pub at: Instant,
    /// Set when entering `active`.
    pub takeover: Option<Takeover>,
    /// Primary with preempt just became hot: arm the preempt timer.
    pub start_preempt_timer: bool,
}

impl Transition {
    pub fn leaves_active(&self) -> bool {
        self.from == State::Active && self.to != State::Active
    }
    /// Entering standby-cold needs a bulk from the peer, except after a
    /// resync: the peer's bulk follows its resync in the stream (and after
    /// falling behind the stream has asked already). Asking again would
    /// drop that bulk as unsynced and stall the standby cold.
    pub fn needs_bulk(&self) -> bool {
        self.to == State::StandbyCold && self.event != Event::ResyncStarted
    }
}

/// What [`RoleFsm::handle`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Moved(Transition),
    /// Valid event, no role change (flags may have changed).
    Stayed,
    /// Event not allowed in this state; counted.
    Rejected(&'static str),
}

/// The role machine of one unit.
#[derive(Clone, Debug)]
pub struct RoleFsm {
    unit: Unit,
    preempt: bool,
    state: State,
    /// Went active by command or preemption; cleared once the peer is seen
    /// not active.
    claiming: bool,
    /// Stepped down by command; cleared once the peer is seen active.
    yielding: bool,
    link_failed: bool,
    rejected: u64,
    last: Option<Transition>,
}

impl RoleFsm {
    pub fn new(unit: Unit, preempt: bool) -> Self {
        RoleFsm {
            unit,
            preempt,
            state: State::Init,
            claiming: false,
            yielding: false,
            link_failed: false,
            rejected: 0,
            last: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn unit(&self) -> Unit {
        self.unit
    }
    /// Events refused so far (invalid transitions).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
    pub fn last_transition(&self) -> Option<&Transition> {
        self.last.as_ref()
    }
    pub fn failover_link_failed(&self) -> bool {
        self.link_failed
    }

    /// Flags for our next hello.
    pub fn hello_flags(&self) -> u8 {
        let mut f = 0;
        if self.claiming && self.state == State::Active {
            f |= hello_flags::CLAIM;
        }
        if self.yielding && self.state == State::StandbyHot {
            f |= hello_flags::YIELD;
        }
        if self.link_failed {
            f |= hello_flags::FAILOVER_LINK_FAILED;
        }
        f
    }

    pub fn handle(&mut self, ev: Event, now: Instant) -> Outcome {
        use Event::*;
        use State::*;
        use Step::{Go, Refuse, Stay};

        let primary = self.unit == Unit::Primary;
        let step = match (self.state, ev) {
            (Init, Start) => Go(Negotiating, "started; listening for the peer", None),
            (Init, _) => Refuse("not started"),

            (_, FailoverLinkDown) => {
                self.link_failed = true;
                Stay
            }
            (_, FailoverLinkUp) => {
                self.link_failed = false;
                Stay
            }

            (Negotiating, PeerHelloNegotiating) if primary => {
                Go(Active, "both units starting: the primary becomes active", Some(Takeover::Alone))
            }
            (Negotiating, PeerHelloNegotiating) => {
                Go(StandbyCold, "both units starting: the primary becomes active", None)
            }
            (Negotiating, PeerHelloActive { .. }) => Go(StandbyCold, "peer is active", None),
            // The peer settled as a cold standby (on hearing us negotiate, possibly
            // before our own echoing hello reached it, or by command): a cold
            // standby never takes over from a live peer, so we must.
            (Negotiating, PeerHelloStandby { hot: false, .. }) => {
                Go(Active, "peer waits as a cold standby: becoming active", Some(Takeover::Alone))
            }
            (Negotiating, PeerHelloStandby { .. }) => Stay, // a hot peer takes over once it hears us negotiating
            (Negotiating, PeerHelloFailed) => Go(Active, "peer reports failed", Some(Takeover::Alone)),
            (Negotiating, PeerDead) => Go(Active, "no peer within the hold time", Some(Takeover::Alone)),
            (Negotiating, LocalInterfaceFailed) => Go(Failed, "monitored interface failed", None),
            (Negotiating, ManualActive) => {
                self.claiming = true;
                Go(Active, "operator: failover active", Some(Takeover::Alone))
            }
            (Negotiating, ManualStandby { .. }) => Go(StandbyCold, "operator: failover standby", None),
            (Negotiating, LocalInterfaceRecovered) => Stay,
            (Negotiating, BulkDone | ResyncStarted | PreemptTimer) => {
                Refuse("no bulk sync or preemption while negotiating")
            }

            (StandbyCold, PeerHelloActive { .. }) => Stay,
            (StandbyCold, PeerHelloStandby { hot: false, .. }) if primary => Go(
                Active,
                "no active and neither unit has the full state: primary takes over with what it has",
                Some(Takeover::Partial),
            ),
            (StandbyCold, PeerHelloStandby { .. }) => Stay,
            (StandbyCold, PeerHelloNegotiating) => Stay,
            (StandbyCold, PeerRestarted) => Go(
                Active,
                "active restarted before bulk sync finished: taking over with what we have",
                Some(Takeover::Partial),
            ),
            (StandbyCold, PeerHelloFailed) => Go(
                Active,
                "peer failed before bulk sync finished: taking over with what we have",
                Some(Takeover::Partial),
            ),
            (StandbyCold, PeerDead) => Go(
                Active,
                "peer gone before bulk sync finished: taking over with what we have",
                Some(Takeover::Partial),
            ),
            (StandbyCold, BulkDone) => Go(StandbyHot, "bulk sync done", None),
            (StandbyCold, ResyncStarted | ManualStandby { .. } | LocalInterfaceRecovered) => Stay,
            (StandbyCold, ManualActive) => Refuse("bulk sync not finished while the active lives"),
            (StandbyCold, PreemptTimer) => Refuse("preemption before bulk sync finished"),
            (StandbyCold, LocalInterfaceFailed) => Go(Failed, "monitored interface failed", None),

            (StandbyHot, PeerHelloActive { .. }) => {
                self.yielding = false;
                Stay
            }
            (StandbyHot, PeerHelloStandby { hot: true, .. }) if self.yielding => Stay,
            (StandbyHot, PeerHelloStandby { yielding: true, .. }) => {
                Go(Active, "peer handed over", Some(Takeover::Complete))
            }
            (StandbyHot, PeerHelloStandby { hot: false, .. }) => {
                Go(Active, "no active and the peer is cold", Some(Takeover::Complete))
            }
            (StandbyHot, PeerHelloStandby { hot: true, .. }) if primary => {
                Go(Active, "no active and both hot: primary takes over", Some(Takeover::Complete))
            }
            (StandbyHot, PeerHelloStandby { .. }) => Stay,
            (StandbyHot, PeerHelloNegotiating | PeerRestarted) => {
                Go(Active, "active restarted", Some(Takeover::Complete))
            }
            (Negotiating | Active | Failed, PeerRestarted) => Stay,
            (StandbyHot, PeerHelloFailed) => Go(Active, "peer failed", Some(Takeover::Complete)),
            (StandbyHot, PeerDead) => {
                Go(Active, "peer dead (hold time expired on every path)", Some(Takeover::Complete))
            }
            (StandbyHot, ResyncStarted) => Go(StandbyCold, "delta stream resync: state incomplete", None),
            (StandbyHot, ManualActive) => {
                self.claiming = true;
                Go(Active, "operator: failover active", Some(Takeover::Complete))
            }
            (StandbyHot, PreemptTimer) if self.preempt && primary => {
                self.claiming = true;
                Go(Active, "preempt: primary takes the role back", Some(Takeover::Complete))
            }
            (StandbyHot, PreemptTimer) => Refuse("preemption not configured for this unit"),
            (StandbyHot, BulkDone | ManualStandby { .. } | LocalInterfaceRecovered) => Stay,
            (StandbyHot, LocalInterfaceFailed) => Go(Failed, "monitored interface failed", None),

            (Active, PeerHelloActive { claim }) => {
                let we_win = if claim { self.claiming && primary } else { self.claiming || primary };
                if we_win {
                    Stay
                } else if claim {
                    Go(StandbyCold, "peer claimed the active role", None)
                } else {
                    Go(StandbyCold, "dual active detected: the secondary yields", None)
                }
            }
            (Active, PeerHelloStandby { .. } | PeerHelloNegotiating | PeerHelloFailed | PeerDead) => {
                self.claiming = false;
                Stay
            }
            (Active, ManualActive | PreemptTimer | LocalInterfaceRecovered) => Stay,
            (Active, ManualStandby { peer_hot: true }) => {
                self.yielding = true;
                Go(StandbyHot, "operator: failover standby", None)
            }
            (Active, ManualStandby { peer_hot: false }) => Refuse("peer is not ready (bulk sync pending or absent)"),
            (Active, LocalInterfaceFailed) => Go(Failed, "monitored interface failed; peer is healthier", None),
            (Active, BulkDone | ResyncStarted) => Refuse("bulk and resync are standby events"),

            (Failed, LocalInterfaceRecovered) => Go(StandbyCold, "monitored interfaces recovered", None),
            (Failed, PeerDead) => {
                Go(Active, "peer gone: forwarding on the interfaces that work", Some(Takeover::Partial))
            }
            (Failed, PeerHelloActive { .. } | PeerHelloStandby { .. } | PeerHelloNegotiating | PeerHelloFailed) => Stay,
            (Failed, LocalInterfaceFailed | BulkDone | ResyncStarted | ManualStandby { .. }) => Stay,
            (Failed, ManualActive | PreemptTimer) => Refuse("a monitored interface is down"),

            (Active, YieldAfterStall) => {
                Go(StandbyCold, "this unit stalled past the hold time and the peer took over: yielding to it", None)
            }
            (Negotiating | StandbyCold | StandbyHot | Failed, YieldAfterStall) => Stay,

            (Negotiating | StandbyCold | StandbyHot | Active | Failed, Start) => Refuse("already started"),
        };
        match step {
            Stay => Outcome::Stayed,
            Refuse(why) => {
                self.rejected += 1;
                log::debug!("ha role: {} refused in {}: {}", ev.name(), self.state.name(), why);
                Outcome::Rejected(why)
            }
            Go(to, cause, takeover) => {
                let from = self.state;
                self.state = to;
                if to != State::Active {
                    self.claiming = false;
                }
                if to != State::StandbyHot {
                    self.yielding = false;
                }
                let t = Transition {
                    from,
                    to,
                    event: ev,
                    cause,
                    at: now,
                    takeover,
                    start_preempt_timer: to == State::StandbyHot && self.preempt && primary && from == StandbyCold,
                };
                self.last = Some(t);
                Outcome::Moved(t)
            }
        }
    }

    /// The event our own hello produces at the peer (for simulations).
    pub fn as_peer_event(&self) -> Event {
        match self.state {
            State::Init | State::Negotiating => Event::PeerHelloNegotiating,
            State::Active => Event::PeerHelloActive { claim: self.hello_flags() & hello_flags::CLAIM != 0 },
            State::StandbyCold => Event::PeerHelloStandby { hot: false, yielding: false },
            State::StandbyHot => {
                Event::PeerHelloStandby { hot: true, yielding: self.hello_flags() & hello_flags::YIELD != 0 }
            }
            State::Failed => Event::PeerHelloFailed,
        }
    }
}

enum Step {
    Go(State, &'static str, Option<Takeover>),
    Stay,
    Refuse(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::{Entropy, SeededRng};
    use Event::*;
    use State::*;

    const T: Instant = Instant(0);

    fn fsm(unit: Unit, state: State) -> RoleFsm {
        let mut f = RoleFsm::new(unit, false);
        f.state = state;
        f
    }

    fn moved(o: Outcome) -> Transition {
        match o {
            Outcome::Moved(t) => t,
            other => panic!("expected a move, got {other:?}"),
        }
    }

    /// Both units exchange one hello each.
    fn exchange(a: &mut RoleFsm, b: &mut RoleFsm) {
        let (ea, eb) = (a.as_peer_event(), b.as_peer_event());
        b.handle(ea, T);
        a.handle(eb, T);
    }

    fn started_pair() -> (RoleFsm, RoleFsm) {
        let mut p = RoleFsm::new(Unit::Primary, false);
        let mut s = RoleFsm::new(Unit::Secondary, false);
        p.handle(Start, T);
        s.handle(Start, T);
        (p, s)
    }

    #[test]
    fn name_tables_cover_everything() {
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(State::from_u8(i as u8), Some(*s));
            assert_eq!(s.name(), State::NAMES[i]);
        }
        assert_eq!(State::from_u8(6), None);
        assert_eq!(ManualStandby { peer_hot: true }.name(), "manual-standby");
        assert_eq!(PreemptTimer.name(), "preempt-timer");
    }

    #[test]
    fn rule1_primary_wins_simultaneous_start() {
        let (mut p, mut s) = started_pair();
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (Active, StandbyCold));
        assert_eq!(p.last_transition().unwrap().takeover, Some(Takeover::Alone));
        assert!(s.last_transition().unwrap().needs_bulk());
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (Active, StandbyCold));
    }

    #[test]
    fn rule2_cold_standby_cannot_claim_while_active_lives() {
        let mut s = fsm(Unit::Secondary, StandbyCold);
        assert_eq!(s.handle(ManualActive, T), Outcome::Rejected("bulk sync not finished while the active lives"));
        assert!(matches!(s.handle(PreemptTimer, T), Outcome::Rejected(_)));
        assert_eq!(s.handle(PeerHelloActive { claim: false }, T), Outcome::Stayed);
        assert_eq!(s.state(), StandbyCold);
        assert_eq!(s.rejected(), 2);
        let t = moved(s.handle(BulkDone, T));
        assert_eq!((t.from, t.to), (StandbyCold, StandbyHot));
        let t = moved(s.handle(ManualActive, T));
        assert_eq!(t.takeover, Some(Takeover::Complete));
    }

    #[test]
    fn rule3_peer_gone_takes_over_with_what_it_has() {
        let mut cold = fsm(Unit::Secondary, StandbyCold);
        let t = moved(cold.handle(PeerDead, Instant(5)));
        assert_eq!((t.to, t.takeover, t.at), (Active, Some(Takeover::Partial), Instant(5)));
        assert!(t.cause.contains("with what we have"));
        let mut hot = fsm(Unit::Secondary, StandbyHot);
        assert_eq!(moved(hot.handle(PeerDead, T)).takeover, Some(Takeover::Complete));
        let mut alone = fsm(Unit::Secondary, Negotiating);
        assert_eq!(moved(alone.handle(PeerDead, T)).takeover, Some(Takeover::Alone));
        // An active that restarts: the hot standby takes over.
        let mut hot = fsm(Unit::Primary, StandbyHot);
        assert_eq!(moved(hot.handle(PeerHelloNegotiating, T)).to, Active);
    }

    #[test]
    fn rule4_failover_link_down_never_takes_over() {
        for st in [StandbyCold, StandbyHot, Active, Negotiating] {
            let mut f = fsm(Unit::Secondary, st);
            assert_eq!(f.handle(FailoverLinkDown, T), Outcome::Stayed);
            assert_eq!(f.state(), st);
            assert!(f.failover_link_failed());
            assert_ne!(f.hello_flags() & hello_flags::FAILOVER_LINK_FAILED, 0);
            f.handle(FailoverLinkUp, T);
            assert!(!f.failover_link_failed());
        }
    }

    #[test]
    fn rule5_dual_active_secondary_yields() {
        let mut p = fsm(Unit::Primary, Active);
        let mut s = fsm(Unit::Secondary, Active);
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (Active, StandbyCold));
        assert_eq!(s.last_transition().unwrap().cause, "dual active detected: the secondary yields");
        assert!(s.last_transition().unwrap().leaves_active());
    }

    /// The appliance sends `YieldAfterStall` only to an active unit back
    /// from a stall past the hold time that hears its peer active; a unit
    /// in any other role has nothing to yield.
    #[test]
    fn rule5_a_stalled_active_yields_even_as_primary() {
        let mut p = fsm(Unit::Primary, Active);
        moved(p.handle(YieldAfterStall, T));
        assert_eq!(p.state(), StandbyCold);
        assert!(p.last_transition().unwrap().needs_bulk(), "its state is older than the peer's");
        for st in [Negotiating, StandbyCold, StandbyHot, Failed] {
            let mut f = fsm(Unit::Secondary, st);
            assert_eq!(f.handle(YieldAfterStall, T), Outcome::Stayed);
            assert_eq!(f.state(), st);
        }
    }

    #[test]
    fn rule5_claim_beats_incumbent_even_primary() {
        let mut p = fsm(Unit::Primary, Active);
        let mut s = fsm(Unit::Secondary, StandbyHot);
        moved(s.handle(ManualActive, T));
        assert_ne!(s.hello_flags() & hello_flags::CLAIM, 0);
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (StandbyCold, Active));
        exchange(&mut p, &mut s);
        assert_eq!(s.hello_flags() & hello_flags::CLAIM, 0, "claim ends once the peer is standby");
        // Both claiming: the secondary yields.
        let mut p = fsm(Unit::Primary, Active);
        let mut s = fsm(Unit::Secondary, Active);
        p.claiming = true;
        s.claiming = true;
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (Active, StandbyCold));
    }

    #[test]
    fn rule6_manual_standby_needs_hot_peer_then_hands_over() {
        let mut p = fsm(Unit::Primary, Active);
        let mut s = fsm(Unit::Secondary, StandbyHot);
        assert!(matches!(p.handle(ManualStandby { peer_hot: false }, T), Outcome::Rejected(_)));
        assert_eq!(p.state(), Active);
        let t = moved(p.handle(ManualStandby { peer_hot: true }, T));
        assert_eq!(t.to, StandbyHot);
        assert_ne!(p.hello_flags() & hello_flags::YIELD, 0);
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (StandbyHot, Active));
        // The primary, though hot, must not grab the role back.
        for _ in 0..3 {
            exchange(&mut p, &mut s);
        }
        assert_eq!((p.state(), s.state()), (StandbyHot, Active));
        assert_eq!(p.hello_flags() & hello_flags::YIELD, 0);
    }

    #[test]
    fn rule7_interface_failure_hands_over_and_recovers_cold() {
        let mut p = fsm(Unit::Primary, Active);
        let mut s = fsm(Unit::Secondary, StandbyHot);
        let t = moved(p.handle(LocalInterfaceFailed, T));
        assert!(t.leaves_active());
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (Failed, Active));
        assert!(matches!(p.handle(ManualActive, T), Outcome::Rejected(_)));
        let t = moved(p.handle(LocalInterfaceRecovered, T));
        assert_eq!(t.to, StandbyCold);
        assert!(t.needs_bulk());
        // A failed unit whose peer vanishes forwards on what works.
        let mut f = fsm(Unit::Secondary, Failed);
        assert_eq!(moved(f.handle(PeerDead, T)).takeover, Some(Takeover::Partial));
    }

    #[test]
    fn rule8_preempt_only_after_bulk() {
        let mut p = RoleFsm::new(Unit::Primary, true);
        let mut s = fsm(Unit::Secondary, Active);
        p.handle(Start, T);
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (StandbyCold, Active));
        assert!(matches!(p.handle(PreemptTimer, T), Outcome::Rejected(_)));
        let t = moved(p.handle(BulkDone, T));
        assert!(t.start_preempt_timer);
        moved(p.handle(PreemptTimer, T));
        exchange(&mut p, &mut s);
        assert_eq!((p.state(), s.state()), (Active, StandbyCold));
        // The secondary never preempts.
        let mut s2 = RoleFsm::new(Unit::Secondary, true);
        s2.state = StandbyCold;
        assert!(!moved(s2.handle(BulkDone, T)).start_preempt_timer);
        assert!(matches!(s2.handle(PreemptTimer, T), Outcome::Rejected(_)));
    }

    /// The start race seen in the lab: the secondary settles cold on the
    /// primary's first echoing hello before the primary has heard it
    /// negotiate; the primary must not wait for a hello that never comes.
    #[test]
    fn negotiating_unit_takes_over_from_a_cold_waiting_peer() {
        let mut p = RoleFsm::new(Unit::Primary, false);
        p.handle(Start, T);
        let t = moved(p.handle(PeerHelloStandby { hot: false, yielding: false }, T));
        assert_eq!(t.to, Active);
        // A late negotiating hello does not make a cold standby take over...
        let mut s = fsm(Unit::Secondary, StandbyCold);
        assert_eq!(s.handle(PeerHelloNegotiating, T), Outcome::Stayed);
        // ...a restart of the active does.
        assert_eq!(moved(s.handle(PeerRestarted, T)).takeover, Some(Takeover::Partial));
        let mut h = fsm(Unit::Secondary, StandbyHot);
        assert_eq!(moved(h.handle(PeerRestarted, T)).takeover, Some(Takeover::Complete));
    }

    #[test]
    fn invalid_transitions_are_counted() {
        let mut f = RoleFsm::new(Unit::Primary, false);
        assert!(matches!(f.handle(PeerDead, T), Outcome::Rejected("not started")));
        f.handle(Start, T);
        assert!(matches!(f.handle(Start, T), Outcome::Rejected(_)));
        assert!(matches!(f.handle(BulkDone, T), Outcome::Rejected(_)));
        f.state = Active;
        assert!(matches!(f.handle(ResyncStarted, T), Outcome::Rejected(_)));
        assert_eq!(f.rejected(), 4);
        let mut h = fsm(Unit::Secondary, StandbyHot);
        assert_eq!(moved(h.handle(ResyncStarted, T)).to, StandbyCold);
    }

    /// Random operator commands, interface failures and bulk completions on
    /// a pair whose hellos always get through: never two actives after a
    /// hello round, and there is always exactly one once hellos settle
    /// (unless both units are failed).
    #[test]
    fn never_two_actives_while_hellos_flow() {
        for seed in 0..200 {
            let mut rng = SeededRng::new(seed);
            let (mut p, mut s) = started_pair();
            p.preempt = seed % 2 == 0;
            for _ in 0..60 {
                let pick_p = rng.next_u64().is_multiple_of(2);
                let peer_hot = if pick_p { s.state() == StandbyHot } else { p.state() == StandbyHot };
                let u = if pick_p { &mut p } else { &mut s };
                let ev = match rng.next_u64() % 7 {
                    0 => ManualActive,
                    1 => ManualStandby { peer_hot },
                    2 => LocalInterfaceFailed,
                    3 => LocalInterfaceRecovered,
                    4 => PreemptTimer,
                    5 => ResyncStarted,
                    _ => BulkDone,
                };
                // The caller only reports a finished bulk to a cold standby.
                if ev == BulkDone && u.state() != StandbyCold {
                    continue;
                }
                u.handle(ev, T);
                for _ in 0..4 {
                    exchange(&mut p, &mut s);
                    assert!(!(p.state() == Active && s.state() == Active), "seed {seed}: dual active");
                }
                let any_active = p.state() == Active || s.state() == Active;
                let both_failed = p.state() == Failed && s.state() == Failed;
                assert!(any_active || both_failed, "seed {seed}: nobody active: {:?} {:?}", p.state(), s.state());
            }
        }
    }
}
