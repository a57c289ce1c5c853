//! One-line, deterministic decodes of Ethernet frames for expected-output
//! files, in the spirit of `tcpdump -nn -e`:
//!
//! ```text
//! 02:00:00:00:01:0a>ff:ff:ff:ff:ff:ff arp who-has 192.168.10.1 tell 192.168.10.10
//! 02:00:5e:10:00:02>02:00:00:00:01:fe 203.0.113.1:40000 > 198.51.100.53:53 udp len 12 ttl 63
//! 02:00:5e:10:00:01>02:00:00:00:01:0a icmp 192.168.10.1 > 192.168.10.10 time-exceeded [192.168.10.10:40000 > 198.51.100.53:53 udp] ttl 64
//! ```
//!
//! Checksums are verified, because the appliance edits headers in place and
//! a wrong incremental update must show in a test: a bad IPv4 header
//! checksum adds `BADSUM(ip)`, a bad TCP/UDP/ICMP checksum `BADSUM(tcp)` and
//! so on, a bad header checksum of the IPv4 packet quoted in an ICMP error
//! `BADSUM(inner-ip)`. L4 checksums are only checked when the whole segment is
//! present (not cut short, not a fragment). Nothing here panics on any input.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Decode `frame` (an Ethernet frame) into one line.
pub fn summarize(frame: &[u8]) -> String {
    let mut s = String::new();
    if frame.len() < 14 {
        let _ = write!(s, "ethernet truncated ({} bytes)", frame.len());
        return s;
    }
    let _ = write!(s, "{}>{} ", mac(&frame[6..12]), mac(&frame[0..6]));
    let mut et = be16(frame, 12);
    let mut off = 14;
    while et == 0x8100 || et == 0x88a8 {
        if frame.len() < off + 4 {
            s.push_str("vlan truncated");
            return s;
        }
        let _ = write!(s, "vlan {} ", be16(frame, off) & 0x0fff);
        et = be16(frame, off + 2);
        off += 4;
    }
    let rest = &frame[off..];
    match et {
        0x0806 => arp(&mut s, rest),
        0x0800 => ipv4(&mut s, rest),
        0x86dd => ipv6(&mut s, rest),
        _ => {
            let _ = write!(s, "ethertype {et:#06x} len {}", rest.len());
        }
    }
    s
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn mac(b: &[u8]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
}

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// One's-complement sum of big-endian 16-bit words (RFC 1071), unfolded.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([c[0], c[1]]) as u32);
        // Fold early so that no input length can overflow the accumulator.
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

/// True when `data` (checksum field included) sums to 0xffff.
fn sums_ok(data: &[u8], acc: u32) -> bool {
    let mut s = sum16(data, acc);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s == 0xffff
}

fn pseudo4(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u32 {
    sum16(src, 0) + sum16(dst, 0) + proto as u32 + len as u32
}

fn pseudo6(src: &[u8], dst: &[u8], next: u8, len: usize) -> u32 {
    sum16(src, 0) + sum16(dst, 0) + next as u32 + (len as u32 & 0xffff) + (len as u32 >> 16)
}

fn arp(s: &mut String, a: &[u8]) {
    if a.len() < 8 {
        s.push_str("arp truncated");
        return;
    }
    let (htype, ptype, hlen, plen, op) = (be16(a, 0), be16(a, 2), a[4], a[5], be16(a, 6));
    if htype != 1 || ptype != 0x0800 || hlen != 6 || plen != 4 {
        let _ = write!(s, "arp htype {htype} ptype {ptype:#06x} op {op}");
        return;
    }
    if a.len() < 28 {
        s.push_str("arp truncated");
        return;
    }
    let (sha, spa, tha, tpa) = (&a[8..14], ip4(&a[14..18]), &a[18..24], ip4(&a[24..28]));
    let _ = match op {
        1 => write!(s, "arp who-has {tpa} tell {spa}"),
        2 => write!(s, "arp reply {spa} is-at {} to {tpa} ({})", mac(sha), mac(tha)),
        _ => write!(s, "arp op {op} {spa} > {tpa}"),
    };
}

fn ipv4(s: &mut String, ip: &[u8]) {
    if ip.len() < 20 {
        let _ = write!(s, "ipv4 truncated ({} bytes)", ip.len());
        return;
    }
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let total = be16(ip, 2) as usize;
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl {
        let _ = write!(s, "ipv4 bad header (version/ihl {:#04x}, total length {total})", ip[0]);
        return;
    }
    let cut = ip.len() < total;
    let end = total.min(ip.len());
    let hdr_ok = ip.len() >= ihl && sums_ok(&ip[..ihl], 0);
    let ttl = ip[8];
    let proto = ip[9];
    let (src, dst) = (&ip[12..16], &ip[16..20]);
    let frag = be16(ip, 6);
    let (mf, off) = (frag & 0x2000 != 0, (frag & 0x1fff) as usize * 8);
    let payload = if ihl <= end { &ip[ihl..end] } else { &[][..] };
    let mut flags = String::new();
    if off != 0 {
        let _ = write!(
            s,
            "{} > {} frag id {} off {off}{} proto {proto} len {}",
            ip4(src),
            ip4(dst),
            be16(ip, 4),
            if mf { "+" } else { "" },
            payload.len()
        );
    } else {
        // The L4 checksum covers the whole segment: only check it when it is here.
        let whole = !cut && !mf;
        l4(s, &mut flags, proto, payload, whole, |p, len| pseudo4(src, dst, p, len), &ip4(src), &ip4(dst));
        if mf {
            let _ = write!(flags, " frag id {} +", be16(ip, 4));
        }
    }
    let _ = write!(s, " ttl {ttl}");
    s.push_str(&flags);
    if cut {
        s.push_str(" truncated");
    }
    if !hdr_ok {
        s.push_str(" BADSUM(ip)");
    }
}

fn ipv6(s: &mut String, ip: &[u8]) {
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        let _ = write!(s, "ip6 truncated or bad ({} bytes)", ip.len());
        return;
    }
    let plen = be16(ip, 4) as usize;
    let next = ip[6];
    let hlim = ip[7];
    let (src, dst) = (&ip[8..24], &ip[24..40]);
    let a = |b: &[u8]| {
        let mut o = [0u8; 16];
        o.copy_from_slice(b);
        Ipv6Addr::from(o)
    };
    let cut = ip.len() < 40 + plen;
    let payload = &ip[40..(40 + plen).min(ip.len())];
    let mut flags = String::new();
    s.push_str("ip6 ");
    l4(s, &mut flags, next, payload, !cut, |p, len| pseudo6(src, dst, p, len), &a(src), &a(dst));
    let _ = write!(s, " hlim {hlim}");
    s.push_str(&flags);
    if cut {
        s.push_str(" truncated");
    }
}

/// TCP/UDP/ICMP (or a generic line) for `payload` carried in IP protocol
/// `proto`. `pseudo(proto, len)` is the pseudo-header sum.
#[allow(clippy::too_many_arguments)]
fn l4<A: std::fmt::Display>(
    s: &mut String,
    flags: &mut String,
    proto: u8,
    p: &[u8],
    whole: bool,
    pseudo: impl Fn(u8, usize) -> u32,
    src: &A,
    dst: &A,
) {
    match proto {
        6 if p.len() >= 20 => {
            let doff = (p[12] >> 4) as usize * 4;
            let data = p.len().saturating_sub(doff.max(20));
            let _ = write!(
                s,
                "{src}:{} > {dst}:{} tcp [{}] seq {} ack {} win {}",
                be16(p, 0),
                be16(p, 2),
                tcp_flags(p[13]),
                be32(p, 4),
                be32(p, 8),
                be16(p, 14)
            );
            if data > 0 {
                let _ = write!(s, " len {data}");
            }
            if doff < 20 || doff > p.len() {
                flags.push_str(" bad-doff");
            }
            if whole && !sums_ok(p, pseudo(6, p.len())) {
                flags.push_str(" BADSUM(tcp)");
            }
        }
        17 if p.len() >= 8 => {
            let ulen = be16(p, 4) as usize;
            let _ = write!(s, "{src}:{} > {dst}:{} udp len {}", be16(p, 0), be16(p, 2), ulen.saturating_sub(8));
            if ulen < 8 || (whole && ulen != p.len()) {
                let _ = write!(flags, " bad-udp-len({} in {})", ulen, p.len());
            } else if whole && be16(p, 6) != 0 && !sums_ok(&p[..ulen], pseudo(17, ulen)) {
                flags.push_str(" BADSUM(udp)");
            }
        }
        1 if p.len() >= 8 => {
            let _ = write!(s, "icmp {src} > {dst} ");
            icmp4(s, flags, p);
            if whole && !sums_ok(p, 0) {
                flags.push_str(" BADSUM(icmp)");
            }
        }
        58 if p.len() >= 8 => {
            let _ = write!(s, "icmp6 {src} > {dst} type {} code {}", p[0], p[1]);
            if whole && !sums_ok(p, pseudo(58, p.len())) {
                flags.push_str(" BADSUM(icmp6)");
            }
        }
        50 if p.len() >= 8 => {
            let _ = write!(s, "{src} > {dst} esp spi {:#010x} seq {} len {}", be32(p, 0), be32(p, 4), p.len());
        }
        6 | 17 | 1 | 58 | 50 => {
            let _ = write!(s, "{src} > {dst} proto {proto} truncated ({} bytes)", p.len());
        }
        _ => {
            let _ = write!(s, "{src} > {dst} proto {proto} len {}", p.len());
        }
    }
}

fn tcp_flags(f: u8) -> String {
    let mut out = String::new();
    for (bit, c) in [(0x01, 'F'), (0x02, 'S'), (0x04, 'R'), (0x08, 'P'), (0x20, 'U'), (0x40, 'E'), (0x80, 'W')] {
        if f & bit != 0 {
            out.push(c);
        }
    }
    if f & 0x10 != 0 {
        out.push('.');
    }
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

fn icmp4(s: &mut String, flags: &mut String, p: &[u8]) {
    let (ty, code) = (p[0], p[1]);
    let _ = match ty {
        0 => write!(s, "echo-reply id {} seq {}", be16(p, 4), be16(p, 6)),
        8 => write!(s, "echo-request id {} seq {}", be16(p, 4), be16(p, 6)),
        3 => {
            let what = match code {
                0 => "net".to_string(),
                1 => "host".to_string(),
                2 => "protocol".to_string(),
                3 => "port".to_string(),
                4 => format!("frag-needed mtu {}", be16(p, 6)),
                9 | 10 | 13 => "admin-prohibited".to_string(),
                c => format!("code {c}"),
            };
            write!(s, "unreachable {what}")
        }
        11 => write!(s, "time-exceeded{}", if code == 1 { " reassembly" } else { "" }),
        5 => write!(s, "redirect code {code} gateway {}", ip4(&p[4..8])),
        12 => write!(s, "param-problem pointer {}", p[4]),
        _ => write!(s, "type {ty} code {code}"),
    };
    if matches!(ty, 3 | 5 | 11 | 12) {
        s.push_str(" [");
        quoted(s, flags, &p[8..]);
        s.push(']');
    }
}

/// The IPv4 header and first bytes quoted by an ICMP error.
fn quoted(s: &mut String, flags: &mut String, ip: &[u8]) {
    if ip.len() < 20 || ip[0] >> 4 != 4 || (ip[0] & 0x0f) < 5 {
        let _ = write!(s, "quote of {} bytes", ip.len());
        return;
    }
    let ihl = (ip[0] & 0x0f) as usize * 4;
    if ip.len() < ihl {
        s.push_str("quote truncated");
        return;
    }
    if !sums_ok(&ip[..ihl], 0) {
        flags.push_str(" BADSUM(inner-ip)");
    }
    let (src, dst, proto, p) = (ip4(&ip[12..16]), ip4(&ip[16..20]), ip[9], &ip[ihl..]);
    let first = be16(ip, 6) & 0x1fff == 0;
    let _ = match proto {
        6 | 17 if first && p.len() >= 4 => {
            write!(s, "{src}:{} > {dst}:{} {}", be16(p, 0), be16(p, 2), if proto == 6 { "tcp" } else { "udp" })
        }
        1 if first && p.len() >= 8 && matches!(p[0], 0 | 8) => write!(
            s,
            "icmp {src} > {dst} {} id {} seq {}",
            if p[0] == 8 { "echo-request" } else { "echo-reply" },
            be16(p, 4),
            be16(p, 6)
        ),
        _ => write!(s, "{src} > {dst} proto {proto}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const A: [u8; 6] = [2, 0, 0, 0, 1, 0x0a];
    const B: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 1];

    #[test]
    fn arp_request_and_reply() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&A);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&A);
        f.extend_from_slice(&[192, 168, 10, 10]);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&[192, 168, 10, 1]);
        assert_eq!(summarize(&f), "02:00:00:00:01:0a>ff:ff:ff:ff:ff:ff arp who-has 192.168.10.1 tell 192.168.10.10");
        f[21] = 2;
        assert_eq!(
            summarize(&f),
            "02:00:00:00:01:0a>ff:ff:ff:ff:ff:ff arp reply 192.168.10.10 is-at 02:00:00:00:01:0a to 192.168.10.1 (00:00:00:00:00:00)"
        );
        assert_eq!(summarize(&f[..30]), "02:00:00:00:01:0a>ff:ff:ff:ff:ff:ff arp truncated");
    }

    fn udp_frame() -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([192, 168, 10, 10], [203, 0, 113, 254], 64)
            .udp(40000, 53)
            .write(&mut v, &[0u8; 12])
            .unwrap();
        v
    }

    #[test]
    fn udp_and_badsum() {
        let mut f = udp_frame();
        assert_eq!(
            summarize(&f),
            "02:00:00:00:01:0a>02:00:5e:10:00:01 192.168.10.10:40000 > 203.0.113.254:53 udp len 12 ttl 64"
        );
        // A TTL decrement without fixing the header checksum.
        f[14 + 8] -= 1;
        assert!(summarize(&f).ends_with("ttl 63 BADSUM(ip)"), "{}", summarize(&f));
        // A port rewrite without fixing the UDP checksum.
        let mut g = udp_frame();
        g[14 + 20 + 1] ^= 1;
        assert!(summarize(&g).ends_with("BADSUM(udp)"), "{}", summarize(&g));
        // Zero UDP checksum means "none".
        g[14 + 26] = 0;
        g[14 + 27] = 0;
        assert!(!summarize(&g).contains("BADSUM"));
        // Ethernet padding after the IP datagram is ignored.
        let mut h = udp_frame();
        h.extend_from_slice(&[0; 6]);
        assert!(!summarize(&h).contains("BADSUM"));
    }

    #[test]
    fn tcp_flags_and_checksum() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([192, 168, 10, 10], [1, 2, 3, 4], 64)
            .tcp(40000, 80, 1000, 64240)
            .syn()
            .write(&mut v, &[])
            .unwrap();
        assert_eq!(
            summarize(&v),
            "02:00:00:00:01:0a>02:00:5e:10:00:01 192.168.10.10:40000 > 1.2.3.4:80 tcp [S] seq 1000 ack 0 win 64240 ttl 64"
        );
        let mut w = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([1, 2, 3, 4], [192, 168, 10, 10], 60)
            .tcp(80, 40000, 5000, 1000)
            .fin()
            .psh()
            .ack(1001)
            .write(&mut w, b"hello")
            .unwrap();
        let s = summarize(&w);
        assert!(s.ends_with("tcp [FP.] seq 5000 ack 1001 win 1000 len 5 ttl 60"), "{s}");
        w[14 + 12] ^= 0x01; // source address changed, checksum not updated
        let s = summarize(&w);
        assert!(s.contains("BADSUM(ip)") && s.contains("BADSUM(tcp)"), "{s}");
    }

    #[test]
    fn icmp_echo_and_time_exceeded() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(B, A)
            .ipv4([203, 0, 113, 1], [192, 168, 10, 10], 64)
            .icmpv4_echo_reply(7, 1)
            .write(&mut v, b"abcd")
            .unwrap();
        assert!(summarize(&v).ends_with("icmp 203.0.113.1 > 192.168.10.10 echo-reply id 7 seq 1 ttl 64"));

        let quoted = &udp_frame()[14..14 + 28];
        let mut t = Vec::new();
        PacketBuilder::ethernet2(B, A)
            .ipv4([192, 168, 10, 1], [192, 168, 10, 10], 64)
            .icmpv4(etherparse::Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit))
            .write(&mut t, quoted)
            .unwrap();
        assert_eq!(
            summarize(&t),
            "02:00:5e:10:00:01>02:00:00:00:01:0a icmp 192.168.10.1 > 192.168.10.10 time-exceeded \
             [192.168.10.10:40000 > 203.0.113.254:53 udp] ttl 64"
        );
        // The quoted header rewritten without its checksum.
        let at = 14 + 20 + 8 + 12;
        t[at] ^= 1;
        let s = summarize(&t);
        assert!(s.contains("BADSUM(inner-ip)") && s.contains("BADSUM(icmp)"), "{s}");
    }

    #[test]
    fn never_panics_on_short_or_odd_input() {
        let f = udp_frame();
        for n in 0..f.len() {
            let _ = summarize(&f[..n]);
        }
        let mut g = f.clone();
        g[14] = 0x4f; // ihl 60 > the header we have
        let _ = summarize(&g);
    }
}
