//! Reader fixtures (hand-made pcap and pcapng bytes) and driver tests.

use std::path::{Path, PathBuf};

use super::pcap_in::{self, linktype, read_bytes, Format, SYNTH_SRC_MAC};
use super::*;
use crate::config::{Limits, Mac, Mode, NatRule, RouteCfg, Timeouts};

const RX: Mac = Mac([0x02, 0x00, 0x5e, 0x10, 0x00, 0x02]);

fn lab_config() -> Config {
    let iface = crate::testkit::iface;
    Config {
        hostname: "fw".into(),
        mode: Mode::Routed,
        control_socket: "/tmp/twinwall-test.sock".into(),
        interfaces: vec![
            iface("inside", [2, 0, 0x5e, 0x10, 0, 1], "192.168.10.1/24", 100),
            iface("outside", [2, 0, 0x5e, 0x10, 0, 2], "203.0.113.1/24", 0),
        ],
        routes: vec![RouteCfg {
            destination: "0.0.0.0/0".parse().unwrap(),
            gateway: "203.0.113.254".parse().unwrap(),
            interface: IfIndex(1),
        }],
        acls: vec![None, None],
        nat: vec![NatRule::DynamicPat { inside: IfIndex(0), outside: IfIndex(1), address: None }],
        bridge_groups: Vec::new(),
        timeouts: Timeouts::default(),
        limits: Limits::default(),
        failover: None,
    }
}

/// A minimal IPv4/UDP packet (checksums not needed by the reader).
fn ip_packet() -> Vec<u8> {
    let mut v = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 10, 10, 203, 0, 113, 254];
    v.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
    v
}

fn eth_frame() -> Vec<u8> {
    let mut f = RX.0.to_vec();
    f.extend_from_slice(&[2, 0, 0, 0, 1, 0x0a, 0x08, 0x00]);
    f.extend_from_slice(&ip_packet());
    f
}

/// Classic pcap bytes; `pkts` are (seconds, fraction, data).
fn classic(big: bool, nano: bool, lt: u32, pkts: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
    let w32 = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&if big { x.to_be_bytes() } else { x.to_le_bytes() });
    let w16 = |v: &mut Vec<u8>, x: u16| v.extend_from_slice(&if big { x.to_be_bytes() } else { x.to_le_bytes() });
    let mut v = Vec::new();
    w32(&mut v, if nano { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    w16(&mut v, 2);
    w16(&mut v, 4);
    w32(&mut v, 0);
    w32(&mut v, 0);
    w32(&mut v, 65535);
    w32(&mut v, lt);
    for (s, f, d) in pkts {
        w32(&mut v, *s);
        w32(&mut v, *f);
        w32(&mut v, d.len() as u32);
        w32(&mut v, d.len() as u32);
        v.extend_from_slice(d);
    }
    v
}

/// pcapng bytes: one section, interfaces `(linktype, tsresol)`, and
/// enhanced packet blocks `(interface, raw timestamp, data)`.
fn pcapng(big: bool, ifaces: &[(u16, Option<u8>)], pkts: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let b32 = |x: u32| if big { x.to_be_bytes() } else { x.to_le_bytes() };
    let b16 = |x: u16| if big { x.to_be_bytes().to_vec() } else { x.to_le_bytes().to_vec() };
    let block = |v: &mut Vec<u8>, ty: u32, body: &[u8]| {
        let len = 12 + body.len() as u32;
        v.extend_from_slice(&b32(ty));
        v.extend_from_slice(&b32(len));
        v.extend_from_slice(body);
        v.extend_from_slice(&b32(len));
    };
    let mut v = Vec::new();
    let mut shb = b32(0x1a2b_3c4d).to_vec();
    shb.extend(b16(1));
    shb.extend(b16(0));
    shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length: unknown
    block(&mut v, 0x0a0d_0d0a, &shb);
    for (lt, res) in ifaces {
        let mut idb = b16(*lt);
        idb.extend(b16(0));
        idb.extend_from_slice(&b32(65535));
        if let Some(r) = res {
            idb.extend(b16(9));
            idb.extend(b16(1));
            idb.extend_from_slice(&[*r, 0, 0, 0]);
            idb.extend(b16(0));
            idb.extend(b16(0));
        }
        block(&mut v, 1, &idb);
    }
    for (i, ts, d) in pkts {
        let mut epb = b32(*i).to_vec();
        epb.extend_from_slice(&b32((ts >> 32) as u32));
        epb.extend_from_slice(&b32(*ts as u32));
        epb.extend_from_slice(&b32(d.len() as u32));
        epb.extend_from_slice(&b32(d.len() as u32));
        epb.extend_from_slice(d);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        block(&mut v, 6, &epb);
    }
    v
}

fn p() -> &'static Path {
    Path::new("test.cap")
}

