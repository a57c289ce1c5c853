//! Scenario tests for the whole pipeline: frames in, frames and counters out.

use super::*;
use crate::config::AclRule;
use crate::entropy::SeededRng;
use crate::testkit::*;
use crate::wire::arp as arpw;

const T0: Instant = Instant::from_millis(1_000_000);

struct Rig {
    app: Appliance,
    now: Instant,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(lab_config())
    }
    fn with(cfg: Config) -> Rig {
        let mut app = Appliance::new(cfg, T0, Box::new(SeededRng::new(1)));
        while app.poll_output().is_some() {}
        Rig { app, now: T0 }
    }
    fn send(&mut self, port: IfIndex, f: FrameBuf) -> Vec<(IfIndex, Vec<u8>)> {
        self.app.handle_frame(port, f, self.now);
        self.drain()
    }
    fn drain(&mut self) -> Vec<(IfIndex, Vec<u8>)> {
        let mut v = vec![];
        while let Some(o) = self.app.poll_output() {
            if let Output::Frame { port, buf } = o {
                v.push((port, buf.as_ref().to_vec()));
                self.app.recycle(buf);
            }
        }
        v
    }
    fn advance(&mut self, d: Duration) -> Vec<(IfIndex, Vec<u8>)> {
        let end = self.now + d;
        let mut out = vec![];
        while let Some(t) = self.app.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            self.app.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = end;
        out
    }
    fn dropped(&self, r: DropReason) -> u64 {
        self.app.counters().dropped(r)
    }
    /// Teach the appliance the outside router's and inside host's MACs.
    fn neighbours(&mut self) {
        self.send(OUTSIDE, arp(arpw::REQUEST, [0xff; 6], ROUTER_MAC, "203.0.113.254", [0; 6], "203.0.113.1"));
        self.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, "192.168.10.10", [0; 6], "192.168.10.1"));
        self.send(DMZ, arp(arpw::REQUEST, [0xff; 6], SERVER_MAC, "172.16.20.10", [0; 6], "172.16.20.1"));
    }
}

#[test]
fn gratuitous_arp_at_start() {
    let mut app = Appliance::new(lab_config(), T0, Box::new(SeededRng::new(1)));
    let mut garps = 0;
    while let Some(o) = app.poll_output() {
        if let Output::Frame { buf, .. } = o {
            assert_eq!(&buf.as_ref()[0..6], &[0xff; 6]);
            garps += 1;
        }
    }
    // Three interface addresses plus the static NAT address on outside.
    assert_eq!(garps, 4);
}

#[test]
fn answers_arp_and_ping_for_own_address_only_on_ingress() {
    let mut r = Rig::new();
    let out = r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, "192.168.10.10", [0; 6], "192.168.10.1"));
    assert_eq!(out.len(), 1);
    let a = &out[0].1[14..];
    assert_eq!(be16(a, arpw::OPER), arpw::REPLY);
    assert_eq!(&a[arpw::SHA], &FW_IN_MAC);
    assert_eq!(&out[0].1[0..6], &HOST_MAC);
    let out = r.send(INSIDE, ping(HOST_MAC, FW_IN_MAC, "192.168.10.10", "192.168.10.1", 7, 1, 64));
    assert_eq!(out.len(), 1);
    let s = seen(&out[0].1);
    assert_eq!((s.src, s.dst, s.icmp_type, s.sport), (ip("192.168.10.1"), ip("192.168.10.10"), Some(0), 7));
    // Pinging the far interface's address is not answered, as on ASA.
    let out = r.send(INSIDE, ping(HOST_MAC, FW_IN_MAC, "192.168.10.10", "203.0.113.1", 7, 2, 64));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::ToSelf), 1);
    // ARP for someone else is not answered.
    let out = r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, "192.168.10.10", [0; 6], "192.168.10.99"));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::ArpNotForUs), 1);
}

#[test]
fn proxy_arp_for_static_nat_address() {
    let mut r = Rig::new();
    let out = r.send(OUTSIDE, arp(arpw::REQUEST, [0xff; 6], ROUTER_MAC, "203.0.113.254", [0; 6], "203.0.113.20"));
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[14 + arpw::SHA.start..14 + arpw::SHA.end], &FW_OUT_MAC);
}

