//! The hello payload: what a unit tells its peer every `poll_ms`.
//!
//! Sent multicast on the failover link and on every monitored data interface
//! (so a unit can tell "peer dead" from "failover link cut"), always inside a
//! sealed datagram of kind [`super::wire::Kind::Hello`].
//!
//! # Layout (big endian)
//!
//! | bytes  | field           | meaning                                               |
//! |--------|-----------------|-------------------------------------------------------|
//! | 0      | unit            | 0 primary, 1 secondary                                |
//! | 1      | role            | [`super::role::State`] as u8                          |
//! | 2      | flags           | [`hello_flags`]                                       |
//! | 3      | bulk            | [`BulkStatus`]                                        |
//! | 4..8   | monitored       | bit i set: interface i is monitored                   |
//! | 8..12  | up              | bit i set: interface i is up (only monitored bits count) |
//! | 12..20 | config hash     | hash of the replicated configuration                  |
//! | 20..24 | state epoch     | generation of the sender's state                      |
//! | 24..28 | seq sent        | last delta stream seq sent                            |
//! | 28..32 | seq acked       | highest seq the peer has acknowledged (exclusive)     |
//! | 32..36 | peer epoch seen | crypto epoch of the *receiver* as last seen by the sender (freshness echo) |
//!
//! Longer payloads are accepted (a newer peer appends fields); shorter ones
//! are refused. Unknown role or bulk values are refused.

use super::role::State;
use super::Unit;

pub const HELLO_LEN: usize = field::PEER_EPOCH_SEEN.end;

type Field = std::ops::Range<usize>;

mod field {
    use super::Field;
    pub const UNIT: usize = 0;
    pub const ROLE: usize = 1;
    pub const FLAGS: usize = 2;
    pub const BULK: usize = 3;
    pub const MONITORED: Field = 4..8;
    pub const UP: Field = 8..12;
    pub const CONFIG_HASH: Field = 12..20;
    pub const STATE_EPOCH: Field = 20..24;
    pub const SEQ_SENT: Field = 24..28;
    pub const SEQ_ACKED: Field = 28..32;
    pub const PEER_EPOCH_SEEN: Field = 32..36;
}

/// Hello flag bits.
pub mod hello_flags {
    /// Sender went active by command or preemption and asks the peer to
    /// yield even if the peer is active (see [`crate::ha::role`]).
    pub const CLAIM: u8 = 0x01;
    /// Sender is active and asks the (hot) peer to take over.
    pub const YIELD: u8 = 0x02;
    /// Sender no longer hears the peer on the failover link.
    pub const FAILOVER_LINK_FAILED: u8 = 0x04;
    /// The sender's `peer_epoch_seen` is valid.
    pub const ECHO_VALID: u8 = 0x08;
    /// Sealed ahead of time for the sender's heartbeat thread, sent because
    /// its loop was late: proves the sender's process is alive, but what it
    /// says about the sender's interfaces may be a few intervals old.
    pub const AHEAD: u8 = 0x10;
    /// Sender is active but its loop was held up for longer than the hold
    /// time: if the peer took over meanwhile, the peer keeps the role and
    /// the sender yields.
    pub const STALLED: u8 = 0x20;
}

/// Bulk-sync status of the sender as a receiver of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BulkStatus {
    /// No bulk involved (e.g. active).
    Idle = 0,
    /// Asked for a bulk, none started yet.
    Requested = 1,
    /// Receiving a bulk.
    InProgress = 2,
    /// Bulk received and acknowledged: hot.
    Done = 3,
}

impl BulkStatus {
    pub fn from_u8(v: u8) -> Option<BulkStatus> {
        match v {
            0 => Some(BulkStatus::Idle),
            1 => Some(BulkStatus::Requested),
            2 => Some(BulkStatus::InProgress),
            3 => Some(BulkStatus::Done),
            _ => None,
        }
    }
}

/// Why a hello payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloError {
    Truncated,
    BadUnit(u8),
    BadRole(u8),
    BadBulk(u8),
}

