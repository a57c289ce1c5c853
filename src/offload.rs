//! Frames that arrive with work left undone: a TAP with vnet_hdr hands the
//! kernel's TSO super-frames (up to 64 KiB of TCP in one frame) and partial
//! checksums (CHECKSUM_PARTIAL) straight through, as a virtio NIC would. The
//! core forwards such a frame as it is when the egress device finishes the
//! work (a TAP with vnet_hdr), and finishes it itself otherwise (a pcap, a
//! device without vnet_hdr): the checksum always, segmentation for TCP.
//!
//! The partial checksum's arithmetic is in [`crate::wire::checksum`]
//! (`update_partial32`, `complete`) and its NAT rewrite in
//! [`crate::pdesc::rewrite`].

use crate::config::types::proto;
use crate::drop::DropReason;
use crate::frame::{FrameBuf, Offload};
use crate::pdesc::PacketDesc;
use crate::wire::{be16, be32, checksum, ipv4, put16, put32, tcp, udp};

/// TCP flags that belong to the last segment of a super-frame only.
const LAST_ONLY: u8 = tcp::FIN | tcp::PSH;
/// CWR: set on the first segment only (SKB_GSO_TCP_ECN).
const CWR: u8 = 0x80;

/// Check a parsed frame's offload on ingress and note a partial checksum in
/// `d`. A super-frame must be TCP over IPv4 with its checksum partial and
/// starting at the TCP header (what Linux's TSO sends); anything else with
/// GSO is `gso-unsupported`. A partial checksum anywhere but a TCP or UDP
/// header the core can rewrite is completed here, so the rest of the
/// pipeline sees an ordinary frame.
pub fn check_ingress(buf: &mut FrameBuf, d: &mut PacketDesc) -> Result<(), DropReason> {
    let off = buf.offload;
    let l4_field = match d.key.proto {
        proto::TCP => Some(tcp::CHECKSUM.start),
        proto::UDP => Some(udp::CHECKSUM.start),
        _ => None,
    };
    let ours = !d.is_fragment()
        && off.csum_start as usize == d.l4
        && l4_field == Some(off.csum_offset as usize)
        && d.l4 + off.csum_offset as usize + 2 <= d.l3 + d.ip_len;
    if off.is_gso() {
        if off.gso_kind() != Offload::GSO_TCPV4 || d.key.proto != proto::TCP || off.gso_size == 0 {
            return Err(DropReason::GsoUnsupported);
        }
        if !off.needs_csum() || !ours {
            return Err(DropReason::OffloadMalformed);
        }
        d.l4_csum_partial = true;
        return Ok(());
    }
    if !off.needs_csum() {
        return Ok(());
    }
    if ours {
        d.l4_csum_partial = true;
        return Ok(());
    }
    let end = d.l3 + d.ip_len;
    let (start, at) = (off.csum_start as usize, off.csum_start as usize + off.csum_offset as usize);
    // A fragment's L4 checksum covers the whole datagram: no sum over this
    // frame alone can complete it (and no kernel sends one partial).
    if d.is_fragment() || start < d.l3 || at + 2 > end {
        return Err(DropReason::OffloadMalformed);
    }
    let f = buf.as_mut();
    let c = checksum::complete(&f[start..end]);
    put16(f, at, c);
    buf.offload.flags &= !Offload::NEEDS_CSUM;
    Ok(())
}

/// The IPv4 length of each packet a super-frame becomes (the last may be
/// shorter): what the egress MTU must hold. For other frames, `ip_len`.
pub fn segment_ip_len(d: &PacketDesc, off: &Offload) -> usize {
    if !off.is_gso() {
        return d.ip_len;
    }
    let headers = d.ip_len - d.tcp.payload as usize;
    (headers + off.gso_size as usize).min(d.ip_len)
}

/// Store the checksum a partial-checksum frame still needs, for a device
/// that will not. `f` ends where the IP packet ends.
pub fn complete_checksum(f: &mut [u8], off: &mut Offload) {
    if !off.needs_csum() {
        return;
    }
    let start = off.csum_start as usize;
    let at = start + off.csum_offset as usize;
    if at + 2 <= f.len() {
        let c = checksum::complete(&f[start..]);
        put16(f, at, c);
    }
    off.flags &= !Offload::NEEDS_CSUM;
}