#[test]
fn pat_udp_waits_for_arp_then_round_trips() {
    let mut r = Rig::new();
    r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, "192.168.10.10", [0; 6], "192.168.10.1"));
    let out = r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40000, "198.51.100.53", 53, b"query"));
    // The next hop is unknown: an ARP request for the gateway goes out.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, OUTSIDE);
    assert_eq!(be32(&out[0].1[14..], arpw::TPA), u32::from(ip("203.0.113.254")));
    let out = r.send(OUTSIDE, arp(arpw::REPLY, FW_OUT_MAC, ROUTER_MAC, "203.0.113.254", FW_OUT_MAC, "203.0.113.1"));
    assert_eq!(out.len(), 1, "the parked frame is released");
    let s = seen(&out[0].1);
    assert_eq!(out[0].0, OUTSIDE);
    assert_eq!(s.eth_dst, ROUTER_MAC);
    assert_eq!(s.eth_src, FW_OUT_MAC);
    assert_eq!(s.src, ip("203.0.113.1"));
    assert_eq!(s.ttl, 63);
    assert!(s.sport >= 1024);
    let mapped = s.sport;
    let out = r.send(OUTSIDE, udp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.53", 53, "203.0.113.1", mapped, b"answer"));
    assert_eq!(out.len(), 1);
    let s = seen(&out[0].1);
    assert_eq!(out[0].0, INSIDE);
    assert_eq!((s.dst, s.dport, s.eth_dst), (ip("192.168.10.10"), 40000, HOST_MAC));
    // Same inside socket to another destination: a new connection.
    let out = r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40000, "198.51.100.54", 53, b"q2"));
    assert_eq!(out.len(), 1);
    assert_eq!(r.app.conn_count(), 2);
    let rep = r.app.show(ShowWhat::Xlate, r.now);
    let Report::Xlate(x) = rep else { panic!() };
    assert_eq!(x.xlates.iter().filter(|l| l.kind == "dynamic-pat").count(), 2);
}

/// Handshake, data, an out-of-window segment, FIN/FIN/ACK.
#[test]
fn pat_tcp_tracks_windows_and_close() {
    let mut r = Rig::new();
    r.neighbours();
    let h = "192.168.10.10";
    let srv = "198.51.100.80";
    let out = r.send(INSIDE, tcp(HOST_MAC, FW_IN_MAC, h, 50000, srv, 80, 1000, 0, "S", b""));
    let s = seen(&out[0].1);
    assert_eq!(s.tcp_flags, 0x02);
    let m = s.sport;
    let out = r.send(OUTSIDE, tcp(ROUTER_MAC, FW_OUT_MAC, srv, 80, "203.0.113.1", m, 9000, 1001, "SA", b""));
    assert_eq!(seen(&out[0].1).dport, 50000);
    r.send(INSIDE, tcp(HOST_MAC, FW_IN_MAC, h, 50000, srv, 80, 1001, 9001, "A", b""));
    let out = r.send(INSIDE, tcp(HOST_MAC, FW_IN_MAC, h, 50000, srv, 80, 1001, 9001, "AP", b"GET / HTTP/1.0\r\n\r\n"));
    assert_eq!(out.len(), 1);
    let Report::Conn(c) = r.app.show(ShowWhat::Conn, r.now) else { panic!() };
    assert_eq!(c.conns[0].state, "UIO");
    // A segment ten megabytes ahead of the window is dropped.
    let out =
        r.send(OUTSIDE, tcp(ROUTER_MAC, FW_OUT_MAC, srv, 80, "203.0.113.1", m, 9001 + 10_000_000, 1019, "AP", b"x"));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::TcpOutOfWindow), 1);
    r.send(OUTSIDE, tcp(ROUTER_MAC, FW_OUT_MAC, srv, 80, "203.0.113.1", m, 9001, 1019, "AFP", b"ok"));
    r.send(INSIDE, tcp(HOST_MAC, FW_IN_MAC, h, 50000, srv, 80, 1019, 9004, "AF", b""));
    let out = r.send(OUTSIDE, tcp(ROUTER_MAC, FW_OUT_MAC, srv, 80, "203.0.113.1", m, 9004, 1020, "A", b""));
    assert_eq!(out.len(), 1);
    let Report::Conn(c) = r.app.show(ShowWhat::Conn, r.now) else { panic!() };
    assert_eq!(c.conns[0].state, "TIME_WAIT");
    // After time-wait the entry and its port are gone.
    r.advance(Duration::from_secs(31) + Duration::from_secs(6));
    assert_eq!(r.app.conn_count(), 0);
    assert_eq!(r.app.counters().events.conns_expired, 1);
}

#[test]
fn inbound_needs_acl_and_port_forward_works() {
    let mut r = Rig::new();
    r.neighbours();
    let out = r.send(OUTSIDE, tcp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.7", 3333, "192.168.10.10", 22, 1, 0, "S", b""));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::AclDeny), 1);
    // Port forward 203.0.113.1:8080 -> 172.16.20.10:80, permitted by ACL.
    let out = r.send(OUTSIDE, tcp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.7", 3333, "203.0.113.1", 8080, 1, 0, "S", b""));
    assert_eq!(out.len(), 1);
    let s = seen(&out[0].1);
    assert_eq!((out[0].0, s.dst, s.dport, s.src, s.sport), (DMZ, ip("172.16.20.10"), 80, ip("198.51.100.7"), 3333));
    let out = r.send(DMZ, tcp(SERVER_MAC, FW_DMZ_MAC, "172.16.20.10", 80, "198.51.100.7", 3333, 50, 2, "SA", b""));
    let s = seen(&out[0].1);
    assert_eq!((out[0].0, s.src, s.sport), (OUTSIDE, ip("203.0.113.1"), 8080));
    // Lower to higher security level with no ACL on dmz: dmz -> inside denied.
    let out = r.send(DMZ, udp(SERVER_MAC, FW_DMZ_MAC, "172.16.20.10", 5000, "192.168.10.10", 53, b""));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::SecurityLevel), 1);
    // Inside -> dmz is higher to lower: permitted, not translated.
    let out = r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 5000, "172.16.20.10", 53, b""));
    let s = seen(&out[0].1);
    assert_eq!((out[0].0, s.src, s.sport), (DMZ, ip("192.168.10.10"), 5000));
}

