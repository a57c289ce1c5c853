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
