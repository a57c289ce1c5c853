//! The sync datagram: header, typed sections, records (smoltcp `wire` style).
//!
//! # Layout (all integers big endian)
//!
//! A datagram is `header (40 bytes, cleartext, authenticated) || body
//! (encrypted) || tag (16 bytes)`; see [`super::datagram`] for sealing.
//!
//! | bytes  | field         | meaning                                                  |
//! |--------|---------------|----------------------------------------------------------|
//! | 0..2   | magic         | `b"TW"`                                                  |
//! | 2      | version       | [`VERSION`]; other values are dropped                    |
//! | 3      | kind          | [`Kind`]                                                 |
//! | 4      | flags         | [`flags`]; unknown bits ignored                          |
//! | 5      | unit          | sender: 0 primary, 1 secondary                           |
//! | 6..8   | reserved      | zero on send, ignored on receipt                         |
//! | 8..12  | key id        | fingerprint of the failover key ([`super::crypto::KeyMaterial::key_id`]) |
//! | 12..20 | config hash   | hash of the sender's replicated configuration            |
//! | 20..24 | state epoch   | generation of the sender's state (bumps on bulk/resync)  |
//! | 24..32 | counter       | AEAD nonce counter (per sender and channel, never reused)|
//! | 32..36 | seq           | stream sequence number (see per-kind table)              |
//! | 36..40 | ack           | cumulative ack or range end (see per-kind table)         |
//!
//! | kind | name         | channel | seq / ack                                        | body |
//! |------|--------------|---------|--------------------------------------------------|------|
//! | 1    | hello        | hello   | 0 / 0                                            | [`super::hello`] payload |
//! | 2    | delta        | delta   | stream seq / 0                                   | sections |
//! | 3    | ack          | delta   | 0 / next seq expected (all below delivered)      | empty |
//! | 4    | nack         | delta   | first missing / one past the last missing        | empty |
//! | 5    | bulk-request | delta   | 0 / next seq expected                            | empty |
//! | 6    | bulk-start   | delta   | stream seq / 0                                   | empty |
//! | 7    | bulk-end     | delta   | stream seq / 0                                   | empty |
//! | 8    | resync       | delta   | stream seq (new base) / 0                        | empty |
//!
//! The body of a delta is a sequence of sections, each
//! `{table_kind u16, record_count u16, len u32, records[len]}`. A receiver
//! that does not know `table_kind` skips `len` bytes, so a newer peer can add
//! tables during a rolling upgrade. Each record is
//! `{op u8, id u64, version u32, len u16, bytes[len]}`; `bytes` belong to the
//! table. A table that needs new fields appends them to its record bytes and
//! must accept shorter records from older peers.
//!
//! # Contract
//! [`Packet::new_checked`] checks the length once; after it no accessor can
//! fail or panic. [`HeaderRepr::parse`] validates magic, version, kind and
//! unit. [`Sections`] and [`Records`] never panic on any input: a structural
//! error is yielded once as `Err` and the iteration ends.

use super::crypto::TAG_LEN;
use super::Unit;

/// Header format version.
pub const VERSION: u8 = 1;
pub const MAGIC: [u8; 2] = *b"TW";
pub const HEADER_LEN: usize = field::ACK.end;
pub const SECTION_HEADER_LEN: usize = section_field::LEN.end;
pub const RECORD_HEADER_LEN: usize = record_field::LEN.end;
/// Default bound on a whole datagram (UDP payload): fits a 1500-byte MTU
/// with IPv4/IPv6 and UDP headers and room for a VLAN tag or tunnel.
pub const DEFAULT_MAX_DATAGRAM: usize = 1400;

/// Most body bytes that fit a datagram of `max_datagram` bytes.
pub const fn max_body(max_datagram: usize) -> usize {
    max_datagram.saturating_sub(HEADER_LEN + TAG_LEN)
}

type Field = std::ops::Range<usize>;

mod field {
    use super::Field;
    pub const MAGIC: Field = 0..2;
    pub const VERSION: usize = 2;
    pub const KIND: usize = 3;
    pub const FLAGS: usize = 4;
    pub const UNIT: usize = 5;
    pub const RESERVED: Field = 6..8;
    pub const KEY_ID: Field = 8..12;
    pub const CONFIG_HASH: Field = 12..20;
    pub const EPOCH: Field = 20..24;
    pub const COUNTER: Field = 24..32;
    pub const SEQ: Field = 32..36;
    pub const ACK: Field = 36..40;
}