#[test]
fn static_nat_both_ways() {
    let mut r = Rig::new();
    r.neighbours();
    r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], [2, 0, 0, 0, 1, 20], "192.168.10.20", [0; 6], "192.168.10.1"));
    let out = r.send(OUTSIDE, ping(ROUTER_MAC, FW_OUT_MAC, "198.51.100.7", "203.0.113.20", 9, 1, 64));
    let s = seen(&out[0].1);
    assert_eq!((out[0].0, s.dst), (INSIDE, ip("192.168.10.20")));
    let out = r.send(INSIDE, udp([2, 0, 0, 0, 1, 20], FW_IN_MAC, "192.168.10.20", 6000, "198.51.100.7", 7, b""));
    let s = seen(&out[0].1);
    assert_eq!((s.src, s.sport), (ip("203.0.113.20"), 6000));
}

#[test]
fn ttl_expiry_sends_time_exceeded() {
    let mut r = Rig::new();
    r.neighbours();
    let out = r.send(INSIDE, ping(HOST_MAC, FW_IN_MAC, "192.168.10.10", "198.51.100.1", 3, 1, 1));
    assert_eq!(out.len(), 1);
    let s = seen(&out[0].1);
    assert_eq!((out[0].0, s.icmp_type, s.src, s.dst), (INSIDE, Some(11), ip("192.168.10.1"), ip("192.168.10.10")));
    assert_eq!(r.dropped(DropReason::TtlExpired), 1);
}

#[test]
fn icmp_error_from_the_path_is_translated_back() {
    let mut r = Rig::new();
    r.neighbours();
    let out = r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 33434, "198.51.100.9", 33434, b"probe"));
    let sent = out[0].1.clone();
    let m = seen(&sent).sport;
    // A router on the path answers with port unreachable quoting what it got.
    let quote = &sent[14..];
    let b = etherparse::PacketBuilder::ethernet2(ROUTER_MAC, FW_OUT_MAC)
        .ipv4(ip("198.51.100.9").octets(), ip("203.0.113.1").octets(), 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port));
    let mut v = vec![];
    b.write(&mut v, quote).unwrap();
    let out = r.send(OUTSIDE, FrameBuf::from_slice(&v));
    assert_eq!(out.len(), 1);
    let s = seen(&out[0].1);
    assert_eq!((out[0].0, s.dst, s.icmp_type), (INSIDE, ip("192.168.10.10"), Some(3)));
    let inner = pdesc::parse(&out[0].1, 14).unwrap().inner.unwrap();
    assert_eq!(inner.key.src, u32::from(ip("192.168.10.10")));
    assert_eq!(inner.key.sport, 33434);
    assert_ne!(m, 0);
    // An error quoting nothing we know is dropped.
    let mut v2 = v.clone();
    v2[14 + 28 + 20] ^= 0x55; // quoted source port
    let f = FrameBuf::from_slice(&v2);
    let out = r.send(OUTSIDE, f);
    assert!(out.is_empty());
}

#[test]
fn unsolicited_ack_and_bad_flags_are_dropped() {
    let mut r = Rig::new();
    r.neighbours();
    let out = r.send(INSIDE, tcp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 1, "198.51.100.1", 80, 5, 5, "A", b""));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::TcpNoSyn), 1);
    let out = r.send(INSIDE, tcp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 1, "198.51.100.1", 80, 5, 5, "SF", b""));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::TcpBadFlags), 1);
}

#[test]
fn udp_expiry_frees_port_for_reuse() {
    let mut r = Rig::new();
    r.neighbours();
    r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40000, "198.51.100.53", 53, b"q"));
    assert_eq!(r.app.conn_count(), 1);
    r.advance(Duration::from_secs(29));
    assert_eq!(r.app.conn_count(), 1);
    r.advance(Duration::from_secs(7));
    assert_eq!(r.app.conn_count(), 0, "unreplied UDP times out after 30 s");
    assert_eq!(r.app.poll_timeout().is_some(), !r.app.arp.is_empty());
}

#[test]
fn conn_limit_refuses_new_keeps_existing() {
    let mut cfg = lab_config();
    cfg.limits.max_conns = 2;
    let mut r = Rig::with(cfg);
    r.neighbours();
    for p in 0..3u16 {
        r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 1000 + p, "198.51.100.53", 53, b"q"));
    }
    assert_eq!(r.app.conn_count(), 2);
    assert_eq!(r.dropped(DropReason::ConnLimit), 1);
    let out = r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 1000, "198.51.100.53", 53, b"q"));
    assert_eq!(out.len(), 1, "existing flow still passes");
}

