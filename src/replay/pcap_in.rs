//! Reading captures: classic pcap (microsecond or nanosecond magic, either
//! byte order) and pcapng, told apart by the magic number, never by the file
//! name. Every packet becomes an Ethernet frame and an [`Instant`] in
//! microseconds since the Unix epoch.
//!
//! Link types:
//! * Ethernet (1): as captured.
//! * Linux cooked SLL (113) and SLL2 (276), BSD loopback NULL (0) and LOOP
//!   (108), raw IP (101, and the historical 12 and 14, plus 228/229): the
//!   link header is replaced by a synthesized Ethernet header whose
//!   destination is the receiving interface's MAC and whose source is
//!   [`SYNTH_SRC_MAC`]; the ethertype comes from the link header (SLL), the
//!   address family (NULL/LOOP) or the IP version nibble (RAW).
//!
//! A frame the appliance would find malformed is still returned as is (a bad
//! packet is the appliance's business, not the reader's). Only what stops us
//! from producing a frame at all is an error: a cut-short file, a link header
//! shorter than its fixed size, an unknown link type.

use std::borrow::Cow;
use std::path::Path;

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{Endianness, PcapError, TsResolution};

use super::ReplayError;
use crate::config::Mac;
use crate::time::Instant;

/// Source MAC of the Ethernet header put in front of non-Ethernet captures
/// (locally administered, so it never collides with a real vendor MAC).
pub const SYNTH_SRC_MAC: Mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0xfe]);

/// tcpdump.org link-layer header type numbers.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// DLT_RAW on most BSDs.
    pub const RAW_BSD: u32 = 12;
    /// DLT_RAW on OpenBSD.
    pub const RAW_OPENBSD: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;

    pub fn is_supported(lt: u32) -> bool {
        matches!(lt, NULL | ETHERNET | RAW_BSD | RAW_OPENBSD | RAW | LOOP | LINUX_SLL | IPV4 | IPV6 | LINUX_SLL2)
    }
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Which container the file was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap { nanosecond: bool, big_endian: bool },
    PcapNg,
}

/// One packet, already turned into an Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// 1-based, counting packets only (as Wireshark numbers them).
    pub number: usize,
    /// As recorded: may go backwards; [`super::run`] clamps it.
    pub time: Instant,
    pub frame: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Capture {
    pub format: Format,
    /// Link types seen, in order of first appearance.
    pub link_types: Vec<u32>,
    pub packets: Vec<Packet>,
}

/// Read `path`; non-Ethernet packets get a header addressed to `rx_mac`.
pub fn read_file(path: &Path, rx_mac: Mac) -> Result<Capture, ReplayError> {
    let bytes = std::fs::read(path).map_err(|source| ReplayError::Io { path: path.to_owned(), source })?;
    read_bytes(&bytes, path, rx_mac)
}

/// Like [`read_file`] on bytes already in memory; `path` is for messages.
pub fn read_bytes(bytes: &[u8], path: &Path, rx_mac: Mac) -> Result<Capture, ReplayError> {
    if bytes.len() < 4 {
        return Err(ReplayError::BadHeader { path: path.to_owned(), why: format!("only {} bytes long", bytes.len()) });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1 => read_pcap(bytes, path, rx_mac),
        0x0a0d_0d0a => read_pcapng(bytes, path, rx_mac),
        _ => Err(ReplayError::NotACapture { path: path.to_owned(), magic }),
    }
}

fn read_pcap(bytes: &[u8], path: &Path, rx_mac: Mac) -> Result<Capture, ReplayError> {
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| header_error(path, e))?;
    let h = parser.header();
    let nanosecond = h.ts_resolution == TsResolution::NanoSecond;
    let format = Format::Pcap { nanosecond, big_endian: h.endianness == Endianness::Big };
    let lt = u32::from(h.datalink);
    let mut packets = Vec::new();
    while !rest.is_empty() {
        let number = packets.len() + 1;
        let (rem, raw) = parser.next_raw_packet(rest).map_err(|e| packet_error(path, number, e))?;
        rest = rem;
        let frac = if nanosecond { raw.ts_frac as u64 / 1000 } else { raw.ts_frac as u64 };
        let time = Instant(raw.ts_sec as u64 * 1_000_000 + frac);
        let frame = to_ethernet(lt, &raw.data, rx_mac, path, number)?;
        packets.push(Packet { number, time, frame });
    }
    Ok(Capture { format, link_types: vec![lt], packets })
}

/// What we keep of an Interface Description Block.
struct NgIface {
    linktype: u32,
    /// Microseconds = raw * num / den.
    num: u128,
    den: u128,
    offset_us: i128,
}

impl NgIface {
    fn from_idb(idb: &InterfaceDescriptionBlock) -> NgIface {
        let mut tsresol = 6u8;
        let mut offset_s: i64 = 0;
        for opt in &idb.options {
            match opt {
                InterfaceDescriptionOption::IfTsResol(r) => tsresol = *r,
                InterfaceDescriptionOption::IfTsOffset(o) => offset_s = *o as i64,
                _ => {}
            }
        }
        // The top bit picks a power of two, else a power of ten (pcapng spec,
        // section 4.2, if_tsresol). Exponents past 2^-63 / 10^-19 are nonsense.
        let exp = (tsresol & 0x7f).min(if tsresol & 0x80 != 0 { 63 } else { 19 }) as u32;
        let den = if tsresol & 0x80 != 0 { 1u128 << exp } else { 10u128.pow(exp) };
        NgIface { linktype: u32::from(idb.linktype), num: 1_000_000, den, offset_us: offset_s as i128 * 1_000_000 }
    }

