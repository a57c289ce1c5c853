//! Failover key, key schedule, AEAD and replay window.
//!
//! # Contract
//! * [`KeyMaterial::from_key_text`] takes the failover key as written in the
//!   config or key file: either exactly 64 hex digits (32 random bytes, used
//!   as is) or a passphrase of 16 or more characters (stretched with
//!   PBKDF2-HMAC-SHA256, [`PASSPHRASE_ITERATIONS`] rounds, fixed salt: both
//!   units must derive the same keys without talking). Anything else is
//!   refused with a [`KeyError`] whose `Display` is the operator message.
//! * From that, HKDF-SHA256 (salt [`HKDF_SALT`]) derives one
//!   ChaCha20-Poly1305 key per (sender unit, channel): the hello channel and
//!   the delta channel have separate keys, and so do the two directions, so a
//!   datagram can never be reflected back to its sender or moved from one
//!   channel to the other. Info strings name protocol, version, channel and
//!   sender, e.g. `twinwall-ha/1 delta from primary`.
//! * [`Sealer`] (one per channel, own direction) seals `header || body` in
//!   place: it writes its counter into the header, uses the whole header as
//!   associated data and appends the 16-byte tag. [`Opener`] (one per
//!   channel, peer's direction) checks the replay window, opens, and only then
//!   commits the counter to the window.
//! * Failures are values ([`OpenError`]) and are counted per reason in
//!   [`OpenCounters`]; nothing here panics on peer input.
//!
//! # Nonces: why a random epoch in the high 32 bits
//! The 96-bit nonce is `0u32 || counter_be64`. The key is long-lived (it is
//! derived from the configured failover key and nothing else), and a unit
//! has no stable storage to remember its last counter across a crash or
//! reboot. If every boot started at counter 0, the first datagram after a
//! reboot would reuse a nonce with the same key, which for ChaCha20-Poly1305
//! leaks the XOR of plaintexts and lets an observer forge tags. So the caller
//! draws a random 32-bit *epoch* at boot (from [`crate::entropy::Entropy`])
//! and the counter starts at `epoch << 32`: each boot gets its own range of
//! 2^32 nonces, and two boots collide only if they draw the same epoch
//! (2^-32 per pair of boots). When the low half runs out the counter carries
//! into the epoch (a new range, seen by the peer as a new epoch); at
//! `u64::MAX` sealing stops ([`SealError::CounterExhausted`]).
//!
//! The epoch also scopes replay protection. The [`Opener`] keeps a
//! [`ReplayWindow`] for the peer's current epoch. A datagram from a new epoch
//! that authenticates means "the peer restarted (or its counter carried)":
//! the window restarts there and the old epoch is *retired*; datagrams from
//! the last [`RETIRED_EPOCHS`] retired epochs are refused. A recording made
//! before this unit booted cannot be told from a fresh restart by the AEAD
//! alone; that freshness comes from the hello, which echoes the epoch it last
//! saw from its peer (`peer_epoch_seen` in [`super::hello::HelloRepr`]): a peer
//! only counts as alive once it echoes our own, newly drawn epoch.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::Range;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::{hkdf, pbkdf2};

use super::Unit;

/// Length of the AEAD tag appended to every sealed datagram.
pub const TAG_LEN: usize = 16;
/// Replay window width in counters (IPsec and WireGuard use comparable
/// widths: RFC 4303 section 3.4.3 recommends at least 64, WireGuard 2048).
pub const REPLAY_WINDOW: u64 = 1024;
/// How many superseded peer epochs are remembered and refused.
pub const RETIRED_EPOCHS: usize = 16;
/// PBKDF2 rounds for a passphrase key. Runs once at boot.
pub const PASSPHRASE_ITERATIONS: u32 = 100_000;
/// Fixed PBKDF2 salt: both units must reach the same key independently.
pub const PASSPHRASE_SALT: &[u8] = b"twinwall-ha/1 failover passphrase";
/// HKDF-SHA256 extract salt: protocol name and version.
pub const HKDF_SALT: &[u8] = b"twinwall-ha/1";
/// Minimum passphrase length in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 16;

