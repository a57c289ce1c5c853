//! The packet descriptor (pf's `pf_pdesc`): an IPv4 packet is parsed once
//! into offsets and a tuple; later stages read the descriptor and edit the
//! frame in place through it.

use crate::conntrack::key::KeyV4;
use crate::drop::DropReason;
use crate::wire::{be16, be32, checksum, icmp, ipv4, put16, put32, tcp, udp};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub flags: u8,
    /// Payload bytes carried in this frame.
    pub payload: u32,
    /// Window scale option, on SYN segments only.
    pub wscale: Option<u8>,
}

/// What an ICMP message is, for tracking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpKind {
    Echo,
    /// An error quoting another packet, whose descriptor starts at the
    /// quoted IP header.
    Error,
    Other,
}

/// The quoted packet inside an ICMP error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inner {
    /// Frame offset of the quoted IPv4 header.
    pub l3: usize,
    pub l4: usize,
    /// Bytes of the quoted L4 header present in the frame.
    pub l4_avail: usize,
    pub icmp_type: u8,
    pub key: KeyV4,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PacketDesc {
    pub l3: usize,
    pub l4: usize,
    /// IPv4 total length; the frame may carry Ethernet padding beyond it.
    pub ip_len: usize,
    pub ttl: u8,
    pub ident: u16,
    pub df: bool,
    /// Fragment offset in bytes; non-zero means no L4 header here.
    pub frag_off: u32,
    pub more_frags: bool,
    /// Tuple as on the wire. For ICMP echo, the identifier is the source
    /// "port" of a request and the destination "port" of a reply, so a reply
    /// reverses its request's key.
    pub key: KeyV4,
    pub tcp: TcpInfo,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp: Option<IcmpKind>,
    pub inner: Option<Inner>,
    /// The TCP/UDP checksum field holds a partial (pseudo-header) sum that
    /// the egress device completes: set by the caller from the frame's
    /// [`Offload`](crate::frame::Offload), never by `parse`.
    pub l4_csum_partial: bool,
}

impl PacketDesc {
    pub fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_off != 0
    }
    pub fn is_later_fragment(&self) -> bool {
        self.frag_off != 0
    }
}

/// Parse the IPv4 packet at `l3` in `f`. Every offset in the result is
/// within `f`.
pub fn parse(f: &[u8], l3: usize) -> Result<PacketDesc, DropReason> {
    let ip = f.get(l3..).ok_or(DropReason::Ipv4Malformed)?;
    if ip.len() < ipv4::MIN_LEN || ip[ipv4::VER_IHL] >> 4 != 4 {
        return Err(DropReason::Ipv4Malformed);
    }
    let ihl = ((ip[ipv4::VER_IHL] & 0xf) as usize) * 4;
    let total = be16(ip, ipv4::TOTAL_LEN) as usize;
    if ihl < ipv4::MIN_LEN || total < ihl || total > ip.len() {
        return Err(DropReason::Ipv4Malformed);
    }
    if !cfg!(fuzzing) && checksum::checksum(&ip[..ihl]) != 0 {
        return Err(DropReason::Ipv4BadChecksum);
    }
    let ff = be16(ip, ipv4::FLAGS_FRAG);
    let mut d = PacketDesc {
        l3,
        l4: l3 + ihl,
        ip_len: total,
        ttl: ip[ipv4::TTL],
        ident: be16(ip, ipv4::IDENT),
        df: ff & ipv4::FLAG_DF != 0,
        frag_off: ((ff & ipv4::FRAG_MASK) as u32) * 8,
        more_frags: ff & ipv4::FLAG_MF != 0,
        key: KeyV4 { src: be32(ip, ipv4::SRC), dst: be32(ip, ipv4::DST), sport: 0, dport: 0, proto: ip[ipv4::PROTO] },
        ..Default::default()
    };
    if d.frag_off != 0 {
        return Ok(d);
    }
    let l4 = &f[d.l4..l3 + total];
    match d.key.proto {
        crate::config::types::proto::TCP => {
            if l4.len() < tcp::MIN_LEN {
                return Err(DropReason::L4Malformed);
            }
            let off = ((l4[tcp::OFF] >> 4) as usize) * 4;
            if off < tcp::MIN_LEN || off > l4.len() {
                return Err(DropReason::L4Malformed);
            }
            d.key.sport = be16(l4, tcp::SPORT);
            d.key.dport = be16(l4, tcp::DPORT);
            let flags = l4[tcp::FLAGS];
            d.tcp = TcpInfo {
                seq: be32(l4, tcp::SEQ),
                ack: be32(l4, tcp::ACK),
                win: be16(l4, tcp::WIN),
                flags,
                payload: (l4.len() - off) as u32,
                wscale: if flags & tcp::SYN != 0 { wscale_option(&l4[tcp::MIN_LEN..off]) } else { None },
            };
        }
        crate::config::types::proto::UDP => {
            if l4.len() < udp::LEN_MIN {
                return Err(DropReason::L4Malformed);
            }
            let ulen = be16(l4, udp::LEN) as usize;
            // A first fragment carries less than the UDP length says.
            if ulen < udp::LEN_MIN || (!d.more_frags && ulen > l4.len()) {
                return Err(DropReason::L4Malformed);
            }
            d.key.sport = be16(l4, udp::SPORT);
            d.key.dport = be16(l4, udp::DPORT);
        }
        crate::config::types::proto::ICMP => {
            if l4.len() < icmp::HEADER_LEN {
                return Err(DropReason::L4Malformed);
            }
            d.icmp_type = l4[icmp::TYPE];
            d.icmp_code = l4[icmp::CODE];
            match d.icmp_type {
                icmp::ECHO_REQUEST => {
                    d.icmp = Some(IcmpKind::Echo);
                    d.key.sport = be16(l4, icmp::ID);
                }
                icmp::ECHO_REPLY => {
                    d.icmp = Some(IcmpKind::Echo);
                    d.key.dport = be16(l4, icmp::ID);
                }
                icmp::DEST_UNREACH | icmp::TIME_EXCEEDED | icmp::PARAM_PROBLEM | icmp::SOURCE_QUENCH => {
                    d.icmp = Some(IcmpKind::Error);
                    d.inner = Some(parse_inner(f, d.l4 + icmp::HEADER_LEN, l3 + total)?);
                }
                _ => d.icmp = Some(IcmpKind::Other),
            }
        }
        _ => {}
    }
    Ok(d)
}