#[test]
fn fragments_follow_the_first() {
    let mut r = Rig::new();
    r.neighbours();
    // Build a 3000-byte UDP datagram and fragment it by hand.
    let payload = vec![0xabu8; 3000];
    let whole = udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 7000, "198.51.100.99", 9, &payload);
    let w = whole.as_ref();
    let ip_hdr = &w[14..34];
    let l4 = &w[34..];
    let frag = |off: usize, data: &[u8], more: bool| {
        let mut v = w[..14].to_vec();
        let mut h = ip_hdr.to_vec();
        crate::wire::put16(&mut h, 2, (20 + data.len()) as u16);
        crate::wire::put16(&mut h, 4, 0x4242);
        crate::wire::put16(&mut h, 6, ((off / 8) as u16) | if more { 0x2000 } else { 0 });
        crate::wire::put16(&mut h, 10, 0);
        let c = crate::wire::checksum::checksum(&h);
        crate::wire::put16(&mut h, 10, c);
        v.extend_from_slice(&h);
        v.extend_from_slice(data);
        FrameBuf::from_slice(&v)
    };
    let later = frag(1480, &l4[1480..2960], true);
    // A later fragment before the first has no state.
    assert!(r.send(INSIDE, later.clone()).is_empty());
    assert_eq!(r.dropped(DropReason::FragmentNoState), 1);
    let out = r.send(INSIDE, frag(0, &l4[..1480], true));
    assert_eq!(out.len(), 1);
    let first = pdesc::parse(&out[0].1, 14).unwrap();
    let out2 = r.send(INSIDE, later);
    let out3 = r.send(INSIDE, frag(2960, &l4[2960..], false));
    for o in [&out2, &out3] {
        assert_eq!(o.len(), 1);
        let d = pdesc::parse(&o[0].1, 14).unwrap();
        assert_eq!(d.key.src, first.key.src, "same translation as the first fragment");
        assert_eq!(d.key.src, u32::from(ip("203.0.113.1")));
    }
    assert_eq!(r.app.counters().events.fragments_forwarded, 2);
}

#[test]
fn reload_keeps_flows() {
    let mut r = Rig::new();
    r.neighbours();
    let out = r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 40000, "198.51.100.53", 53, b"q"));
    let m = seen(&out[0].1).sport;
    let mut cfg = lab_config();
    cfg.acls[1] = Some(vec![]);
    r.app.handle_command(Command::Reload(Box::new(cfg)), r.now).unwrap();
    r.drain();
    let out = r.send(OUTSIDE, udp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.53", 53, "203.0.113.1", m, b"a"));
    assert_eq!(out.len(), 1, "reply of a flow from before the reload passes");
    let mut cfg = lab_config();
    cfg.interfaces.pop();
    assert_eq!(r.app.handle_command(Command::Reload(Box::new(cfg)), r.now), Err(CommandError::InterfacesChanged));
}

#[test]
fn arp_failure_drops_parked_frames() {
    let mut r = Rig::new();
    let out = r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 1, "198.51.100.53", 53, b"q"));
    assert_eq!(out.len(), 1, "ARP request");
    let out = r.advance(Duration::from_secs(5));
    assert_eq!(out.len(), 2, "two retries");
    assert_eq!(r.dropped(DropReason::ArpUnresolved), 1);
}

#[test]
fn reject_sends_reset() {
    let mut cfg = lab_config();
    cfg.acls[1] = Some(vec![AclRule {
        action: crate::config::AclAction::Reject,
        proto: Some(6),
        src: Ipv4Net::ANY,
        dst: Ipv4Net::ANY,
        sport: None,
        dport: None,
        icmp_type: None,
        line: 0,
    }]);
    let mut r = Rig::with(cfg);
    r.neighbours();
    let out = r.send(OUTSIDE, tcp(ROUTER_MAC, FW_OUT_MAC, "198.51.100.7", 3333, "203.0.113.20", 22, 77, 0, "S", b""));
    assert_eq!(out.len(), 1);
    let s = seen(&out[0].1);
    assert_eq!((s.src, s.dst, s.tcp_flags & 0x14), (ip("203.0.113.20"), ip("198.51.100.7"), 0x14));
}

#[test]
fn memory_per_connection_at_one_million() {
    // Deterministic (capacity-based), so a test may hold it: the goal
    // is at most 128 bytes per IPv4 connection, index and NAT included.
    let mut cfg = lab_config();
    cfg.limits.max_conns = 2_000_000;
    let mut r = Rig::with(cfg);
    r.neighbours();
    let mut f = udp(HOST_MAC, FW_IN_MAC, "192.168.10.10", 1, "198.51.100.53", 53, b"q");
    for i in 0..1_000_000u32 {
        let b = f.as_mut();
        // 16 hosts x 62500 ports, each flow to its own server: PAT can give
        // one mapped address only 64512 ports toward any one destination.
        let host = 10 + (i % 16) as u8;
        b[14 + 15] = host;
        crate::wire::put16(b, 34, 1024 + (i / 16) as u16);
        crate::wire::put32(b, 14 + 16, 0x0a00_0000 + i);
        crate::wire::put16(b, 40, 0); // no UDP checksum to fix
        crate::wire::put16(b, 24, 0);
        let c = crate::wire::checksum::checksum(&b[14..34]);
        crate::wire::put16(b, 24, c);
        r.app.handle_frame(INSIDE, f.clone(), r.now);
        while let Some(o) = r.app.poll_output() {
            if let Output::Frame { buf, .. } = o {
                r.app.recycle(buf);
            }
        }
    }
    assert_eq!(r.app.conn_count(), 1_000_000);
    let Report::Conn(c) = r.app.show(ShowWhat::Conn, r.now) else { panic!() };
    eprintln!("memory: {} bytes for {} connections = {} bytes each", c.memory_bytes, c.in_use, c.bytes_per_conn);
    assert!(c.bytes_per_conn <= 128, "{} bytes per connection", c.bytes_per_conn);
    f.truncate(0);
}

