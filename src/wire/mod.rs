//! Byte layouts. Each protocol's offsets live in one place; the fast path
//! reads and edits frames in place through these.

pub mod checksum;

pub mod ether {
    pub const DST: core::ops::Range<usize> = 0..6;
    pub const SRC: core::ops::Range<usize> = 6..12;
    pub const TYPE: core::ops::Range<usize> = 12..14;
    pub const HEADER_LEN: usize = 14;
    pub const TYPE_IPV4: u16 = 0x0800;
    pub const TYPE_ARP: u16 = 0x0806;
    /// Reverse ARP (RFC 903).
    pub const TYPE_RARP: u16 = 0x8035;
    pub const TYPE_VLAN: u16 = 0x8100;
    pub const TYPE_QINQ: u16 = 0x88a8;
    pub const TYPE_IPV6: u16 = 0x86dd;
}

pub mod ipv4 {
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: core::ops::Range<usize> = 2..4;
    pub const IDENT: core::ops::Range<usize> = 4..6;
    pub const FLAGS_FRAG: core::ops::Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTO: usize = 9;
    pub const CHECKSUM: core::ops::Range<usize> = 10..12;
    pub const SRC: core::ops::Range<usize> = 12..16;
    pub const DST: core::ops::Range<usize> = 16..20;
    pub const MIN_LEN: usize = 20;
    pub const FLAG_DF: u16 = 0x4000;
    pub const FLAG_MF: u16 = 0x2000;
    pub const FRAG_MASK: u16 = 0x1fff;
}

pub mod tcp {
    pub const SPORT: core::ops::Range<usize> = 0..2;
    pub const DPORT: core::ops::Range<usize> = 2..4;
    pub const SEQ: core::ops::Range<usize> = 4..8;
    pub const ACK: core::ops::Range<usize> = 8..12;
    pub const OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN: core::ops::Range<usize> = 14..16;
    pub const CHECKSUM: core::ops::Range<usize> = 16..18;
    pub const MIN_LEN: usize = 20;
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK_FLAG: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const OPT_END: u8 = 0;
    pub const OPT_NOP: u8 = 1;
    pub const OPT_WSCALE: u8 = 3;
}

pub mod udp {
    pub const SPORT: core::ops::Range<usize> = 0..2;
    pub const DPORT: core::ops::Range<usize> = 2..4;
    pub const LEN: core::ops::Range<usize> = 4..6;
    pub const CHECKSUM: core::ops::Range<usize> = 6..8;
    pub const LEN_MIN: usize = 8;
}

pub mod icmp {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: core::ops::Range<usize> = 2..4;
    pub const ID: core::ops::Range<usize> = 4..6;
    pub const SEQ: core::ops::Range<usize> = 6..8;
    pub const HEADER_LEN: usize = 8;
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const UNREACH_NET: u8 = 0;
    pub const UNREACH_HOST: u8 = 1;
    pub const UNREACH_PORT: u8 = 3;
    pub const UNREACH_NEEDFRAG: u8 = 4;
    pub const UNREACH_ADMIN: u8 = 13;
    /// RFC 1812 4.3.2.3: quote as much of the original as fits in 576 bytes.
    pub const MAX_QUOTE: usize = 576 - 20 - 8;
}

pub mod arp {
    pub const HTYPE: core::ops::Range<usize> = 0..2;
    pub const PTYPE: core::ops::Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: core::ops::Range<usize> = 6..8;
    pub const SHA: core::ops::Range<usize> = 8..14;
    pub const SPA: core::ops::Range<usize> = 14..18;
    pub const THA: core::ops::Range<usize> = 18..24;
    pub const TPA: core::ops::Range<usize> = 24..28;
    pub const LEN: usize = 28;
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
    /// RFC 903 "request reverse".
    pub const RARP_REQUEST_REVERSE: u16 = 3;
}

#[inline]
pub fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

#[inline]
pub fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    u32::from_be_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
}

#[inline]
pub fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