/// The quoted packet of an ICMP error: an IPv4 header and at least the
/// eight bytes that hold ports (RFC 792).
fn parse_inner(f: &[u8], at: usize, end: usize) -> Result<Inner, DropReason> {
    let ip = f.get(at..end).ok_or(DropReason::L4Malformed)?;
    if ip.len() < ipv4::MIN_LEN || ip[ipv4::VER_IHL] >> 4 != 4 {
        return Err(DropReason::L4Malformed);
    }
    let ihl = ((ip[ipv4::VER_IHL] & 0xf) as usize) * 4;
    if ihl < ipv4::MIN_LEN || ip.len() < ihl + 8 {
        return Err(DropReason::L4Malformed);
    }
    let l4 = &ip[ihl..];
    let proto = ip[ipv4::PROTO];
    let mut key = KeyV4 { src: be32(ip, ipv4::SRC), dst: be32(ip, ipv4::DST), sport: 0, dport: 0, proto };
    let mut icmp_type = 0;
    match proto {
        crate::config::types::proto::TCP | crate::config::types::proto::UDP => {
            key.sport = be16(l4, 0..2);
            key.dport = be16(l4, 2..4);
        }
        crate::config::types::proto::ICMP => {
            icmp_type = l4[icmp::TYPE];
            match icmp_type {
                icmp::ECHO_REQUEST => key.sport = be16(l4, icmp::ID),
                icmp::ECHO_REPLY => key.dport = be16(l4, icmp::ID),
                // No error is sent about an error (RFC 1122 3.2.2).
                _ => return Err(DropReason::IcmpUnsupported),
            }
        }
        _ => {}
    }
    Ok(Inner { l3: at, l4: at + ihl, l4_avail: l4.len(), icmp_type, key })
}

fn wscale_option(mut opts: &[u8]) -> Option<u8> {
    while let Some(&kind) = opts.first() {
        match kind {
            tcp::OPT_END => return None,
            tcp::OPT_NOP => opts = &opts[1..],
            _ => {
                let len = *opts.get(1)? as usize;
                if len < 2 || len > opts.len() {
                    return None;
                }
                if kind == tcp::OPT_WSCALE && len == 3 {
                    // RFC 7323 2.3: shift counts above 14 are treated as 14.
                    return Some(opts[2].min(14));
                }
                opts = &opts[len..];
            }
        }
    }
    None
}