#[test]
fn shipped_appliance_toml_is_the_testkit_lab() {
    let text = include_str!("../appliance.toml");
    let mut parsed = crate::config::parse(text, "appliance.toml").expect("appliance.toml parses");
    for rules in parsed.acls.iter_mut().flatten() {
        for r in rules {
            r.line = 0;
        }
    }
    let mut want = lab_config();
    // The file writes the port forward's mapped address out.
    if let Some(crate::config::NatRule::PortForward { mapped, .. }) = want.nat.get_mut(3) {
        *mapped = Some(ip("203.0.113.1"));
    }
    // Order of NAT rules in the file: pat inside, pat dmz, port-forward, static.
    want.nat.swap(2, 3);
    assert_eq!(parsed, want);
}

fn failover_unit_config() -> Config {
    let path = format!("{}/integration/lab/failover/primary.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    crate::config::parse(&text, &path).unwrap()
}

/// Timers and the configuration hash follow a reload; what the sockets and
/// the keys depend on needs a restart.
#[test]
fn reload_applies_failover_timers_and_refuses_a_new_identity() {
    let mut r = Rig::with(failover_unit_config());
    r.app.set_hellos_ahead(true);
    assert_eq!(r.app.hellos_ahead(), 4, "50/250 ms");
    let hash_before = r.app.ha.as_ref().unwrap().config_hash;
    let mut cfg = failover_unit_config();
    let fo = cfg.failover.as_mut().unwrap();
    fo.poll = Duration::from_millis(2);
    fo.hold = Duration::from_millis(8);
    cfg.acls[0] = Some(vec![]);
    r.app.handle_command(Command::Reload(Box::new(cfg)), r.now).unwrap();
    assert_eq!(r.app.hellos_ahead(), 3, "2/8 ms after the reload");
    let ha = r.app.ha.as_ref().unwrap();
    assert_eq!(ha.cfg.hold, Duration::from_millis(8));
    assert_ne!(ha.config_hash, hash_before, "the pair's drift check sees the new policy");

    let mut cfg = failover_unit_config();
    cfg.failover.as_mut().unwrap().key = crate::config::KeySource::Inline("another-key-of-enough-length".into());
    assert_eq!(r.app.handle_command(Command::Reload(Box::new(cfg)), r.now), Err(CommandError::FailoverIdentityChanged));
    assert_eq!(r.app.ha.as_ref().unwrap().cfg.hold, Duration::from_millis(8), "a refused reload changes nothing");
}

// ---------------------------------------------------------------------------
// Transparent mode.

const BR_HOST: &str = "192.168.10.10";
const BR_ROUTER: &str = "192.168.10.254";
const BR_SERVER: &str = "192.168.10.80";

impl Rig {
    fn bridge() -> Rig {
        Rig::with(bridge_config())
    }
    /// The host ARPs for the router and the router answers: the bridge
    /// learns both (and floods the request).
    fn bridge_neighbours(&mut self) {
        self.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, BR_HOST, [0; 6], BR_ROUTER));
        self.send(OUTSIDE, arp(arpw::REPLY, HOST_MAC, ROUTER_MAC, BR_ROUTER, HOST_MAC, BR_HOST));
    }
    fn mac_lines(&self) -> Vec<(String, String)> {
        let Report::Mac(lines) = self.app.show(ShowWhat::Mac, self.now) else { panic!() };
        lines.into_iter().map(|l| (l.interface, l.mac)).collect()
    }
}

#[test]
fn transparent_starts_silent_and_bridges_arp_by_mac() {
    let mut app = Appliance::new(bridge_config(), T0, Box::new(SeededRng::new(1)));
    assert!(app.poll_output().is_none(), "no address, no gratuitous ARP");
    let mut r = Rig::bridge();
    let req = arp(arpw::REQUEST, [0xff; 6], HOST_MAC, BR_HOST, [0; 6], BR_ROUTER);
    let out = r.send(INSIDE, req.clone());
    let ports: Vec<IfIndex> = out.iter().map(|(p, _)| *p).collect();
    assert_eq!(ports, vec![OUTSIDE, DMZ], "a broadcast floods every other port");
    assert!(out.iter().all(|(_, f)| f[..] == req.as_ref()[..]), "unchanged");
    let reply = arp(arpw::REPLY, HOST_MAC, ROUTER_MAC, BR_ROUTER, HOST_MAC, BR_HOST);
    let out = r.send(OUTSIDE, reply.clone());
    assert_eq!(out, vec![(INSIDE, reply.as_ref().to_vec())], "a known unicast goes to its port only");
    assert_eq!(
        r.mac_lines(),
        vec![
            ("inside".to_string(), "02:00:00:00:01:0a".to_string()),
            ("outside".to_string(), "02:00:00:00:02:fe".to_string())
        ]
    );
    let ev = &r.app.counters().events;
    assert_eq!((ev.macs_learned, ev.frames_flooded, ev.frames_forwarded), (2, 1, 1));
    // Same segment: the destination is on the port the frame came from.
    let out = r.send(INSIDE, arp(arpw::REPLY, HOST_MAC, [2, 0, 0, 0, 1, 11], "192.168.10.11", HOST_MAC, BR_HOST));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::SameInterface), 1);
}