/// Where the AEAD counter sits in the header (the sealer writes it).
pub const COUNTER_FIELD: std::ops::Range<usize> = field::COUNTER;

mod section_field {
    use super::Field;
    pub const TABLE_KIND: Field = 0..2;
    pub const COUNT: Field = 2..4;
    pub const LEN: Field = 4..8;
}

mod record_field {
    use super::Field;
    pub const OP: usize = 0;
    pub const ID: Field = 1..9;
    pub const VERSION: Field = 9..13;
    pub const LEN: Field = 13..15;
}

/// Header flag bits.
pub mod flags {
    /// This datagram is a retransmission (statistics only).
    pub const RETRANSMIT: u8 = 0x01;
}

/// Datagram kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Hello = 1,
    Delta = 2,
    Ack = 3,
    Nack = 4,
    BulkRequest = 5,
    BulkStart = 6,
    BulkEnd = 7,
    Resync = 8,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Hello,
        Kind::Delta,
        Kind::Ack,
        Kind::Nack,
        Kind::BulkRequest,
        Kind::BulkStart,
        Kind::BulkEnd,
        Kind::Resync,
    ];

    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| *k as u8 == v)
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "hello",
            Kind::Delta => "delta",
            Kind::Ack => "ack",
            Kind::Nack => "nack",
            Kind::BulkRequest => "bulk-request",
            Kind::BulkStart => "bulk-start",
            Kind::BulkEnd => "bulk-end",
            Kind::Resync => "resync",
        }
    }
    /// Kinds that carry a stream sequence number and are delivered in order.
    pub fn is_sequenced(self) -> bool {
        matches!(self, Kind::Delta | Kind::BulkStart | Kind::BulkEnd | Kind::Resync)
    }
}

/// Record operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    Insert = 1,
    Update = 2,
    Delete = 3,
    /// "Send me your copy of this id" (pfsync update request); id 0 with
    /// table kind 0 means everything.
    Request = 4,
}

impl Op {
    pub fn from_u8(v: u8) -> Option<Op> {
        match v {
            1 => Some(Op::Insert),
            2 => Some(Op::Update),
            3 => Some(Op::Delete),
            4 => Some(Op::Request),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Request => "request",
        }
    }
}

/// A structural problem in a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its header.
    Truncated,
    /// Not `b"TW"`.
    BadMagic,
    /// Header version this unit does not speak.
    BadVersion(u8),
    /// Kind byte unknown.
    BadKind(u8),
    /// Unit byte neither primary nor secondary.
    BadUnit(u8),
    /// A section header or its records run past the body.
    SectionTruncated,
    /// A record header or its bytes run past the section.
    RecordTruncated,
    /// Section's record count disagrees with its bytes.
    CountMismatch,
}