/// Why a failover key was refused. The `Display` text is the operator message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The key is empty.
    Empty,
    /// A passphrase shorter than 16 characters.
    TooShort(usize),
    /// All hex digits, but not 64 of them: probably a mistyped hex key.
    HexLength(usize),
    /// Control characters (other than a final newline) in the key.
    ControlChar,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => write!(f, "failover key is empty; use a passphrase of 16+ characters or 64 hex digits"),
            KeyError::TooShort(n) => write!(
                f,
                "failover key is a {n}-character passphrase; use at least {MIN_PASSPHRASE_CHARS} characters or 64 hex digits"
            ),
            KeyError::HexLength(n) => {
                write!(f, "failover key looks like a hex key but has {n} digits; a hex key has exactly 64")
            }
            KeyError::ControlChar => {
                write!(f, "failover key contains control characters; put it on a single line")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Which key: hellos and the delta stream are keyed apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Hello,
    Delta,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Hello => "hello",
            Channel::Delta => "delta",
        }
    }
}

/// The pseudo-random key derived from the failover key. Both units hold the
/// same value; per-direction keys come from it.
pub struct KeyMaterial {
    prk: hkdf::Prk,
    key_id: u32,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial {{ key_id: {:08x} }}", self.key_id)
    }
}

/// HKDF output length for a non-AEAD use (the key id).
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl KeyMaterial {
    /// Parse the key text (trailing whitespace, e.g. the key file's newline,
    /// is ignored) and derive the key material.
    pub fn from_key_text(text: &str) -> Result<KeyMaterial, KeyError> {
        let text = text.trim_end_matches(['\n', '\r', ' ', '\t']);
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        if text.chars().any(|c| c.is_control()) {
            return Err(KeyError::ControlChar);
        }
        let n = text.chars().count();
        let all_hex = text.bytes().all(|b| b.is_ascii_hexdigit());
        if all_hex && n == 64 {
            let mut raw = [0u8; 32];
            for (i, pair) in text.as_bytes().chunks(2).enumerate() {
                raw[i] = (hex_val(pair[0]) << 4) | hex_val(pair[1]);
            }
            return Ok(Self::from_ikm(&raw));
        }
        if all_hex && n >= 32 {
            return Err(KeyError::HexLength(n));
        }
        if n < MIN_PASSPHRASE_CHARS {
            return Err(KeyError::TooShort(n));
        }
        let mut stretched = [0u8; 32];
        let rounds = NonZeroU32::new(PASSPHRASE_ITERATIONS).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, PASSPHRASE_SALT, text.as_bytes(), &mut stretched);
        Ok(Self::from_ikm(&stretched))
    }

    fn from_ikm(ikm: &[u8]) -> KeyMaterial {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(ikm);
        let mut id = [0u8; 4];
        // Expanding 4 bytes from a valid PRK cannot fail (limit is 255*32).
        if let Ok(okm) = prk.expand(&[b"twinwall-ha/1 key id"], Len(4)) {
            let _ = okm.fill(&mut id);
        }
        KeyMaterial { prk, key_id: u32::from_be_bytes(id) }
    }

    /// A public fingerprint of the key, carried in every header so that a
    /// unit can say "the peer uses a different key" instead of only "bad
    /// tag". It reveals nothing a tag does not already allow to check.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    fn aead_key(&self, sender: Unit, channel: Channel) -> LessSafeKey {
        let info = format!("twinwall-ha/1 {} from {}", channel.name(), sender.name());
        let info = [info.as_bytes()];
        // 32 bytes from HKDF-SHA256 is always within the expand limit.
        let okm = self.prk.expand(&info, &CHACHA20_POLY1305);
        let unbound = match okm {
            Ok(okm) => UnboundKey::from(okm),
            Err(_) => unreachable_key(),
        };
        LessSafeKey::new(unbound)
    }

    /// Sealer for datagrams this unit (`me`) sends on `channel`, starting at
    /// counter `epoch << 32`. `epoch` must be fresh random at every boot.
    pub fn sealer(&self, me: Unit, channel: Channel, epoch: u32) -> Sealer {
        Sealer { key: self.aead_key(me, channel), next: u64::from(epoch) << 32, exhausted: false }
    }

    /// Opener for datagrams the peer of `me` sends on `channel`.
    pub fn opener(&self, me: Unit, channel: Channel) -> Opener {
        Opener {
            key: self.aead_key(me.peer(), channel),
            epoch: None,
            window: ReplayWindow::new(),
            retired: Vec::new(),
            counters: OpenCounters::default(),
        }
    }
}

