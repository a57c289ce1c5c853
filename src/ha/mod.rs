//! Stateful failover building blocks (issues 3 and 6), all sans-IO.
//!
//! Two units form an active/standby pair. The standby keeps a live copy of
//! the state, fed by multicast hellos and a unicast delta stream; when the
//! active dies, connections survive. This module holds the parts that do not
//! depend on any particular table; the appliance wires them together:
//!
//! | file         | holds                                                          |
//! |--------------|----------------------------------------------------------------|
//! | [`crypto`]   | failover key parsing, HKDF key schedule, AEAD seal/open, replay window |
//! | [`wire`]     | datagram header, typed sections and records                    |
//! | [`hello`]    | the hello payload (role, health, epochs, stream progress)      |
//! | [`datagram`] | header + sealed body: the only place wire meets crypto         |
//! | [`table`]    | the `ReplicatedTable` plug-in trait and pure merge guards      |
//! | [`outbox`]   | pfsync-style coalescing queue of dirty ids                     |
//! | [`stream`]   | conntrackd-FTFW-style reliable delta stream (seq, ACK, NACK, resync) |
//! | [`role`]     | the role state machine (state x event `match`)                 |
//!
//! Nothing here reads a clock, a socket or a file: time arrives as
//! [`crate::time::Instant`], randomness through [`crate::entropy::Entropy`].
//!
//! # Wiring (for the appliance)
//! * Boot: `KeyMaterial::from_key_text` (refuse to start on `KeyError`);
//!   draw a random `u32` epoch per channel and make one
//!   [`crypto::Sealer`] and one [`crypto::Opener`] per channel; make a
//!   [`role::RoleFsm`], an [`outbox::Outbox`] and a [`stream::Stream`]
//!   (random first seq and request id); `RoleFsm::handle(Start)`.
//! * Every `poll_ms`: build a [`hello::HelloRepr`] (role, `hello_flags()`,
//!   health bits, config hash, `seq_sent`/`seq_acked`, the peer's crypto
//!   epoch as `peer_epoch_seen`), `datagram::start` + `emit` +
//!   `datagram::seal` with the hello sealer; send on the failover link and
//!   every monitored data interface.
//! * Receiving: `datagram::peek_kind` -> opener for `channel_of(kind)` ->
//!   `datagram::open` (count `RxDrop::name()` on failure; a
//!   `KeyMismatch` is the operator-visible "wrong key" error). Hellos become
//!   `role::Event`s (only once they echo our epoch); everything else goes to
//!   `Stream::handle_datagram`. A `new_epoch` from the opener means the peer
//!   restarted.
//! * Active: local table mutators call `Outbox::mark`; when
//!   `Outbox::flush_due(now)` and `Stream::queue_space() > 0`, fill a
//!   [`wire::BodyWriter`] (bound [`wire::max_body`]) with `Outbox::fill` and
//!   `Stream::send(Kind::Delta, body, now)`. On
//!   `StreamEvent::BulkNeeded`: send `BulkStart`, `Outbox::mark_all` for
//!   every table, and queue `BulkEnd` once the outbox has drained.
//! * Standby: on entering standby-cold call `Stream::request_bulk`; apply
//!   each `poll_delivery()` in order with [`table::apply_body`]; on its
//!   `BulkEnd` delivery raise `role::Event::BulkDone`; on
//!   `StreamEvent::FellBehind` or a `Resync` delivery raise
//!   `ResyncStarted`. Send `ApplyReport::missing` back as `Op::Request`
//!   records.
//! * Each loop: `handle_timeout(now)` when due; drain
//!   `Stream::poll_transmit` (seal each with the delta sealer);
//!   `poll_timeout` = min of stream, outbox and hello/hold timers.
//!
//! Fuzzing: `cd fuzz && cargo +nightly fuzz run sync_frame -- -max_total_time=60`
//! (and `sync_stream`). More stream seeds:
//! `TWINWALL_HA_SEEDS=5000 cargo test --lib ha::stream`.

pub mod crypto;
pub mod datagram;
pub mod hello;
pub mod outbox;
pub mod role;
pub mod stream;
pub mod table;
pub mod wire;

/// Which unit of the pair. Fixed by configuration (`unit = "primary"`), it
/// never changes at run time; the *role* (active, standby, ...) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Unit {
    Primary = 0,
    Secondary = 1,
}

impl Unit {
    pub fn from_u8(v: u8) -> Option<Unit> {
        match v {
            0 => Some(Unit::Primary),
            1 => Some(Unit::Secondary),
            _ => None,
        }
    }
    pub fn peer(self) -> Unit {
        match self {
            Unit::Primary => Unit::Secondary,
            Unit::Secondary => Unit::Primary,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Unit::Primary => "primary",
            Unit::Secondary => "secondary",
        }
    }
}