impl WireError {
    pub fn name(self) -> &'static str {
        match self {
            WireError::Truncated => "ha-wire-truncated",
            WireError::BadMagic => "ha-wire-bad-magic",
            WireError::BadVersion(_) => "ha-wire-bad-version",
            WireError::BadKind(_) => "ha-wire-bad-kind",
            WireError::BadUnit(_) => "ha-wire-bad-unit",
            WireError::SectionTruncated => "ha-wire-section-truncated",
            WireError::RecordTruncated => "ha-wire-record-truncated",
            WireError::CountMismatch => "ha-wire-count-mismatch",
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// A read/write view of a sync datagram header.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn magic(&self) -> [u8; 2] {
        let b = self.buffer.as_ref();
        [b[field::MAGIC.start], b[field::MAGIC.start + 1]]
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    pub fn kind_raw(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    pub fn unit_raw(&self) -> u8 {
        self.buffer.as_ref()[field::UNIT]
    }
    pub fn key_id(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::KEY_ID])
    }
    pub fn config_hash(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::CONFIG_HASH])
    }
    pub fn epoch(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::EPOCH])
    }
    pub fn counter(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::COUNTER])
    }
    pub fn seq(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::SEQ])
    }
    pub fn ack(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK])
    }
    /// Everything after the header (ciphertext and tag before opening).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn b(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_magic(&mut self) {
        self.b()[field::MAGIC].copy_from_slice(&MAGIC);
    }
    pub fn set_version(&mut self, v: u8) {
        self.b()[field::VERSION] = v;
    }
    pub fn set_kind(&mut self, k: Kind) {
        self.b()[field::KIND] = k as u8;
    }
    pub fn set_flags(&mut self, f: u8) {
        self.b()[field::FLAGS] = f;
    }
    pub fn set_unit(&mut self, u: Unit) {
        self.b()[field::UNIT] = u as u8;
    }
    pub fn clear_reserved(&mut self) {
        self.b()[field::RESERVED].fill(0);
    }
    pub fn set_key_id(&mut self, v: u32) {
        self.b()[field::KEY_ID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_config_hash(&mut self, v: u64) {
        self.b()[field::CONFIG_HASH].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_epoch(&mut self, v: u32) {
        self.b()[field::EPOCH].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_counter(&mut self, v: u64) {
        self.b()[field::COUNTER].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_seq(&mut self, v: u32) {
        self.b()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_ack(&mut self, v: u32) {
        self.b()[field::ACK].copy_from_slice(&v.to_be_bytes());
    }
}

/// A parsed, validated header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRepr {
    pub kind: Kind,
    pub flags: u8,
    pub unit: Unit,
    pub key_id: u32,
    pub config_hash: u64,
    pub epoch: u32,
    pub counter: u64,
    pub seq: u32,
    pub ack: u32,
}

impl HeaderRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<HeaderRepr, WireError> {
        p.check_len()?;
        if p.magic() != MAGIC {
            return Err(WireError::BadMagic);
        }
        if p.version() != VERSION {
            return Err(WireError::BadVersion(p.version()));
        }
        let kind = Kind::from_u8(p.kind_raw()).ok_or(WireError::BadKind(p.kind_raw()))?;
        let unit = Unit::from_u8(p.unit_raw()).ok_or(WireError::BadUnit(p.unit_raw()))?;
        Ok(HeaderRepr {
            kind,
            flags: p.flags(),
            unit,
            key_id: p.key_id(),
            config_hash: p.config_hash(),
            epoch: p.epoch(),
            counter: p.counter(),
            seq: p.seq(),
            ack: p.ack(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header into the first [`HEADER_LEN`] bytes of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_magic();
        p.set_version(VERSION);
        p.set_kind(self.kind);
        p.set_flags(self.flags);
        p.set_unit(self.unit);
        p.clear_reserved();
        p.set_key_id(self.key_id);
        p.set_config_hash(self.config_hash);
        p.set_epoch(self.epoch);
        p.set_counter(self.counter);
        p.set_seq(self.seq);
        p.set_ack(self.ack);
    }

    /// Append the header to `buf`.
    pub fn emit_to_vec(&self, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.resize(start + HEADER_LEN, 0);
        self.emit(&mut Packet::new_unchecked(&mut buf[start..]));
    }
}

/// One section of a delta body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    pub table_kind: u16,
    pub record_count: u16,
    /// The section's record bytes (`len` of them).
    pub data: &'a [u8],
}

impl<'a> Section<'a> {
    pub fn records(&self) -> Records<'a> {
        Records { rest: self.data, remaining: self.record_count, done: false }
    }
}

/// Iterator over the sections of a body. Never panics; a structural error
/// is yielded once and ends the iteration.
#[derive(Clone, Debug)]
pub struct Sections<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Sections<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Sections { rest: body, done: false }
    }
}

impl<'a> Iterator for Sections<'a> {
    type Item = Result<Section<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < SECTION_HEADER_LEN {
            self.done = true;
            return Some(Err(WireError::SectionTruncated));
        }
        let h = &self.rest[..SECTION_HEADER_LEN];
        let len = be32(&h[section_field::LEN]) as usize;
        let body = &self.rest[SECTION_HEADER_LEN..];
        if len > body.len() {
            self.done = true;
            return Some(Err(WireError::SectionTruncated));
        }
        let s = Section {
            table_kind: be16(&h[section_field::TABLE_KIND]),
            record_count: be16(&h[section_field::COUNT]),
            data: &body[..len],
        };
        self.rest = &body[len..];
        Some(Ok(s))
    }
}

/// One record of a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Raw op byte; [`Record::op`] decodes it (unknown ops are skippable).
    pub op_raw: u8,
    pub id: u64,
    pub version: u32,
    pub bytes: &'a [u8],
}

impl Record<'_> {
    pub fn op(&self) -> Option<Op> {
        Op::from_u8(self.op_raw)
    }
}