/// Cut a TCP/IPv4 super-frame (checked by [`check_ingress`], rewritten,
/// truncated to its IP packet) into segments of `gso_size` payload bytes,
/// each complete: IP total length, identification and checksum, TCP
/// sequence number, flags and checksum, as the kernel's `tcp_gso_segment`
/// makes them. `alloc` supplies buffers; `send` gets each segment in order.
pub fn segment(src: &FrameBuf, d: &PacketDesc, mut alloc: impl FnMut() -> FrameBuf, mut send: impl FnMut(FrameBuf)) {
    let f = src.as_ref();
    let mss = src.offload.gso_size as usize;
    let l3 = d.l3;
    let l4 = d.l4;
    let end = l3 + d.ip_len;
    let thl = end - l4 - d.tcp.payload as usize;
    let hdrs = l4 + thl;
    let flags = f[l4 + tcp::FLAGS];
    let ident = be16(f, l3 + ipv4::IDENT.start..l3 + ipv4::IDENT.end);
    let seq = be32(f, l4 + tcp::SEQ.start..l4 + tcp::SEQ.end);
    let src_ip: [u8; 4] = f[l3 + ipv4::SRC.start..l3 + ipv4::SRC.end].try_into().expect("4 bytes");
    let dst_ip: [u8; 4] = f[l3 + ipv4::DST.start..l3 + ipv4::DST.end].try_into().expect("4 bytes");
    let payload = &f[hdrs..end];
    let n = payload.len().div_ceil(mss).max(1);
    for i in 0..n {
        let chunk = &payload[i * mss..((i + 1) * mss).min(payload.len())];
        let mut b = alloc();
        b.reset_len(hdrs + chunk.len());
        let o = b.as_mut();
        o[..hdrs].copy_from_slice(&f[..hdrs]);
        o[hdrs..].copy_from_slice(chunk);
        let ip = &mut o[l3..];
        put16(ip, ipv4::TOTAL_LEN.start, (l4 - l3 + thl + chunk.len()) as u16);
        put16(ip, ipv4::IDENT.start, ident.wrapping_add(i as u16));
        put16(ip, ipv4::CHECKSUM.start, 0);
        let c = checksum::checksum(&ip[..l4 - l3]);
        put16(ip, ipv4::CHECKSUM.start, c);
        let t = &mut o[l4..];
        put32(t, tcp::SEQ.start, seq.wrapping_add((i * mss) as u32));
        let mut fl = flags;
        if i + 1 < n {
            fl &= !LAST_ONLY;
        }
        if i > 0 {
            fl &= !CWR;
        }
        t[tcp::FLAGS] = fl;
        put16(t, tcp::CHECKSUM.start, 0);
        let pseudo = checksum::pseudo_v4(src_ip, dst_ip, proto::TCP, (thl + chunk.len()) as u16);
        let c = checksum::finish(checksum::sum(t, pseudo));
        put16(t, tcp::CHECKSUM.start, c);
        send(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededRng;
    use crate::testkit::*;
    use crate::time::Instant;
    use crate::wire::arp as arpw;
    use crate::{Appliance, IfIndex, Output};
    use etherparse::{PacketBuilder, TcpOptionElement};

    const T0: Instant = Instant::from_millis(1_000_000);
    const MSS: u16 = 1448;
    const CLIENT: &str = "192.168.10.10";
    const SERVER: &str = "198.51.100.7";

    fn app(offload_ports: bool) -> Appliance {
        let mut a = Appliance::new(lab_config(), T0, Box::new(SeededRng::new(1)));
        if offload_ports {
            a.set_tx_offload(INSIDE, true);
            a.set_tx_offload(OUTSIDE, true);
        }
        a.handle_frame(OUTSIDE, arp(arpw::REQUEST, [0xff; 6], ROUTER_MAC, "203.0.113.254", [0; 6], "203.0.113.1"), T0);
        a.handle_frame(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, CLIENT, [0; 6], "192.168.10.1"), T0);
        drain(&mut a);
        a
    }

    fn drain(a: &mut Appliance) -> Vec<(IfIndex, FrameBuf)> {
        let mut v = vec![];
        while let Some(o) = a.poll_output() {
            if let Output::Frame { port, buf } = o {
                v.push((port, buf));
            }
        }
        v
    }

    fn frame(b: etherparse::PacketBuilderStep<etherparse::TcpHeader>, payload: &[u8]) -> FrameBuf {
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        FrameBuf::from_slice(&v)
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    /// A TSO super-frame as Linux hands it to a TAP with vnet_hdr: one IPv4
    /// packet of `data` bytes of TCP, the checksum field holding the
    /// pseudo-header sum over the whole length.
    fn super_frame(sport: u16, seq: u32, ack: u32, data: &[u8]) -> FrameBuf {
        let b = PacketBuilder::ethernet2(HOST_MAC, FW_IN_MAC)
            .ipv4(ip(CLIENT).octets(), ip(SERVER).octets(), 64)
            .tcp(sport, 443, seq, 2000)
            .ack(ack)
            .psh();
        let mut f = frame(b, data);
        let tcp_len = (f.len() - 34) as u16;
        let p = !checksum::finish(checksum::pseudo_v4(ip(CLIENT).octets(), ip(SERVER).octets(), 6, tcp_len));
        put16(f.as_mut(), 34 + 16, p);
        f.offload = crate::testkit::tso_v4(MSS);
        f
    }

    /// SYN (window scale 7) from the client, SYN-ACK from the server to the
    /// PAT address, the client's ACK. Returns the PAT port.
    fn handshake(a: &mut Appliance, sport: u16) -> u16 {
        let syn = PacketBuilder::ethernet2(HOST_MAC, FW_IN_MAC)
            .ipv4(ip(CLIENT).octets(), ip(SERVER).octets(), 64)
            .tcp(sport, 443, 1000, 64240)
            .syn()
            .options(&[TcpOptionElement::WindowScale(7)])
            .unwrap();
        a.handle_frame(INSIDE, frame(syn, &[]), T0);
        let out = drain(a);
        assert_eq!(out.len(), 1, "SYN forwarded");
        let d = crate::pdesc::parse(out[0].1.as_ref(), 14).unwrap();
        assert_eq!(d.key.src, u32::from(ip("203.0.113.1")));
        let pat_port = d.key.sport;
        let synack = PacketBuilder::ethernet2(ROUTER_MAC, FW_OUT_MAC)
            .ipv4(ip(SERVER).octets(), ip("203.0.113.1").octets(), 64)
            .tcp(443, pat_port, 5000, 64240)
            .syn()
            .ack(1001)
            .options(&[TcpOptionElement::WindowScale(7)])
            .unwrap();
        a.handle_frame(OUTSIDE, frame(synack, &[]), T0);
        assert_eq!(drain(a).len(), 1, "SYN-ACK forwarded");
        a.handle_frame(INSIDE, tcp(HOST_MAC, FW_IN_MAC, CLIENT, sport, SERVER, 443, 1001, 5001, "A", &[]), T0);
        assert_eq!(drain(a).len(), 1, "ACK forwarded");
        pat_port
    }

    /// The server acknowledges everything up to `ack` with a window of
    /// 64240 << 7.
    fn server_ack(a: &mut Appliance, pat_port: u16, ack: u32) {
        a.handle_frame(
            OUTSIDE,
            tcp(ROUTER_MAC, FW_OUT_MAC, SERVER, 443, "203.0.113.1", pat_port, 5001, ack, "A", &[]),
            T0,
        );
        assert_eq!(drain(a).len(), 1, "server ACK forwarded");
    }

    fn verify_tcp(f: &[u8]) -> etherparse::TcpHeader {
        let s = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip4)) = s.net else { panic!("not IPv4") };
        let h = ip4.header().to_header();
        assert_eq!(h.calc_header_checksum(), h.header_checksum, "ip checksum");
        let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else { panic!("not TCP") };
        assert_eq!(t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap(), t.checksum(), "tcp checksum");
        t.to_header()
    }

    #[test]
    fn a_64k_super_frame_goes_through_pat_with_its_offload() {
        let mut a = app(true);
        let pat_port = handshake(&mut a, 40001);
        // 60000 bytes fit the SYN-ACK's unscaled window; then the server's
        // scaled window admits a full 64 KiB super-frame.
        let mut seq = 1001u32;
        for (n, len) in [60_000usize, 65_483].into_iter().enumerate() {
            let data = payload(len);
            a.handle_frame(INSIDE, super_frame(40001, seq, 5001, &data), T0);
            let mut out = drain(&mut a);
            assert_eq!(out.len(), 1, "super-frame {n} forwarded whole");
            let (port, mut buf) = out.pop().unwrap();
            assert_eq!(port, OUTSIDE);
            assert_eq!(buf.len(), 14 + 40 + len);
            assert_eq!(buf.offload.gso_type, Offload::GSO_TCPV4);
            assert_eq!(buf.offload.gso_size, MSS);
            assert!(buf.offload.needs_csum());
            // What the egress device does with the partial sum: the result
            // must be the checksum of the translated packet.
            let mut off = buf.offload;
            complete_checksum(buf.as_mut(), &mut off);
            let t = verify_tcp(buf.as_ref());
            assert_eq!((t.source_port, t.sequence_number), (pat_port, seq));
            assert_eq!(&buf.as_ref()[54..], &data[..]);
            seq = seq.wrapping_add(len as u32);
            server_ack(&mut a, pat_port, seq);
        }
        assert_eq!(a.counters().dropped(DropReason::TcpOutOfWindow), 0);
    }

    #[test]
    fn a_super_frame_for_a_plain_device_is_segmented_and_complete() {
        let mut a = app(false);
        let pat_port = handshake(&mut a, 40002);
        let data = payload(10_000);
        a.handle_frame(INSIDE, super_frame(40002, 1001, 5001, &data), T0);
        let out = drain(&mut a);
        assert_eq!(out.len(), 10_000usize.div_ceil(MSS as usize));
        let mut got = Vec::new();
        for (i, (port, buf)) in out.iter().enumerate() {
            assert_eq!(*port, OUTSIDE);
            assert_eq!(buf.offload, Offload::default());
            assert!(buf.len() <= 14 + 1500);
            let t = verify_tcp(buf.as_ref());
            assert_eq!(t.source_port, pat_port);
            assert_eq!(t.sequence_number, 1001 + (i * MSS as usize) as u32);
            assert_eq!(t.psh, i + 1 == out.len(), "PSH on the last segment only");
            got.extend_from_slice(&buf.as_ref()[54..]);
        }
        assert_eq!(got, data);
    }

    #[test]
    fn a_partial_udp_checksum_is_kept_for_offload_and_completed_otherwise() {
        for offload_ports in [true, false] {
            let mut a = app(offload_ports);
            let mut f = udp(HOST_MAC, FW_IN_MAC, CLIENT, 5353, SERVER, 53, b"query");
            let p = !checksum::finish(checksum::pseudo_v4(ip(CLIENT).octets(), ip(SERVER).octets(), 17, 8 + 5));
            put16(f.as_mut(), 34 + 6, p);
            f.offload = Offload { flags: Offload::NEEDS_CSUM, csum_start: 34, csum_offset: 6, ..Offload::default() };
            a.handle_frame(INSIDE, f, T0);
            let mut out = drain(&mut a);
            assert_eq!(out.len(), 1);
            let (_, mut buf) = out.pop().unwrap();
            assert_eq!(buf.offload.needs_csum(), offload_ports);
            let mut off = buf.offload;
            complete_checksum(buf.as_mut(), &mut off);
            let s = etherparse::SlicedPacket::from_ethernet(buf.as_ref()).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip4)) = s.net else { panic!() };
            let Some(etherparse::TransportSlice::Udp(u)) = s.transport else { panic!() };
            let h = ip4.header().to_header();
            assert_eq!(u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap(), u.checksum());
            assert_eq!(h.source, ip("203.0.113.1").octets());
        }
    }

    #[test]
    fn unsupported_gso_and_long_plain_frames_are_named_drops() {
        let mut a = app(true);
        let mut f = udp(HOST_MAC, FW_IN_MAC, CLIENT, 5353, SERVER, 53, &[0; 3000]);
        f.offload = Offload {
            flags: Offload::NEEDS_CSUM,
            gso_type: Offload::GSO_UDP_L4,
            gso_size: 1400,
            csum_start: 34,
            csum_offset: 6,
            hdr_len: 42,
        };
        a.handle_frame(INSIDE, f, T0);
        assert_eq!(a.counters().dropped(DropReason::GsoUnsupported), 1);
        // The same length without GSO is longer than the MTU.
        a.handle_frame(INSIDE, udp(HOST_MAC, FW_IN_MAC, CLIENT, 5353, SERVER, 53, &[0; 3000]), T0);
        assert_eq!(a.counters().dropped(DropReason::RxTooLong), 1);
        // A super-frame whose checksum offsets point elsewhere.
        let _ = handshake(&mut a, 40003);
        let mut f = super_frame(40003, 1001, 5001, &payload(4000));
        f.offload.csum_offset = 6;
        a.handle_frame(INSIDE, f, T0);
        assert_eq!(a.counters().dropped(DropReason::OffloadMalformed), 1);
        assert!(drain(&mut a).is_empty());
    }

    #[test]
    fn frames_the_core_makes_carry_no_offload() {
        let mut a = app(true);
        let _ = handshake(&mut a, 40004);
        // Leave a buffer with offload in the pool, as a forwarded super-frame's would be.
        let mut used = super_frame(40004, 1, 1, &payload(3000));
        used.offload.flags |= Offload::DATA_VALID;
        a.recycle(used);
        // TTL 1: an ICMP time exceeded comes back, built in a pooled buffer.
        let mut f = super_frame(40004, 1001, 5001, &payload(3000));
        let ip4 = &mut f.as_mut()[14..34];
        ip4[8] = 1;
        put16(ip4, 10, 0);
        let c = checksum::checksum(ip4);
        put16(ip4, 10, c);
        a.handle_frame(INSIDE, f, T0);
        let out = drain(&mut a);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.as_ref()[14 + 20], crate::wire::icmp::TIME_EXCEEDED);
        assert_eq!(out[0].1.offload, Offload::default());
    }
}