#[test]
fn transparent_tcp_passes_unchanged_through_conntrack_and_policy() {
    let mut r = Rig::bridge();
    r.bridge_neighbours();
    let syn = tcp(HOST_MAC, ROUTER_MAC, BR_HOST, 50000, "198.51.100.80", 80, 1000, 0, "S", b"");
    let out = r.send(INSIDE, syn.clone());
    assert_eq!(out, vec![(OUTSIDE, syn.as_ref().to_vec())], "no NAT, no TTL decrement, no MAC rewrite");
    let sa = tcp(ROUTER_MAC, HOST_MAC, "198.51.100.80", 80, BR_HOST, 50000, 9000, 1001, "SA", b"");
    let out = r.send(OUTSIDE, sa.clone());
    assert_eq!(out, vec![(INSIDE, sa.as_ref().to_vec())]);
    r.send(INSIDE, tcp(HOST_MAC, ROUTER_MAC, BR_HOST, 50000, "198.51.100.80", 80, 1001, 9001, "A", b""));
    let Report::Conn(c) = r.app.show(ShowWhat::Conn, r.now) else { panic!() };
    assert_eq!((c.in_use, c.conns[0].from_if.as_str(), c.conns[0].to_if.as_str()), (1, "inside", "outside"));
    // Still a stateful firewall: out-of-window, no SYN, and policy.
    let out =
        r.send(OUTSIDE, tcp(ROUTER_MAC, HOST_MAC, "198.51.100.80", 80, BR_HOST, 50000, 99_000_000, 1001, "A", b"x"));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::TcpOutOfWindow), 1);
    let out = r.send(OUTSIDE, tcp(ROUTER_MAC, HOST_MAC, "198.51.100.7", 3333, BR_HOST, 22, 1, 0, "S", b""));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::AclDeny), 1);
    // TTL 1 passes a bridge as it is; a ping the outside ACL permits.
    r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], [2, 0, 0, 0, 1, 20], "192.168.10.20", [0; 6], BR_ROUTER));
    let ping = ping(ROUTER_MAC, [2, 0, 0, 0, 1, 20], BR_ROUTER, "192.168.10.20", 9, 1, 1);
    let out = r.send(OUTSIDE, ping.clone());
    assert_eq!(out, vec![(INSIDE, ping.as_ref().to_vec())]);
    assert_eq!(seen(&out[0].1).ttl, 1);
    assert_eq!(r.dropped(DropReason::TtlExpired), 0);
    // Inside -> dmz (100 -> 50) passes; dmz -> inside needs an ACL.
    r.send(DMZ, arp(arpw::REQUEST, [0xff; 6], SERVER_MAC, BR_SERVER, [0; 6], BR_HOST));
    let out = r.send(INSIDE, udp(HOST_MAC, SERVER_MAC, BR_HOST, 5000, BR_SERVER, 53, b"q"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, DMZ);
    let out = r.send(DMZ, udp(SERVER_MAC, HOST_MAC, BR_SERVER, 6000, BR_HOST, 53, b"q"));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::SecurityLevel), 1);
}

#[test]
fn transparent_unknown_destination_mac_is_probed_not_flooded() {
    let mut r = Rig::bridge();
    r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, BR_HOST, [0; 6], BR_ROUTER));
    // The router's MAC is unknown (its ARP cache outlived our MAC table).
    let q = udp(HOST_MAC, ROUTER_MAC, BR_HOST, 40000, BR_ROUTER, 53, b"query");
    let out = r.send(INSIDE, q.clone());
    assert_eq!(r.dropped(DropReason::MacUnknown), 1);
    assert_eq!(out.len(), 2, "a probe out of each other port");
    for ((port, f), mac) in out.iter().zip([FW_OUT_MAC, FW_DMZ_MAC]) {
        assert_ne!(*port, INSIDE);
        let a = &f[14..];
        assert_eq!((&f[6..12], be16(a, arpw::OPER)), (&mac[..], arpw::REQUEST));
        assert_eq!((be32(a, arpw::SPA), be32(a, arpw::TPA)), (0, u32::from(ip(BR_ROUTER))), "RFC 5227 probe");
    }
    assert_eq!(r.app.conn_count(), 0);
    // The router answers the probe (to our MAC): learned, not passed on.
    let out = r.send(OUTSIDE, arp(arpw::REPLY, FW_OUT_MAC, ROUTER_MAC, BR_ROUTER, FW_OUT_MAC, "0.0.0.0"));
    assert!(out.is_empty());
    // The retransmission passes.
    let out = r.send(INSIDE, q.clone());
    assert_eq!(out, vec![(OUTSIDE, q.as_ref().to_vec())]);
}

