//! Builders shared by unit tests, replay cases and simulations: the lab
//! configuration as a value, and frames made with etherparse.

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;

use crate::config::*;
use crate::frame::{FrameBuf, Offload};
use crate::wire::{arp as arpw, ether, put16, put32};

pub const FW_IN_MAC: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 1];
pub const FW_OUT_MAC: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 2];
pub const FW_DMZ_MAC: [u8; 6] = [2, 0, 0x5e, 0x10, 0, 3];
pub const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 1, 10];
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 254];
pub const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 3, 10];
pub const INSIDE: IfIndex = IfIndex(0);
pub const OUTSIDE: IfIndex = IfIndex(1);
pub const DMZ: IfIndex = IfIndex(2);

/// The offload of an IPv4 TCP super-frame as a TAP hands it over (TSO):
/// Ethernet, IP and TCP headers of 54 bytes, segments of `mss` bytes, the
/// checksum partial from the TCP header on.
pub fn tso_v4(mss: u16) -> Offload {
    Offload {
        flags: Offload::NEEDS_CSUM,
        gso_type: Offload::GSO_TCPV4,
        hdr_len: 14 + 20 + 20,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
    }
}

/// An ACL rule from any source; `dport` one port.
fn acl_rule(action: AclAction, proto: Option<u8>, dst: &str, dport: Option<u16>, icmp_type: Option<u8>) -> AclRule {
    AclRule {
        action,
        proto,
        src: Ipv4Net::ANY,
        dst: dst.parse().unwrap(),
        sport: None,
        dport: dport.map(|p| PortRange { lo: p, hi: p }),
        icmp_type,
        line: 0,
    }
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// An interface `name` on TAP `tw-NAME`, MTU 1500, monitored, no standby address.
pub fn iface(name: &str, mac: [u8; 6], addr: &str, level: u8) -> InterfaceCfg {
    InterfaceCfg {
        name: name.into(),
        tap: format!("tw-{name}"),
        mac: Mac(mac),
        address: Some(addr.parse().unwrap()),
        security_level: level,
        mtu: 1500,
        standby_address: None,
        monitor: true,
    }
}

/// inside 192.168.10.1/24 (100), outside 203.0.113.1/24 (0), dmz
/// 172.16.20.1/24 (50); default route via 203.0.113.254; PAT from inside
/// and dmz; static 192.168.10.20 <-> 203.0.113.20; TCP 203.0.113.1:8080 ->
/// 172.16.20.10:80; the outside ACL permits that web server and ping to the
/// static host. The same network as the shipped appliance.toml.
pub fn lab_config() -> Config {
    let rule = acl_rule;
    Config {
        hostname: "fw".into(),
        mode: Mode::Routed,
        control_socket: "/run/twinwall/fw.sock".into(),
        interfaces: vec![
            iface("inside", FW_IN_MAC, "192.168.10.1/24", 100),
            iface("outside", FW_OUT_MAC, "203.0.113.1/24", 0),
            iface("dmz", FW_DMZ_MAC, "172.16.20.1/24", 50),
        ],
        routes: vec![RouteCfg { destination: Ipv4Net::ANY, gateway: ip("203.0.113.254"), interface: OUTSIDE }],
        acls: vec![
            None,
            Some(vec![
                rule(AclAction::Permit, Some(6), "172.16.20.10/32", Some(80), None),
                rule(AclAction::Permit, Some(1), "192.168.10.20/32", None, Some(8)),
            ]),
            None,
        ],
        nat: vec![
            NatRule::DynamicPat { inside: INSIDE, outside: OUTSIDE, address: None },
            NatRule::DynamicPat { inside: DMZ, outside: OUTSIDE, address: None },
            NatRule::Static { inside: INSIDE, outside: OUTSIDE, real: ip("192.168.10.20"), mapped: ip("203.0.113.20") },
            NatRule::PortForward {
                inside: DMZ,
                outside: OUTSIDE,
                proto: 6,
                mapped: None,
                mapped_port: 8080,
                real: ip("172.16.20.10"),
                real_port: 80,
            },
        ],
        timeouts: Timeouts::default(),
        limits: Limits::default(),
        bridge_groups: Vec::new(),
        failover: None,
    }
}

/// `lab_config` as a transparent bridge (ASA transparent mode): inside
/// (100), outside (0) and dmz (50) carry one subnet, 192.168.10.0/24, and
/// keep no address, route or NAT. The outside ACL permits ping to
/// 192.168.10.20 and TCP port 80 to 192.168.10.80 (a server in the DMZ).
/// Stations: HOST_MAC 192.168.10.10 inside, ROUTER_MAC 192.168.10.254
/// outside, SERVER_MAC 192.168.10.80 in the DMZ.
pub fn bridge_config() -> Config {
    let mut c = lab_config();
    c.mode = Mode::Transparent;
    for i in &mut c.interfaces {
        i.address = None;
    }
    c.routes.clear();
    c.nat.clear();
    c.bridge_groups = vec![BridgeGroup {
        name: "bg1".into(),
        members: vec![INSIDE, OUTSIDE, DMZ],
        address: None,
        standby_address: None,
        static_macs: Vec::new(),
        ethertypes: Vec::new(),
        bpdu_forward: true,
    }];
    let permit = |proto: u8, dst: &str, dport: Option<u16>, icmp_type: Option<u8>| {
        acl_rule(AclAction::Permit, Some(proto), dst, dport, icmp_type)
    };
    c.acls[OUTSIDE.idx()] =
        Some(vec![permit(1, "192.168.10.20/32", None, Some(8)), permit(6, "192.168.10.80/32", Some(80), None)]);
    c
}

pub fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    payload: &[u8],
) -> FrameBuf {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac).ipv4(ip(src).octets(), ip(dst).octets(), 64).udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    FrameBuf::from_slice(&v)
}