/// Iterator over a section's records. Never panics; checks that the count
/// and the bytes agree.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    rest: &'a [u8],
    remaining: u16,
    done: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.remaining == 0 {
            self.done = true;
            return if self.rest.is_empty() { None } else { Some(Err(WireError::CountMismatch)) };
        }
        if self.rest.is_empty() {
            self.done = true;
            return Some(Err(WireError::CountMismatch));
        }
        if self.rest.len() < RECORD_HEADER_LEN {
            self.done = true;
            return Some(Err(WireError::RecordTruncated));
        }
        let h = &self.rest[..RECORD_HEADER_LEN];
        let len = be16(&h[record_field::LEN]) as usize;
        let body = &self.rest[RECORD_HEADER_LEN..];
        if len > body.len() {
            self.done = true;
            return Some(Err(WireError::RecordTruncated));
        }
        let r = Record {
            op_raw: h[record_field::OP],
            id: be64(&h[record_field::ID]),
            version: be32(&h[record_field::VERSION]),
            bytes: &body[..len],
        };
        self.rest = &body[len..];
        self.remaining -= 1;
        Some(Ok(r))
    }
}

/// Why a record was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// It does not fit the datagram bound: flush and start a new datagram.
    Full,
    /// Its bytes exceed 65535 (or the bound of an empty datagram): it can
    /// never be sent, a table bug.
    TooLarge,
}

/// Appends sections and records to a caller's buffer without exceeding a
/// byte bound. Consecutive records of the same table share a section. A
/// record that does not fit is rolled back completely, so the buffer always
/// holds a well-formed body.
#[derive(Debug)]
pub struct BodyWriter<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
    limit: usize,
    /// Offset of the open section header, its kind and record count.
    section: Option<(usize, u16, u16)>,
    records: usize,
}

impl<'a> BodyWriter<'a> {
    /// Write after what `buf` holds now; `buf.len()` never exceeds
    /// `buf.len() + max_body` (use [`max_body`] for a datagram bound).
    pub fn new(buf: &'a mut Vec<u8>, max_body: usize) -> Self {
        let start = buf.len();
        BodyWriter { buf, start, limit: start + max_body, section: None, records: 0 }
    }

    /// Records written so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Body bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Append a record whose bytes are `bytes`.
    pub fn push(&mut self, table_kind: u16, op: Op, id: u64, version: u32, bytes: &[u8]) -> Result<(), PushError> {
        self.push_with(table_kind, op, id, version, |b| b.extend_from_slice(bytes))
    }

    /// Append a record whose bytes `encode` appends to the buffer in place
    /// (no intermediate allocation). If the result is too big it is removed.
    pub fn push_with(
        &mut self,
        table_kind: u16,
        op: Op,
        id: u64,
        version: u32,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), PushError> {
        self.push_versioned(table_kind, op, id, |b| {
            encode(b);
            Some(version)
        })
        .map(|_| ())
    }

    /// Like [`BodyWriter::push_with`], but `encode` also returns the
    /// record's version, or `None` when there is nothing to send (the entry
    /// is gone): then nothing is written and the result is `Ok(false)`.
    pub fn push_versioned(
        &mut self,
        table_kind: u16,
        op: Op,
        id: u64,
        encode: impl FnOnce(&mut Vec<u8>) -> Option<u32>,
    ) -> Result<bool, PushError> {
        let mark = self.buf.len();
        let saved = self.section;
        let reuse = matches!(self.section, Some((_, k, n)) if k == table_kind && n < u16::MAX);
        if !reuse {
            self.section = Some((mark, table_kind, 0));
            self.buf.extend_from_slice(&table_kind.to_be_bytes());
            self.buf.extend_from_slice(&[0; 6]);
        }
        let rec = self.buf.len();
        self.buf.push(op as u8);
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&[0; 6]); // version and len, patched below
        let data = self.buf.len();
        let Some(version) = encode(self.buf) else {
            self.buf.truncate(mark);
            self.section = saved;
            return Ok(false);
        };
        let len = self.buf.len() - data;
        if len > usize::from(u16::MAX) || self.buf.len() > self.limit {
            self.buf.truncate(mark);
            self.section = saved;
            let empty_datagram = self.records == 0;
            return Err(if len > usize::from(u16::MAX) || empty_datagram {
                PushError::TooLarge
            } else {
                PushError::Full
            });
        }
        self.buf[rec + record_field::VERSION.start..rec + record_field::VERSION.end]
            .copy_from_slice(&version.to_be_bytes());
        self.buf[rec + record_field::LEN.start..rec + record_field::LEN.end]
            .copy_from_slice(&(len as u16).to_be_bytes());
        if let Some((at, kind, n)) = self.section {
            let n = n + 1;
            self.section = Some((at, kind, n));
            let sec_len = (self.buf.len() - at - SECTION_HEADER_LEN) as u32;
            self.buf[at + section_field::COUNT.start..at + section_field::COUNT.end].copy_from_slice(&n.to_be_bytes());
            self.buf[at + section_field::LEN.start..at + section_field::LEN.end]
                .copy_from_slice(&sec_len.to_be_bytes());
        }
        self.records += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static HEADER: [u8; HEADER_LEN] = [
        b'T', b'W', 0x01, 0x02, 0x01, 0x01, 0x00, 0x00, // magic, version 1, delta, retransmit, secondary
        0xca, 0xfe, 0xba, 0xbe, // key id
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // config hash
        0x00, 0x00, 0x00, 0x09, // state epoch
        0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x01, // counter
        0x00, 0x00, 0x01, 0x00, // seq 256
        0x00, 0x00, 0x00, 0x00, // ack
    ];