#[test]
fn transparent_drops_what_it_does_not_bridge() {
    let mut r = Rig::bridge();
    r.bridge_neighbours();
    let mut v6 = udp(HOST_MAC, ROUTER_MAC, BR_HOST, 1, BR_ROUTER, 2, b"").as_ref().to_vec();
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut lldp = v6.clone();
    lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
    let to_us = udp(HOST_MAC, FW_IN_MAC, BR_HOST, 1, BR_ROUTER, 2, b"");
    for f in [FrameBuf::from_slice(&v6), FrameBuf::from_slice(&lldp), to_us] {
        assert!(r.send(INSIDE, f).is_empty());
    }
    for d in [DropReason::Ipv6, DropReason::UnknownEthertype, DropReason::ToSelf] {
        assert_eq!(r.dropped(d), 1, "{}", d.name());
    }
}

/// IPv4 broadcast and multicast cross the bridge where the policy permits,
/// copy by copy: DHCP from the inside (level 100) reaches both lower levels,
/// from the dmz (50) only the outside (0); the outside's ACL permits none.
#[test]
fn transparent_floods_ipv4_broadcast_by_policy() {
    let mut r = Rig::bridge();
    let discover = udp(HOST_MAC, [0xff; 6], "0.0.0.0", 68, "255.255.255.255", 67, b"dhcp");
    let out = r.send(INSIDE, discover.clone());
    assert_eq!(out, vec![(OUTSIDE, discover.as_ref().to_vec()), (DMZ, discover.as_ref().to_vec())]);
    let mdns = udp(SERVER_MAC, [1, 0, 0x5e, 0, 0, 0xfb], BR_SERVER, 5353, "224.0.0.251", 5353, b"q");
    let out = r.send(DMZ, mdns.clone());
    assert_eq!(out, vec![(OUTSIDE, mdns.as_ref().to_vec())]);
    let offer = udp(ROUTER_MAC, [0xff; 6], BR_ROUTER, 67, "255.255.255.255", 68, b"offer");
    assert!(r.send(OUTSIDE, offer).is_empty());
    assert_eq!(r.dropped(DropReason::AclDeny), 1, "the outside ACL has no DHCP rule");
    assert_eq!(r.app.counters().events.frames_flooded, 2);
}

#[test]
fn transparent_mac_aging_leaves_live_flows_on_their_side() {
    let mut r = Rig::bridge();
    r.bridge_neighbours();
    let srv = "198.51.100.80";
    r.send(INSIDE, tcp(HOST_MAC, ROUTER_MAC, BR_HOST, 50000, srv, 80, 1000, 0, "S", b""));
    r.send(OUTSIDE, tcp(ROUTER_MAC, HOST_MAC, srv, 80, BR_HOST, 50000, 9000, 1001, "SA", b""));
    r.send(INSIDE, tcp(HOST_MAC, ROUTER_MAC, BR_HOST, 50000, srv, 80, 1001, 9001, "A", b""));
    // Five minutes of silence from the host, the router keeps talking.
    r.advance(Duration::from_secs(200));
    r.send(OUTSIDE, arp(arpw::REQUEST, [0xff; 6], ROUTER_MAC, BR_ROUTER, [0; 6], "192.168.10.99"));
    r.advance(Duration::from_secs(101));
    assert_eq!(r.mac_lines(), vec![("outside".to_string(), "02:00:00:00:02:fe".to_string())]);
    assert_eq!(r.app.counters().events.macs_aged, 1);
    // The connection remembers the host's side.
    let a = tcp(ROUTER_MAC, HOST_MAC, srv, 80, BR_HOST, 50000, 9001, 1001, "AP", b"late");
    let out = r.send(OUTSIDE, a.clone());
    assert_eq!(out, vec![(INSIDE, a.as_ref().to_vec())]);
}

#[test]
fn transparent_reload_refuses_a_mode_change() {
    let mut r = Rig::bridge();
    let e = r.app.handle_command(Command::Reload(Box::new(lab_config())), r.now);
    assert_eq!(e, Err(CommandError::ModeChanged));
    let mut cfg = bridge_config();
    cfg.timeouts.mac = Duration::from_secs(10);
    assert_eq!(r.app.handle_command(Command::Reload(Box::new(cfg)), r.now), Ok(()));
    r.bridge_neighbours();
    r.drain();
    r.advance(Duration::from_secs(12));
    assert!(r.mac_lines().is_empty(), "the new aging time applies");
}