    fn micros(&self, raw: u64) -> Instant {
        let us = (raw as u128 * self.num / self.den) as i128 + self.offset_us;
        Instant(us.clamp(0, u64::MAX as i128) as u64)
    }
}

fn read_pcapng(bytes: &[u8], path: &Path, rx_mac: Mac) -> Result<Capture, ReplayError> {
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| header_error(path, e))?;
    let mut packets: Vec<Packet> = Vec::new();
    let mut link_types = Vec::new();
    while !rest.is_empty() {
        let number = packets.len() + 1;
        let (rem, block) = parser.next_block(rest).map_err(|e| packet_error(path, number, e))?;
        rest = rem;
        let (iface_id, ts, data): (u32, Option<u64>, Cow<[u8]>) = match block {
            Block::EnhancedPacket(EnhancedPacketBlock { interface_id, timestamp, data, .. }) => {
                // pcap-file 2.0 stores the raw count of if_tsresol units as if
                // they were nanoseconds; take the raw count back out.
                (interface_id, Some(timestamp.as_nanos() as u64), data)
            }
            Block::Packet(p) => (p.interface_id as u32, Some(p.timestamp), p.data),
            // A simple packet block has no timestamp: it keeps the previous one.
            Block::SimplePacket(p) => (0, None, p.data),
            _ => continue,
        };
        let idb = parser.interfaces().get(iface_id as usize).ok_or_else(|| ReplayError::BadPacket {
            path: path.to_owned(),
            packet: number,
            why: format!("names interface {iface_id}, which no interface description block declared"),
        })?;
        let iface = NgIface::from_idb(idb);
        if !link_types.contains(&iface.linktype) {
            link_types.push(iface.linktype);
        }
        let time = match ts {
            Some(raw) => iface.micros(raw),
            None => packets.last().map(|p| p.time).unwrap_or_default(),
        };
        let frame = to_ethernet(iface.linktype, &data, rx_mac, path, number)?;
        packets.push(Packet { number, time, frame });
    }
    Ok(Capture { format: Format::PcapNg, link_types, packets })
}

fn header_error(path: &Path, e: PcapError) -> ReplayError {
    let why = match e {
        PcapError::IncompleteBuffer => "the file ends inside it".to_string(),
        e => e.to_string(),
    };
    ReplayError::BadHeader { path: path.to_owned(), why }
}

fn packet_error(path: &Path, packet: usize, e: PcapError) -> ReplayError {
    let why = match e {
        PcapError::IncompleteBuffer => "the file ends inside this packet (cut-short capture)".to_string(),
        e => e.to_string(),
    };
    ReplayError::BadPacket { path: path.to_owned(), packet, why }
}

/// Turn one captured packet of link type `lt` into an Ethernet frame.
pub fn to_ethernet(lt: u32, data: &[u8], rx_mac: Mac, path: &Path, packet: usize) -> Result<Vec<u8>, ReplayError> {
    let short = |what: &str, need: usize| ReplayError::BadPacket {
        path: path.to_owned(),
        packet,
        why: format!("{} bytes is too short for a {what} header ({need} bytes)", data.len()),
    };
    let (ethertype, payload) = match lt {
        linktype::ETHERNET => return Ok(data.to_vec()),
        linktype::LINUX_SLL => {
            // packet type, ARPHRD, address length, 8 address bytes, protocol.
            if data.len() < 16 {
                return Err(short("Linux SLL", 16));
            }
            (u16::from_be_bytes([data[14], data[15]]), &data[16..])
        }
        linktype::LINUX_SLL2 => {
            // protocol, reserved, ifindex, ARPHRD, packet type, address length, 8 address bytes.
            if data.len() < 20 {
                return Err(short("Linux SLL2", 20));
            }
            (u16::from_be_bytes([data[0], data[1]]), &data[20..])
        }
        linktype::NULL | linktype::LOOP => {
            if data.len() < 4 {
                return Err(short("loopback", 4));
            }
            let af_be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            let af_le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            // DLT_NULL is in the capturing host's byte order, LOOP in network
            // order; the AF values never read the same both ways, so try both.
            let et = match (af_family(af_be), af_family(af_le)) {
                (Some(et), _) | (None, Some(et)) => et,
                (None, None) => ip_version_ethertype(&data[4..]).ok_or_else(|| ReplayError::BadPacket {
                    path: path.to_owned(),
                    packet,
                    why: format!("loopback address family {af_be:#010x} is neither AF_INET nor AF_INET6"),
                })?,
            };
            (et, &data[4..])
        }
        linktype::RAW | linktype::RAW_BSD | linktype::RAW_OPENBSD | linktype::IPV4 | linktype::IPV6 => {
            let et = ip_version_ethertype(data).ok_or_else(|| ReplayError::BadPacket {
                path: path.to_owned(),
                packet,
                why: "raw IP packet is neither IPv4 nor IPv6 (version nibble)".to_string(),
            })?;
            (et, data)
        }
        other => return Err(ReplayError::UnsupportedLinkType { path: path.to_owned(), packet, linktype: other }),
    };
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&rx_mac.0);
    frame.extend_from_slice(&SYNTH_SRC_MAC.0);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD), 28 (FreeBSD),
/// 30 (macOS).
fn af_family(af: u32) -> Option<u16> {
    match af {
        2 => Some(ETHERTYPE_IPV4),
        24 | 28 | 30 => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}

fn ip_version_ethertype(ip: &[u8]) -> Option<u16> {
    match ip.first().map(|b| b >> 4) {
        Some(4) => Some(ETHERTYPE_IPV4),
        Some(6) => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}
