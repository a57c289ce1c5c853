//! A small frame builder for case inputs: etherparse's `PacketBuilder` for
//! Ethernet/IPv4/TCP/UDP/ICMP (checksums computed), ARP by hand.

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;

pub type MacAddr = [u8; 6];

pub const BROADCAST: MacAddr = [0xff; 6];
/// The firewall's ports (see the cases' appliance.toml).
pub const FW_INSIDE_MAC: MacAddr = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];
pub const FW_OUTSIDE_MAC: MacAddr = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x02];
pub const FW_INSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
pub const FW_OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Hosts are 02:00:00:00:01:xx, xx the last octet of their address.
pub const HOST_MAC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x01, 0x0a];
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 10);
/// The upstream router, which also answers DNS.
pub const ROUTER_MAC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x01, 0xfe];
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
/// Beyond the router (TEST-NET-2).
pub const WEB_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 80);
pub const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
pub const ATTACKER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// Ethernet's minimum frame (without FCS): short frames are padded to it.
const MIN_FRAME: usize = 60;

fn arp(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    op: u16,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let mut f = Vec::with_capacity(MIN_FRAME);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06]);
    // Ethernet, IPv4, 6-byte and 4-byte addresses.
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    f.resize(MIN_FRAME, 0);
    f
}

/// Broadcast "who has `target`? tell `sender_ip`".
pub fn arp_request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp(sender_mac, BROADCAST, 1, sender_mac, sender_ip, [0; 6], target)
}

/// Unicast "`sender_ip` is at `sender_mac`" to the asker.
pub fn arp_reply(sender_mac: MacAddr, sender_ip: Ipv4Addr, to_mac: MacAddr, to_ip: Ipv4Addr) -> Vec<u8> {
    arp(sender_mac, to_mac, 2, sender_mac, sender_ip, to_mac, to_ip)
}

/// An IPv4 endpoint on a link: the frame's MAC and the packet's address.
#[derive(Clone, Copy)]
pub struct Ep {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub port: u16,
}

pub fn ep(mac: MacAddr, ip: Ipv4Addr, port: u16) -> Ep {
    Ep { mac, ip, port }
}

pub fn udp(src: Ep, dst: Ep, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(src.mac, dst.mac)
        .ipv4(src.ip.octets(), dst.ip.octets(), ttl)
        .udp(src.port, dst.port)
        .write(&mut v, payload)
        .expect("writing to a Vec");
    v
}

/// `flags` in tcpdump letters: S F R P and `.` for ACK (then `ack` is used).
#[allow(clippy::too_many_arguments)]
pub fn tcp(src: Ep, dst: Ep, ttl: u8, flags: &str, seq: u32, ack: u32, win: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src.mac, dst.mac)
        .ipv4(src.ip.octets(), dst.ip.octets(), ttl)
        .tcp(src.port, dst.port, seq, win);
    for c in flags.chars() {
        b = match c {
            'S' => b.syn(),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            '.' => b.ack(ack),
            other => panic!("unknown TCP flag letter {other:?}"),
        };
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("writing to a Vec");
    v
}

/// ICMP echo request (`reply == false`) or reply; `src.port` is unused.
pub fn echo(src: Ep, dst: Ep, ttl: u8, reply: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src.mac, dst.mac).ipv4(src.ip.octets(), dst.ip.octets(), ttl);
    let b = if reply { b.icmpv4_echo_reply(id, seq) } else { b.icmpv4_echo_request(id, seq) };
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("writing to a Vec");
    v
}