/// Decrement TTL in place, fixing the header checksum (RFC 1624).
pub fn decrement_ttl(f: &mut [u8], d: &mut PacketDesc) {
    let ip = &mut f[d.l3..];
    let old = u16::from_be_bytes([ip[ipv4::TTL], ip[ipv4::PROTO]]);
    ip[ipv4::TTL] -= 1;
    d.ttl -= 1;
    let new = u16::from_be_bytes([ip[ipv4::TTL], ip[ipv4::PROTO]]);
    let c = checksum::update16(be16(ip, ipv4::CHECKSUM), old, new);
    put16(ip, ipv4::CHECKSUM.start, c);
}

/// Where the L4 checksum of a first fragment or whole packet sits, and
/// whether it covers the pseudo-header.
fn l4_checksum_at(proto: u8, l4: usize, f: &[u8], partial: bool) -> Option<(usize, bool)> {
    match proto {
        crate::config::types::proto::TCP => Some((l4 + tcp::CHECKSUM.start, true)),
        // UDP checksum zero means "none" and must stay so; a partial sum
        // of zero is a sum like any other.
        crate::config::types::proto::UDP => {
            let at = l4 + udp::CHECKSUM.start;
            (partial || be16(f, at..at + 2) != 0).then_some((at, true))
        }
        crate::config::types::proto::ICMP => Some((l4 + icmp::CHECKSUM.start, false)),
        _ => None,
    }
}

/// Rewrite the packet's tuple to `to` in place: addresses with the IP
/// checksum, ports (or the ICMP identifier) with the L4 checksum, all
/// incrementally. Later fragments get their addresses only. With
/// `d.l4_csum_partial` the L4 field is a partial sum: addresses move it
/// (they are in the pseudo-header), ports do not (the sender sums them).
pub fn rewrite(f: &mut [u8], d: &mut PacketDesc, to: &KeyV4) {
    let from = d.key;
    if from == *to {
        return;
    }
    let l3 = d.l3;
    let l4 = d.l4;
    let has_l4 = d.frag_off == 0;
    let partial = d.l4_csum_partial && has_l4;
    let l4c = if has_l4 { l4_checksum_at(from.proto, l4, f, partial) } else { None };
    let mut ipc = be16(f, l3 + ipv4::CHECKSUM.start..l3 + ipv4::CHECKSUM.end);
    let mut l4sum = l4c.map(|(at, _)| be16(f, at..at + 2));
    for (range, old, new) in [(ipv4::SRC, from.src, to.src), (ipv4::DST, from.dst, to.dst)] {
        if old != new {
            put32(f, l3 + range.start, new);
            ipc = checksum::update32(ipc, old, new);
            if let (Some(s), Some((_, true))) = (l4sum.as_mut(), l4c) {
                *s = if partial { checksum::update_partial32(*s, old, new) } else { checksum::update32(*s, old, new) };
            }
        }
    }
    put16(f, l3 + ipv4::CHECKSUM.start, ipc);
    if has_l4 {
        match from.proto {
            crate::config::types::proto::TCP | crate::config::types::proto::UDP => {
                for (at, old, new) in [(l4, from.sport, to.sport), (l4 + 2, from.dport, to.dport)] {
                    if old != new {
                        put16(f, at, new);
                        if let Some(s) = l4sum.as_mut().filter(|_| !partial) {
                            *s = checksum::update16(*s, old, new);
                        }
                    }
                }
            }
            crate::config::types::proto::ICMP if d.icmp == Some(IcmpKind::Echo) => {
                let (old, new) =
                    if d.icmp_type == icmp::ECHO_REQUEST { (from.sport, to.sport) } else { (from.dport, to.dport) };
                if old != new {
                    put16(f, l4 + icmp::ID.start, new);
                    if let Some(s) = l4sum.as_mut() {
                        *s = checksum::update16(*s, old, new);
                    }
                }
            }
            _ => {}
        }
        if let (Some((at, _)), Some(s)) = (l4c, l4sum) {
            // A UDP checksum that computes to zero is sent as all ones.
            let s = if s == 0 && !partial && from.proto == crate::config::types::proto::UDP { 0xffff } else { s };
            put16(f, at, s);
        }
    }
    d.key = *to;
}

