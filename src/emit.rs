//! Frames the appliance makes itself: ARP, ICMP errors, echo replies and
//! TCP resets. Each writes into a pooled buffer.

use crate::config::Mac;
use crate::frame::FrameBuf;
use crate::pdesc::PacketDesc;
use crate::wire::{arp, be16, checksum, ether, icmp, ipv4, put16, put32, tcp};

fn eth(b: &mut [u8], dst: Mac, src: Mac, ty: u16) {
    b[ether::DST].copy_from_slice(&dst.0);
    b[ether::SRC].copy_from_slice(&src.0);
    put16(b, ether::TYPE.start, ty);
}

/// An ARP packet; `tha` zero for requests.
#[allow(clippy::too_many_arguments)]
pub fn arp_packet(buf: &mut FrameBuf, op: u16, eth_dst: Mac, sha: Mac, spa: u32, tha: Mac, tpa: u32) {
    // 60 bytes: the Ethernet minimum without FCS; the padding is zero.
    buf.reset_len(60);
    let b = buf.as_mut();
    b.fill(0);
    eth(b, eth_dst, sha, ether::TYPE_ARP);
    let a = &mut b[ether::HEADER_LEN..];
    put16(a, arp::HTYPE.start, 1);
    put16(a, arp::PTYPE.start, ether::TYPE_IPV4);
    a[arp::HLEN] = 6;
    a[arp::PLEN] = 4;
    put16(a, arp::OPER.start, op);
    a[arp::SHA].copy_from_slice(&sha.0);
    put32(a, arp::SPA.start, spa);
    a[arp::THA].copy_from_slice(&tha.0);
    put32(a, arp::TPA.start, tpa);
}

/// A RARP "request reverse" naming `mac` as sender and target, broadcast
/// with `mac` as the Ethernet source: the frame QEMU's announce-self sends
/// (net/announce.c) so that switches learn where a station now is. Hosts
/// do not answer RARP.
pub fn rarp_announce(buf: &mut FrameBuf, mac: Mac) {
    arp_packet(buf, arp::RARP_REQUEST_REVERSE, Mac::BROADCAST, mac, 0, mac, 0);
    put16(buf.as_mut(), ether::TYPE.start, ether::TYPE_RARP);
}

fn ipv4_header(b: &mut [u8], total: usize, proto: u8, src: u32, dst: u32, tos: u8) {
    b[..20].fill(0);
    b[ipv4::VER_IHL] = 0x45;
    b[1] = tos;
    put16(b, ipv4::TOTAL_LEN.start, total as u16);
    b[ipv4::TTL] = 64;
    b[ipv4::PROTO] = proto;
    put32(b, ipv4::SRC.start, src);
    put32(b, ipv4::DST.start, dst);
    let c = checksum::checksum(&b[..20]);
    put16(b, ipv4::CHECKSUM.start, c);
}

/// An ICMP error about the packet `orig` (a whole frame, described by `d`,
/// before any rewrite), sent from `src_ip`/`src_mac` back to the sender's
/// MAC. `extra` fills the second header word (next-hop MTU for needfrag).
#[allow(clippy::too_many_arguments)]
pub fn icmp_error(
    buf: &mut FrameBuf,
    orig: &[u8],
    d: &PacketDesc,
    src_mac: Mac,
    src_ip: u32,
    ty: u8,
    code: u8,
    extra: u32,
) {
    let quote = &orig[d.l3..d.l3 + d.ip_len.min(icmp::MAX_QUOTE)];
    let total = 20 + icmp::HEADER_LEN + quote.len();
    buf.reset_len(ether::HEADER_LEN + total);
    let b = buf.as_mut();
    let mut sender = Mac::ZERO;
    sender.0.copy_from_slice(&orig[ether::SRC]);
    eth(b, sender, src_mac, ether::TYPE_IPV4);
    // Internetwork control precedence, as routers send errors (RFC 1812 4.3.2.5).
    ipv4_header(&mut b[ether::HEADER_LEN..], total, 1, src_ip, d.key.src, 0xc0);
    let m = &mut b[ether::HEADER_LEN + 20..];
    m[icmp::TYPE] = ty;
    m[icmp::CODE] = code;
    put16(m, icmp::CHECKSUM.start, 0);
    put32(m, 4, extra);
    m[icmp::HEADER_LEN..].copy_from_slice(quote);
    let c = checksum::checksum(m);
    put16(m, icmp::CHECKSUM.start, c);
}