#[test]
fn classic_pcap_all_four_magics() {
    for big in [false, true] {
        for nano in [false, true] {
            let frac = if nano { 250_000_000 } else { 250_000 };
            let bytes = classic(big, nano, 1, &[(1_700_000_000, frac, eth_frame()), (1_700_000_001, 0, eth_frame())]);
            let cap = read_bytes(&bytes, p(), RX).unwrap();
            assert_eq!(cap.format, Format::Pcap { nanosecond: nano, big_endian: big });
            assert_eq!(cap.link_types, vec![linktype::ETHERNET]);
            assert_eq!(cap.packets.len(), 2);
            assert_eq!(cap.packets[0].time, Instant(1_700_000_000_250_000));
            assert_eq!(cap.packets[1].time, Instant(1_700_000_001_000_000));
            assert_eq!(cap.packets[1].number, 2);
            assert_eq!(cap.packets[0].frame, eth_frame());
        }
    }
}

#[test]
fn pcapng_either_order_tsresol_and_several_interfaces() {
    for big in [false, true] {
        let bytes = pcapng(
            big,
            &[(1, None), (101, Some(9))],
            &[(0, 1_700_000_000_123_456, eth_frame()), (1, 1_700_000_000_500_000_000, ip_packet())],
        );
        let cap = read_bytes(&bytes, p(), RX).unwrap();
        assert_eq!(cap.format, Format::PcapNg);
        assert_eq!(cap.link_types, vec![1, 101]);
        assert_eq!(cap.packets[0].time, Instant(1_700_000_000_123_456));
        assert_eq!(cap.packets[1].time, Instant(1_700_000_000_500_000));
        assert_eq!(cap.packets[1].frame, {
            let mut f = RX.0.to_vec();
            f.extend_from_slice(&SYNTH_SRC_MAC.0);
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&ip_packet());
            f
        });
    }
    // A power-of-two resolution: 2^-10 s units.
    let bytes = pcapng(false, &[(1, Some(0x80 | 10))], &[(0, 3 * 1024 + 512, eth_frame())]);
    assert_eq!(read_bytes(&bytes, p(), RX).unwrap().packets[0].time, Instant(3_500_000));
}

fn synthesized(lt: u32, data: Vec<u8>) -> Vec<u8> {
    let bytes = classic(false, false, lt, &[(1, 0, data)]);
    read_bytes(&bytes, p(), RX).unwrap_or_else(|e| panic!("link type {lt}: {e}")).packets.remove(0).frame
}

#[test]
fn non_ethernet_link_types_get_an_ethernet_header() {
    let expect = |et: [u8; 2], payload: &[u8]| {
        let mut f = RX.0.to_vec();
        f.extend_from_slice(&SYNTH_SRC_MAC.0);
        f.extend_from_slice(&et);
        f.extend_from_slice(payload);
        f
    };
    let ip = ip_packet();
    let mut ip6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
    ip6.resize(40, 0);
    let with = |hdr: &[u8], body: &[u8]| [hdr, body].concat();

    // DLT_NULL in either byte order; AF_INET6 as on the BSDs and macOS.
    assert_eq!(synthesized(0, with(&2u32.to_le_bytes(), &ip)), expect([8, 0], &ip));
    assert_eq!(synthesized(0, with(&2u32.to_be_bytes(), &ip)), expect([8, 0], &ip));
    for af in [24u32, 28, 30] {
        assert_eq!(synthesized(0, with(&af.to_le_bytes(), &ip6)), expect([0x86, 0xdd], &ip6));
        assert_eq!(synthesized(108, with(&af.to_be_bytes(), &ip6)), expect([0x86, 0xdd], &ip6));
    }
    for lt in [101, 12, 14, 228] {
        assert_eq!(synthesized(lt, ip.clone()), expect([8, 0], &ip));
    }
    assert_eq!(synthesized(101, ip6.clone()), expect([0x86, 0xdd], &ip6));

    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0, 0x08, 0x00];
    assert_eq!(synthesized(113, with(&sll, &ip)), expect([8, 0], &ip));
    sll[14..16].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(synthesized(113, with(&sll, b"arp")), expect([8, 6], b"arp"));
    let sll2 = [0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0];
    assert_eq!(synthesized(276, with(&sll2, &ip6)), expect([0x86, 0xdd], &ip6));
}

#[test]
fn errors_name_file_and_packet() {
    let e = read_bytes(b"GIF89a....", Path::new("x/picture.pcap"), RX).unwrap_err();
    assert!(matches!(e, ReplayError::NotACapture { .. }));
    assert_eq!(e.to_string(), "x/picture.pcap is neither pcap nor pcapng (its magic number is 0x47494638)");

    let mut bytes = classic(false, false, 1, &[(1, 0, eth_frame()), (2, 0, eth_frame())]);
    bytes.truncate(bytes.len() - 5);
    let e = read_bytes(&bytes, Path::new("cut.pcap"), RX).unwrap_err();
    assert_eq!(e.to_string(), "cut.pcap: packet 2: the file ends inside this packet (cut-short capture)");

    let bytes = classic(false, false, 105, &[(1, 0, eth_frame())]);
    let e = read_bytes(&bytes, Path::new("wifi.pcap"), RX).unwrap_err();
    assert!(e.to_string().starts_with("wifi.pcap: packet 1: link type 105 is not supported"), "{e}");

    let bytes = classic(false, false, 0, &[(1, 0, eth_frame()), (1, 0, vec![2, 0])]);
    let e = read_bytes(&bytes, Path::new("lo.pcap"), RX).unwrap_err();
    assert!(e.to_string().starts_with("lo.pcap: packet 1: loopback address family"), "{e}");

    let bytes = pcapng(false, &[(1, None)], &[(3, 0, eth_frame())]);
    let e = read_bytes(&bytes, Path::new("ng.pcapng"), RX).unwrap_err();
    assert!(e.to_string().contains("ng.pcapng: packet 1: names interface 3"), "{e}");
}