/// Two groups: inside and outside, with a management address, a static
/// station, LLDP permitted and BPDUs dropped; and dmz alone (a config file
/// needs two members per group, the core takes what it is given).
fn two_groups() -> Config {
    let mut c = bridge_config();
    c.bridge_groups[0].members = vec![INSIDE, OUTSIDE];
    c.bridge_groups[0].address = Some("192.168.10.5/24".parse().unwrap());
    c.bridge_groups[0].static_macs = vec![(Mac(SERVER_MAC), OUTSIDE)];
    c.bridge_groups[0].ethertypes = vec![0x88cc];
    c.bridge_groups[0].bpdu_forward = false;
    let mut dmz = c.bridge_groups[0].clone();
    dmz.name = "bg2".into();
    dmz.members = vec![DMZ];
    dmz.address = None;
    dmz.static_macs.clear();
    c.bridge_groups.push(dmz);
    c
}

#[test]
fn transparent_management_address_answers_arp_and_ping_and_sources_probes() {
    let mut r = Rig::with(two_groups());
    let out = r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, BR_HOST, [0; 6], "192.168.10.5"));
    assert_eq!(out.len(), 1, "answered, not flooded");
    let a = &out[0].1[14..];
    assert_eq!((be16(a, arpw::OPER), &a[arpw::SHA]), (arpw::REPLY, &FW_IN_MAC[..]));
    let out = r.send(INSIDE, ping(HOST_MAC, FW_IN_MAC, BR_HOST, "192.168.10.5", 7, 1, 64));
    let s = seen(&out[0].1);
    assert_eq!((out[0].0, s.src, s.dst, s.icmp_type), (INSIDE, ip("192.168.10.5"), ip(BR_HOST), Some(0)));
    // Other IPv4 to our MAC has no service here.
    assert!(r.send(INSIDE, udp(HOST_MAC, FW_IN_MAC, BR_HOST, 1, "192.168.10.6", 2, b"")).is_empty());
    assert_eq!(r.dropped(DropReason::ToSelf), 1);
    // A probe for an unknown MAC comes from the management address, within the group.
    let out = r.send(INSIDE, udp(HOST_MAC, ROUTER_MAC, BR_HOST, 40000, BR_ROUTER, 53, b"q"));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, be32(&out[0].1[14..], arpw::SPA)), (OUTSIDE, u32::from(ip("192.168.10.5"))));
}

#[test]
fn transparent_groups_static_entries_and_l2_policy() {
    let mut r = Rig::with(two_groups());
    // A broadcast floods its own group only: inside -> outside, not dmz.
    let out = r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, BR_HOST, [0; 6], BR_ROUTER));
    assert_eq!(out.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![OUTSIDE]);
    // The DMZ group is a bridge of one: nothing leaves it.
    assert!(r
        .send(DMZ, arp(arpw::REQUEST, [0xff; 6], [2, 0, 0, 0, 3, 11], "192.168.10.81", [0; 6], BR_HOST))
        .is_empty());
    // The server is pinned to outside: heard inside, it is dropped.
    let out = r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], SERVER_MAC, BR_SERVER, [0; 6], BR_HOST));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::MacStaticConflict), 1);
    // Unicast to the static station goes out its interface.
    let f = arp(arpw::REPLY, SERVER_MAC, HOST_MAC, BR_HOST, SERVER_MAC, BR_SERVER);
    assert_eq!(r.send(INSIDE, f).iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![OUTSIDE]);
    // LLDP is on the group's list; STP BPDUs are dropped; IPv6 is not listed.
    let mut l2 =
        arp(arpw::REQUEST, [0x01, 0x80, 0xc2, 0, 0, 0x0e], HOST_MAC, BR_HOST, [0; 6], BR_HOST).as_ref().to_vec();
    l2[12..14].copy_from_slice(&[0x88, 0xcc]);
    assert_eq!(r.send(INSIDE, FrameBuf::from_slice(&l2)).len(), 1);
    l2[..6].copy_from_slice(&[0x01, 0x80, 0xc2, 0, 0, 0]);
    l2[12..14].copy_from_slice(&[0x00, 0x26]);
    assert!(r.send(INSIDE, FrameBuf::from_slice(&l2)).is_empty());
    assert_eq!(r.dropped(DropReason::Bpdu), 1);
    let Report::Mac(lines) = r.app.show(ShowWhat::Mac, r.now) else { panic!() };
    let server = lines.iter().find(|l| l.mac == "02:00:00:00:03:0a").unwrap();
    assert_eq!(
        (server.kind.as_str(), server.interface.as_str(), server.bridge_group.as_str()),
        ("static", "outside", "bg1")
    );
}

#[test]
fn transparent_full_mac_table_drops_new_stations() {
    let mut cfg = bridge_config();
    cfg.limits.max_macs = 1;
    let mut r = Rig::with(cfg);
    r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, BR_HOST, [0; 6], BR_ROUTER));
    let out = r.send(OUTSIDE, arp(arpw::REPLY, HOST_MAC, ROUTER_MAC, BR_ROUTER, HOST_MAC, BR_HOST));
    assert!(out.is_empty());
    assert_eq!(r.dropped(DropReason::MacTableFull), 1);
    // The known station still passes.
    assert_eq!(r.send(INSIDE, arp(arpw::REQUEST, [0xff; 6], HOST_MAC, BR_HOST, [0; 6], BR_ROUTER)).len(), 2);
}