/// A hello, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloRepr {
    pub unit: Unit,
    pub role: State,
    pub flags: u8,
    pub bulk: BulkStatus,
    pub monitored: u32,
    pub up: u32,
    pub config_hash: u64,
    pub state_epoch: u32,
    pub seq_sent: u32,
    pub seq_acked: u32,
    pub peer_epoch_seen: u32,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl HelloRepr {
    pub fn parse(b: &[u8]) -> Result<HelloRepr, HelloError> {
        if b.len() < HELLO_LEN {
            return Err(HelloError::Truncated);
        }
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&b[field::CONFIG_HASH]);
        Ok(HelloRepr {
            unit: Unit::from_u8(b[field::UNIT]).ok_or(HelloError::BadUnit(b[field::UNIT]))?,
            role: State::from_u8(b[field::ROLE]).ok_or(HelloError::BadRole(b[field::ROLE]))?,
            flags: b[field::FLAGS],
            bulk: BulkStatus::from_u8(b[field::BULK]).ok_or(HelloError::BadBulk(b[field::BULK]))?,
            monitored: be32(&b[field::MONITORED]),
            up: be32(&b[field::UP]),
            config_hash: u64::from_be_bytes(hash),
            state_epoch: be32(&b[field::STATE_EPOCH]),
            seq_sent: be32(&b[field::SEQ_SENT]),
            seq_acked: be32(&b[field::SEQ_ACKED]),
            peer_epoch_seen: be32(&b[field::PEER_EPOCH_SEEN]),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HELLO_LEN
    }

    /// Append the payload to `buf`.
    pub fn emit(&self, buf: &mut Vec<u8>) {
        buf.push(self.unit as u8);
        buf.push(self.role as u8);
        buf.push(self.flags);
        buf.push(self.bulk as u8);
        buf.extend_from_slice(&self.monitored.to_be_bytes());
        buf.extend_from_slice(&self.up.to_be_bytes());
        buf.extend_from_slice(&self.config_hash.to_be_bytes());
        buf.extend_from_slice(&self.state_epoch.to_be_bytes());
        buf.extend_from_slice(&self.seq_sent.to_be_bytes());
        buf.extend_from_slice(&self.seq_acked.to_be_bytes());
        buf.extend_from_slice(&self.peer_epoch_seen.to_be_bytes());
    }

    /// Monitored interfaces that are down.
    pub fn failed_interfaces(&self) -> u32 {
        self.monitored & !self.up
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Did the sender echo `my_epoch`? Only then is the hello known fresh
    /// (see the crypto module docs): a recording cannot echo an epoch drawn
    /// after it was made.
    pub fn echoes(&self, my_epoch: u32) -> bool {
        self.has(hello_flags::ECHO_VALID) && self.peer_epoch_seen == my_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    static FIXTURE: [u8; HELLO_LEN] = [
        0x01, 0x03, 0x09, 0x03,        // secondary, standby-hot, claim|echo, bulk done
        0x00, 0x00, 0x00, 0x07,        // monitored 0,1,2
        0x00, 0x00, 0x00, 0x05,        // up 0,2
        0, 0, 0, 0, 0, 0, 0x12, 0x34,  // config hash
        0, 0, 0, 0x02,                 // state epoch
        0, 0, 0x01, 0x00,              // seq sent 256
        0, 0, 0x00, 0xff,              // seq acked 255
        0xde, 0xad, 0xbe, 0xef,        // peer epoch seen
    ];

    fn repr() -> HelloRepr {
        HelloRepr {
            unit: Unit::Secondary,
            role: State::StandbyHot,
            flags: hello_flags::CLAIM | hello_flags::ECHO_VALID,
            bulk: BulkStatus::Done,
            monitored: 7,
            up: 5,
            config_hash: 0x1234,
            state_epoch: 2,
            seq_sent: 256,
            seq_acked: 255,
            peer_epoch_seen: 0xdead_beef,
        }
    }

    #[test]
    fn test_deconstruct_construct() {
        let h = HelloRepr::parse(&FIXTURE).unwrap();
        assert_eq!(h, repr());
        assert_eq!(h.failed_interfaces(), 0b010);
        assert!(h.echoes(0xdead_beef) && !h.echoes(1));
        let mut v = Vec::new();
        repr().emit(&mut v);
        assert_eq!(v, FIXTURE);
    }

    #[test]
    fn test_impossible_len_and_values() {
        assert_eq!(HelloRepr::parse(&FIXTURE[..HELLO_LEN - 1]), Err(HelloError::Truncated));
        let mut longer = FIXTURE.to_vec();
        longer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(HelloRepr::parse(&longer), Ok(repr()));
        let bad = |i: usize, v: u8| {
            let mut b = FIXTURE;
            b[i] = v;
            HelloRepr::parse(&b).unwrap_err()
        };
        assert_eq!(bad(0, 5), HelloError::BadUnit(5));
        assert_eq!(bad(1, 99), HelloError::BadRole(99));
        assert_eq!(bad(3, 4), HelloError::BadBulk(4));
    }
}
