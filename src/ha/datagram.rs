//! Header plus sealed body: the one place where [`super::wire`] meets
//! [`super::crypto`].
//!
//! # Contract
//! * Sending: [`start`] writes a header (its counter is filled in later),
//!   the caller appends the plaintext body (a [`super::wire::BodyWriter`] or
//!   a hello), then [`seal`] encrypts it in place with the whole header as
//!   associated data and appends the tag. The result is one UDP payload.
//! * Receiving: [`open`] parses and checks the header, refuses our own
//!   datagrams (multicast loopback) and a foreign key id, picks nothing by
//!   itself: the caller passes the [`Opener`] for [`channel_of`] the kind
//!   (peek it with [`peek_kind`]). On success it returns the header and the
//!   plaintext body, which borrows the caller's buffer.
//! * Every refusal is an [`RxDrop`] with a stable counter name.

use super::crypto::{Channel, OpenError, Opened, Opener, SealError, Sealer};
use super::wire::{HeaderRepr, Kind, Packet, WireError, COUNTER_FIELD, HEADER_LEN};
use super::Unit;

/// Which key a kind travels under.
pub fn channel_of(kind: Kind) -> Channel {
    match kind {
        Kind::Hello => Channel::Hello,
        _ => Channel::Delta,
    }
}

/// The kind of a datagram, if its header is long enough and well formed;
/// used to choose the opener before [`open`].
pub fn peek_kind(buf: &[u8]) -> Result<Kind, WireError> {
    let p = Packet::new_checked(buf)?;
    HeaderRepr::parse(&p).map(|h| h.kind)
}

/// Why a received datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxDrop {
    /// Malformed header.
    Wire(WireError),
    /// Sent by this unit (multicast loopback) or by a third unit claiming
    /// our identity.
    FromSelf,
    /// Sealed with a different failover key: the operator must fix the key
    /// on one of the units.
    KeyMismatch { ours: u32, theirs: u32 },
    /// The opener handed in is for the other channel.
    WrongChannel,
    /// Refused by the crypto layer.
    Crypto(OpenError),
}

impl RxDrop {
    pub fn name(self) -> &'static str {
        match self {
            RxDrop::Wire(e) => e.name(),
            RxDrop::FromSelf => "ha-from-self",
            RxDrop::KeyMismatch { .. } => "ha-key-mismatch",
            RxDrop::WrongChannel => "ha-wrong-channel",
            RxDrop::Crypto(e) => e.name(),
        }
    }
}

/// Clear `out` and write `h` into it (counter left for [`seal`]).
pub fn start(out: &mut Vec<u8>, h: &HeaderRepr) {
    out.clear();
    h.emit_to_vec(out);
}

/// Seal `out` (= header from [`start`] || plaintext body) in place.
pub fn seal(sealer: &mut Sealer, out: &mut Vec<u8>) -> Result<u64, SealError> {
    sealer.seal(out, HEADER_LEN, COUNTER_FIELD)
}