#[cold]
fn unreachable_key() -> UnboundKey {
    // ring documents expand() failing only for lengths above 255 * hash len.
    // A fixed all-zero key would be a silent disaster, so stop instead.
    panic!("HKDF expand of a 32-byte key failed")
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

fn nonce_for(counter: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Why sealing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealError {
    /// 2^64 datagrams sent with this key: restart with a new epoch.
    CounterExhausted,
    /// The header range does not fit the buffer (a caller bug, not peer input).
    BadLayout,
}

/// Seals outgoing datagrams of one channel. Holds the nonce counter.
pub struct Sealer {
    key: LessSafeKey,
    next: u64,
    exhausted: bool,
}

impl Sealer {
    /// Counter the next datagram will carry.
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// Seal `buf = header || body` in place: write the counter (big endian)
    /// into `buf[counter_at]`, encrypt `buf[header_len..]` with the whole
    /// header as associated data, append the tag. Returns the counter used.
    pub fn seal(&mut self, buf: &mut Vec<u8>, header_len: usize, counter_at: Range<usize>) -> Result<u64, SealError> {
        if self.exhausted {
            return Err(SealError::CounterExhausted);
        }
        if header_len > buf.len() || counter_at.end > header_len || counter_at.len() != 8 {
            return Err(SealError::BadLayout);
        }
        let counter = self.next;
        buf[counter_at].copy_from_slice(&counter.to_be_bytes());
        let (header, body) = buf.split_at_mut(header_len);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce_for(counter), Aad::from(&*header), body)
            .map_err(|_| SealError::BadLayout)?;
        buf.extend_from_slice(tag.as_ref());
        match self.next.checked_add(1) {
            Some(n) => self.next = n,
            None => self.exhausted = true,
        }
        Ok(counter)
    }
}

macro_rules! open_errors {
    ($( $variant:ident = $name:literal, $desc:literal; )*) => {
        /// Why an incoming datagram was refused by the crypto layer.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum OpenError { $( #[doc = $desc] $variant, )* }

        impl OpenError {
            pub const ALL: &'static [OpenError] = &[ $( OpenError::$variant, )* ];
            pub const COUNT: usize = Self::ALL.len();
            /// Counter name, stable for scripts.
            pub fn name(self) -> &'static str {
                match self { $( OpenError::$variant => $name, )* }
            }
            pub fn description(self) -> &'static str {
                match self { $( OpenError::$variant => $desc, )* }
            }
        }
    };
}

open_errors! {
    Truncated = "ha-truncated", "shorter than header plus tag";
    BadTag = "ha-bad-tag", "authentication failed: wrong key or tampered datagram";
    Replay = "ha-replay", "counter already seen inside the replay window";
    TooOld = "ha-too-old", "counter older than the replay window";
    RetiredEpoch = "ha-retired-epoch", "counter from a superseded peer epoch (old boot)";
}

/// Per-reason failure counts, plus successes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenCounters {
    pub ok: u64,
    pub new_epochs: u64,
    pub failed: [u64; OpenError::COUNT],
}

impl OpenCounters {
    pub fn get(&self, e: OpenError) -> u64 {
        self.failed[e as usize]
    }
}

/// A successfully opened datagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    pub body: &'a [u8],
    pub counter: u64,
    /// First datagram of a new peer epoch: the peer restarted, or its
    /// counter carried into the next epoch.
    pub new_epoch: bool,
}

/// Opens incoming datagrams of one channel; holds the replay state.
pub struct Opener {
    key: LessSafeKey,
    epoch: Option<u32>,
    window: ReplayWindow,
    retired: Vec<u32>,
    counters: OpenCounters,
}

impl Opener {
    pub fn counters(&self) -> &OpenCounters {
        &self.counters
    }

    /// The peer's current epoch, once one datagram has authenticated.
    pub fn peer_epoch(&self) -> Option<u32> {
        self.epoch
    }