/// Rewrite the quoted packet of an ICMP error to `to` (the quoted tuple as
/// it must appear after translation) and fix the outer ICMP checksum by
/// recomputing it: errors are rare and their quotes may be truncated, so
/// a full sum is simplest to get right.
pub fn rewrite_inner(f: &mut [u8], d: &mut PacketDesc, to: &KeyV4) {
    let Some(inner) = d.inner else { return };
    let from = inner.key;
    if from != *to {
        let mut ipc = be16(f, inner.l3 + ipv4::CHECKSUM.start..inner.l3 + ipv4::CHECKSUM.end);
        // The quoted L4 checksum is fixed only when the quote holds it.
        let l4c = match from.proto {
            crate::config::types::proto::TCP if inner.l4_avail >= tcp::CHECKSUM.end => {
                Some(inner.l4 + tcp::CHECKSUM.start)
            }
            crate::config::types::proto::UDP => {
                let at = inner.l4 + udp::CHECKSUM.start;
                (be16(f, at..at + 2) != 0).then_some(at)
            }
            _ => None,
        };
        let mut l4sum = l4c.map(|at| be16(f, at..at + 2));
        for (range, old, new) in [(ipv4::SRC, from.src, to.src), (ipv4::DST, from.dst, to.dst)] {
            if old != new {
                put32(f, inner.l3 + range.start, new);
                ipc = checksum::update32(ipc, old, new);
                if let Some(s) = l4sum.as_mut() {
                    *s = checksum::update32(*s, old, new);
                }
            }
        }
        put16(f, inner.l3 + ipv4::CHECKSUM.start, ipc);
        match from.proto {
            crate::config::types::proto::TCP | crate::config::types::proto::UDP => {
                for (at, old, new) in [(inner.l4, from.sport, to.sport), (inner.l4 + 2, from.dport, to.dport)] {
                    if old != new {
                        put16(f, at, new);
                        if let Some(s) = l4sum.as_mut() {
                            *s = checksum::update16(*s, old, new);
                        }
                    }
                }
            }
            crate::config::types::proto::ICMP => {
                let (old, new) =
                    if inner.icmp_type == icmp::ECHO_REQUEST { (from.sport, to.sport) } else { (from.dport, to.dport) };
                put16(f, inner.l4 + icmp::ID.start, new);
                // The quoted echo's own checksum, when quoted in full.
                if inner.l4_avail >= icmp::HEADER_LEN && old != new {
                    let at = inner.l4 + icmp::CHECKSUM.start;
                    let c = checksum::update16(be16(f, at..at + 2), old, new);
                    put16(f, at, c);
                }
            }
            _ => {}
        }
        if let (Some(at), Some(s)) = (l4c, l4sum) {
            put16(f, at, s);
        }
        d.inner = Some(Inner { key: *to, ..inner });
    }
    let end = d.l3 + d.ip_len;
    put16(f, d.l4 + icmp::CHECKSUM.start, 0);
    let c = checksum::checksum(&f[d.l4..end]);
    put16(f, d.l4 + icmp::CHECKSUM.start, c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp_frame() -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 1, 10], [2, 0, 0x5e, 0x10, 0, 1])
            .ipv4([192, 168, 10, 10], [8, 8, 8, 8], 64)
            .udp(40000, 53);
        let mut v = Vec::new();
        b.write(&mut v, b"hello").unwrap();
        v
    }

    fn verify(frame: &[u8]) {
        let s = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = s.net else { panic!() };
        let h = ip.header().to_header();
        assert_eq!(h.calc_header_checksum(), h.header_checksum, "ip checksum");
        match s.transport {
            Some(etherparse::TransportSlice::Udp(u)) => {
                let c = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                assert_eq!(c, u.checksum(), "udp checksum");
            }
            Some(etherparse::TransportSlice::Tcp(t)) => {
                let c = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
                assert_eq!(c, t.checksum(), "tcp checksum");
            }
            Some(etherparse::TransportSlice::Icmpv4(i)) => {
                assert_eq!(crate::wire::checksum::checksum(i.slice()), 0, "icmp checksum");
            }
            _ => {}
        }
    }

    #[test]
    fn parses_udp_and_rewrites_with_valid_checksums() {
        let mut f = udp_frame();
        let mut d = parse(&f, 14).unwrap();
        assert_eq!(d.key.sport, 40000);
        assert_eq!(d.key.dport, 53);
        assert_eq!(d.key.proto, 17);
        let to = KeyV4 { src: u32::from_be_bytes([203, 0, 113, 1]), sport: 1025, ..d.key };
        rewrite(&mut f, &mut d, &to);
        decrement_ttl(&mut f, &mut d);
        verify(&f);
        let d2 = parse(&f, 14).unwrap();
        assert_eq!(d2.key, to);
        assert_eq!(d2.ttl, 63);
    }

    #[test]
    fn tcp_syn_with_wscale_and_rewrite() {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 1, 1], 64)
            .tcp(1234, 80, 1000, 64240)
            .syn()
            .options(&[etherparse::TcpOptionElement::Noop, etherparse::TcpOptionElement::WindowScale(7)])
            .unwrap();
        let mut f = Vec::new();
        b.write(&mut f, &[]).unwrap();
        let mut d = parse(&f, 14).unwrap();
        assert_eq!(d.tcp.wscale, Some(7));
        assert_eq!(d.tcp.seq, 1000);
        assert_eq!(d.tcp.flags, tcp::SYN);
        let to = KeyV4 { dst: 0x0a000202, dport: 8080, ..d.key };
        rewrite(&mut f, &mut d, &to);
        verify(&f);
    }

    #[test]
    fn icmp_echo_ids_and_rewrite() {
        let b =
            PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([10, 0, 0, 1], [10, 0, 1, 1], 64).icmpv4_echo_request(77, 1);
        let mut f = Vec::new();
        b.write(&mut f, b"ping").unwrap();
        let mut d = parse(&f, 14).unwrap();
        assert_eq!((d.key.sport, d.key.dport), (77, 0));
        let to = KeyV4 { src: 0x01020304, sport: 5000, ..d.key };
        rewrite(&mut f, &mut d, &to);
        verify(&f);
        assert_eq!(parse(&f, 14).unwrap().key.sport, 5000);
    }

    #[test]
    fn rejects_bad_headers() {
        let mut f = udp_frame();
        f[14 + 10] ^= 1;
        assert_eq!(parse(&f, 14).unwrap_err(), DropReason::Ipv4BadChecksum);
        let f = udp_frame();
        assert_eq!(parse(&f[..30], 14).unwrap_err(), DropReason::Ipv4Malformed);
        let mut f = udp_frame();
        f[14] = 0x65;
        assert_eq!(parse(&f, 14).unwrap_err(), DropReason::Ipv4Malformed);
    }

    #[test]
    fn later_fragment_has_no_ports() {
        let mut f = udp_frame();
        f[14 + 6] = 0x00;
        f[14 + 7] = 0x10; // offset 16*8
        put16(&mut f, 14 + 10, 0);
        let c = checksum::checksum(&f[14..34]);
        put16(&mut f, 14 + 10, c);
        let d = parse(&f, 14).unwrap();
        assert!(d.is_later_fragment());
        assert_eq!(d.key.sport, 0);
    }

    /// `f` with its L4 checksum replaced by the partial sum Linux leaves for
    /// the device (CHECKSUM_PARTIAL): the pseudo-header sum, not complemented.
    fn make_partial(f: &mut [u8], d: &PacketDesc) -> usize {
        let at = d.l4 + if d.key.proto == 6 { tcp::CHECKSUM.start } else { udp::CHECKSUM.start };
        let l4_len = (d.l3 + d.ip_len - d.l4) as u16;
        let p = !checksum::finish(checksum::pseudo_v4(
            d.key.src.to_be_bytes(),
            d.key.dst.to_be_bytes(),
            d.key.proto,
            l4_len,
        ));
        put16(f, at, p);
        at
    }

    #[test]
    fn nat_on_a_partial_checksum_completes_to_the_full_checksum() {
        let tcp_frame = {
            let b = PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4([192, 168, 10, 10], [93, 184, 216, 34], 64)
                .tcp(40000, 443, 7, 64240);
            let mut v = Vec::new();
            b.write(&mut v, &(0..1400u32).map(|i| (i * 7) as u8).collect::<Vec<_>>()).unwrap();
            v
        };
        for (frame, to_src, to_sport, to_dst, to_dport) in [
            (udp_frame(), [203, 0, 113, 1], 1025, [8, 8, 8, 8], 53),
            (tcp_frame.clone(), [203, 0, 113, 1], 61000, [93, 184, 216, 34], 443),
            // Destination NAT: the other address and port.
            (tcp_frame, [192, 168, 10, 10], 40000, [172, 16, 20, 10], 80),
        ] {
            let mut f = frame;
            let mut d = parse(&f, 14).unwrap();
            let at = make_partial(&mut f, &d);
            d.l4_csum_partial = true;
            let to = KeyV4 {
                src: u32::from_be_bytes(to_src),
                sport: to_sport,
                dst: u32::from_be_bytes(to_dst),
                dport: to_dport,
                ..d.key
            };
            rewrite(&mut f, &mut d, &to);
            decrement_ttl(&mut f, &mut d);
            // What the device does: sum from the L4 header, field included.
            let c = checksum::complete(&f[d.l4..d.l3 + d.ip_len]);
            put16(&mut f, at, c);
            verify(&f);
            assert_eq!(parse(&f, 14).unwrap().key, to);
        }
    }
}