/// Check and open one datagram. `me` is this unit, `key_id` ours,
/// `channel` the channel `opener` was made for.
pub fn open<'a>(
    opener: &mut Opener,
    channel: Channel,
    me: Unit,
    key_id: u32,
    buf: &'a mut [u8],
) -> Result<(HeaderRepr, Opened<'a>), RxDrop> {
    let p = Packet::new_checked(&*buf).map_err(RxDrop::Wire)?;
    let h = HeaderRepr::parse(&p).map_err(RxDrop::Wire)?;
    if h.unit == me {
        return Err(RxDrop::FromSelf);
    }
    if h.key_id != key_id {
        return Err(RxDrop::KeyMismatch { ours: key_id, theirs: h.key_id });
    }
    if channel_of(h.kind) != channel {
        return Err(RxDrop::WrongChannel);
    }
    let opened = opener.open(buf, HEADER_LEN, h.counter).map_err(RxDrop::Crypto)?;
    Ok((h, opened))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::crypto::{KeyMaterial, TAG_LEN};
    use crate::ha::hello::{BulkStatus, HelloRepr};
    use crate::ha::role::State;
    use crate::ha::wire::{BodyWriter, Op, Sections};

    fn header(kind: Kind, unit: Unit, key_id: u32) -> HeaderRepr {
        HeaderRepr { kind, flags: 0, unit, key_id, config_hash: 42, epoch: 1, counter: 0, seq: 7, ack: 0 }
    }

    #[test]
    fn delta_round_trip_through_sections() {
        let k = KeyMaterial::from_key_text("a failover passphrase that is long").unwrap();
        let mut s = k.sealer(Unit::Primary, Channel::Delta, 77);
        let mut o = k.opener(Unit::Secondary, Channel::Delta);
        let mut out = Vec::new();
        start(&mut out, &header(Kind::Delta, Unit::Primary, k.key_id()));
        let mut w = BodyWriter::new(&mut out, 1000);
        w.push(3, Op::Insert, 99, 1, b"conn").unwrap();
        let body_len = w.len();
        let ctr = seal(&mut s, &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + body_len + TAG_LEN);
        assert_eq!(peek_kind(&out), Ok(Kind::Delta));
        let (h, opened) = open(&mut o, Channel::Delta, Unit::Secondary, k.key_id(), &mut out).unwrap();
        assert_eq!((h.counter, h.seq, h.config_hash), (ctr, 7, 42));
        let sec = Sections::new(opened.body).next().unwrap().unwrap();
        let rec = sec.records().next().unwrap().unwrap();
        assert_eq!((sec.table_kind, rec.id, rec.bytes), (3, 99, &b"conn"[..]));
    }

    #[test]
    fn hello_round_trip_and_refusals() {
        let k = KeyMaterial::from_key_text(&"ab".repeat(32)).unwrap();
        let mut s = k.sealer(Unit::Secondary, Channel::Hello, 5);
        let hello = HelloRepr {
            unit: Unit::Secondary,
            role: State::StandbyHot,
            flags: 0,
            bulk: BulkStatus::Done,
            monitored: 3,
            up: 3,
            config_hash: 42,
            state_epoch: 1,
            seq_sent: 0,
            seq_acked: 0,
            peer_epoch_seen: 0,
        };
        let mut out = Vec::new();
        start(&mut out, &header(Kind::Hello, Unit::Secondary, k.key_id()));
        hello.emit(&mut out);
        seal(&mut s, &mut out).unwrap();

        let mut o = k.opener(Unit::Primary, Channel::Hello);
        // Own datagram looped back.
        let mut mine = k.opener(Unit::Secondary, Channel::Hello);
        assert_eq!(
            open(&mut mine, Channel::Hello, Unit::Secondary, k.key_id(), &mut out.clone()).unwrap_err(),
            RxDrop::FromSelf
        );
        // Different key id.
        let e = open(&mut o, Channel::Hello, Unit::Primary, 1, &mut out.clone()).unwrap_err();
        assert_eq!(e, RxDrop::KeyMismatch { ours: 1, theirs: k.key_id() });
        assert_eq!(e.name(), "ha-key-mismatch");
        // Wrong opener for the kind.
        let mut od = k.opener(Unit::Primary, Channel::Delta);
        assert_eq!(
            open(&mut od, Channel::Delta, Unit::Primary, k.key_id(), &mut out.clone()).unwrap_err(),
            RxDrop::WrongChannel
        );
        // Good, then replayed.
        let mut buf = out.clone();
        let (_, opened) = open(&mut o, Channel::Hello, Unit::Primary, k.key_id(), &mut buf).unwrap();
        assert_eq!(HelloRepr::parse(opened.body), Ok(hello));
        let e = open(&mut o, Channel::Hello, Unit::Primary, k.key_id(), &mut out.clone()).unwrap_err();
        assert_eq!(e, RxDrop::Crypto(OpenError::Replay));
        // Garbage.
        assert_eq!(
            open(&mut o, Channel::Hello, Unit::Primary, 0, &mut [0u8; 3]).unwrap_err(),
            RxDrop::Wire(WireError::Truncated)
        );
    }
}