    /// Open `buf = header || ciphertext || tag` in place. `counter` is the
    /// value parsed from the header (it is also covered by the tag, as part
    /// of the associated data). The window is only updated on success.
    pub fn open<'a>(&mut self, buf: &'a mut [u8], header_len: usize, counter: u64) -> Result<Opened<'a>, OpenError> {
        let r = self.open_inner(buf, header_len, counter);
        match &r {
            Ok(o) => {
                self.counters.ok += 1;
                self.counters.new_epochs += u64::from(o.new_epoch);
            }
            Err(e) => self.counters.failed[*e as usize] += 1,
        }
        r
    }

    fn open_inner<'a>(&mut self, buf: &'a mut [u8], header_len: usize, counter: u64) -> Result<Opened<'a>, OpenError> {
        if buf.len() < header_len + TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let epoch = (counter >> 32) as u32;
        let new_epoch = match self.epoch {
            Some(cur) if cur == epoch => {
                self.window.check(counter)?;
                false
            }
            _ if self.retired.contains(&epoch) => return Err(OpenError::RetiredEpoch),
            _ => true,
        };
        let (header, rest) = buf.split_at_mut(header_len);
        let plain =
            self.key.open_in_place(nonce_for(counter), Aad::from(&*header), rest).map_err(|_| OpenError::BadTag)?;
        if new_epoch {
            if let Some(old) = self.epoch.replace(epoch) {
                if self.retired.len() == RETIRED_EPOCHS {
                    self.retired.remove(0);
                }
                self.retired.push(old);
            }
            self.window = ReplayWindow::new();
        }
        self.window.commit(counter);
        Ok(Opened { body: plain, counter, new_epoch })
    }
}

const WINDOW_WORDS: usize = (REPLAY_WINDOW as usize / 64) + 1;
// One spare word: the word holding `top` is only partly inside the window.
const _: () = assert!(WINDOW_WORDS as u64 * 64 >= REPLAY_WINDOW + 64);