/// Turn an echo request addressed to us into its reply, in place.
pub fn echo_reply_in_place(buf: &mut FrameBuf, d: &PacketDesc, our_mac: Mac) {
    buf.truncate(d.l3 + d.ip_len);
    let b = buf.as_mut();
    let (dst, src) = b[..12].split_at_mut(6);
    dst.copy_from_slice(src);
    b[ether::SRC].copy_from_slice(&our_mac.0);
    let ip = &mut b[d.l3..];
    let (s, t) = (be16(ip, 12..14), be16(ip, 14..16));
    let (u, v) = (be16(ip, 16..18), be16(ip, 18..20));
    put16(ip, 12, u);
    put16(ip, 14, v);
    put16(ip, 16, s);
    put16(ip, 18, t);
    let old = u16::from_be_bytes([ip[ipv4::TTL], ip[ipv4::PROTO]]);
    ip[ipv4::TTL] = 64;
    let c = checksum::update16(be16(ip, ipv4::CHECKSUM), old, u16::from_be_bytes([64, ip[ipv4::PROTO]]));
    put16(ip, ipv4::CHECKSUM.start, c);
    let m = &mut b[d.l4..];
    let old = u16::from_be_bytes([m[icmp::TYPE], m[icmp::CODE]]);
    m[icmp::TYPE] = icmp::ECHO_REPLY;
    let c = checksum::update16(be16(m, icmp::CHECKSUM), old, u16::from_be_bytes([icmp::ECHO_REPLY, m[icmp::CODE]]));
    put16(m, icmp::CHECKSUM.start, c);
}

/// A TCP reset answering the segment `orig` (RFC 793 "Reset Generation"),
/// as if from its destination.
pub fn tcp_reset(buf: &mut FrameBuf, orig: &[u8], d: &PacketDesc, our_mac: Mac) {
    let total = 40;
    buf.reset_len(ether::HEADER_LEN + total);
    let b = buf.as_mut();
    let mut sender = Mac::ZERO;
    sender.0.copy_from_slice(&orig[ether::SRC]);
    eth(b, sender, our_mac, ether::TYPE_IPV4);
    ipv4_header(&mut b[ether::HEADER_LEN..], total, 6, d.key.dst, d.key.src, 0);
    let t = &mut b[ether::HEADER_LEN + 20..];
    t.fill(0);
    put16(t, tcp::SPORT.start, d.key.dport);
    put16(t, tcp::DPORT.start, d.key.sport);
    if d.tcp.flags & tcp::ACK_FLAG != 0 {
        put32(t, tcp::SEQ.start, d.tcp.ack);
        t[tcp::FLAGS] = tcp::RST;
    } else {
        let mut len = d.tcp.payload;
        if d.tcp.flags & tcp::SYN != 0 {
            len += 1;
        }
        if d.tcp.flags & tcp::FIN != 0 {
            len += 1;
        }
        put32(t, tcp::ACK.start, d.tcp.seq.wrapping_add(len));
        t[tcp::FLAGS] = tcp::RST | tcp::ACK_FLAG;
    }
    t[tcp::OFF] = 5 << 4;
    let sum = checksum::pseudo_v4(d.key.dst.to_be_bytes(), d.key.src.to_be_bytes(), 6, 20);
    let c = checksum::finish(checksum::sum(t, sum));
    put16(t, tcp::CHECKSUM.start, c);
}