    fn repr() -> HeaderRepr {
        HeaderRepr {
            kind: Kind::Delta,
            flags: flags::RETRANSMIT,
            unit: Unit::Secondary,
            key_id: 0xcafe_babe,
            config_hash: 0x0102_0304_0506_0708,
            epoch: 9,
            counter: 0x1234_5678_0000_0001,
            seq: 256,
            ack: 0,
        }
    }

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&HEADER[..]).unwrap();
        assert_eq!(p.magic(), MAGIC);
        assert_eq!(p.seq(), 256);
        assert_eq!(p.counter(), 0x1234_5678_0000_0001);
        assert_eq!(HeaderRepr::parse(&p).unwrap(), repr());
        assert!(p.payload().is_empty());
    }

    #[test]
    fn test_construct() {
        let mut buf = [0xffu8; HEADER_LEN];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..], &HEADER[..]);
        let mut v = Vec::new();
        repr().emit_to_vec(&mut v);
        assert_eq!(&v[..], &HEADER[..]);
    }

    #[test]
    fn test_impossible_len_and_bad_fields() {
        assert_eq!(Packet::new_checked(&HEADER[..HEADER_LEN - 1]).unwrap_err(), WireError::Truncated);
        let bad = |i: usize, v: u8| {
            let mut b = HEADER;
            b[i] = v;
            HeaderRepr::parse(&Packet::new_unchecked(&b[..])).unwrap_err()
        };
        assert_eq!(bad(0, b'X'), WireError::BadMagic);
        assert_eq!(bad(2, 2), WireError::BadVersion(2));
        assert_eq!(bad(3, 0), WireError::BadKind(0));
        assert_eq!(bad(3, 9), WireError::BadKind(9));
        assert_eq!(bad(5, 2), WireError::BadUnit(2));
        // Unknown flag bits and reserved bytes are tolerated.
        let mut b = HEADER;
        b[4] = 0xff;
        b[6] = 1;
        assert!(HeaderRepr::parse(&Packet::new_unchecked(&b[..])).is_ok());
    }

    #[test]
    fn body_fixture_decodes() {
        #[rustfmt::skip]
        let body: &[u8] = &[
            0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x20,             // table 1, 2 records, 32 bytes
            0x01, 0,0,0,0,0,0,0,0x05, 0,0,0,0x01, 0x00, 0x02, 0xaa, 0xbb, // insert id 5 v1 "aabb"
            0x03, 0,0,0,0,0,0,0,0x06, 0,0,0,0x07, 0x00, 0x00,             // delete id 6 v7
            0x77, 0x77, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03, // unknown table 0x7777: skippable
        ];
        let secs: Vec<_> = Sections::new(body).collect::<Result<_, _>>().unwrap();
        assert_eq!(secs.len(), 2);
        assert_eq!((secs[0].table_kind, secs[0].record_count), (1, 2));
        let recs: Vec<_> = secs[0].records().collect::<Result<_, _>>().unwrap();
        assert_eq!(recs[0], Record { op_raw: 1, id: 5, version: 1, bytes: &[0xaa, 0xbb] });
        assert_eq!(recs[1].op(), Some(Op::Delete));
        assert_eq!((recs[1].id, recs[1].version, recs[1].bytes.len()), (6, 7, 0));
        assert_eq!(secs[1].table_kind, 0x7777);
        // Records of the unknown table are garbage, yet the iterator says so
        // without panicking.
        assert_eq!(secs[1].records().next(), Some(Err(WireError::RecordTruncated)));
    }

    #[test]
    fn broken_bodies_yield_one_error() {
        assert_eq!(Sections::new(&[0, 1, 0]).collect::<Vec<_>>(), vec![Err(WireError::SectionTruncated)]);
        assert_eq!(
            Sections::new(&[0, 1, 0, 0, 0, 0, 0, 9, 1]).collect::<Vec<_>>(),
            vec![Err(WireError::SectionTruncated)]
        );
        // Count says 1, no bytes.
        let s = Section { table_kind: 1, record_count: 1, data: &[] };
        assert_eq!(s.records().collect::<Vec<_>>(), vec![Err(WireError::CountMismatch)]);
        // Count says 0, bytes present.
        let s = Section { table_kind: 1, record_count: 0, data: &[1] };
        assert_eq!(s.records().collect::<Vec<_>>(), vec![Err(WireError::CountMismatch)]);
        // Record length past the end.
        let s = Section { table_kind: 1, record_count: 1, data: &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 5, 1] };
        assert_eq!(s.records().collect::<Vec<_>>(), vec![Err(WireError::RecordTruncated)]);
    }

    #[test]
    fn writer_round_trip_groups_sections() {
        let mut buf = b"prefix".to_vec();
        let mut w = BodyWriter::new(&mut buf, 1000);
        w.push(1, Op::Insert, 10, 1, b"abc").unwrap();
        w.push(1, Op::Update, 11, 2, b"").unwrap();
        w.push(2, Op::Delete, 12, 3, b"z").unwrap();
        w.push_with(1, Op::Insert, 13, 4, |b| b.extend_from_slice(&[9; 5])).unwrap();
        assert_eq!(w.records(), 4);
        let n = w.len();
        assert_eq!(n, 3 * SECTION_HEADER_LEN + 4 * RECORD_HEADER_LEN + 3 + 1 + 5);
        let body = &buf[6..];
        let got: Vec<(u16, u8, u64, u32, Vec<u8>)> = Sections::new(body)
            .flat_map(|s| {
                let s = s.unwrap();
                s.records().map(move |r| {
                    let r = r.unwrap();
                    (s.table_kind, r.op_raw, r.id, r.version, r.bytes.to_vec())
                })
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1, 10, 1, b"abc".to_vec()),
                (1, 2, 11, 2, vec![]),
                (2, 3, 12, 3, b"z".to_vec()),
                (1, 1, 13, 4, vec![9; 5]),
            ]
        );
    }

    #[test]
    fn writer_respects_bound_and_rolls_back() {
        let limit = max_body(DEFAULT_MAX_DATAGRAM);
        assert_eq!(limit, 1400 - 40 - 16);
        let mut buf = Vec::new();
        let mut w = BodyWriter::new(&mut buf, limit);
        let rec = [7u8; 40];
        let mut n = 0;
        loop {
            // Alternate tables so sections open and close.
            match w.push((n / 10) as u16, Op::Update, n, 1, &rec) {
                Ok(()) => n += 1,
                Err(e) => {
                    assert_eq!(e, PushError::Full);
                    break;
                }
            }
        }
        let len = w.len();
        assert!(len <= limit && len + RECORD_HEADER_LEN + 40 > limit - SECTION_HEADER_LEN);
        assert_eq!(buf.len(), len);
        let total: usize =
            Sections::new(&buf).map(|s| s.unwrap().records().inspect(|r| assert!(r.is_ok())).count()).sum();
        assert_eq!(total as u64, n);
        // A record that can never fit an empty datagram, and one over 64 KiB.
        let mut buf = Vec::new();
        let mut w = BodyWriter::new(&mut buf, 100);
        assert_eq!(w.push(1, Op::Insert, 1, 1, &[0; 200]), Err(PushError::TooLarge));
        let mut w = BodyWriter::new(&mut buf, 1 << 20);
        assert_eq!(w.push(1, Op::Insert, 1, 1, &vec![0; 70_000]), Err(PushError::TooLarge));
        assert!(buf.is_empty());
    }
}