/// TCP flags as a string of `S`, `A`, `F`, `R`, `P`.
#[allow(clippy::too_many_arguments)]
pub fn tcp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: &str,
    payload: &[u8],
) -> FrameBuf {
    let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(ip(src).octets(), ip(dst).octets(), 64)
        .tcp(sport, dport, seq, 64240);
    for c in flags.chars() {
        b = match c {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => panic!("flag {c}"),
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    FrameBuf::from_slice(&v)
}

pub fn ping(src_mac: [u8; 6], dst_mac: [u8; 6], src: &str, dst: &str, id: u16, seq: u16, ttl: u8) -> FrameBuf {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(ip(src).octets(), ip(dst).octets(), ttl)
        .icmpv4_echo_request(id, seq);
    let mut v = Vec::new();
    b.write(&mut v, b"twinwall-ping").unwrap();
    FrameBuf::from_slice(&v)
}

pub fn arp(op: u16, eth_dst: [u8; 6], sha: [u8; 6], spa: &str, tha: [u8; 6], tpa: &str) -> FrameBuf {
    let mut v = vec![0u8; 60];
    v[ether::DST].copy_from_slice(&eth_dst);
    v[ether::SRC].copy_from_slice(&sha);
    put16(&mut v, 12, ether::TYPE_ARP);
    let a = &mut v[14..];
    put16(a, 0, 1);
    put16(a, 2, ether::TYPE_IPV4);
    a[4] = 6;
    a[5] = 4;
    put16(a, 6, op);
    a[arpw::SHA].copy_from_slice(&sha);
    put32(a, arpw::SPA.start, ip(spa).into());
    a[arpw::THA].copy_from_slice(&tha);
    put32(a, arpw::TPA.start, ip(tpa).into());
    FrameBuf::from_slice(&v)
}

/// A parsed view of an output frame for assertions.
#[derive(Debug)]
pub struct Seen {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub ttl: u8,
    pub icmp_type: Option<u8>,
    pub tcp_flags: u8,
}

/// Parse an output frame, checking its IPv4 and L4 checksums.
pub fn seen(f: &[u8]) -> Seen {
    let s = etherparse::SlicedPacket::from_ethernet(f).expect("parsable frame");
    let Some(etherparse::NetSlice::Ipv4(ipv4)) = s.net else { panic!("not ipv4: {f:02x?}") };
    let h = ipv4.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "IPv4 checksum");
    let mut out = Seen {
        eth_dst: f[0..6].try_into().unwrap(),
        eth_src: f[6..12].try_into().unwrap(),
        src: h.source.into(),
        dst: h.destination.into(),
        sport: 0,
        dport: 0,
        proto: h.protocol.0,
        ttl: h.time_to_live,
        icmp_type: None,
        tcp_flags: 0,
    };
    match s.transport {
        Some(etherparse::TransportSlice::Udp(u)) => {
            if u.checksum() != 0 {
                assert_eq!(u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap(), u.checksum(), "UDP checksum");
            }
            out.sport = u.source_port();
            out.dport = u.destination_port();
        }
        Some(etherparse::TransportSlice::Tcp(t)) => {
            assert_eq!(t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap(), t.checksum(), "TCP checksum");
            out.sport = t.source_port();
            out.dport = t.destination_port();
            out.tcp_flags = f[14 + h.header_len() + 13];
        }
        Some(etherparse::TransportSlice::Icmpv4(i)) => {
            assert_eq!(crate::wire::checksum::checksum(i.slice()), 0, "ICMP checksum");
            out.icmp_type = Some(i.type_u8());
            let b = i.slice();
            out.sport = u16::from_be_bytes([b[4], b[5]]);
        }
        _ => {}
    }
    out
}