#[test]
fn pcap_out_reads_back() {
    let frames = [(Instant(1_700_000_000_000_001), eth_frame()), (Instant(1_700_000_002_500_000), vec![1, 2, 3])];
    let bytes = pcap_out::encode(frames.iter().map(|(t, f)| (*t, &f[..])));
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let cap = read_bytes(&bytes, p(), RX).unwrap();
    let back: Vec<_> = cap.packets.into_iter().map(|p| (p.time, p.frame)).collect();
    assert_eq!(back, frames.to_vec());
}

#[test]
fn merge_clamps_within_an_input_and_breaks_ties_by_input() {
    let i = Instant;
    let order = merge_order(&[vec![i(10), i(30), i(20), i(40)], vec![i(10), i(25), i(30)]]);
    assert_eq!(
        order,
        vec![
            (i(10), 0, 0),
            (i(10), 1, 0),
            (i(25), 1, 1),
            (i(30), 0, 1),
            (i(30), 0, 2), // 20 clamped up to 30, still after packet 1
            (i(30), 1, 2),
            (i(40), 0, 3),
        ]
    );
    assert!(merge_order(&[]).is_empty());
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinwall-replay-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_dir_sorted(d: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_inputs_same_outputs_byte_for_byte() {
    let dir = scratch("determinism");
    let inside = dir.join("in_inside.pcap");
    let outside = dir.join("in_outside.pcapng");
    std::fs::write(&inside, classic(false, true, 1, &[(5, 0, eth_frame()), (4, 0, eth_frame()), (7, 9, eth_frame())]))
        .unwrap();
    std::fs::write(&outside, pcapng(true, &[(101, None)], &[(0, 5_000_000, ip_packet()), (0, 6_000_000, ip_packet())]))
        .unwrap();
    let inputs =
        [ReplayInput { iface: "inside".into(), path: inside }, ReplayInput { iface: "outside".into(), path: outside }];
    let opts = ReplayOptions { seed: 42, retarget_mac: true, linger: Duration::from_secs(5) };
    let (a, b) = (dir.join("out_a"), dir.join("out_b"));
    let ra = run(lab_config(), &inputs, &a, &opts).unwrap();
    let rb = run(lab_config(), &inputs, &b, &opts).unwrap();
    assert_eq!(read_dir_sorted(&a), read_dir_sorted(&b));
    assert_eq!(ra.frames, rb.frames);
    assert_eq!(ra.fed, vec![3, 2]);
    // Inside packet 2 (t=4s) is clamped up to packet 1 (t=5s): the run starts at 5s.
    assert_eq!(ra.start, Instant(5_000_000));
    assert_eq!(ra.end, Instant(7_000_000) + Duration::from_secs(5));
    assert_eq!(ra.counters.ifaces[0].rx_frames, 3);
    assert_eq!(ra.counters.ifaces[1].rx_frames, 2);
    let json = std::fs::read_to_string(a.join("counters.json")).unwrap();
    assert_eq!(json, ra.counters_json().unwrap());
    // Keys are sorted at every level.
    let drops = json.find("\"drops\"").unwrap();
    let events = json.find("\"events\"").unwrap();
    let ifaces = json.find("\"interfaces\"").unwrap();
    assert!(drops < events && events < ifaces, "{json}");
    assert!(json.find("\"inside\"").unwrap() < json.find("\"outside\"").unwrap());
    assert!(json.find("\"rx_bytes\"").unwrap() < json.find("\"rx_frames\"").unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_interface_is_an_error() {
    let inputs = [ReplayInput { iface: "dmz".into(), path: "in_dmz.pcap".into() }];
    let e = run(lab_config(), &inputs, Path::new("/nonexistent"), &ReplayOptions::default()).unwrap_err();
    assert_eq!(e.to_string(), "input in_dmz.pcap is for interface `dmz`, which the configuration does not have");
}

#[test]
fn reader_reads_files() {
    let dir = scratch("reader");
    let f = dir.join("a.pcap");
    std::fs::write(&f, classic(true, false, 1, &[(1, 2, eth_frame())])).unwrap();
    assert_eq!(pcap_in::read_file(&f, RX).unwrap().packets.len(), 1);
    let e = pcap_in::read_file(&dir.join("missing.pcap"), RX).unwrap_err();
    assert!(e.to_string().starts_with("couldn't read or write "), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