/// Sliding anti-replay window (RFC 6479 style bitmap ring): accepts each
/// counter at most once, and none more than [`REPLAY_WINDOW`] - 1 below the
/// highest accepted. Reordering within the window is fine.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    top: u64,
    any: bool,
    bits: [u64; WINDOW_WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    pub fn new() -> Self {
        ReplayWindow { top: 0, any: false, bits: [0; WINDOW_WORDS] }
    }

    fn slot(c: u64) -> (usize, u64) {
        (((c / 64) % WINDOW_WORDS as u64) as usize, 1u64 << (c % 64))
    }

    /// Would `c` be accepted? Does not change the window.
    pub fn check(&self, c: u64) -> Result<(), OpenError> {
        if !self.any || c > self.top {
            return Ok(());
        }
        if self.top - c >= REPLAY_WINDOW {
            return Err(OpenError::TooOld);
        }
        let (w, bit) = Self::slot(c);
        if self.bits[w] & bit != 0 {
            return Err(OpenError::Replay);
        }
        Ok(())
    }

    /// Record `c` as seen. Call only after `check(c)` passed and the
    /// datagram authenticated.
    pub fn commit(&mut self, c: u64) {
        if !self.any {
            self.any = true;
            self.bits = [0; WINDOW_WORDS];
            self.top = c;
        } else if c > self.top {
            let cur = self.top / 64;
            let new = c / 64;
            let clear = (new - cur).min(WINDOW_WORDS as u64);
            for i in 1..=clear {
                self.bits[((cur + i) % WINDOW_WORDS as u64) as usize] = 0;
            }
            self.top = c;
        }
        let (w, bit) = Self::slot(c);
        self.bits[w] |= bit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const HDR: usize = 12;

    fn keys() -> KeyMaterial {
        KeyMaterial::from_key_text(HEX).unwrap()
    }

    fn datagram(sealer: &mut Sealer, body: &[u8]) -> Vec<u8> {
        let mut buf = b"TW\x01\x02".to_vec();
        buf.extend_from_slice(&[0; 8]);
        buf.extend_from_slice(body);
        sealer.seal(&mut buf, HDR, 4..12).unwrap();
        buf
    }

    fn counter_of(buf: &[u8]) -> u64 {
        u64::from_be_bytes(buf[4..12].try_into().unwrap())
    }

    #[test]
    fn key_text_rules() {
        assert!(KeyMaterial::from_key_text(HEX).is_ok());
        assert!(KeyMaterial::from_key_text(&format!("{HEX}\n")).is_ok());
        assert_eq!(KeyMaterial::from_key_text("").unwrap_err(), KeyError::Empty);
        assert_eq!(KeyMaterial::from_key_text("short pass").unwrap_err(), KeyError::TooShort(10));
        assert_eq!(KeyMaterial::from_key_text(&HEX[..62]).unwrap_err(), KeyError::HexLength(62));
        assert_eq!(KeyMaterial::from_key_text("line one is long\nline two").unwrap_err(), KeyError::ControlChar);
        let msg = KeyError::TooShort(3).to_string();
        assert!(msg.contains("16") && msg.contains("64 hex"), "{msg}");
        // Hex digits are case-insensitive: same key, same id.
        assert_eq!(KeyMaterial::from_key_text(&HEX.to_uppercase()).unwrap().key_id(), keys().key_id());
    }

    #[test]
    fn passphrase_is_stretched_and_deterministic() {
        let a = KeyMaterial::from_key_text("correct horse battery staple").unwrap();
        let b = KeyMaterial::from_key_text("correct horse battery staple").unwrap();
        let c = KeyMaterial::from_key_text("correct horse battery stapler").unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert_ne!(a.key_id(), c.key_id());
        let mut s = a.sealer(Unit::Primary, Channel::Delta, 1);
        let mut d = datagram(&mut s, b"hi");
        let ctr = counter_of(&d);
        assert_eq!(b.opener(Unit::Secondary, Channel::Delta).open(&mut d, HDR, ctr).unwrap().body, b"hi");
    }

    #[test]
    fn round_trip_and_counter_starts_at_epoch() {
        let k = keys();
        let mut s = k.sealer(Unit::Primary, Channel::Delta, 0xdead_beef);
        let mut o = k.opener(Unit::Secondary, Channel::Delta);
        let mut d = datagram(&mut s, b"state records");
        assert_eq!(d.len(), HDR + 13 + TAG_LEN);
        assert_ne!(&d[HDR..HDR + 13], b"state records");
        let ctr = counter_of(&d);
        assert_eq!(ctr, 0xdead_beef_0000_0000);
        let opened = o.open(&mut d, HDR, ctr).unwrap();
        assert_eq!(opened.body, b"state records");
        assert!(opened.new_epoch);
        assert_eq!(s.next_counter(), ctr + 1);
        assert_eq!(o.peer_epoch(), Some(0xdead_beef));
    }

    #[test]
    fn wrong_key_direction_or_channel_fails() {
        let k = keys();
        let other = KeyMaterial::from_key_text(&HEX.replace('0', "1")).unwrap();
        assert_ne!(k.key_id(), other.key_id());
        let mut s = k.sealer(Unit::Primary, Channel::Delta, 7);
        let d = datagram(&mut s, b"x");
        let ctr = counter_of(&d);
        let cases = [
            other.opener(Unit::Secondary, Channel::Delta),
            k.opener(Unit::Primary, Channel::Delta),   // reflected back to sender
            k.opener(Unit::Secondary, Channel::Hello), // other channel
        ];
        for mut o in cases {
            let mut d = d.clone();
            assert_eq!(o.open(&mut d, HDR, ctr).unwrap_err(), OpenError::BadTag);
            assert_eq!(o.counters().get(OpenError::BadTag), 1);
            assert_eq!(o.peer_epoch(), None, "a failed open must not move the epoch");
        }
    }

    #[test]
    fn tampering_fails() {
        let k = keys();
        let mut s = k.sealer(Unit::Secondary, Channel::Hello, 3);
        let d = datagram(&mut s, b"hello body");
        let ctr = counter_of(&d);
        for i in [0, 3, HDR, HDR + 5, d.len() - 1] {
            let mut t = d.clone();
            t[i] ^= 0x40;
            let mut o = k.opener(Unit::Primary, Channel::Hello);
            assert_eq!(o.open(&mut t, HDR, ctr).unwrap_err(), OpenError::BadTag, "byte {i}");
        }
        // A counter that differs from the one sealed into the header.
        let mut o = k.opener(Unit::Primary, Channel::Hello);
        assert_eq!(o.open(&mut d.clone(), HDR, ctr + 1).unwrap_err(), OpenError::BadTag);
        // Truncated.
        assert_eq!(o.open(&mut d.clone()[..HDR + 3], HDR, ctr).unwrap_err(), OpenError::Truncated);
        assert_eq!(o.counters().get(OpenError::Truncated), 1);
    }

    #[test]
    fn replay_rejected_reorder_accepted_window_slides() {
        let k = keys();
        let mut s = k.sealer(Unit::Primary, Channel::Delta, 9);
        let mut o = k.opener(Unit::Secondary, Channel::Delta);
        let ds: Vec<Vec<u8>> = (0..1100).map(|i| datagram(&mut s, &[i as u8])).collect();
        let open = |o: &mut Opener, i: usize| {
            let mut d = ds[i].clone();
            o.open(&mut d, HDR, counter_of(&ds[i])).map(|x| x.body.to_vec())
        };
        // Reordered within the window: all accepted once.
        for i in [5, 3, 4, 0, 2, 1] {
            assert_eq!(open(&mut o, i).unwrap(), vec![i as u8]);
        }
        assert_eq!(open(&mut o, 3).unwrap_err(), OpenError::Replay);
        // Slide to 1050: 26 and lower fall out, 27 is still inside, 30 was never seen.
        assert!(open(&mut o, 1050).is_ok());
        assert_eq!(open(&mut o, 26).unwrap_err(), OpenError::TooOld);
        assert!(open(&mut o, 30).is_ok());
        assert_eq!(open(&mut o, 30).unwrap_err(), OpenError::Replay);
        assert!(open(&mut o, 1049).is_ok());
        assert!(open(&mut o, 1099).is_ok());
        assert_eq!(open(&mut o, 1050).unwrap_err(), OpenError::Replay);
        assert_eq!(o.counters().get(OpenError::TooOld), 1);
        assert_eq!(o.counters().get(OpenError::Replay), 3);
    }

    #[test]
    fn window_unit_edges() {
        let mut w = ReplayWindow::new();
        w.commit(10_000);
        assert_eq!(w.check(10_000), Err(OpenError::Replay));
        assert_eq!(w.check(10_000 - (REPLAY_WINDOW - 1)), Ok(()));
        assert_eq!(w.check(10_000 - REPLAY_WINDOW), Err(OpenError::TooOld));
        // A jump far ahead clears everything.
        w.commit(10_000 + 5 * REPLAY_WINDOW);
        for c in (10_000 + 4 * REPLAY_WINDOW + 1)..(10_000 + 5 * REPLAY_WINDOW) {
            assert_eq!(w.check(c), Ok(()), "{c}");
        }
        // Every counter in the window, in order, then all are replays.
        let mut w = ReplayWindow::new();
        for c in 0..3000u64 {
            assert_eq!(w.check(c), Ok(()));
            w.commit(c);
        }
        for c in (3000 - REPLAY_WINDOW)..3000 {
            assert_eq!(w.check(c), Err(OpenError::Replay), "{c}");
        }
    }

    #[test]
    fn peer_restart_is_new_epoch_and_old_epoch_is_retired() {
        let k = keys();
        let mut boot1 = k.sealer(Unit::Primary, Channel::Hello, 500);
        let mut boot2 = k.sealer(Unit::Primary, Channel::Hello, 20); // lower epoch
        let mut o = k.opener(Unit::Secondary, Channel::Hello);
        let old = datagram(&mut boot1, b"a");
        let old2 = datagram(&mut boot1, b"b");
        assert!(o.open(&mut old.clone(), HDR, counter_of(&old)).unwrap().new_epoch);
        let fresh = datagram(&mut boot2, b"c");
        assert!(o.open(&mut fresh.clone(), HDR, counter_of(&fresh)).unwrap().new_epoch);
        assert_eq!(o.peer_epoch(), Some(20));
        // A recording from the previous boot is refused, even an unseen one.
        assert_eq!(o.open(&mut old2.clone(), HDR, counter_of(&old2)).unwrap_err(), OpenError::RetiredEpoch);
        assert_eq!(o.counters().new_epochs, 2);
    }

    #[test]
    fn counter_carries_into_next_epoch_and_stops_at_max() {
        let k = keys();
        let mut s = k.sealer(Unit::Primary, Channel::Delta, u32::MAX);
        s.next = u64::MAX;
        let mut buf = vec![0u8; HDR];
        assert_eq!(s.seal(&mut buf, HDR, 4..12), Ok(u64::MAX));
        let mut buf = vec![0u8; HDR];
        assert_eq!(s.seal(&mut buf, HDR, 4..12), Err(SealError::CounterExhausted));
        let mut s = k.sealer(Unit::Primary, Channel::Delta, 4);
        s.next = (4u64 << 32) | 0xffff_ffff;
        let mut buf = vec![0u8; HDR];
        s.seal(&mut buf, HDR, 4..12).unwrap();
        assert_eq!(s.next_counter() >> 32, 5);
        assert_eq!(s.seal(&mut vec![0u8; 3], HDR, 4..12), Err(SealError::BadLayout));
    }
}
